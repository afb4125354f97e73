//! BindingPolicies: a binding is reconciled only when one policy that selects its namespace
//! allows every part of it (mode, identity, vaults, nodes, sharing). With no such policy
//! the binding is refused, naming the part and the policies checked, before any Azure
//! call. Vaults found by name are checked by name first and by full ID once resolved.

use std::sync::Arc;

use kube::ResourceExt;
use kvbind_api::binding_policy::{name_could_match, scope_allows};
use kvbind_api::identity_binding::IdentityMode;
use kvbind_api::{BindingPolicy, IdentityBinding};
use kvbind_azure::{IdentityId, VaultId};

use crate::binding::inputs::{Needs, claiming_identity, identity_of, needs_of};
use crate::context::Context;
use crate::error::BindingError;
use crate::selector::matches;

/// Path segments of a vault ID (`subscriptions/S/resourceGroups/G/providers/NS/vaults/N`).
const VAULT_SEGMENTS: usize = 8;

/// The policies that allow every part of `binding` known before any Azure call, by name;
/// or why none does.
pub fn check(binding: &IdentityBinding, identity: &IdentityId, adopt: bool, needs: &Needs, ctx: &Context) -> Result<Vec<String>, BindingError> {
    let namespace = binding.namespace().unwrap_or_default();
    let policies = selecting(&namespace, ctx);
    if policies.is_empty() {
        return Err(BindingError::NotAllowedByPolicy(format!("no BindingPolicy selects namespace {namespace}, and bindings are denied by default")));
    }
    let facts = Facts::of(binding, identity, &policies, ctx);
    let mut refusals = Vec::new();
    let mut allowing = Vec::new();
    for policy in &policies {
        match refusal(binding, identity, adopt, needs, &facts, policy, ctx) {
            None => allowing.push(policy.name_any()),
            Some(why) => refusals.push(format!("BindingPolicy {}: {why}", policy.name_any())),
        }
    }
    if allowing.is_empty() { Err(BindingError::NotAllowedByPolicy(refusals.join("; "))) } else { Ok(allowing) }
}

/// Narrows `allowing` to the policies that also allow the resolved vaults.
pub fn check_vaults(allowing: &[String], vaults: &[VaultId], ctx: &Context) -> Result<(), BindingError> {
    let policies = ctx.policies.state();
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
    ctx.policies.state().iter().filter(|p| allowing.contains(&p.name_any())).any(|p| p.spec.adoptable_identities.iter().any(|a| scope_allows(a, &id)))
}

/// True when some policy that allows `binding` also allows every one of `vaults`, the
/// vaults found for its classes, by full ID.
pub fn allows_vaults(binding: &IdentityBinding, needs: &Needs, vaults: &[VaultId], ctx: &Context) -> bool {
    let Ok((identity, adopt)) = identity_of(&binding.spec.identity, &ctx.config) else {
        return false;
    };
    check(binding, &identity, adopt, needs, ctx).is_ok_and(|allowing| check_vaults(&allowing, vaults, ctx).is_ok())
}

/// True when some policy allows `binding` as far as the caches tell (no Azure call).
pub fn admits(binding: &IdentityBinding, ctx: &Context) -> bool {
    let Ok((identity, adopt)) = identity_of(&binding.spec.identity, &ctx.config) else {
        return false;
    };
    let Ok(needs) = needs_of(binding, ctx) else {
        return false;
    };
    check(binding, &identity, adopt, &needs, ctx).is_ok()
}

/// Why `policy` does not allow `binding`, naming the field; `None` when it does.
fn refusal(
    binding: &IdentityBinding,
    identity: &IdentityId,
    adopt: bool,
    needs: &Needs,
    facts: &Facts,
    policy: &BindingPolicy,
    ctx: &Context,
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
            && let Some(node) = ctx.nodes.state().into_iter().find(|n| !selectors.iter().any(|s| matches(s, Some(n.labels()))))
        {
            return Some(format!(
                "spec.identity.addon's identity is on every node pool, and node {} matches none of its nodeSelectors: every pod of the cluster can get the add-on's tokens",
                node.name_any()
            ));
        }
        let outside = ctx
            .nodes
            .state()
            .into_iter()
            .filter(|n| matches(&binding.spec.nodes, Some(n.labels())))
            .find(|n| !selectors.iter().any(|s| matches(s, Some(n.labels()))));
        if let Some(node) = outside {
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
    if let Some(why) = facts.usage.as_ref().and_then(|usage| usage.over_quota(binding, identity, spec)) {
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
    exposed: Vec<(kvbind_azure::ComputeId, Arc<k8s_openapi::api::core::v1::Node>)>,
}

impl Facts {
    fn of(binding: &IdentityBinding, identity: &IdentityId, policies: &[Arc<BindingPolicy>], ctx: &Context) -> Facts {
        let quotas = policies.iter().any(|p| p.spec.max_bindings_per_namespace.is_some() || p.spec.max_identities_per_namespace.is_some());
        let selects_nodes = binding.spec.mode == IdentityMode::VmManagedIdentity && policies.iter().any(|p| p.spec.node_selectors.is_some());
        Facts {
            elder: elder_elsewhere(binding, identity, ctx),
            usage: quotas.then(|| Usage::of(binding, ctx)),
            exposed: if selects_nodes { nodes_reached(binding, ctx) } else { Vec::new() },
        }
    }
}

/// Every node of every scale set or VM that the binding's selected nodes run on.
fn nodes_reached(binding: &IdentityBinding, ctx: &Context) -> Vec<(kvbind_azure::ComputeId, Arc<k8s_openapi::api::core::v1::Node>)> {
    let Ok(targets) = ctx.node_targets.of(&ctx.nodes, &binding.spec.nodes) else {
        return Vec::new();
    };
    if targets.is_empty() {
        return Vec::new();
    }
    ctx.nodes
        .state()
        .into_iter()
        .filter_map(|node| {
            let provider_id = node.spec.as_ref()?.provider_id.as_deref()?;
            let target = kvbind_azure::NodeLocation::from_provider_id(provider_id).ok()?.attach_target().clone();
            targets.contains(&target).then_some((target, node))
        })
        .collect()
}

/// What a namespace has before a binding: its older live bindings (by creation time, then
/// name) and the identities they use. Counting only the older ones, a quota refuses the
/// newcomers and never takes away what the first ones have.
struct Usage {
    bindings: usize,
    identities: std::collections::BTreeSet<IdentityId>,
}

impl Usage {
    fn of(binding: &IdentityBinding, ctx: &Context) -> Usage {
        let age = |b: &IdentityBinding| (b.creation_timestamp().map(|t| t.0), b.name_any());
        let mine = age(binding);
        let older: Vec<Arc<IdentityBinding>> = ctx
            .bindings
            .state()
            .into_iter()
            .filter(|b| b.metadata.namespace == binding.metadata.namespace && b.metadata.deletion_timestamp.is_none() && age(b) < mine)
            .collect();
        let identities = older.iter().filter_map(|b| identity_of(&b.spec.identity, &ctx.config).ok().map(|(id, _)| id)).collect();
        Usage { bindings: older.len(), identities }
    }

    /// Why `binding` would take its namespace past one of `spec`'s quotas, if it would.
    fn over_quota(&self, binding: &IdentityBinding, identity: &IdentityId, spec: &kvbind_api::binding_policy::BindingPolicySpec) -> Option<String> {
        let namespace = binding.namespace().unwrap_or_default();
        if let Some(max) = spec.max_bindings_per_namespace
            && self.bindings >= max as usize
        {
            return Some(format!("namespace {namespace} already has {} IdentityBindings and its maxBindingsPerNamespace is {max}", self.bindings));
        }
        if let Some(max) = spec.max_identities_per_namespace
            && !self.identities.contains(identity)
            && self.identities.len() >= max as usize
        {
            return Some(format!("namespace {namespace} already uses {} identities and its maxIdentitiesPerNamespace is {max}", self.identities.len()));
        }
        None
    }
}

/// The Azure writes an hour that `allowing` lets a namespace make, with the policy that
/// says so: the most generous of them, as any one allowing the binding is enough; `None`
/// when one sets no limit.
pub fn write_quota(allowing: &[String], ctx: &Context) -> Option<(u32, String)> {
    let policies = ctx.policies.state();
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
    let labels = ctx.namespaces.state().into_iter().find(|n| n.name_any() == namespace).map(|n| n.labels().clone()).unwrap_or_default();
    ctx.policies.state().into_iter().filter(|p| matches(&p.spec.namespace_selector, Some(&labels))).collect()
}

/// The binding of another namespace that holds an identity first.
struct Elder {
    /// `namespace/name`.
    key: String,
    /// Whether a policy of its namespace allows cross-namespace sharing: the identity's
    /// first user must agree to share it as much as the one joining.
    consents: bool,
}

/// The oldest other binding, in another namespace that some policy selects, that names the
/// same identity and was there first: the identity is theirs, so a later claim is the one
/// that needs allowing. A namespace no policy selects cannot squat a name this way.
fn elder_elsewhere(binding: &IdentityBinding, identity: &IdentityId, ctx: &Context) -> Option<Elder> {
    let namespace = binding.namespace();
    let age = |b: &IdentityBinding| (b.creation_timestamp().map(|t| t.0), b.namespace(), b.name_any());
    let mine = age(binding);
    let elder = claiming_identity(binding, identity, ctx)
        .into_iter()
        .filter(|b| b.namespace() != namespace && age(b) < mine)
        .filter(|b| !selecting(&b.namespace().unwrap_or_default(), ctx).is_empty())
        .min_by_key(|b| age(b))?;
    let elder_namespace = elder.namespace().unwrap_or_default();
    let consents = selecting(&elder_namespace, ctx).iter().any(|p| p.spec.allow_cross_namespace_sharing);
    Some(Elder { key: format!("{elder_namespace}/{}", elder.name_any()), consents })
}
