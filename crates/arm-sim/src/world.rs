//! The simulated Azure: resources, their rules, and the history of every identity block.
//!
//! This file holds the world's state, its seeding, and what every kind of resource shares
//! (subscriptions and resource groups, the node resource group's lockdown, ARM's envelope
//! and errors); each kind has its own file beside it: `identities`, [`federated`]
//! credentials, `compute` (scale sets and VMs), `vaults`, `role_assignments`,
//! [`managed_clusters`], the [`key_vault_data`] plane, and `clients` (what current
//! clients call around kvbind's operations).
//!
//! Every method here is synchronous and pure apart from the state it changes; the HTTP
//! layer decides on auth, faults and wire format.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::seed::{ComputeSeed, LroSeed, Seed};

mod clients;
mod compute;
pub mod federated;
mod identities;
pub mod key_vault_data;
pub mod managed_clusters;
mod role_assignments;
mod vaults;

use identities::identity_json;
pub use identities::identity_key;
use vaults::vault_key;

/// An ARM error to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArmError {
    /// The HTTP status.
    pub status: u16,
    /// The ARM error code.
    pub code: String,
    /// The message.
    pub message: String,
}

impl ArmError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        ArmError { status, code: code.into(), message: message.into() }
    }
}

/// The lowercase key of an ARM path.
pub fn key(path: &str) -> String {
    path.trim_matches('/').to_ascii_lowercase()
}

/// A user-assigned identity.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityResource {
    /// Subscription.
    pub subscription: String,
    /// Resource group.
    pub resource_group: String,
    /// Name.
    pub name: String,
    /// Region.
    pub location: String,
    /// Tags.
    pub tags: Map<String, Value>,
    /// Client ID.
    pub client_id: String,
    /// Principal ID.
    pub principal_id: String,
    /// `None`, or `Regional`: the identity may be assigned only to resources in its own
    /// region (api-version 2024-11-30 and later).
    pub isolation_scope: String,
    /// Federated identity credentials by lowercase name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub federated_credentials: BTreeMap<String, federated::FederatedCredentialResource>,
}

/// A VM scale set or VM.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComputeResource {
    /// `virtualMachineScaleSets` or `virtualMachines`.
    pub kind: &'static str,
    /// Subscription.
    pub subscription: String,
    /// Resource group.
    pub resource_group: String,
    /// Name.
    pub name: String,
    /// Region.
    pub location: String,
    /// The system-assigned identity's principal, when enabled.
    pub system_principal: Option<String>,
    /// User-assigned identity IDs, keyed by lowercase ID.
    pub user_assigned: BTreeMap<String, String>,
    /// Made and managed by node auto-provisioning: identity changes are refused.
    pub auto_provisioned: bool,
    /// The operation in flight, if any.
    #[serde(skip)]
    pub busy_until: Option<Option<Instant>>,
}

/// A Key Vault.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VaultResource {
    /// Subscription.
    pub subscription: String,
    /// Resource group.
    pub resource_group: String,
    /// Name.
    pub name: String,
    /// Region.
    pub location: String,
    /// RBAC authorisation.
    pub rbac: bool,
    /// Access policies, in ARM's JSON form.
    pub access_policies: Vec<Value>,
    /// The objects in the vault, for the data plane.
    #[serde(skip_serializing_if = "key_vault_data::VaultObjects::is_empty")]
    pub objects: key_vault_data::VaultObjects,
}

/// A role assignment.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleAssignmentResource {
    /// The GUID name.
    pub name: String,
    /// The scope with a leading slash.
    pub scope: String,
    /// The role definition ID as sent.
    pub role_definition_id: String,
    /// The principal.
    pub principal_id: String,
    /// The principal type as sent.
    pub principal_type: Option<String>,
    /// When it was created (RFC 3339).
    pub created_on: String,
}

/// A long-running operation.
#[derive(Debug, Clone)]
pub struct Operation {
    /// When it ends; `None` never.
    pub ends: Option<Instant>,
    /// Whether it ends `Failed`.
    pub fails: bool,
    /// When it started.
    pub started: String,
}

/// One recorded state of a VMSS/VM identity block.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityHistoryEntry {
    /// The resource ID (lowercase).
    pub resource: String,
    /// A system-assigned identity was enabled.
    pub system_assigned: bool,
    /// The user-assigned identity IDs (lowercase).
    pub user_assigned: Vec<String>,
}

/// The whole simulated Azure.
#[derive(Debug, Default)]
pub struct World {
    /// The tenant.
    pub tenant_id: String,
    /// Subscriptions (lowercase).
    pub subscriptions: BTreeMap<String, String>,
    /// Resource groups by lowercase `subscriptions/S/resourcegroups/G`.
    pub resource_groups: BTreeMap<String, (String, String)>,
    /// The resource groups a deny assignment locks (AKS's node resource group lockdown), by
    /// the same key.
    pub locked_groups: std::collections::BTreeSet<String>,
    /// Identities by key.
    pub identities: BTreeMap<String, IdentityResource>,
    /// VM scale sets and VMs by key.
    pub compute: BTreeMap<String, ComputeResource>,
    /// Vaults by key.
    pub vaults: BTreeMap<String, VaultResource>,
    /// AKS managed clusters by key.
    pub managed_clusters: BTreeMap<String, managed_clusters::ManagedClusterResource>,
    /// AKS identity bindings by key.
    pub identity_bindings: BTreeMap<String, managed_clusters::IdentityBindingResource>,
    /// Role assignments by lowercase name.
    pub role_assignments: BTreeMap<String, RoleAssignmentResource>,
    /// Operations by ID.
    pub operations: BTreeMap<String, Operation>,
    /// Principals and when they appeared.
    pub principals: BTreeMap<String, Instant>,
    /// Every identity block each VMSS/VM has had, in order.
    pub history: Vec<IdentityHistoryEntry>,
    /// LRO timing.
    pub lro: LroSeed,
    /// List page size.
    pub page_size: usize,
    /// Azure's hard limits.
    pub limits: crate::seed::LimitsSeed,
    /// Azure's request rates and what is left of them.
    pub rates: crate::rates::Rates,
}

/// ISO 8601 now.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

fn guid() -> String {
    Uuid::new_v4().to_string()
}

impl World {
    /// A world with the given seed's contents.
    pub fn from_seed(seed: &Seed) -> World {
        let mut world = World {
            tenant_id: seed.tenant_id.clone().unwrap_or_else(|| "72f988bf-86f1-41af-91ab-2d7cd011db47".to_owned()),
            page_size: seed.page_size.unwrap_or(100).max(1),
            lro: seed.lro.unwrap_or_default(),
            limits: seed.limits.unwrap_or_default(),
            rates: crate::rates::Rates::new(seed.rates.unwrap_or_default()),
            ..World::default()
        };
        world.add_seed(seed);
        world
    }

    /// Adds the resources of `seed` (existing ones are replaced).
    pub fn add_seed(&mut self, seed: &Seed) {
        if let Some(lro) = seed.lro {
            self.lro = lro;
        }
        if let Some(size) = seed.page_size {
            self.page_size = size.max(1);
        }
        for principal in &seed.principals {
            self.principals.insert(principal.to_ascii_lowercase(), Instant::now() - Duration::from_secs(3600));
        }
        for sub in &seed.subscriptions {
            self.subscriptions.insert(sub.id.to_ascii_lowercase(), sub.id.clone());
            for rg in &sub.resource_groups {
                let rg_key = key(&format!("subscriptions/{}/resourceGroups/{}", sub.id, rg.name));
                if rg.lockdown {
                    self.locked_groups.insert(rg_key.clone());
                }
                self.resource_groups.insert(rg_key, (rg.name.clone(), rg.location.clone()));
                for id in &rg.identities {
                    let principal = id.principal_id.clone().unwrap_or_else(guid);
                    self.principals.insert(principal.to_ascii_lowercase(), Instant::now() - Duration::from_secs(3600));
                    let resource = IdentityResource {
                        subscription: sub.id.clone(),
                        resource_group: rg.name.clone(),
                        name: id.name.clone(),
                        location: rg.location.clone(),
                        tags: id.tags.iter().map(|(k, v)| (k.clone(), json!(v))).collect(),
                        client_id: id.client_id.clone().unwrap_or_else(guid),
                        principal_id: principal,
                        isolation_scope: id.isolation_scope.clone().unwrap_or_else(|| "None".to_owned()),
                        federated_credentials: id
                            .federated_credentials
                            .iter()
                            .map(|c| {
                                let credential = federated::FederatedCredentialResource {
                                    name: c.name.clone(),
                                    issuer: c.issuer.clone(),
                                    subject: c.subject.clone(),
                                    audiences: vec!["api://AzureADTokenExchange".to_owned()],
                                };
                                (c.name.to_ascii_lowercase(), credential)
                            })
                            .collect(),
                    };
                    self.identities.insert(identity_key(&sub.id, &rg.name, &id.name), resource);
                }
                for (kind, list) in [("virtualMachineScaleSets", &rg.scale_sets), ("virtualMachines", &rg.virtual_machines)] {
                    for c in list {
                        self.add_compute(kind, &sub.id, &rg.name, &rg.location, c);
                    }
                }
                for c in &rg.managed_clusters {
                    self.managed_clusters.insert(
                        managed_clusters::cluster_key(&sub.id, &rg.name, &c.name),
                        managed_clusters::ManagedClusterResource {
                            subscription: sub.id.clone(),
                            resource_group: rg.name.clone(),
                            name: c.name.clone(),
                            location: rg.location.clone(),
                            node_resource_group: c.node_resource_group.clone(),
                            key_vault_secrets_provider: c.key_vault_secrets_provider.clone(),
                        },
                    );
                }
                for v in &rg.vaults {
                    let k = key(&format!("subscriptions/{}/resourceGroups/{}/providers/Microsoft.KeyVault/vaults/{}", sub.id, rg.name, v.name));
                    self.vaults.insert(
                        k,
                        VaultResource {
                            subscription: sub.id.clone(),
                            resource_group: rg.name.clone(),
                            name: v.name.clone(),
                            location: rg.location.clone(),
                            rbac: v.rbac,
                            access_policies: v.access_policies.clone(),
                            objects: key_vault_data::VaultObjects::from_seed(v),
                        },
                    );
                }
            }
        }
    }

    fn add_compute(&mut self, kind: &'static str, sub: &str, rg: &str, location: &str, seed: &ComputeSeed) {
        let k = key(&format!("subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/{kind}/{}", seed.name));
        let resource = ComputeResource {
            kind,
            subscription: sub.to_owned(),
            resource_group: rg.to_owned(),
            name: seed.name.clone(),
            location: location.to_owned(),
            system_principal: seed.system_assigned.then(guid),
            user_assigned: seed.user_assigned.iter().map(|id| (key(id), id.clone())).collect(),
            auto_provisioned: seed.auto_provisioned,
            busy_until: None,
        };
        self.record(&k, &resource);
        self.compute.insert(k, resource);
    }

    fn record(&mut self, k: &str, resource: &ComputeResource) {
        self.history.push(IdentityHistoryEntry {
            resource: k.to_owned(),
            system_assigned: resource.system_principal.is_some(),
            user_assigned: resource.user_assigned.keys().cloned().collect(),
        });
    }

    /// The deny assignment's refusal of a write to `path`, when a locked resource group
    /// holds it. AKS documents the 403; the code and the message are modelled on ARM's
    /// deny-assignment answers, as no source gives the lockdown's exact text.
    pub fn denied_by_lockdown(&self, path: &str, action: &str, client_id: &str, principal_id: &str) -> Option<ArmError> {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let [subs, sub, groups, group, ..] = parts.as_slice() else { return None };
        if !subs.eq_ignore_ascii_case("subscriptions") || !groups.eq_ignore_ascii_case("resourcegroups") {
            return None;
        }
        let scope = format!("/subscriptions/{sub}/resourceGroups/{group}");
        self.locked_groups.contains(&key(&scope)).then(|| {
            ArmError::new(
                403,
                "DenyAssignmentAuthorizationFailed",
                format!(
                    "The client '{client_id}' with object id '{principal_id}' has permission to perform action '{action}' on scope '{path}'; however, the access is denied because of the deny assignment with name 'System deny assignment created by managed cluster' and Id '00000000-0000-0000-0000-00000000d0c0' at scope '{scope}'."
                ),
            )
        })
    }

    /// `DenyAssignments_ListForResourceGroup`: the lockdown's deny assignment on a locked
    /// group (every write and delete, for every principal but AKS's own), in the shape of
    /// the REST spec's `DenyAssignment`.
    pub fn deny_assignments(&self, sub: &str, rg: &str) -> Vec<Value> {
        let scope = format!("/subscriptions/{sub}/resourceGroups/{rg}");
        if !self.locked_groups.contains(&key(&scope)) {
            return Vec::new();
        }
        vec![json!({
            "id": format!("{scope}/providers/Microsoft.Authorization/denyAssignments/00000000-0000-0000-0000-00000000d0c0"),
            "name": "00000000-0000-0000-0000-00000000d0c0",
            "type": "Microsoft.Authorization/denyAssignments",
            "properties": {
                "denyAssignmentName": "System deny assignment created by managed cluster",
                "description": "Node resource group lockdown",
                "permissions": [{"actions": ["*"], "notActions": ["*/read"], "dataActions": [], "notDataActions": []}],
                "scope": scope,
                "doNotApplyToChildScopes": false,
                "principals": [{"id": "00000000-0000-0000-0000-000000000000", "type": "SystemDefined"}],
                "excludePrincipals": [],
                "isSystemProtected": true,
            },
        })]
    }

    /// Checks that the subscription and resource group exist.
    pub fn require_group(&self, sub: &str, rg: &str) -> Result<(), ArmError> {
        if !self.subscriptions.contains_key(&sub.to_ascii_lowercase()) {
            return Err(ArmError::new(404, "SubscriptionNotFound", format!("The subscription '{sub}' could not be found.")));
        }
        if !self.resource_groups.contains_key(&key(&format!("subscriptions/{sub}/resourceGroups/{rg}"))) {
            return Err(ArmError::new(404, "ResourceGroupNotFound", format!("Resource group '{rg}' could not be found.")));
        }
        Ok(())
    }

    /// Seconds since a principal appeared, or `None` for unknown principals.
    pub fn principal_age(&self, principal: &str) -> Option<Duration> {
        self.principals.get(&principal.to_ascii_lowercase()).map(Instant::elapsed)
    }
}

pub(crate) fn not_found(kind: &str, name: &str, rg: &str) -> ArmError {
    ArmError::new(
        404,
        "ResourceNotFound",
        format!("The Resource '{kind}/{name}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"),
    )
}

/// ARM's rule for identity and federated credential names: `max` letters, digits, hyphens
/// and underscores at most, at least three, starting with a letter or digit.
pub(crate) fn check_name(name: &str, max: usize) -> Result<(), ArmError> {
    let ok = (3..=max).contains(&name.len())
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ArmError::new(
            400,
            "InvalidResourceName",
            format!(
                "Resource name {name} is invalid. The name can be 3-{max} characters long and may contain letters, numbers, hyphens and underscores, starting with a letter or number."
            ),
        ))
    }
}

/// The envelope ARM puts around a tracked resource's `properties`.
fn tracked_resource(id: String, name: &str, kind: &str, location: &str, tags: Value, properties: Value) -> Value {
    json!({"id": id, "name": name, "type": kind, "location": location, "tags": tags, "properties": properties})
}

#[cfg(test)]
mod tests;
