//! `kvbind doctor`: checks that the operator's own identity may do everything kvbind does
//! on the scopes it works in, and prints the `az role assignment create` lines that would
//! fix what is missing; then says how each vault authorises data access, and what that
//! means for the bindings on it; whether a deny assignment locks a node resource group;
//! which nodes cannot carry identities and which identities cannot reach the nodes' region;
//! and which mode fits what it saw.

use std::collections::BTreeSet;

use kvbind_azure::model::{IsolationScope, ListedIdentity, PermissionScope, PermissionSet};
use kvbind_azure::{Arm, VaultId};

/// What kvbind needs at one scope, and the built-in role that grants it.
#[derive(Debug, Clone)]
pub struct Requirement {
    /// Where.
    pub scope: PermissionScope,
    /// The actions kvbind performs there.
    pub actions: &'static [&'static str],
    /// The narrowest built-in role with all of them.
    pub role: &'static str,
    /// Why kvbind needs them.
    pub why: &'static str,
}

const IDENTITY_ACTIONS: &[&str] = &[
    "Microsoft.ManagedIdentity/userAssignedIdentities/read",
    "Microsoft.ManagedIdentity/userAssignedIdentities/write",
    "Microsoft.ManagedIdentity/userAssignedIdentities/delete",
];
const ASSIGN_ACTIONS: &[&str] = &["Microsoft.ManagedIdentity/userAssignedIdentities/assign/action"];
const COMPUTE_ACTIONS: &[&str] = &[
    "Microsoft.Compute/virtualMachineScaleSets/read",
    "Microsoft.Compute/virtualMachineScaleSets/write",
    "Microsoft.Compute/virtualMachines/read",
    "Microsoft.Compute/virtualMachines/write",
];
const VAULT_ACTIONS: &[&str] = &["Microsoft.KeyVault/vaults/read", "Microsoft.KeyVault/vaults/accessPolicies/write"];
const RBAC_ACTIONS: &[&str] =
    &["Microsoft.Authorization/roleAssignments/read", "Microsoft.Authorization/roleAssignments/write", "Microsoft.Authorization/roleAssignments/delete"];

/// Parses `SUBSCRIPTION/RESOURCE_GROUP`.
pub fn resource_group(text: &str) -> anyhow::Result<PermissionScope> {
    let (subscription, resource_group) = text
        .trim_matches('/')
        .split_once('/')
        .filter(|(s, g)| !s.is_empty() && !g.is_empty() && !g.contains('/'))
        .ok_or_else(|| anyhow::anyhow!("{text:?} is not SUBSCRIPTION/RESOURCE_GROUP"))?;
    Ok(PermissionScope::ResourceGroup { subscription: subscription.to_owned(), resource_group: resource_group.to_owned() })
}

/// Everything kvbind needs on these scopes.
pub fn requirements(identity_groups: &[PermissionScope], node_groups: &[PermissionScope], vaults: &[VaultId]) -> Vec<Requirement> {
    let mut out = Vec::new();
    for scope in identity_groups {
        out.push(Requirement {
            scope: scope.clone(),
            actions: IDENTITY_ACTIONS,
            role: "Managed Identity Contributor",
            why: "create, tag and delete the identities kvbind manages",
        });
        out.push(Requirement {
            scope: scope.clone(),
            actions: ASSIGN_ACTIONS,
            role: "Managed Identity Operator",
            why: "attach identities to VM scale sets and VMs",
        });
    }
    for scope in node_groups {
        out.push(Requirement {
            scope: scope.clone(),
            actions: COMPUTE_ACTIONS,
            role: "Virtual Machine Contributor",
            why: "read and PATCH the identity block of the node pools",
        });
    }
    for vault in vaults {
        let scope = PermissionScope::Vault(vault.clone());
        out.push(Requirement {
            scope: scope.clone(),
            actions: VAULT_ACTIONS,
            role: "Key Vault Contributor",
            why: "read the vault and write its access policies",
        });
        out.push(Requirement {
            scope,
            actions: RBAC_ACTIONS,
            role: "Role Based Access Control Administrator",
            why: "create and delete per-object role assignments on RBAC vaults",
        });
    }
    out
}

/// The actions of `requirement` that none of `sets` allows.
pub fn missing(requirement: &Requirement, sets: &[PermissionSet]) -> Vec<&'static str> {
    requirement.actions.iter().copied().filter(|a| !sets.iter().any(|s| s.allows(a))).collect()
}

/// Checks every requirement and prints the report; true when nothing is missing.
pub async fn doctor(arm: &dyn Arm, assignee: &str, requirements: &[Requirement]) -> anyhow::Result<bool> {
    let mut fixes = Vec::new();
    for requirement in requirements {
        let sets = arm.permissions(&requirement.scope).await?;
        let gaps = missing(requirement, &sets);
        if gaps.is_empty() {
            println!("ok       {}  ({})", requirement.scope, requirement.why);
        } else {
            println!("MISSING  {}  {}  ({})", requirement.scope, gaps.join(", "), requirement.why);
            fixes.push(format!("az role assignment create --assignee {assignee} --role \"{}\" --scope {}", requirement.role, requirement.scope));
        }
    }
    if fixes.is_empty() {
        println!("\nkvbind has every permission it needs on these scopes.");
    } else {
        println!("\nTo grant what is missing:");
        for fix in &fixes {
            println!("  {fix}");
        }
    }
    Ok(fixes.is_empty())
}

/// Access-policy entries a vault may hold (the REST spec's 0 to 1,024).
const MAX_ACCESS_POLICIES: usize = 1024;

/// What a vault's permission model means for kvbind's grants, as one line.
pub fn vault_model(vault: &kvbind_azure::model::Vault) -> String {
    if vault.rbac_authorization {
        format!(
            "vault    {}  Azure RBAC: kvbind grants with role assignments, one per object (rbacScope Object) or one per identity (rbacScope Vault); each counts toward the subscription's 4,000",
            vault.id.name
        )
    } else {
        let held = vault.access_policies.len();
        format!(
            "vault    {}  access policies: {held} of {MAX_ACCESS_POLICIES} entries used; kvbind adds one per identity (share identities, or move to Azure RBAC, before it fills)",
            vault.id.name
        )
    }
}

/// Prints how each vault authorises data access.
pub async fn report_vaults(arm: &dyn Arm, vaults: &[VaultId]) -> anyhow::Result<()> {
    if vaults.is_empty() {
        return Ok(());
    }
    println!();
    for id in vaults {
        match arm.get_vault(id).await {
            Ok(vault) => println!("{}", vault_model(&vault)),
            Err(e) => println!("vault    {}  could not be read: {e}", id.name),
        }
    }
    Ok(())
}

/// The line for one node resource group: locked by a deny assignment that refuses scale
/// set writes (AKS's node resource group lockdown), or open; and whether it is locked.
pub fn node_group_line(group: &PermissionScope, denies: &[kvbind_azure::model::DenyAssignment]) -> (String, bool) {
    match denies.iter().find(|d| d.denies("Microsoft.Compute/virtualMachineScaleSets/write")) {
        Some(deny) => (
            format!(
                "locked   {group}  deny assignment '{}' refuses writes: kvbind cannot attach identities to these pools (node resource group lockdown); use mode WorkloadIdentity",
                deny.name
            ),
            true,
        ),
        None => (format!("open     {group}  no deny assignment refuses scale set writes"), false),
    }
}

/// The cluster's nodes as VM mode sees them: how many run on scale sets or VMs kvbind may
/// attach to, and which node auto-provisioning made (they cannot carry user-assigned
/// identities).
pub fn nodes_line(nodes: &[k8s_openapi::api::core::v1::Node]) -> String {
    let auto: Vec<&str> = nodes
        .iter()
        .filter(|n| n.metadata.labels.as_ref().is_some_and(|l| l.contains_key(kvbind_controller::AUTO_PROVISIONED_LABEL)))
        .filter_map(|n| n.metadata.name.as_deref())
        .collect();
    let azure = nodes.iter().filter(|n| n.spec.as_ref().and_then(|s| s.provider_id.as_deref()).is_some_and(|p| p.starts_with("azure://"))).count();
    if auto.is_empty() {
        return format!("nodes    {azure} of {} nodes run on Azure VMs or scale sets; none was made by node auto-provisioning", nodes.len());
    }
    let shown: Vec<&str> = auto.iter().take(10).copied().collect();
    let more = if auto.len() > shown.len() { format!(", and {} more", auto.len() - shown.len()) } else { String::new() };
    format!(
        "nodes    {} of {} nodes were made by node auto-provisioning ({}{more}): they cannot carry user-assigned identities, so VM-mode pods there get none; use mode WorkloadIdentity for them",
        auto.len(),
        nodes.len(),
        shown.join(", ")
    )
}

/// The well-known label that names a node's region.
const REGION_LABEL: &str = "topology.kubernetes.io/region";

/// The regions the cluster's nodes run in, from their well-known label.
pub fn node_regions(nodes: &[k8s_openapi::api::core::v1::Node]) -> BTreeSet<String> {
    nodes.iter().filter_map(|n| n.metadata.labels.as_ref()?.get(REGION_LABEL)).map(|r| r.to_ascii_lowercase()).collect()
}

/// Prints what the cluster's nodes mean for VM mode, when the cluster can be reached, and
/// returns the regions they run in (empty when unknown).
pub async fn report_nodes() -> BTreeSet<String> {
    let listed = async {
        let client = kube::Client::try_default().await?;
        let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client);
        anyhow::Ok(nodes.list(&Default::default()).await?.items)
    };
    match tokio::time::timeout(std::time::Duration::from_secs(10), listed).await {
        Ok(Ok(nodes)) => {
            println!("{}", nodes_line(&nodes));
            node_regions(&nodes)
        }
        Ok(Err(e)) => {
            println!("nodes    not checked: the cluster could not be read ({e:#})");
            BTreeSet::new()
        }
        Err(_) => {
            println!("nodes    not checked: the cluster did not answer within 10 s");
            BTreeSet::new()
        }
    }
}

/// Regional identities shown by name before the rest are counted.
const SHOWN_REGIONAL: usize = 10;

/// What the identities of one identity resource group allow: a Regional identity attaches
/// only to VMs and scale sets in its own region, so one outside the nodes' regions cannot
/// serve VM mode (Azure refuses the attach with `FailedIdentityOperation`).
pub fn identity_lines(group: &PermissionScope, identities: &[ListedIdentity], node_regions: &BTreeSet<String>) -> Vec<String> {
    let regional: Vec<&ListedIdentity> = identities.iter().filter(|i| i.isolation_scope == IsolationScope::Regional).collect();
    if regional.is_empty() {
        return vec![format!("identity {group}  {}, none Regional: each may be attached in any region", counted(identities.len()))];
    }
    let mut lines = vec![format!(
        "identity {group}  {}, {} Regional: each attaches only to VMs and scale sets in its own region",
        counted(identities.len()),
        regional.len()
    )];
    let nodes_run_in = node_regions.iter().map(String::as_str).collect::<Vec<_>>().join(", ");
    for identity in regional.iter().take(SHOWN_REGIONAL) {
        let location = identity.location.to_ascii_lowercase();
        let outside = !node_regions.is_empty() && !node_regions.contains(&location);
        lines.push(if outside {
            format!(
                "regional {} in {location}: the nodes run in {nodes_run_in}, so VM mode cannot attach it; use mode WorkloadIdentity, or an identity in the nodes' region",
                identity.id.name
            )
        } else {
            format!("regional {} in {location}", identity.id.name)
        });
    }
    if regional.len() > SHOWN_REGIONAL {
        lines.push(format!("regional and {} more", regional.len() - SHOWN_REGIONAL));
    }
    lines
}

fn counted(n: usize) -> String {
    if n == 1 { "1 identity".to_owned() } else { format!("{n} identities") }
}

/// Prints what restricts where each identity resource group's identities may be attached.
pub async fn report_identities(arm: &dyn Arm, identity_groups: &[PermissionScope], node_regions: &BTreeSet<String>) {
    for group in identity_groups {
        let PermissionScope::ResourceGroup { subscription, resource_group } = group else { continue };
        match arm.list_identities(subscription, resource_group).await {
            Ok(identities) => identity_lines(group, &identities, node_regions).iter().for_each(|l| println!("{l}")),
            Err(e) => println!("identity {group}  its identities could not be listed: {e}"),
        }
    }
}

/// Which mode fits, from what doctor saw: whether a node resource group is locked.
pub fn mode_advice(any_locked: bool) -> Vec<String> {
    let mut lines = Vec::new();
    if any_locked {
        lines.push("mode     WorkloadIdentity: a locked node resource group refuses every identity attachment, so VMManagedIdentity cannot work here; run kvbind with --oidc-issuer-url".to_owned());
    } else {
        lines.push("mode     WorkloadIdentity fits best: each identity reaches one ServiceAccount's pods (run kvbind with --oidc-issuer-url). VMManagedIdentity works here too, but every pod on a pool's nodes can use the identities on it".to_owned());
    }
    lines.push("mode     AKSIdentityBinding (AKS preview) fits when one identity serves more than 20 ServiceAccounts or clusters: workload identity spends a federated credential on each, AKS identity bindings one for all (run kvbind with --managed-cluster-id and list the mode in a BindingPolicy's modes)".to_owned());
    // The restriction is a cluster setting ARM's node resource group does not show, so it
    // is said as what it means.
    lines.push("imds     with AKS's IMDS restriction on, only host-network pods (the CSI driver) reach IMDS: VM mode keeps serving mounts, and other pods cannot ask for the pool's identities".to_owned());
    lines
}

/// Prints whether a deny assignment locks each node resource group, what the nodes and
/// the identity groups' identities allow, and which mode fits.
pub async fn report_cluster(arm: &dyn Arm, node_groups: &[PermissionScope], identity_groups: &[PermissionScope]) -> anyhow::Result<()> {
    println!();
    let mut any_locked = false;
    for group in node_groups {
        let PermissionScope::ResourceGroup { subscription, resource_group } = group else { continue };
        match arm.deny_assignments(subscription, resource_group).await {
            Ok(denies) => {
                let (line, locked) = node_group_line(group, &denies);
                any_locked |= locked;
                println!("{line}");
            }
            Err(e) => println!("unknown  {group}  its deny assignments could not be read: {e}"),
        }
    }
    let regions = report_nodes().await;
    report_identities(arm, identity_groups, &regions).await;
    for line in mode_advice(any_locked) {
        println!("{line}");
    }
    Ok(())
}

/// Parses a vault resource ID.
pub fn vault(text: &str) -> anyhow::Result<VaultId> {
    Ok(VaultId::parse(text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_misses_every_write() {
        let scope = resource_group("s/rg").expect("scope");
        let reqs = requirements(&[], &[scope], &[]);
        let reader = PermissionSet { actions: vec!["*/read".into()], not_actions: vec![] };
        assert_eq!(missing(&reqs[0], &[reader]), vec!["Microsoft.Compute/virtualMachineScaleSets/write", "Microsoft.Compute/virtualMachines/write"]);
        let owner = PermissionSet { actions: vec!["*".into()], not_actions: vec![] };
        assert!(missing(&reqs[0], &[owner]).is_empty());
        assert!(resource_group("just-a-group").is_err());
    }

    #[test]
    fn a_lockdown_is_named_and_turns_the_advice_to_workload_identity() {
        let group = resource_group("s/MC_rg_aks_eastus").expect("scope");
        let lockdown = kvbind_azure::model::DenyAssignment {
            name: "System deny assignment created by managed cluster".into(),
            scope: "/subscriptions/s/resourceGroups/MC_rg_aks_eastus".into(),
            denied: PermissionSet { actions: vec!["*".into()], not_actions: vec!["*/read".into()] },
        };
        let (line, locked) = node_group_line(&group, std::slice::from_ref(&lockdown));
        assert!(locked && line.contains("System deny assignment created by managed cluster") && line.contains("WorkloadIdentity"), "{line}");
        let reads_only =
            kvbind_azure::model::DenyAssignment { denied: PermissionSet { actions: vec!["Microsoft.Storage/*".into()], not_actions: vec![] }, ..lockdown };
        assert!(!node_group_line(&group, &[reads_only]).1, "a deny assignment about something else does not lock the pools");
        assert!(mode_advice(true)[0].contains("VMManagedIdentity cannot work here"));
        assert!(mode_advice(false)[0].contains("VMManagedIdentity works here too"));
        assert!(mode_advice(false).iter().any(|l| l.contains("AKSIdentityBinding") && l.contains("more than 20")), "the mode past workload identity's limit");
    }

    #[test]
    fn auto_provisioned_nodes_are_counted_and_named() {
        let node = |name: &str, nap: bool| -> k8s_openapi::api::core::v1::Node {
            let labels = if nap { serde_json::json!({"karpenter.sh/nodepool": "default"}) } else { serde_json::json!({}) };
            serde_json::from_value(serde_json::json!({"metadata": {"name": name, "labels": labels}, "spec": {"providerID": format!("azure:///subscriptions/s/resourceGroups/mc/providers/Microsoft.Compute/virtualMachines/{name}")}}))
                .expect("node")
        };
        let line = nodes_line(&[node("pool-0", false), node("aks-default-abcde", true)]);
        assert!(line.contains("1 of 2 nodes were made by node auto-provisioning (aks-default-abcde)") && line.contains("WorkloadIdentity"), "{line}");
        assert!(nodes_line(&[node("pool-0", false)]).contains("none was made by node auto-provisioning"));
    }

    #[test]
    fn a_regional_identity_outside_the_nodes_region_is_named_with_the_way_out() {
        let group = resource_group("s/identities").expect("scope");
        let listed = |name: &str, location: &str, isolation_scope| ListedIdentity {
            id: kvbind_azure::IdentityId::parse(&format!(
                "/subscriptions/s/resourceGroups/identities/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
            ))
            .expect("id"),
            location: location.into(),
            isolation_scope,
        };
        let identities = [
            listed("open", "westus", IsolationScope::None),
            listed("here", "EastUS", IsolationScope::Regional),
            listed("there", "westus", IsolationScope::Regional),
        ];
        let regions = BTreeSet::from(["eastus".to_owned()]);
        let lines = identity_lines(&group, &identities, &regions);
        assert!(lines[0].contains("3 identities, 2 Regional"), "{lines:?}");
        assert_eq!(lines[1], "regional here in eastus");
        assert!(lines[2].starts_with("regional there in westus: the nodes run in eastus, so VM mode cannot attach it"), "{lines:?}");
        assert!(identity_lines(&group, &identities, &BTreeSet::new())[2].ends_with("in westus"), "without the nodes' regions nothing is judged");
        assert!(identity_lines(&group, &identities[..1], &regions)[0].contains("none Regional"));
    }

    #[test]
    fn a_vaults_model_says_what_kvbind_grants_there_and_what_runs_out() {
        let id = vault("/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv").expect("id");
        let entry = kvbind_azure::model::AccessPolicy { tenant_id: "t".into(), object_id: "o".into(), permissions: Default::default() };
        let policies =
            kvbind_azure::model::Vault { id: id.clone(), tenant_id: "t".into(), rbac_authorization: false, vault_uri: None, access_policies: vec![entry; 3] };
        assert!(vault_model(&policies).contains("3 of 1024 entries used"), "{}", vault_model(&policies));
        let rbac = kvbind_azure::model::Vault { rbac_authorization: true, access_policies: Vec::new(), ..policies };
        assert!(vault_model(&rbac).contains("Azure RBAC") && vault_model(&rbac).contains("4,000"), "{}", vault_model(&rbac));
    }
}
