//! The group's demand as a table: what the identity's pools and vaults are, given the
//! binding's own needs, its sharers' (broken or not, allowed or not on the vaults found)
//! and what kvbind granted before.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kvbind_api::{IdentityBinding, KeyVaultObject, ObjectType};
use kvbind_azure::model::{Permissions, Vault};
use kvbind_azure::{ComputeId, ResourceKind, VaultId};
use serde_json::json;

use super::*;

fn pool(name: &str) -> ComputeId {
    ComputeId::new(ResourceKind::VirtualMachineScaleSet, "sub", "mc", name).expect("valid")
}

fn vault_id(name: &str) -> VaultId {
    VaultId::new(ResourceKind::Vault, "sub", "vaults", name).expect("valid")
}

fn vault(name: &str) -> Arc<Vault> {
    Arc::new(Vault { id: vault_id(name), tenant_id: "t".into(), rbac_authorization: false, vault_uri: None, access_policies: Vec::new() })
}

fn secret(name: &str) -> KeyVaultObject {
    KeyVaultObject { name: name.into(), object_type: ObjectType::Secret, version: None, version_history: 0, alias: None, format: None, encoding: None }
}

/// Needs on `pools`, reading secret `db` from each of `vaults`.
fn needs(pools: &[&str], vaults: &[&str]) -> Needs {
    Needs {
        targets: pools.iter().map(|p| pool(p)).collect(),
        vaults: vaults.iter().map(|v| ((*v).to_owned(), ("t".to_owned(), vec![secret(&format!("db-{v}"))]))).collect(),
        ..Needs::default()
    }
}

fn binding(namespace: &str) -> Arc<IdentityBinding> {
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "kvbind.io/v1alpha1", "kind": "IdentityBinding",
            "metadata": {"name": "app", "namespace": namespace},
            "spec": {"identity": {"name": "shared", "resourceGroup": "rg-ids"}, "secretProviderClasses": {"names": ["app"]}},
        }))
        .expect("binding"),
    )
}

/// A sharer in `namespace`: what it needs, `None` when its input does not read.
fn sharer(namespace: &str, needs: Option<Needs>) -> Sharer {
    (format!("{namespace}/app"), binding(namespace), needs.map(Arc::new))
}

/// Records of kvbind's access-policy grants on `vaults`.
fn granted_on(vaults: &[&str]) -> Records {
    let get = Permissions { secrets: BTreeSet::from(["get".to_owned()]), ..Permissions::default() };
    Records { granted: vaults.iter().map(|v| (vault_id(v), get.clone())).collect(), ..Records::default() }
}

struct Row {
    case: &'static str,
    own: Option<Needs>,
    sharers: Vec<Sharer>,
    /// The vaults found by name.
    found: &'static [&'static str],
    /// Per namespace, the vaults its policies allow by full ID.
    allowed: &'static [(&'static str, &'static [&'static str])],
    records: Records,
    // What the plan says:
    targets: &'static [&'static str],
    /// The vault names whose objects the group needs.
    needed: &'static [&'static str],
    /// The vaults the grant step visits (needed, or granted before: revoked there).
    visited: &'static [&'static str],
    may_remove: bool,
    members: &'static [&'static str],
    users: &'static [&'static str],
}

#[test]
fn the_group_needs_what_its_readable_allowed_members_need_and_revokes_the_rest() {
    let rows = [
        Row {
            case: "a member on another pool and vault adds both",
            own: Some(needs(&["pool-a"], &["kv1"])),
            sharers: vec![sharer("team-b", Some(needs(&["pool-b"], &["kv2"])))],
            found: &["kv1", "kv2"],
            allowed: &[("team-b", &["kv2"])],
            records: Records::default(),
            targets: &["pool-a", "pool-b"],
            needed: &["kv1", "kv2"],
            visited: &["kv1", "kv2"],
            may_remove: true,
            members: &["team-b"],
            users: &["team-a/app", "team-b/app"],
        },
        Row {
            case: "a sharer whose input is broken adds nothing and holds every removal",
            own: Some(needs(&["pool-a"], &["kv1"])),
            sharers: vec![sharer("team-b", None)],
            found: &["kv1"],
            allowed: &[],
            records: granted_on(&["kv2"]),
            targets: &["pool-a"],
            needed: &["kv1"],
            visited: &["kv1"],
            may_remove: false,
            members: &[],
            users: &["team-a/app", "team-b/app"],
        },
        Row {
            case: "a member whose policy does not allow the vault found by its name is left out",
            own: Some(needs(&["pool-a"], &["kv1"])),
            sharers: vec![sharer("team-b", Some(needs(&["pool-b"], &["kv2"])))],
            found: &["kv1", "kv2"],
            allowed: &[("team-b", &["kv1"])],
            records: Records::default(),
            targets: &["pool-a"],
            needed: &["kv1"],
            visited: &["kv1"],
            may_remove: true,
            members: &[],
            users: &["team-a/app", "team-b/app"],
        },
        Row {
            case: "a narrowed policy: kvbind's grant for the member is revoked, on the vault it no longer may use",
            own: Some(needs(&["pool-a"], &["kv1"])),
            sharers: vec![sharer("team-b", Some(needs(&["pool-a"], &["kv2"])))],
            found: &["kv1", "kv2"],
            allowed: &[("team-b", &[])],
            records: granted_on(&["kv2"]),
            targets: &["pool-a"],
            needed: &["kv1"],
            visited: &["kv1", "kv2"],
            may_remove: true,
            members: &[],
            users: &["team-a/app", "team-b/app"],
        },
        Row {
            case: "a class gone: its vault is no longer needed, and what kvbind granted there is revoked",
            own: Some(needs(&["pool-a"], &[])),
            sharers: vec![],
            found: &["kv1"],
            allowed: &[],
            records: granted_on(&["kv1"]),
            targets: &["pool-a"],
            needed: &[],
            visited: &["kv1"],
            may_remove: true,
            members: &[],
            users: &["team-a/app"],
        },
        Row {
            case: "the binding being deleted is no user; its sharer keeps what it needs",
            own: None,
            sharers: vec![sharer("team-b", Some(needs(&["pool-b"], &["kv2"])))],
            found: &["kv2"],
            allowed: &[("team-b", &["kv2"])],
            records: granted_on(&["kv1", "kv2"]),
            targets: &["pool-b"],
            needed: &["kv2"],
            visited: &["kv2"],
            may_remove: true,
            members: &["team-b"],
            users: &["team-b/app"],
        },
        Row {
            case: "a vault not found is not visited; the member is judged on the vaults that were",
            own: Some(needs(&["pool-a"], &["kv1"])),
            sharers: vec![sharer("team-b", Some(needs(&["pool-b"], &["kv1", "gone"])))],
            found: &["kv1"],
            allowed: &[("team-b", &["kv1"])],
            records: Records::default(),
            targets: &["pool-a", "pool-b"],
            needed: &["gone", "kv1"],
            visited: &["kv1"],
            may_remove: true,
            members: &["team-b"],
            users: &["team-a/app", "team-b/app"],
        },
    ];
    for row in rows {
        let mut demand = Demand::new(row.own, "team-a/app".to_owned(), row.sharers, row.records);
        let found: BTreeMap<String, Arc<Vault>> = row.found.iter().map(|name| ((*name).to_owned(), vault(name))).collect();
        let allowed: BTreeMap<&str, BTreeSet<VaultId>> = row.allowed.iter().map(|(ns, vaults)| (*ns, vaults.iter().map(|v| vault_id(v)).collect())).collect();
        let visited = demand.only_allowed_vaults(found, |member, ids| {
            let namespace = member.metadata.namespace.as_deref().unwrap_or_default();
            allowed.get(namespace).is_some_and(|allowed| ids.iter().all(|id| allowed.contains(id)))
        });
        let case = row.case;
        assert_eq!(demand.targets, row.targets.iter().map(|p| pool(p)).collect::<BTreeSet<_>>(), "{case}: targets");
        assert_eq!(demand.vaults.keys().map(String::as_str).collect::<Vec<_>>(), row.needed, "{case}: vaults needed");
        assert_eq!(visited.keys().map(String::as_str).collect::<Vec<_>>(), row.visited, "{case}: vaults visited");
        assert_eq!(demand.may_remove, row.may_remove, "{case}: may remove");
        let members: Vec<&str> = demand.members.iter().filter_map(|(b, _)| b.metadata.namespace.as_deref()).collect();
        assert_eq!(members, row.members, "{case}: members");
        assert_eq!(demand.users, row.users, "{case}: users");
    }
}

#[test]
fn a_member_adds_its_objects_to_a_vault_the_binding_uses_too() {
    let mut demand = Demand::new(
        Some(needs(&["pool-a"], &["kv1"])),
        "team-a/app".to_owned(),
        vec![sharer("team-b", Some(needs(&["pool-a"], &["kv1"])))],
        Records::default(),
    );
    let names = |d: &Demand| d.vaults["kv1"].1.iter().map(|o| o.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&demand), ["db-kv1", "db-kv1"], "both bindings' objects, deduplicated by the grant step");
    let visited = demand.only_allowed_vaults(BTreeMap::from([("kv1".to_owned(), vault("kv1"))]), |_, _| false);
    assert_eq!(names(&demand), ["db-kv1"], "the refused member's objects are gone");
    assert_eq!(demand.namespaces(), BTreeSet::from(["team-a".to_owned(), "team-b".to_owned()]), "it still counts against its namespace's quotas");
    assert_eq!(visited.len(), 1);
}
