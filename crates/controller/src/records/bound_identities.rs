//! Which namespaces each identity kvbind wrote into a SecretProviderClass is bound to, kept
//! in one ConfigMap in kvbind's own namespace for the chart's `ValidatingAdmissionPolicy`.
//! The policy refuses a class that names, in `userAssignedIdentityID` or `clientID`, an
//! identity kvbind bound to other namespaces only: in VM mode a pod can ask IMDS for any
//! identity on its node, and the class is where it asks (the provider's issue #837).
//!
//! Only kvbind writes the ConfigMap (tenants have no rights in kvbind's namespace), and
//! only from what it does itself, never from a status. The namespace is added before the
//! class is written, so kvbind's own write passes the policy.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kvbind_api::FIELD_MANAGER;
use serde_json::json;

/// The bound identities, by lowercase client ID, and the ConfigMap that publishes them.
pub struct BoundIdentities {
    api: Api<ConfigMap>,
    name: String,
    /// `None` until the ConfigMap has been read once.
    state: tokio::sync::Mutex<Option<BTreeMap<String, BTreeSet<String>>>>,
}

impl BoundIdentities {
    /// The store kept in ConfigMap `name` of `namespace`.
    pub fn new(client: kube::Client, namespace: &str, name: &str) -> Self {
        BoundIdentities { api: Api::namespaced(client, namespace), name: name.to_owned(), state: tokio::sync::Mutex::default() }
    }

    /// Records that `client_id` is bound to `namespace`.
    pub async fn bind(&self, client_id: &str, namespace: &str) -> Result<(), kube::Error> {
        self.change(client_id, |namespaces| namespaces.insert(namespace.to_owned())).await
    }

    /// Records that `client_id` is no longer bound to `namespace`.
    pub async fn unbind(&self, client_id: &str, namespace: &str) -> Result<(), kube::Error> {
        self.change(client_id, |namespaces| namespaces.remove(namespace)).await
    }

    async fn change(&self, client_id: &str, edit: impl FnOnce(&mut BTreeSet<String>) -> bool) -> Result<(), kube::Error> {
        let mut state = self.state.lock().await;
        if state.is_none() {
            *state = Some(self.read().await?);
        }
        let Some(bound) = state.as_mut() else { return Ok(()) };
        let mut next = bound.clone();
        let namespaces = next.entry(client_id.to_ascii_lowercase()).or_default();
        if !edit(namespaces) {
            return Ok(());
        }
        if namespaces.is_empty() {
            next.remove(&client_id.to_ascii_lowercase());
        }
        let data: BTreeMap<&String, String> = next.iter().map(|(id, ns)| (id, ns.iter().cloned().collect::<Vec<_>>().join(","))).collect();
        let object = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": self.name}, "data": data});
        self.api.patch(&self.name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&object)).await?;
        *bound = next;
        Ok(())
    }

    async fn read(&self) -> Result<BTreeMap<String, BTreeSet<String>>, kube::Error> {
        let found = self.api.get_opt(&self.name).await?;
        Ok(parse(found.and_then(|c| c.data).unwrap_or_default()))
    }
}

/// The ConfigMap's data as namespaces per client ID.
fn parse(data: BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    data.into_iter().map(|(id, namespaces)| (id, namespaces.split(',').filter(|n| !n.is_empty()).map(str::to_owned).collect())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_reads_back_as_namespaces_per_identity() {
        let data = BTreeMap::from([("abc".to_owned(), "team-a,team-b".to_owned()), ("def".to_owned(), String::new())]);
        let parsed = parse(data);
        assert_eq!(parsed["abc"], BTreeSet::from(["team-a".to_owned(), "team-b".to_owned()]));
        assert!(parsed["def"].is_empty());
    }
}
