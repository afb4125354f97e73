//! What kvbind did to identities it adopted, kept in one ConfigMap in its own namespace so
//! that it outlives the process.
//!
//! An identity kvbind created carries its installation's tag, so every attachment and
//! permission of it is kvbind's. An adopted one carries nothing of kvbind's (adoption
//! never changes the identity), so only a record tells what kvbind attached and granted.
//! Tenants have no rights in kvbind's namespace, and kvbind writes the record only from
//! what it does itself: an attachment or a permission is added to the record *before* the
//! ARM write that makes it, so a SIGKILL between the two leaves a record of a write that
//! may have happened (whose undo is then a no-op), never a write without a record.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kvbind_api::FIELD_MANAGER;
use kvbind_azure::model::Permissions;
use kvbind_azure::{ComputeId, IdentityId, VaultId};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Records;

/// One adopted identity's record, as the ConfigMap holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    /// The identity's lowercase ID (the ledger's key).
    identity: String,
    /// Targets kvbind attached it to (lowercase IDs).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    attached: BTreeSet<String>,
    /// Access-policy permissions kvbind granted it, per vault (lowercase ID).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    granted: BTreeMap<String, Granted>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Granted {
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    secrets: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    keys: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    certificates: BTreeSet<String>,
}

impl Record {
    fn of(identity: &str, records: &Records) -> Record {
        Record {
            identity: identity.to_owned(),
            attached: records.attached.iter().map(|target| target.key()).collect(),
            granted: records
                .granted
                .iter()
                .filter(|(_, p)| !(p.secrets.is_empty() && p.keys.is_empty() && p.certificates.is_empty()))
                .map(|(vault, p)| (vault.key(), Granted { secrets: p.secrets.clone(), keys: p.keys.clone(), certificates: p.certificates.clone() }))
                .collect(),
        }
    }

    fn is_empty(&self) -> bool {
        self.attached.is_empty() && self.granted.is_empty()
    }

    fn records(&self) -> Records {
        Records {
            attached: self.attached.iter().filter_map(|target| ComputeId::parse(target).ok()).collect(),
            granted: self
                .granted
                .iter()
                .filter_map(|(vault, g)| {
                    let permissions =
                        Permissions { secrets: g.secrets.clone(), keys: g.keys.clone(), certificates: g.certificates.clone(), ..Permissions::default() };
                    Some((VaultId::parse(vault).ok()?, permissions))
                })
                .collect(),
        }
    }
}

/// The ConfigMap's key for an identity: ConfigMap keys allow no `/`.
fn data_key(identity: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, identity.as_bytes()).simple().to_string()
}

/// The records of adopted identities, and the ConfigMap that keeps them.
pub struct AdoptionRecords {
    api: Api<ConfigMap>,
    name: String,
    /// By data key; `None` until the ConfigMap has been read once.
    state: tokio::sync::Mutex<Option<BTreeMap<String, Record>>>,
}

impl AdoptionRecords {
    /// The store kept in ConfigMap `name` of `namespace`.
    pub fn new(client: kube::Client, namespace: &str, name: &str) -> Self {
        AdoptionRecords { api: Api::namespaced(client, namespace), name: name.to_owned(), state: tokio::sync::Mutex::default() }
    }

    /// Every identity's records. Only kvbind writes the ConfigMap; an entry whose identity
    /// is no identity ID is passed over with a warning rather than stopping the start.
    pub async fn load(&self) -> Result<Vec<(IdentityId, Records)>, kube::Error> {
        let mut state = self.state.lock().await;
        let read = self.read().await?;
        let out = read
            .values()
            .filter_map(|r| match IdentityId::parse(&r.identity) {
                Ok(identity) => Some((identity, r.records())),
                Err(error) => {
                    tracing::warn!(%error, "an adoption record names no identity; passed over");
                    None
                }
            })
            .collect();
        *state = Some(read);
        Ok(out)
    }

    /// Keeps `records` as what kvbind did to `identity`; empty records drop its entry.
    /// Writes only when that changes the ConfigMap.
    pub async fn save(&self, identity: &IdentityId, records: &Records) -> Result<(), kube::Error> {
        let identity = identity.key();
        let identity = identity.as_str();
        let mut state = self.state.lock().await;
        if state.is_none() {
            *state = Some(self.read().await?);
        }
        let Some(kept) = state.as_mut() else { return Ok(()) };
        let key = data_key(identity);
        let record = Record::of(identity, records);
        let mut next = kept.clone();
        if record.is_empty() {
            next.remove(&key);
        } else {
            next.insert(key, record);
        }
        if next == *kept {
            return Ok(());
        }
        let mut data = BTreeMap::new();
        for (key, record) in &next {
            data.insert(key.clone(), serde_json::to_string(record).unwrap_or_default());
        }
        let object = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": self.name}, "data": data});
        self.api.patch(&self.name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&object)).await?;
        *kept = next;
        Ok(())
    }

    async fn read(&self) -> Result<BTreeMap<String, Record>, kube::Error> {
        let found = self.api.get_opt(&self.name).await?;
        Ok(parse(found.and_then(|c| c.data).unwrap_or_default()))
    }
}

/// The ConfigMap's data as records; an entry that does not read is left out (and logged),
/// erring towards leaving access over removing what kvbind cannot prove it made.
fn parse(data: BTreeMap<String, String>) -> BTreeMap<String, Record> {
    data.into_iter()
        .filter_map(|(key, text)| match serde_json::from_str::<Record>(&text) {
            Ok(record) => Some((key, record)),
            Err(error) => {
                tracing::warn!(%key, %error, "an adoption record does not read; left out");
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use kvbind_azure::ResourceKind;

    use super::*;

    #[test]
    fn records_read_back_as_they_were_kept() {
        let mut records = Records::default();
        let vault = |name: &str| VaultId::new(ResourceKind::Vault, "s", "vaults", name).expect("id");
        records.attached.insert(ComputeId::new(ResourceKind::VirtualMachineScaleSet, "s", "MC", "Pool").expect("id"));
        records.granted.insert(vault("kv"), Permissions { secrets: BTreeSet::from(["get".to_owned()]), ..Permissions::default() });
        records.granted.insert(vault("emptied"), Permissions::default());
        let record = Record::of("/identity", &records);
        assert!(!record.granted.contains_key(&vault("emptied").key()), "a vault with nothing granted is not kept");
        let text = serde_json::to_string(&record).expect("serialises");
        let data = BTreeMap::from([(data_key("/identity"), text), ("broken".to_owned(), "{".to_owned())]);
        let parsed = parse(data);
        assert_eq!(parsed.len(), 1, "an unreadable entry is left out");
        let back = parsed[&data_key("/identity")].records();
        assert_eq!(back.attached, records.attached);
        assert_eq!(back.granted[&vault("kv")].secrets, BTreeSet::from(["get".to_owned()]));
        assert!(Record::of("/identity", &Records::default()).is_empty());
        assert!(data_key("/subscriptions/s/x").chars().all(|c| c.is_ascii_hexdigit()), "a valid ConfigMap key");
    }
}
