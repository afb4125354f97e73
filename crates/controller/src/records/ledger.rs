//! What kvbind did per identity since this process started.
//!
//! The statuses say the same once written, but the cache can lag a status write by a
//! reconcile; without the ledger a quick second reconcile would take kvbind's own attachment
//! for one it found, and never undo it. Every identity keeps an entry for the life of the
//! process, so an entry holds shared copies of its IDs and permission names in boxed slices:
//! at a thousand identities on twenty pools, maps of owned strings cost ~3 KB an identity.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use kvbind_api::identity_binding::{AttachmentStatus, IdentityBindingStatus, VaultGrantStatus};
use kvbind_azure::intern::intern;
use kvbind_azure::model::Permissions;
use kvbind_azure::{ComputeId, IdentityId, VaultId};

use super::Records;

/// kvbind's records per identity.
#[derive(Debug, Default)]
pub struct Ledger {
    entries: Mutex<HashMap<IdentityId, Entry>>,
    /// How many namespaces have VM-mode users: with one, no pool is shared between
    /// namespaces and [`Ledger::sharing`] need not look (a thousand bindings of one team
    /// would otherwise scan every entry in every reconcile).
    namespaces: Mutex<BTreeSet<Arc<str>>>,
}

#[derive(Debug, Default)]
struct Entry {
    /// Targets kvbind attached the identity to (lowercase IDs).
    attached: Box<[Arc<str>]>,
    /// Access-policy permissions kvbind granted, per vault.
    granted: Box<[Grant]>,
    /// The VM-mode bindings (namespace, name) that use the identity on its pools.
    users: Box<[(Arc<str>, Arc<str>)]>,
}

#[derive(Debug)]
struct Grant {
    /// The vault (lowercase ID).
    vault: Arc<str>,
    secrets: Box<[Arc<str>]>,
    keys: Box<[Arc<str>]>,
    certificates: Box<[Arc<str>]>,
}

fn shared(names: &BTreeSet<String>) -> Box<[Arc<str>]> {
    names.iter().map(|name| intern(name)).collect()
}

impl Grant {
    fn permissions(&self) -> Permissions {
        let owned = |names: &[Arc<str>]| names.iter().map(|name| name.to_string()).collect();
        Permissions { secrets: owned(&self.secrets), keys: owned(&self.keys), certificates: owned(&self.certificates), ..Permissions::default() }
    }
}

impl Ledger {
    fn entries(&self) -> MutexGuard<'_, HashMap<IdentityId, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the ledger holds anything for `identity`: kvbind did something with it in
    /// this process's life.
    pub fn knows(&self, identity: &IdentityId) -> bool {
        self.entries().get(identity).is_some_and(|e| !e.attached.is_empty() || !e.granted.is_empty())
    }

    /// Adds to `records` what the ledger holds for `identity`.
    pub fn add_to(&self, identity: &IdentityId, records: &mut Records) {
        let entries = self.entries();
        let Some(entry) = entries.get(identity) else { return };
        // The entry keeps lowercase IDs, shared, for its memory; they parse back as they
        // were written.
        records.attached.extend(entry.attached.iter().filter_map(|target| ComputeId::parse(target).ok()));
        for grant in &entry.granted {
            if let Ok(vault) = VaultId::parse(&grant.vault) {
                records.granted.entry(vault).or_default().merge(&grant.permissions());
            }
        }
    }

    /// Notes which of `attachments` of `identity` kvbind made.
    pub fn note_attachments(&self, identity: &IdentityId, attachments: &[AttachmentStatus]) {
        let status = IdentityBindingStatus { attachments: attachments.to_vec(), ..IdentityBindingStatus::default() };
        self.set_attached(identity, &Records::from_statuses([&status]).attached);
    }

    /// Notes which access-policy permissions kvbind granted `identity`.
    pub fn note_grants(&self, identity: &IdentityId, grants: &[VaultGrantStatus]) {
        let status = IdentityBindingStatus { grants: grants.to_vec(), ..IdentityBindingStatus::default() };
        self.set_granted(identity, &Records::from_statuses([&status]).granted);
    }

    /// Records the targets kvbind has `identity` attached to now.
    pub fn set_attached(&self, identity: &IdentityId, attached: &BTreeSet<ComputeId>) {
        self.entries().entry(identity.clone()).or_default().attached = attached.iter().map(|target| intern(&target.key())).collect();
    }

    /// Records the access-policy permissions kvbind has granted `identity` now.
    pub fn set_granted(&self, identity: &IdentityId, granted: &BTreeMap<VaultId, Permissions>) {
        self.entries().entry(identity.clone()).or_default().granted = granted
            .iter()
            .map(|(vault, p)| Grant { vault: intern(&vault.key()), secrets: shared(&p.secrets), keys: shared(&p.keys), certificates: shared(&p.certificates) })
            .collect();
    }

    /// Adds `target` to the targets kvbind attached `identity` to.
    pub fn note_attached(&self, identity: &IdentityId, target: &ComputeId) {
        let target = target.key();
        let mut entries = self.entries();
        let entry = entries.entry(identity.clone()).or_default();
        if !entry.attached.iter().any(|a| **a == *target) {
            entry.attached = entry.attached.iter().cloned().chain([intern(&target)]).collect();
        }
    }

    /// Adds `permissions` on `vault` to what kvbind granted `identity`.
    pub fn note_granted(&self, identity: &IdentityId, vault: &VaultId, permissions: &Permissions) {
        let mut records = Records::default();
        self.add_to(identity, &mut records);
        records.granted.entry(vault.clone()).or_default().merge(permissions);
        self.set_granted(identity, &records.granted);
    }

    /// Records that VM-mode binding `namespace/name` uses `identity` on its pools; true
    /// when it had not been recorded.
    pub fn used_by(&self, identity: &IdentityId, namespace: &str, name: &str) -> bool {
        let mut entries = self.entries();
        let entry = entries.entry(identity.clone()).or_default();
        if entry.users.iter().any(|(n, b)| &**n == namespace && &**b == name) {
            return false;
        }
        entry.users = entry.users.iter().cloned().chain([(intern(namespace), intern(name))]).collect();
        drop(entries);
        self.namespaces.lock().unwrap_or_else(PoisonError::into_inner).insert(intern(namespace));
        true
    }

    /// The VM-mode bindings (namespace, name) outside `namespace` whose identities kvbind
    /// attached to any of `pools`: their pods on those pools can get `namespace`'s
    /// identity's tokens from IMDS, and `namespace`'s pods theirs.
    pub fn sharing(&self, pools: &BTreeSet<ComputeId>, namespace: &str) -> BTreeSet<(String, String)> {
        if self.namespaces.lock().unwrap_or_else(PoisonError::into_inner).len() < 2 {
            return BTreeSet::new();
        }
        let pools: BTreeSet<String> = pools.iter().map(|pool| pool.key()).collect();
        let entries = self.entries();
        entries
            .values()
            .filter(|e| e.attached.iter().any(|a| pools.contains(&**a)))
            .flat_map(|e| e.users.iter())
            .filter(|(n, _)| &**n != namespace)
            .map(|(n, b)| (n.to_string(), b.to_string()))
            .collect()
    }

    /// Forgets `identity`, once kvbind has deleted it.
    pub fn forget(&self, identity: &IdentityId) {
        self.entries().remove(identity);
    }
}

#[cfg(test)]
mod tests {
    use kvbind_azure::ResourceKind;

    use super::*;

    fn id(name: &str) -> IdentityId {
        IdentityId::new(ResourceKind::UserAssignedIdentity, "sub", "ids", name).expect("valid")
    }

    fn pool(name: &str) -> ComputeId {
        ComputeId::new(ResourceKind::VirtualMachineScaleSet, "sub", "nodes", name).expect("valid")
    }

    fn vault() -> VaultId {
        VaultId::new(ResourceKind::Vault, "sub", "vaults", "kv").expect("valid")
    }

    fn names(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    fn recorded(ledger: &Ledger, identity: &IdentityId) -> Records {
        let mut records = Records::default();
        ledger.add_to(identity, &mut records);
        records
    }

    #[test]
    fn what_is_set_comes_back_for_that_identity_only() {
        let ledger = Ledger::default();
        let attached: BTreeSet<ComputeId> = [pool("pool-a"), pool("pool-b")].into_iter().collect();
        let permissions = Permissions { secrets: names(&["get", "list"]), keys: names(&["get"]), ..Permissions::default() };
        ledger.set_attached(&id("id-1"), &attached);
        ledger.set_granted(&id("id-1"), &BTreeMap::from([(vault(), permissions.clone())]));

        let records = recorded(&ledger, &id("id-1"));
        assert_eq!(records.attached, attached);
        assert_eq!(records.granted, BTreeMap::from([(vault(), permissions)]));
        assert!(recorded(&ledger, &id("id-2")).attached.is_empty());
    }

    #[test]
    fn setting_grants_keeps_the_attachments_and_forgetting_drops_both() {
        let ledger = Ledger::default();
        ledger.set_attached(&id("id"), &BTreeSet::from([pool("pool")]));
        ledger.set_granted(&id("id"), &BTreeMap::from([(vault(), Permissions { secrets: names(&["get"]), ..Permissions::default() })]));
        ledger.set_granted(&id("id"), &BTreeMap::new());
        let records = recorded(&ledger, &id("id"));
        assert_eq!(records.attached.len(), 1);
        assert!(records.granted.is_empty());

        ledger.forget(&id("id"));
        assert!(recorded(&ledger, &id("id")).attached.is_empty());
    }

    #[test]
    fn the_bindings_sharing_a_pool_are_those_whose_identities_kvbind_attached_there() {
        let ledger = Ledger::default();
        let on = |p: &str| BTreeSet::from([pool(p)]);
        let binding = |n: &str, b: &str| (n.to_owned(), b.to_owned());
        ledger.set_attached(&id("id-a"), &on("pool-1"));
        assert!(ledger.used_by(&id("id-a"), "team-a", "app"));
        ledger.set_attached(&id("id-b"), &on("pool-1"));
        assert!(ledger.used_by(&id("id-b"), "team-b", "web"));
        assert!(!ledger.used_by(&id("id-b"), "team-b", "web"), "recorded once");
        ledger.set_attached(&id("id-c"), &on("pool-2"));
        ledger.used_by(&id("id-c"), "team-c", "db");
        assert_eq!(ledger.sharing(&on("pool-1"), "team-a"), BTreeSet::from([binding("team-b", "web")]));
        assert_eq!(ledger.sharing(&on("pool-2"), "team-a"), BTreeSet::from([binding("team-c", "db")]));
        assert!(ledger.sharing(&on("pool-3"), "team-a").is_empty());
        ledger.set_attached(&id("id-b"), &BTreeSet::new());
        assert!(ledger.sharing(&on("pool-1"), "team-a").is_empty(), "detached, it no longer counts");
    }

    #[test]
    fn noting_adds_to_what_is_recorded() {
        let ledger = Ledger::default();
        ledger.note_attached(&id("id"), &pool("pool"));
        ledger.note_attached(&id("id"), &pool("pool"));
        ledger.note_granted(&id("id"), &vault(), &Permissions { secrets: names(&["get"]), ..Permissions::default() });
        ledger.note_granted(&id("id"), &vault(), &Permissions { keys: names(&["get"]), ..Permissions::default() });
        let records = recorded(&ledger, &id("id"));
        assert_eq!(records.attached.len(), 1, "noted once");
        let granted = &records.granted[&vault()];
        assert_eq!((granted.secrets.clone(), granted.keys.clone()), (names(&["get"]), names(&["get"])));
    }

    #[test]
    fn adding_merges_with_what_the_statuses_say() {
        let ledger = Ledger::default();
        ledger.set_granted(&id("id"), &BTreeMap::from([(vault(), Permissions { secrets: names(&["list"]), ..Permissions::default() })]));
        let mut records = Records::default();
        records.granted.entry(vault()).or_default().secrets.insert("get".to_owned());
        ledger.add_to(&id("id"), &mut records);
        assert_eq!(records.granted[&vault()].secrets, names(&["get", "list"]));
    }
}
