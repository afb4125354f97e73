//! The External Secrets Operator's objects as kvbind watches them: the SecretStores that
//! bindings name, and the ExternalSecrets whose entries say what those stores read.
//!
//! ESO is optional. kvbind looks once, at start, whether the API server serves
//! `external-secrets.io/v1`; without it nothing is watched (a watch of an absent resource
//! would keep the caches from ever being ready) and a binding that names a store says ESO
//! is not installed. Installing ESO later takes a restart of kvbind.

use std::collections::BTreeMap;

use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use kvbind_api::IdentityBinding;
use kvbind_api::external_secrets::{ExternalSecret, SecretStore, reads_through};

use kvbind_api::external_secrets::API_VERSION;

/// The informer caches of ESO's objects, when the API server serves them.
#[derive(Clone)]
pub struct EsoCaches {
    /// Every SecretStore, as far as kvbind reads it.
    pub stores: Store<SecretStore>,
    /// Every ExternalSecret, as far as kvbind reads it.
    pub external_secrets: Store<ExternalSecret>,
}

/// Whether the API server serves ESO's SecretStores and ExternalSecrets at
/// [`API_VERSION`]. Asked until it answers: a 404 means no, anything else is asked again.
pub async fn served(client: &Client) -> bool {
    let mut delay = std::time::Duration::from_millis(200);
    for _ in 0..8 {
        match client.list_api_group_resources(API_VERSION).await {
            Ok(list) => {
                let has = |name: &str| list.resources.iter().any(|r| r.name == name);
                return has("secretstores") && has("externalsecrets");
            }
            Err(kube::Error::Api(e)) if e.code == 404 => return false,
            Err(error) => tracing::warn!(%error, "asking the API server whether it serves {API_VERSION}"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(std::time::Duration::from_secs(10));
    }
    tracing::warn!("the API server did not say whether it serves {API_VERSION}: SecretStores are not watched");
    false
}

/// Where a cached store says which of its `spec.provider.azurekv` fields kvbind's field
/// manager owns, in place of its managed fields. Cache only, as for classes: the value the
/// API server sends under this name is dropped.
const KVBIND_OWNED_FIELDS: &str = "kvbind.io/cached-owned-azurekv-fields";

/// Keeps of a SecretStore only its Azure Key Vault provider (the typed model already drops
/// the rest) and which of those fields kvbind owns.
pub fn strip_store(store: &mut SecretStore) {
    let owned = crate::caches::cache_trim::fields_kvbind_owns(store.managed_fields(), "/f:spec/f:provider/f:azurekv");
    store.metadata.managed_fields = None;
    let mut annotations = BTreeMap::new();
    if !owned.is_empty() {
        annotations.insert(KVBIND_OWNED_FIELDS.to_owned(), owned);
    }
    store.metadata.annotations = (!annotations.is_empty()).then_some(annotations);
    // Only whether a service principal's credentials are named is read.
    if let Some(azure) = store.spec.provider.as_mut().and_then(|p| p.azurekv.as_mut()) {
        azure.auth_secret_ref = azure.auth_secret_ref.take().map(|_| serde_json::Value::Bool(true));
    }
}

/// True when kvbind's field manager owns `spec.provider.azurekv.<field>` of a cached store.
pub fn kvbind_owns_field(store: &SecretStore, field: &str) -> bool {
    store.annotations().get(KVBIND_OWNED_FIELDS).is_some_and(|owned| owned.split(' ').any(|f| f == field))
}

/// Keeps of an ExternalSecret only which stores it reads and which objects: a `find` or a
/// generator is kept only as being there.
pub fn strip_external_secret(secret: &mut ExternalSecret) {
    secret.metadata.managed_fields = None;
    secret.metadata.annotations = None;
    secret.metadata.labels = None;
    let present = || Some(serde_json::Value::Bool(true));
    for source in secret.spec.data.iter_mut().filter_map(|d| d.source_ref.as_mut()) {
        source.generator_ref = source.generator_ref.take().and_then(|_| present());
    }
    for entry in &mut secret.spec.data_from {
        entry.find = entry.find.take().and_then(|_| present());
        if let Some(source) = entry.source_ref.as_mut() {
            source.generator_ref = source.generator_ref.take().and_then(|_| present());
        }
    }
}

/// The bindings of the store's namespace that name it.
pub fn bindings_for_store(bindings: &Store<IdentityBinding>, store: &SecretStore) -> Vec<ObjectRef<IdentityBinding>> {
    let name = store.name_any();
    bindings_naming(bindings, store.metadata.namespace.as_deref(), |store| store == name)
}

/// The bindings of the ExternalSecret's namespace that name a store it reads through.
pub fn bindings_for_external_secret(bindings: &Store<IdentityBinding>, secret: &ExternalSecret) -> Vec<ObjectRef<IdentityBinding>> {
    bindings_naming(bindings, secret.metadata.namespace.as_deref(), |store| reads_through(&secret.spec, store))
}

fn bindings_naming(bindings: &Store<IdentityBinding>, namespace: Option<&str>, mut names: impl FnMut(&str) -> bool) -> Vec<ObjectRef<IdentityBinding>> {
    bindings
        .state()
        .iter()
        .filter(|b| b.metadata.namespace.as_deref() == namespace)
        .filter(|b| b.spec.secret_stores.iter().flat_map(|s| s.names.iter()).any(|n| names(n)))
        .map(|b| ObjectRef::from_obj(b.as_ref()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvbind_api::external_secrets::fields;

    fn store(json: serde_json::Value) -> SecretStore {
        serde_json::from_value(json).expect("store")
    }

    #[test]
    fn a_cached_store_keeps_what_kvbind_owns_and_drops_any_claim_written_for_it() {
        let mut s = store(serde_json::json!({
            "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
            "metadata": {
                "name": "vault", "namespace": "a",
                "annotations": {KVBIND_OWNED_FIELDS: "identityId", "kubectl.kubernetes.io/last-applied-configuration": "{}"},
                "managedFields": [
                    {"manager": "kvbind", "operation": "Apply", "fieldsType": "FieldsV1",
                     "fieldsV1": {"f:spec": {"f:provider": {"f:azurekv": {"f:authType": {}, "f:identityId": {}}}}}},
                    {"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1",
                     "fieldsV1": {"f:spec": {"f:provider": {"f:azurekv": {"f:vaultUrl": {}, "f:serviceAccountRef": {}}}}}}
                ]
            },
            "spec": {"provider": {"azurekv": {"vaultUrl": "https://kv.vault.azure.net", "authType": "ManagedIdentity"}}, "refreshInterval": 60}
        }));
        strip_store(&mut s);
        assert!(s.metadata.managed_fields.is_none());
        assert!(kvbind_owns_field(&s, fields::AUTH_TYPE) && kvbind_owns_field(&s, fields::IDENTITY_ID));
        assert!(!kvbind_owns_field(&s, fields::SERVICE_ACCOUNT_REF), "another manager's field is not kvbind's");
        assert_eq!(s.annotations().len(), 1, "only the cache's own note is kept");

        let mut forged = store(serde_json::json!({
            "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
            "metadata": {"name": "vault", "namespace": "a", "annotations": {KVBIND_OWNED_FIELDS: "identityId"}},
            "spec": {}
        }));
        strip_store(&mut forged);
        assert!(!kvbind_owns_field(&forged, fields::IDENTITY_ID), "a tenant cannot claim a field for kvbind by annotation");
    }

    #[test]
    fn a_cached_external_secret_keeps_a_find_only_as_being_there() {
        let mut secret: ExternalSecret = serde_json::from_value(serde_json::json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
            "metadata": {"name": "e", "namespace": "a", "annotations": {"x": "y"}},
            "spec": {"secretStoreRef": {"name": "vault"}, "dataFrom": [{"find": {"name": {"regexp": "a".repeat(1000)}}}]}
        }))
        .expect("secret");
        strip_external_secret(&mut secret);
        assert_eq!(secret.spec.data_from[0].find, Some(serde_json::Value::Bool(true)));
        assert!(secret.metadata.annotations.is_none());
        assert!(kvbind_api::external_secrets::objects_read_through(&secret.spec, "vault").is_err(), "a kept find is still refused");
    }
}
