//! kvbind's own view of the Azure resources it reads and changes. No generated type of the
//! azure_mgmt crates appears outside this crate.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::ids::{IdentityId, VaultId};

/// A federated identity credential: tokens from `issuer` about `subject`, for one of
/// `audiences`, are exchanged for tokens of the identity it belongs to (workload identity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederatedCredential {
    /// Its name under the identity.
    pub name: String,
    /// The OIDC issuer URL of the cluster.
    pub issuer: String,
    /// `system:serviceaccount:<namespace>:<name>`.
    pub subject: String,
    /// The audiences (workload identity uses `api://AzureADTokenExchange`).
    pub audiences: Vec<String>,
}

/// The most access-policy entries one `Vaults_UpdateAccessPolicy` request may carry
/// (`VaultAccessPolicyProperties.accessPolicies`, "0 to 16" in the spec).
pub const MAX_ACCESS_POLICIES_PER_REQUEST: usize = 16;

/// The user-assigned identities Azure lets one VM scale set or VM carry: an update that
/// would leave more is refused (`User Assigned Identities Number '151' Assign exceed limit
/// '150' in one request.`).
pub const MAX_USER_ASSIGNED_PER_COMPUTE: usize = 150;

/// The audience Azure AD expects for workload identity token exchange.
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// A user-assigned managed identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Its resource ID.
    pub id: IdentityId,
    /// Its region.
    pub location: String,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
    /// The client (application) ID.
    pub client_id: String,
    /// The service principal's object ID.
    pub principal_id: String,
    /// The directory it lives in.
    pub tenant_id: String,
}

/// The `identity` block of a VM scale set or VM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComputeIdentity {
    /// A system-assigned identity is enabled (and must stay so).
    pub system_assigned: bool,
    /// The user-assigned identities as ARM spelled their IDs, sorted by the lowercase ID.
    /// Shared: the same identities are on many pools.
    user_assigned: Vec<Arc<str>>,
    /// The principal ID ARM reported beside each of `user_assigned`, in the same order;
    /// empty where it reported none (an identity deleted while still attached).
    principal_ids: Vec<Arc<str>>,
}

impl ComputeIdentity {
    /// An identity block: `user_assigned` pairs each identity's ID (as ARM spelled it)
    /// with the principal ID ARM reported for it (empty when none).
    pub fn new(system_assigned: bool, mut user_assigned: Vec<(String, String)>) -> Self {
        user_assigned.sort_by(|(a, _), (b, _)| lowercase(a).cmp(lowercase(b)));
        let (user_assigned, principal_ids) =
            user_assigned.into_iter().map(|(id, principal)| (crate::intern::intern(&id), crate::intern::intern(&principal))).unzip();
        ComputeIdentity { system_assigned, user_assigned, principal_ids }
    }

    /// The user-assigned identities' IDs, as ARM spelled them.
    pub fn user_assigned(&self) -> &[Arc<str>] {
        &self.user_assigned
    }

    /// True when `identity` is among the user-assigned identities (compared ignoring case).
    pub fn has(&self, identity: &IdentityId) -> bool {
        self.position(identity).is_some()
    }

    /// The ID of `identity` as ARM spelled it here, when it is attached.
    pub fn spelled(&self, identity: &IdentityId) -> Option<&str> {
        self.position(identity).map(|i| &*self.user_assigned[i])
    }

    /// The principal ID ARM reports for `identity` here, when it is attached and has one.
    pub fn principal_of(&self, identity: &IdentityId) -> Option<&str> {
        self.position(identity).and_then(|i| self.principal_ids.get(i)).map(|p| &**p).filter(|p| !p.is_empty())
    }

    /// A pool can carry a thousand identities and every binding on it asks about its own,
    /// so the IDs are kept sorted and searched, not scanned.
    fn position(&self, identity: &IdentityId) -> Option<usize> {
        let key = identity.key();
        self.user_assigned.binary_search_by(|id| lowercase(id).cmp(key.bytes())).ok()
    }
}

fn lowercase(s: &str) -> impl Iterator<Item = u8> + '_ {
    s.bytes().map(|b| b.to_ascii_lowercase())
}

/// A change to the user-assigned identities of one VM scale set or VM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityChange {
    /// Identities to attach. Shared: one binding's identity goes into the batches of every
    /// scale set it belongs on.
    pub add: BTreeSet<Arc<IdentityId>>,
    /// Identities to detach. Only identities kvbind attached belong here.
    pub remove: BTreeSet<Arc<IdentityId>>,
}

impl IdentityChange {
    /// True when there is nothing to change.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
}

/// A Key Vault as far as grants are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vault {
    /// Its resource ID.
    pub id: VaultId,
    /// The directory its data plane trusts.
    pub tenant_id: String,
    /// True when data access is authorised by Azure RBAC instead of access policies.
    pub rbac_authorization: bool,
    /// The data-plane URI.
    pub vault_uri: Option<String>,
    /// Its access policies (ignored by Azure when `rbac_authorization` is true).
    pub access_policies: Vec<AccessPolicy>,
}

impl Vault {
    /// True when the vault already grants `entry`'s principal every permission `entry` names.
    pub fn grants(&self, entry: &AccessPolicy) -> bool {
        self.access_policies.iter().any(|p| {
            p.object_id.eq_ignore_ascii_case(&entry.object_id)
                && p.tenant_id.eq_ignore_ascii_case(&entry.tenant_id)
                && p.permissions.includes(&entry.permissions)
        })
    }

    /// Applies an access-policy change the way the vault does: `add` unions into the
    /// principal's entry (or adds it), `replace` sets it, `remove` subtracts and drops an
    /// emptied entry.
    pub fn apply(&mut self, op: AccessPolicyOp, entry: &AccessPolicy) {
        let found =
            self.access_policies.iter().position(|p| p.object_id.eq_ignore_ascii_case(&entry.object_id) && p.tenant_id.eq_ignore_ascii_case(&entry.tenant_id));
        match (op, found) {
            (AccessPolicyOp::Add, Some(i)) => self.access_policies[i].permissions.merge(&entry.permissions),
            (AccessPolicyOp::Replace, Some(i)) => self.access_policies[i].permissions = entry.permissions.clone(),
            (AccessPolicyOp::Add | AccessPolicyOp::Replace, None) => self.access_policies.push(entry.clone()),
            (AccessPolicyOp::Remove, Some(i)) => {
                self.access_policies[i].permissions.subtract(&entry.permissions);
                if self.access_policies[i].permissions.is_empty() {
                    self.access_policies.remove(i);
                }
            }
            (AccessPolicyOp::Remove, None) => {}
        }
    }
}

/// One access-policy entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessPolicy {
    /// The principal's directory.
    pub tenant_id: String,
    /// The principal's object ID.
    pub object_id: String,
    /// The permissions, by object kind.
    pub permissions: Permissions,
}

/// Data-plane permissions of an access policy, lowercase.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    /// Secret permissions (`get`, `list`, …).
    pub secrets: BTreeSet<String>,
    /// Key permissions.
    pub keys: BTreeSet<String>,
    /// Certificate permissions.
    pub certificates: BTreeSet<String>,
    /// Storage permissions; kvbind never grants any but keeps what it reads.
    pub storage: BTreeSet<String>,
}

impl Permissions {
    /// Adds every permission of `other`.
    pub fn merge(&mut self, other: &Permissions) {
        self.secrets.extend(other.secrets.iter().cloned());
        self.keys.extend(other.keys.iter().cloned());
        self.certificates.extend(other.certificates.iter().cloned());
        self.storage.extend(other.storage.iter().cloned());
    }

    /// True when every permission of `other` is here too.
    pub fn includes(&self, other: &Permissions) -> bool {
        other.secrets.is_subset(&self.secrets)
            && other.keys.is_subset(&self.keys)
            && other.certificates.is_subset(&self.certificates)
            && other.storage.is_subset(&self.storage)
    }

    /// Removes every permission of `other`.
    pub fn subtract(&mut self, other: &Permissions) {
        self.secrets.retain(|p| !other.secrets.contains(p));
        self.keys.retain(|p| !other.keys.contains(p));
        self.certificates.retain(|p| !other.certificates.contains(p));
        self.storage.retain(|p| !other.storage.contains(p));
    }

    /// True when no permission is set.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty() && self.keys.is_empty() && self.certificates.is_empty() && self.storage.is_empty()
    }
}

/// The three access-policy operations of `Vaults_UpdateAccessPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessPolicyOp {
    /// Union the permissions into the principal's entry (or add the entry).
    Add,
    /// Set the principal's entry to exactly these permissions.
    Replace,
    /// Subtract the permissions; the entry goes when it is empty.
    Remove,
}

impl AccessPolicyOp {
    /// The path segment ARM expects.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessPolicyOp::Add => "add",
            AccessPolicyOp::Replace => "replace",
            AccessPolicyOp::Remove => "remove",
        }
    }
}

/// An Azure RBAC role assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleAssignment {
    /// The assignment's name, a GUID.
    pub name: String,
    /// The scope, with a leading slash.
    pub scope: String,
    /// The role definition's GUID (lowercase).
    pub role_definition: String,
    /// The assignee's object ID.
    pub principal_id: String,
}

/// Where `kvbind doctor` asks for the operator's permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PermissionScope {
    /// A resource group (identities, or a node resource group).
    ResourceGroup {
        /// The subscription.
        subscription: String,
        /// The resource group.
        resource_group: String,
    },
    /// One vault.
    Vault(VaultId),
}

impl std::fmt::Display for PermissionScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PermissionScope::ResourceGroup { subscription, resource_group } => write!(f, "/subscriptions/{subscription}/resourceGroups/{resource_group}"),
            PermissionScope::Vault(id) => write!(f, "{id}"),
        }
    }
}

/// Where an identity may be attached (`properties.isolationScope`, api-version 2024-11-30).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsolationScope {
    /// Anywhere in its tenant.
    None,
    /// Only to resources in its own region.
    Regional,
}

/// An identity as a resource group's list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedIdentity {
    /// Its resource ID.
    pub id: IdentityId,
    /// Its region.
    pub location: String,
    /// Where it may be attached.
    pub isolation_scope: IsolationScope,
}

/// The identity AKS made for its Key Vault secrets provider add-on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddonIdentity {
    /// Its resource ID (in the node resource group).
    pub id: IdentityId,
    /// Its client ID.
    pub client_id: String,
    /// Its service principal's object ID.
    pub principal_id: String,
}

/// An AKS identity binding: one identity made usable in one managed cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterIdentityBinding {
    /// Its ARM ID (`…/managedClusters/NAME/identityBindings/NAME`).
    pub id: String,
    /// The identity it binds.
    pub identity: IdentityId,
    /// The identity's client ID, as AKS reports it.
    pub client_id: Option<String>,
    /// The issuer AKS's shared federated credential on the identity trusts.
    pub oidc_issuer: Option<String>,
    /// `Succeeded`, or the state of an operation still running.
    pub provisioning_state: String,
}

/// A deny assignment: actions refused at a scope whatever roles grant them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenyAssignment {
    /// Its display name (`denyAssignmentName`).
    pub name: String,
    /// The scope it applies at.
    pub scope: String,
    /// What it denies: its actions, less its not-actions.
    pub denied: PermissionSet,
}

impl DenyAssignment {
    /// True when it refuses `action`.
    pub fn denies(&self, action: &str) -> bool {
        self.denied.allows(action)
    }
}

/// Actions a principal may and may not perform at a scope (one role's worth).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PermissionSet {
    /// Allowed actions, `*` wildcards allowed.
    pub actions: Vec<String>,
    /// Excluded actions.
    pub not_actions: Vec<String>,
}

impl PermissionSet {
    /// True when `action` is allowed by this set.
    pub fn allows(&self, action: &str) -> bool {
        let action = action.to_ascii_lowercase();
        let matches = |pattern: &String| wildcard(&pattern.to_ascii_lowercase(), &action);
        self.actions.iter().any(matches) && !self.not_actions.iter().any(matches)
    }
}

/// ARM action patterns: `*` matches any run of characters.
fn wildcard(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => text.starts_with(head) && (head.len()..=text.len()).any(|i| wildcard(rest, &text[i..])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_with_wildcards_and_exclusions() {
        let p = PermissionSet {
            actions: vec!["Microsoft.Compute/*/read".into(), "Microsoft.KeyVault/*".into()],
            not_actions: vec!["Microsoft.KeyVault/vaults/delete".into()],
        };
        assert!(p.allows("microsoft.compute/virtualMachineScaleSets/read"));
        assert!(!p.allows("Microsoft.Compute/virtualMachineScaleSets/write"));
        assert!(p.allows("Microsoft.KeyVault/vaults/accessPolicies/write"));
        assert!(!p.allows("Microsoft.KeyVault/vaults/delete"));
    }
}
