//! The `BindingPolicy` custom resource: which namespaces may bind which vaults, identities,
//! node pools and modes. kvbind reconciles a binding only when one policy allows all of it;
//! with no policy, nothing is allowed.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::identity_binding::{IdentityMode, LabelSelector};

/// Allows the IdentityBindings of some namespaces to use some Azure resources.
///
/// Each list names ARM resource IDs or scopes, case-insensitively; a `*` matches within
/// one path segment, and a scope allows everything under it, so
/// `/subscriptions/S/resourceGroups/rg-team-a` allows every vault in that group, and `*`
/// alone allows everything. An empty list allows nothing of that kind.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "kvbind.io",
    version = "v1alpha1",
    kind = "BindingPolicy",
    shortname = "bpol",
    category = "kvbind",
    doc = "Allows the IdentityBindings of selected namespaces to use some Key Vaults, identity resource groups, adoptable identities, node pools and identity modes. kvbind reconciles a binding only when one policy allows every part of it; with no policy, nothing is allowed.",
    printcolumn = r#"{"name":"Modes","type":"string","jsonPath":".spec.modes"}"#,
    printcolumn = r#"{"name":"Sharing","type":"boolean","jsonPath":".spec.allowCrossNamespaceSharing"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BindingPolicySpec {
    /// The namespaces whose bindings this policy may allow, by label (the
    /// `kubernetes.io/metadata.name` label selects one by name). Empty selects every
    /// namespace.
    #[serde(default, skip_serializing_if = "LabelSelector::is_empty")]
    pub namespace_selector: LabelSelector,

    /// Key Vaults the bindings may be granted read access on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 512), regex(pattern = r"^(\*|(/[^/\s]+)+)$")))]
    pub vaults: Vec<String>,

    /// Resource groups kvbind may create identities in for the bindings
    /// (`/subscriptions/S/resourceGroups/RG`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 512), regex(pattern = r"^(\*|(/[^/\s]+)+)$")))]
    pub identity_resource_groups: Vec<String>,

    /// Existing identities the bindings may adopt by `spec.identity.resourceId`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 512), regex(pattern = r"^(\*|(/[^/\s]+)+)$")))]
    pub adoptable_identities: Vec<String>,

    /// The nodes the bindings may reach in mode `VMManagedIdentity`: every node of every VM
    /// scale set or VM a binding reaches must match one of these selectors (an identity on
    /// a scale set is open to every pod on it). Absent allows every node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub node_selectors: Option<Vec<LabelSelector>>,

    /// The identity modes the bindings may use. Default: VMManagedIdentity and
    /// WorkloadIdentity; AKSIdentityBinding, an AKS preview, only when listed.
    #[serde(default = "default_modes")]
    pub modes: Vec<IdentityMode>,

    /// Whether a binding may use an identity that a binding in another namespace already
    /// uses. Off by default: sharing an identity shares every grant made for it. Both
    /// namespaces' policies must allow it.
    #[serde(default)]
    pub allow_cross_namespace_sharing: bool,

    /// `Deny`: kvbind keeps a NetworkPolicy (`kvbind-deny-imds`) in each namespace the
    /// policy selects that has bindings, which lets its pods reach everything but IMDS
    /// (169.254.169.254): they cannot ask for the node pools' identities, as the
    /// host-network CSI driver still can. Needs a CNI that enforces NetworkPolicies, and no
    /// other NetworkPolicy of the namespace that allows that address. Default `Allow`.
    #[serde(default, skip_serializing_if = "ImdsEgress::is_allow")]
    pub imds_egress: ImdsEgress,

    /// At most this many IdentityBindings in each namespace the policy selects: the oldest
    /// are allowed, later ones refused until one goes. Absent: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bindings_per_namespace: Option<u32>,

    /// At most this many distinct identities used by the bindings of each namespace the
    /// policy selects: a binding that would add one more is refused. Absent: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_identities_per_namespace: Option<u32>,

    /// At most this many per-object role assignments (Azure RBAC vaults) held by the
    /// identities of each namespace the policy selects, counted in Azure when kvbind is
    /// about to create more: a binding whose grant would pass it gets none of its new ones.
    /// Azure allows 4,000 in a whole subscription. Absent: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_role_assignments_per_namespace: Option<u32>,

    /// At most this many Azure writes (identities, attachments, grants, federated
    /// credentials, AKS identity bindings, made or undone) an hour for the bindings of each
    /// namespace the policy selects: past it, their reconciles stop before any Azure write
    /// until an hour has passed since the oldest. ARM's write budget is the subscription's.
    /// Undoing is never held. Absent: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_azure_writes_per_hour: Option<u32>,
}

/// Whether the pods of a policy's namespaces may reach the node's instance metadata service.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ImdsEgress {
    /// Pods may reach IMDS (no NetworkPolicy from kvbind).
    #[default]
    Allow,
    /// Pods that are not on the host network may not reach IMDS.
    Deny,
}

impl ImdsEgress {
    fn is_allow(&self) -> bool {
        *self == ImdsEgress::Allow
    }
}

fn default_modes() -> Vec<IdentityMode> {
    vec![IdentityMode::VmManagedIdentity, IdentityMode::WorkloadIdentity]
}

/// True when `pattern` allows the resource `id`: equal segments (case-insensitive, `*`
/// matching within a segment), where a pattern that ends early is a scope over `id`.
pub fn scope_allows(pattern: &str, id: &str) -> bool {
    if pattern.trim() == "*" {
        return true;
    }
    let pattern: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    let id: Vec<&str> = id.split('/').filter(|s| !s.is_empty()).collect();
    !pattern.is_empty() && pattern.len() <= id.len() && pattern.iter().zip(&id).all(|(p, s)| segment_matches(p, s))
}

/// True when some resource named `name` of this shape could be allowed by `pattern`: the
/// check that can be made before the resource's full ID is known.
pub fn name_could_match(pattern: &str, name: &str, segments: usize) -> bool {
    if pattern.trim() == "*" {
        return true;
    }
    let parts: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    match parts.len() {
        0 => false,
        n if n < segments => true,
        n if n == segments => parts.last().is_some_and(|last| segment_matches(last, name)),
        _ => false,
    }
}

fn segment_matches(pattern: &str, text: &str) -> bool {
    let (pattern, text) = (pattern.to_ascii_lowercase(), text.to_ascii_lowercase());
    glob(pattern.as_bytes(), text.as_bytes())
}

/// `*` matches any run of bytes; everything else matches itself.
///
/// Policies and IDs are tenant-controlled lengths, so this never backtracks further than
/// the last `*`: at most pattern × text steps, where trying every split at every `*`
/// (`a*a*a*…b`) takes exponential time.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // The last `*` seen, and the text position it has swallowed up to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(c) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    star = Some((star_p, star_t + 1));
                    p = star_p + 1;
                    t = star_t + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const VAULT: &str = "/subscriptions/S1/resourceGroups/rg-team-a/providers/Microsoft.KeyVault/vaults/kv-team-a";

    #[test]
    fn scopes_ids_and_wildcards() {
        assert!(scope_allows("*", VAULT));
        assert!(scope_allows(VAULT, VAULT));
        assert!(scope_allows(&VAULT.to_uppercase(), VAULT), "case-insensitive");
        assert!(scope_allows("/subscriptions/S1/resourceGroups/rg-team-a", VAULT), "a scope allows what is under it");
        assert!(scope_allows("/subscriptions/S1", VAULT));
        assert!(scope_allows("/subscriptions/*/resourceGroups/rg-team-*", VAULT));
        assert!(!scope_allows("/subscriptions/S1/resourceGroups/rg-team-b", VAULT));
        assert!(!scope_allows("/subscriptions/S1/resourceGroups/rg-team", VAULT), "no prefix match inside a segment");
        assert!(!scope_allows(&format!("{VAULT}/secrets/x"), VAULT), "a narrower pattern does not allow its parent");
        assert!(!scope_allows("", VAULT));
        assert!(!scope_allows("/", VAULT));
    }

    #[test]
    fn names_are_checked_before_the_id_is_known() {
        assert!(name_could_match("*", "kv-team-a", 8));
        assert!(name_could_match("/subscriptions/S1/resourceGroups/rg-team-a", "anything", 8), "a scope allows any name");
        assert!(name_could_match(VAULT, "KV-TEAM-A", 8));
        assert!(name_could_match("/subscriptions/S1/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv-*", "kv-team-a", 8));
        assert!(!name_could_match(VAULT, "kv-team-b", 8));
    }

    #[test]
    fn globs_match_as_shell_globs_do() {
        for (pattern, text, matches) in [
            ("rg-*", "rg-team-a", true),
            ("*-a", "rg-team-a", true),
            ("rg-*-a", "rg-team-a", true),
            ("rg-*-b", "rg-team-a", false),
            ("*", "", true),
            ("a*", "", false),
            ("**", "x", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("kv", "kv-team-a", false),
        ] {
            assert_eq!(segment_matches(pattern, text), matches, "{pattern} ~ {text}");
        }
    }

    #[test]
    fn a_tenant_sized_glob_cannot_make_the_check_exponential() {
        // Exponential backtracking would take longer than the age of the universe here;
        // a linear glob answers at once, and the assertion is on the answer.
        let pattern = format!("{}b", "a*".repeat(64));
        let text = "a".repeat(4096);
        assert!(!segment_matches(&pattern, &text));
        assert!(segment_matches(&pattern, &format!("{text}b")));
    }
}
