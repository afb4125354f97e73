//! BindingPolicies: a binding is reconciled only when one policy that selects its namespace
//! allows every part of it (mode, identity, vaults, nodes, sharing). With no such policy
//! the binding is refused, naming the part and the policies checked, before any Azure
//! call. Vaults found by name are checked by name first and by full ID once resolved.

mod answers;
mod judge;
pub mod judged;
pub mod role_quota;
pub mod sharing;
#[cfg(test)]
mod tests;
pub mod write_quota;

use std::sync::Arc;

use kube::ResourceExt;
use kvbind_api::binding_policy::{name_could_match, scope_allows};
use kvbind_api::identity_binding::IdentityMode;
use kvbind_api::{BindingPolicy, IdentityBinding};
use kvbind_azure::{IdentityId, VaultId};

use self::answers::{Elder, Usage};
pub use self::judge::Judge;
use self::judge::Rules;
use crate::context::Context;
use crate::error::BindingError;
use crate::needs::Needs;
use crate::selector::matches;

/// Path segments of a vault ID (`subscriptions/S/resourceGroups/G/providers/NS/vaults/N`).
const VAULT_SEGMENTS: usize = 8;

/// The rules a judge keeps the answers of.
static RULES: Rules = Rules { selecting, check };

impl<'a> Judge<'a> {
    /// A judge for one reconcile.
    pub fn new(ctx: &'a Context) -> Self {
        Judge::with_rules(ctx, &RULES)
    }
}

/// The policies that allow every part of `binding` known before any Azure call, by name;
/// or why none does.
pub fn check(binding: &IdentityBinding, identity: &IdentityId, adopt: bool, needs: &Needs, judge: &Judge<'_>) -> Result<Vec<String>, BindingError> {
    let namespace = binding.namespace().unwrap_or_default();
    let policies = judge.selecting(&namespace);
    if policies.is_empty() {
        return Err(BindingError::NotAllowedByPolicy(format!("no BindingPolicy selects namespace {namespace}, and bindings are denied by default")));
    }
    let facts = Facts::of(binding, identity, &policies, judge);
    let mut refusals = Vec::new();
    let mut allowing = Vec::new();
    for policy in policies.iter() {
        match refusal(binding, identity, adopt, needs, &facts, policy, judge) {
            None => allowing.push(policy.name_any()),
            Some(why) => refusals.push(format!("BindingPolicy {}: {why}", policy.name_any())),
        }
    }
    if allowing.is_empty() { Err(BindingError::NotAllowedByPolicy(refusals.join("; "))) } else { Ok(allowing) }
}

/// Narrows `allowing` to the policies that also allow the resolved vaults.
pub fn check_vaults(allowing: &[String], vaults: &[VaultId], ctx: &Context) -> Result<(), BindingError> {
    let policies = ctx.index.policies.state();
    let mut refusals = Vec::new();
    for name in allowing {
        let Some(policy) = policies.iter().find(|p| &p.name_any() == name) else {
            continue;
        };
        let outside = vaults.iter().find(|v| !policy.spec.vaults.iter().any(|p| scope_allows(p, &v.to_string())));
        match outside {
            None => return Ok(()),
            Some(vault) => refusals.push(format!("BindingPolicy {name}: vault {vault} is outside spec.vaults")),
        }
    }
    Err(BindingError::NotAllowedByPolicy(refusals.join("; ")))
}

/// True when one of the `allowing` policies lists `identity` among its
/// `adoptableIdentities`: an existing identity kvbind did not make may then be used.
pub fn allows_adoption(allowing: &[String], identity: &IdentityId, ctx: &Context) -> bool {
    let id = identity.to_string();
    ctx.index.policies.state().iter().filter(|p| allowing.contains(&p.name_any())).any(|p| p.spec.adoptable_identities.iter().any(|a| scope_allows(a, &id)))
}

/// True when some policy that allows `binding` also allows every one of `vaults`, the
/// vaults found for its classes, by full ID.
pub fn allows_vaults(binding: &IdentityBinding, vaults: &[VaultId], judge: &Judge<'_>) -> bool {
    judge.verdict(binding).allowing.as_ref().is_some_and(|allowing| check_vaults(allowing, vaults, judge.ctx).is_ok())
}

/// True when some policy allows `binding` as far as the caches tell (no Azure call).
pub fn admits(binding: &IdentityBinding, judge: &Judge<'_>) -> bool {
    judge.verdict(binding).allowing.is_some()
}

/// Why `policy` does not allow `binding`, naming the field; `None` when it does.
fn refusal(
    binding: &IdentityBinding,
    identity: &IdentityId,
    adopt: bool,
    needs: &Needs,
    facts: &Facts,
    policy: &BindingPolicy,
    judge: &Judge<'_>,
) -> Option<String> {
    let spec = &policy.spec;
    let mode = binding.spec.mode;
    if !spec.modes.contains(&mode) {
        return Some(format!("spec.mode {} is not among its modes", mode.as_str()));
    }
    if adopt {
        if !spec.adoptable_identities.iter().any(|p| scope_allows(p, &identity.to_string())) {
            let field = if binding.spec.identity.addon.is_some() { "spec.identity.addon's identity" } else { "spec.identity.resourceId" };
            return Some(format!("{field} {identity} is outside its adoptableIdentities"));
        }
    } else {
        let group = format!("/subscriptions/{}/resourceGroups/{}", identity.subscription, identity.resource_group);
        if !spec.identity_resource_groups.iter().any(|p| scope_allows(p, &group)) {
            return Some(format!("spec.identity.resourceGroup {group} is outside its identityResourceGroups"));
        }
    }
    match &binding.spec.key_vault {
        Some(vault) => {
            if !spec.vaults.iter().any(|p| scope_allows(p, &vault.resource_id)) {
                return Some(format!("spec.keyVault.resourceId {} is outside its vaults", vault.resource_id));
            }
        }
        None => {
            for class in &needs.classes {
                if !spec.vaults.iter().any(|p| name_could_match(p, &class.vault_name, VAULT_SEGMENTS)) {
                    return Some(format!("SecretProviderClass {}: keyvaultName {} is outside its vaults", class.name, class.vault_name));
                }
            }
            for store in &needs.stores {
                if !spec.vaults.iter().any(|p| name_could_match(p, &store.vault_name, VAULT_SEGMENTS)) {
                    return Some(format!("SecretStore {}: spec.provider.azurekv.vaultUrl names vault {}, outside its vaults", store.name, store.vault_name));
                }
            }
        }
    }
    if mode == IdentityMode::VmManagedIdentity
        && let Some(selectors) = &spec.node_selectors
    {
        // AKS puts the add-on's identity on every pool, whatever spec.nodes says: what it
        // is granted, every node's pods can read.
        if binding.spec.identity.addon.is_some()
            && let Some(node) = judge.outside(None, policy)
        {
            return Some(format!(
                "spec.identity.addon's identity is on every node pool, and node {} matches none of its nodeSelectors: every pod of the cluster can get the add-on's tokens",
                node.name_any()
            ));
        }
        if let Some(node) = judge.outside(Some(&binding.spec.nodes), policy) {
            return Some(format!("spec.nodes selects node {}, which none of its nodeSelectors matches", node.name_any()));
        }
        if let Some((target, node)) = facts.exposed.iter().find(|(_, node)| !selectors.iter().any(|s| matches(s, Some(node.labels())))) {
            return Some(format!(
                "spec.nodes reaches {} {}, which also runs node {}, which none of its nodeSelectors matches: every pod on a scale set can get the identities it carries",
                target.kind().describe(),
                target.name,
                node.name_any()
            ));
        }
    }
    if let Some(why) = facts.usage.and_then(|usage| over_quota(&usage, binding, spec)) {
        return Some(why);
    }
    if let Some(elder) = &facts.elder {
        if !spec.allow_cross_namespace_sharing {
            return Some(format!("spec.identity is already used by binding {} in another namespace, and it does not allow cross-namespace sharing", elder.key));
        }
        if !elder.consents {
            return Some(format!(
                "spec.identity is already used by binding {}, and no BindingPolicy of its namespace allows cross-namespace sharing: sharing needs both sides' consent",
                elder.key
            ));
        }
    }
    None
}

/// What every policy's check of one binding reads from the caches, read once for all of
/// them rather than once a policy.
struct Facts {
    /// Another namespace's binding that holds the identity first.
    elder: Option<Elder>,
    /// What the namespace already has, when a policy has quotas.
    usage: Option<Usage>,
    /// In VM mode, when a policy selects nodes: every node of every scale set or VM the
    /// binding reaches, with it. An identity is attached to a whole scale set, so the scale
    /// set, not the node, is what a node policy must allow.
    exposed: self::answers::Exposed,
}

impl Facts {
    fn of(binding: &IdentityBinding, identity: &IdentityId, policies: &[Arc<BindingPolicy>], judge: &Judge<'_>) -> Facts {
        let quotas = policies.iter().any(|p| p.spec.max_bindings_per_namespace.is_some() || p.spec.max_identities_per_namespace.is_some());
        let selects_nodes = binding.spec.mode == IdentityMode::VmManagedIdentity && policies.iter().any(|p| p.spec.node_selectors.is_some());
        Facts {
            elder: judge.elder(binding, identity),
            usage: quotas.then(|| judge.usage(binding, identity)),
            exposed: if selects_nodes { judge.exposed(&binding.spec.nodes) } else { Arc::from([]) },
        }
    }
}

/// Why `binding` would take its namespace past one of `spec`'s quotas, if it would.
fn over_quota(usage: &Usage, binding: &IdentityBinding, spec: &kvbind_api::binding_policy::BindingPolicySpec) -> Option<String> {
    let namespace = binding.namespace().unwrap_or_default();
    if let Some(max) = spec.max_bindings_per_namespace
        && usage.bindings >= max as usize
    {
        return Some(format!("namespace {namespace} already has {} IdentityBindings and its maxBindingsPerNamespace is {max}", usage.bindings));
    }
    if let Some(max) = spec.max_identities_per_namespace
        && !usage.has_identity
        && usage.identities >= max as usize
    {
        return Some(format!("namespace {namespace} already uses {} identities and its maxIdentitiesPerNamespace is {max}", usage.identities));
    }
    None
}

/// The Azure writes an hour that `allowing` lets a namespace make, with the policy that
/// says so: the most generous of them, as any one allowing the binding is enough; `None`
/// when one sets no limit.
pub fn write_quota(allowing: &[String], ctx: &Context) -> Option<(u32, String)> {
    let policies = ctx.index.policies.state();
    most_generous(policies.iter().filter(|p| allowing.contains(&p.name_any())), |spec| spec.max_azure_writes_per_hour)
}

/// The role assignments `namespace`'s identities may hold, with the policy that says so:
/// the most generous among the policies that select it; `None` when one sets no limit.
pub fn role_assignment_quota(namespace: &str, ctx: &Context) -> Option<(u32, String)> {
    most_generous(selecting(namespace, ctx).iter(), |spec| spec.max_role_assignments_per_namespace)
}

fn most_generous<'a>(
    policies: impl Iterator<Item = &'a Arc<BindingPolicy>>,
    quota: impl Fn(&kvbind_api::binding_policy::BindingPolicySpec) -> Option<u32>,
) -> Option<(u32, String)> {
    let mut best: Option<(u32, String)> = None;
    for policy in policies {
        let max = quota(&policy.spec)?;
        if best.as_ref().is_none_or(|(b, _)| max > *b) {
            best = Some((max, policy.name_any()));
        }
    }
    best
}

/// Whether a policy that selects `namespace` keeps its pods off IMDS (`imdsEgress: Deny`).
/// The NetworkPolicy is the namespace's, not one binding's, so any selecting policy that
/// asks for it wins over those that do not.
pub fn denies_imds(namespace: &str, ctx: &Context) -> bool {
    selecting(namespace, ctx).iter().any(|p| p.spec.imds_egress == kvbind_api::binding_policy::ImdsEgress::Deny)
}

/// The policies that select `namespace`.
fn selecting(namespace: &str, ctx: &Context) -> Vec<Arc<BindingPolicy>> {
    let labels = ctx.index.namespaces.state().into_iter().find(|n| n.name_any() == namespace).map(|n| n.labels().clone()).unwrap_or_default();
    ctx.index.policies.state().into_iter().filter(|p| matches(&p.spec.namespace_selector, Some(&labels))).collect()
}
