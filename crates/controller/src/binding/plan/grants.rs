//! What a principal is granted on a vault: least-privilege access-policy permissions or
//! role assignments for the objects the classes list, and the change from what is there.

use std::collections::{BTreeMap, BTreeSet};

use kvbind_api::identity_binding::RbacScope;
use kvbind_api::{KeyVaultObject, ObjectType};
use kvbind_azure::VaultId;
use kvbind_azure::model::{Permissions, RoleAssignment, Vault};
use kvbind_azure::roles::{KEY_VAULT_READER, KEY_VAULT_SECRETS_USER, MANAGED_ROLES, assignment_name};

/// `get` per object type used, plus `list` for a type where an object asks for version
/// history (the provider lists versions then).
pub fn access_policy_permissions(objects: &[KeyVaultObject]) -> Permissions {
    let mut p = Permissions::default();
    for o in objects {
        let set = match o.object_type {
            ObjectType::Secret => &mut p.secrets,
            ObjectType::Key => &mut p.keys,
            ObjectType::Cert => &mut p.certificates,
        };
        set.insert("get".to_owned());
        if o.needs_list() {
            set.insert("list".to_owned());
        }
    }
    p
}

/// The built-in role that lets the provider read one object type, and nothing of another
/// type:
/// - secrets: Key Vault Secrets User (read the value; list versions is `readMetadata`);
/// - keys: Key Vault Reader (the provider reads the public key; Crypto User could also
///   decrypt and sign);
/// - certificates: Key Vault Reader (the provider reads the public certificate;
///   Certificate User would also read the private key through its secret).
pub fn role_for(object_type: ObjectType) -> &'static str {
    match object_type {
        ObjectType::Secret => KEY_VAULT_SECRETS_USER,
        ObjectType::Key | ObjectType::Cert => KEY_VAULT_READER,
    }
}

fn collection(object_type: ObjectType) -> &'static str {
    match object_type {
        ObjectType::Secret => "secrets",
        ObjectType::Key => "keys",
        ObjectType::Cert => "certificates",
    }
}

/// The role assignments `principal` needs on `vault` to read `objects`: one per object at
/// the object's own scope, or with [`RbacScope::Vault`] one per object type on the vault.
pub fn role_assignments(vault: &VaultId, objects: &[KeyVaultObject], principal: &str, scope: RbacScope) -> BTreeMap<String, RoleAssignment> {
    let mut out = BTreeMap::new();
    for o in objects {
        let scope = match scope {
            RbacScope::Object => format!("{vault}/{}/{}", collection(o.object_type), o.name),
            RbacScope::Vault => vault.to_string(),
        };
        let role = role_for(o.object_type);
        let name = assignment_name(&scope, principal, role);
        out.insert(name.clone(), RoleAssignment { name, scope, role_definition: role.to_owned(), principal_id: principal.to_owned() });
    }
    out
}

/// True when kvbind made this assignment: its name is the one kvbind derives from it.
pub fn made_by_kvbind(a: &RoleAssignment) -> bool {
    MANAGED_ROLES.contains(&a.role_definition.as_str()) && a.name == assignment_name(&a.scope, &a.principal_id, &a.role_definition)
}

/// The role-assignment change on one vault: the assignments to create, and those to delete.
#[derive(Debug)]
pub struct RoleChange<'a> {
    /// Desired and not there.
    pub create: Vec<&'a RoleAssignment>,
    /// Made by kvbind (by the name it derives) and no longer desired.
    pub delete: Vec<&'a RoleAssignment>,
}

/// Plans the role assignments towards `desired` from the principal's `existing` ones. Only
/// kvbind's own are ever deleted, and none while a sharer's needs are unknown
/// (`may_remove` false): an assignment someone else made for the same role and scope has
/// another name, and stays.
pub fn role_assignment_change<'a>(desired: &'a BTreeMap<String, RoleAssignment>, existing: &'a [RoleAssignment], may_remove: bool) -> RoleChange<'a> {
    let existing_names: BTreeSet<&str> = existing.iter().map(|a| a.name.as_str()).collect();
    let create = desired.iter().filter(|(name, _)| !existing_names.contains(name.as_str())).map(|(_, a)| a).collect();
    let delete = if may_remove { existing.iter().filter(|a| made_by_kvbind(a) && !desired.contains_key(&a.name)).collect() } else { Vec::new() };
    RoleChange { create, delete }
}

/// The access-policy change: what to add, what to remove, and what kvbind will then have
/// granted. `existing` is the principal's entry as read, `granted` what kvbind granted
/// before. Permissions that were there before kvbind are never recorded, so never removed.
pub struct PolicyChange {
    /// Permissions to add.
    pub add: Permissions,
    /// Permissions to remove.
    pub remove: Permissions,
    /// What kvbind has granted after the change.
    pub granted: Permissions,
}

/// Plans the access-policy change towards `desired`.
pub fn access_policy_change(desired: &Permissions, existing: &Permissions, granted: &Permissions, may_remove: bool) -> PolicyChange {
    let per = |d: &BTreeSet<String>, e: &BTreeSet<String>, g: &BTreeSet<String>| {
        let add: BTreeSet<String> = d.difference(e).cloned().collect();
        let remove: BTreeSet<String> = if may_remove { g.difference(d).filter(|p| e.contains(*p)).cloned().collect() } else { BTreeSet::new() };
        let mut now: BTreeSet<String> = g.union(&add).cloned().collect();
        now.retain(|p| !remove.contains(p) && (d.contains(p) || !may_remove));
        (add, remove, now)
    };
    let (sa, sr, sg) = per(&desired.secrets, &existing.secrets, &granted.secrets);
    let (ka, kr, kg) = per(&desired.keys, &existing.keys, &granted.keys);
    let (ca, cr, cg) = per(&desired.certificates, &existing.certificates, &granted.certificates);
    PolicyChange {
        add: Permissions { secrets: sa, keys: ka, certificates: ca, storage: BTreeSet::new() },
        remove: Permissions { secrets: sr, keys: kr, certificates: cr, storage: BTreeSet::new() },
        granted: Permissions { secrets: sg, keys: kg, certificates: cg, storage: BTreeSet::new() },
    }
}

/// The access-policy change on `vault` for `principal` to read `objects`: `recorded` is
/// what kvbind's records say it granted there. For an identity kvbind created (`owned`)
/// every permission its principal holds is kvbind's, recorded or not (a crash between the
/// write and the record loses nothing); for any other, only the recorded ones are.
pub fn access_policy_plan(
    vault: &Vault,
    principal: &str,
    objects: &[KeyVaultObject],
    recorded: Option<&Permissions>,
    owned: bool,
    may_remove: bool,
) -> PolicyChange {
    let desired = access_policy_permissions(objects);
    let existing = vault.access_policies.iter().find(|p| p.object_id.eq_ignore_ascii_case(principal)).map(|p| p.permissions.clone()).unwrap_or_default();
    let mut granted = recorded.cloned().unwrap_or_default();
    if owned {
        granted.merge(&existing);
    }
    access_policy_change(&desired, &existing, &granted, may_remove)
}

/// A sentence naming the objects that need `list`, for status.
pub fn list_reason(objects: &[KeyVaultObject]) -> Option<String> {
    let names: Vec<String> =
        objects.iter().filter(|o| o.needs_list()).map(|o| format!("{} {} (objectVersionHistory {})", o.object_type, o.name, o.version_history)).collect();
    (!names.is_empty()).then(|| format!("list is granted because the provider lists versions of {}", names.join(", ")))
}

#[cfg(test)]
mod tests {
    use kvbind_azure::ResourceKind;

    use super::*;

    fn object(name: &str, t: ObjectType, history: u32) -> KeyVaultObject {
        KeyVaultObject { name: name.into(), object_type: t, version: None, version_history: history, alias: None, format: None, encoding: None }
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn get_only_on_the_types_used_and_list_only_for_history() {
        let p = access_policy_permissions(&[object("s", ObjectType::Secret, 0), object("k", ObjectType::Key, 3)]);
        assert_eq!(p.secrets, set(&["get"]));
        assert_eq!(p.keys, set(&["get", "list"]));
        assert!(p.certificates.is_empty());
    }

    #[test]
    fn object_scoped_role_assignments() {
        let vault = VaultId::new(ResourceKind::Vault, "s", "rg", "kv").expect("id");
        let a = role_assignments(&vault, &[object("db", ObjectType::Secret, 0), object("sign", ObjectType::Key, 0)], "p", RbacScope::Object);
        let scopes: Vec<&str> = a.values().map(|r| r.scope.as_str()).collect();
        assert_eq!(a.len(), 2);
        assert!(scopes.iter().any(|s| s.ends_with("/vaults/kv/secrets/db")));
        assert!(scopes.iter().any(|s| s.ends_with("/vaults/kv/keys/sign")));
        assert!(a.values().all(made_by_kvbind));
        let v = role_assignments(&vault, &[object("a", ObjectType::Secret, 0), object("b", ObjectType::Secret, 0)], "p", RbacScope::Vault);
        assert_eq!(v.len(), 1, "one per type at vault scope");
    }

    #[test]
    fn pre_existing_permissions_are_never_removed() {
        let desired = Permissions { secrets: set(&["get"]), ..Permissions::default() };
        let existing = Permissions { secrets: set(&["get", "list"]), keys: set(&["get"]), ..Permissions::default() };
        let change = access_policy_change(&desired, &existing, &Permissions::default(), true);
        assert!(change.add.is_empty() && change.remove.is_empty());
        assert!(change.granted.is_empty(), "get was already there: not kvbind's");
    }

    #[test]
    fn shrinking_removes_only_what_kvbind_granted() {
        let granted = Permissions { secrets: set(&["get"]), certificates: set(&["get"]), ..Permissions::default() };
        let existing = granted.clone();
        let desired = Permissions { secrets: set(&["get"]), ..Permissions::default() };
        let change = access_policy_change(&desired, &existing, &granted, true);
        assert_eq!(change.remove.certificates, set(&["get"]));
        assert_eq!(change.granted, desired);
        let held = access_policy_change(&desired, &existing, &granted, false);
        assert!(held.remove.is_empty(), "no removal while a member's needs are unknown");
    }

    #[test]
    fn role_assignments_are_created_where_missing_and_only_kvbinds_deleted() {
        let vault = VaultId::new(ResourceKind::Vault, "s", "rg", "kv").expect("id");
        let before = role_assignments(&vault, &[object("db", ObjectType::Secret, 0), object("old", ObjectType::Secret, 0)], "p", RbacScope::Object);
        let desired = role_assignments(&vault, &[object("db", ObjectType::Secret, 0), object("new", ObjectType::Secret, 0)], "p", RbacScope::Object);
        let theirs = RoleAssignment {
            name: "00000000-0000-0000-0000-00000000beef".into(),
            scope: format!("{vault}/secrets/old"),
            role_definition: KEY_VAULT_SECRETS_USER.into(),
            principal_id: "p".into(),
        };
        let existing: Vec<RoleAssignment> = before.values().cloned().chain([theirs]).collect();
        let change = role_assignment_change(&desired, &existing, true);
        let scopes = |list: &[&RoleAssignment]| list.iter().map(|a| a.scope.rsplit('/').next().unwrap_or_default().to_owned()).collect::<Vec<_>>();
        assert_eq!(scopes(&change.create), ["new"]);
        assert_eq!(scopes(&change.delete), ["old"], "kvbind's assignment on old goes; the one made by hand on the same scope stays");
        assert!(role_assignment_change(&desired, &existing, false).delete.is_empty(), "none while a sharer's needs are unknown");
        assert!(role_assignment_change(&desired, &[], true).create.len() == 2, "a vault that just moved to RBAC gets every assignment");
    }

    #[test]
    fn what_is_kvbinds_to_revoke_depends_on_who_made_the_identity_and_the_records() {
        use kvbind_azure::model::AccessPolicy;
        let id = VaultId::new(ResourceKind::Vault, "s", "rg", "kv").expect("id");
        let held = Permissions { secrets: set(&["get", "list"]), certificates: set(&["get"]), ..Permissions::default() };
        let vault = Vault {
            id,
            tenant_id: "t".into(),
            rbac_authorization: false,
            vault_uri: None,
            access_policies: vec![AccessPolicy { tenant_id: "t".into(), object_id: "PRINCIPAL".into(), permissions: held }],
        };
        let wants = [object("db", ObjectType::Secret, 0), object("signing", ObjectType::Key, 0)];
        let recorded = Permissions { certificates: set(&["get"]), ..Permissions::default() };
        // (recorded, owned, may_remove) -> (added keys, removed secrets, removed certificates)
        let table = [
            ((None, false, true), (set(&["get"]), set(&[]), set(&[]))),
            ((Some(&recorded), false, true), (set(&["get"]), set(&[]), set(&["get"]))),
            ((None, true, true), (set(&["get"]), set(&["list"]), set(&["get"]))),
            ((None, true, false), (set(&["get"]), set(&[]), set(&[]))),
        ];
        for ((recorded, owned, may_remove), (keys, secrets, certificates)) in table {
            let change = access_policy_plan(&vault, "principal", &wants, recorded, owned, may_remove);
            let row = format!("recorded {recorded:?}, owned {owned}, may remove {may_remove}");
            assert_eq!(change.add.keys, keys, "{row}: the key's get is added");
            assert!(change.add.secrets.is_empty(), "{row}: secret get is there already");
            assert_eq!((change.remove.secrets, change.remove.certificates), (secrets, certificates), "{row}: removed");
        }
    }
}
