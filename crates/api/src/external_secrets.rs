//! The External Secrets Operator's `SecretStore` and `ExternalSecret` (`external-secrets.io/v1`),
//! modelled only as far as kvbind reads them: a store's Azure Key Vault provider, and which
//! vault objects the ExternalSecrets that use a store read. kvbind never applies these
//! CRDs: ESO's chart does.
//!
//! An ExternalSecret names a Key Vault object the way ESO's Azure provider reads it: `name`
//! is a secret, and `secret/name`, `key/name` and `cert/name` name the object type first.
//! kvbind grants exactly those objects, so it refuses what would need more: `dataFrom.find`
//! lists the vault, and a generator reads no vault at all.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::objects::{KeyVaultObject, ObjectType};

/// The API group of the External Secrets Operator.
pub const GROUP: &str = "external-secrets.io";

/// The API version kvbind reads and writes.
pub const API_VERSION: &str = "external-secrets.io/v1";

/// The `spec` of a SecretStore, as far as kvbind reads it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(group = "external-secrets.io", version = "v1", kind = "SecretStore", namespaced)]
#[serde(rename_all = "camelCase")]
pub struct SecretStoreSpec {
    /// The provider the store reads from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<StoreProvider>,
}

/// A store's provider; kvbind reads only Azure Key Vault's.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoreProvider {
    /// Azure Key Vault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azurekv: Option<AzureKeyVaultProvider>,
}

/// `spec.provider.azurekv`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureKeyVaultProvider {
    /// `ServicePrincipal` (ESO's default), `ManagedIdentity` or `WorkloadIdentity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_type: Option<String>,
    /// The vault's URL (`https://NAME.vault.azure.net`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_url: Option<String>,
    /// The vault's tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// With `ManagedIdentity`, the client ID of the identity to use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_id: Option<String>,
    /// With `WorkloadIdentity`, the ServiceAccount whose tokens ESO exchanges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_ref: Option<ServiceAccountSelector>,
    /// With `ServicePrincipal`, the Secret holding its credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_secret_ref: Option<serde_json::Value>,
}

impl AzureKeyVaultProvider {
    /// ESO's CRD defaults `authType` to `ServicePrincipal`; a store that says so without the
    /// credentials such a store needs says nothing about how it authenticates.
    pub fn auth_type_chosen(&self) -> Option<&str> {
        match self.auth_type.as_deref() {
            Some("ServicePrincipal") if self.auth_secret_ref.is_none() => None,
            other => other,
        }
    }
}

/// A ServiceAccount a store names.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ServiceAccountSelector {
    /// Its name.
    #[serde(default)]
    pub name: String,
}

/// The fields of `spec.provider.azurekv` that kvbind writes.
pub mod fields {
    /// `authType`.
    pub const AUTH_TYPE: &str = "authType";
    /// `identityId`.
    pub const IDENTITY_ID: &str = "identityId";
    /// `serviceAccountRef`.
    pub const SERVICE_ACCOUNT_REF: &str = "serviceAccountRef";
}

/// The `spec` of an ExternalSecret, as far as kvbind reads it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(group = "external-secrets.io", version = "v1", kind = "ExternalSecret", namespaced)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretSpec {
    /// The store every entry reads from unless it names its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_store_ref: Option<StoreRef>,
    /// One vault object per entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<ExternalSecretData>,
    /// Whole objects extracted, or objects found by listing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_from: Vec<ExternalSecretDataFrom>,
}

/// A store an ExternalSecret reads from.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct StoreRef {
    /// The store's name.
    #[serde(default)]
    pub name: String,
    /// `SecretStore` (the default) or `ClusterSecretStore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

impl StoreRef {
    /// True when this names the namespace's SecretStore `name`.
    fn is_secret_store(&self, name: &str) -> bool {
        self.name == name && self.kind.as_deref().is_none_or(|k| k.is_empty() || k == "SecretStore")
    }
}

/// `spec.data[]`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretData {
    /// The object read.
    #[serde(default)]
    pub remote_ref: RemoteRef,
    /// A store of this entry's own, or a generator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ref: Option<SourceRef>,
}

/// `spec.dataFrom[]`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretDataFrom {
    /// One object, extracted whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extract: Option<RemoteRef>,
    /// Objects found by name or tag: a listing of the vault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub find: Option<serde_json::Value>,
    /// A store of this entry's own, or a generator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ref: Option<SourceRef>,
}

/// An object in the store's vault.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct RemoteRef {
    /// `name`, `secret/name`, `key/name` or `cert/name`.
    #[serde(default)]
    pub key: String,
    /// A pinned version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Where an entry reads from instead of the ExternalSecret's store.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceRef {
    /// Another store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_ref: Option<StoreRef>,
    /// A generator, which reads no vault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_ref: Option<serde_json::Value>,
}

/// Why an ExternalSecret's use of a store cannot be granted, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteRefError {
    /// `dataFrom.find` lists the vault, which needs `list` on every secret in it.
    #[error("spec.dataFrom[{index}].find lists the whole vault: kvbind grants only named objects, so name them in spec.data or spec.dataFrom[].extract")]
    Find {
        /// The entry's position in `dataFrom`.
        index: usize,
    },
    /// The key is empty, or names no object.
    #[error("{field}.remoteRef.key {key:?} names no Key Vault object")]
    NoName {
        /// `spec.data[i]` or `spec.dataFrom[i].extract`.
        field: String,
        /// The key as written.
        key: String,
    },
    /// The key's prefix is none of `secret`, `key` and `cert`.
    #[error("{field}.remoteRef.key {key:?}: ESO reads only secret/, key/ and cert/ objects from Key Vault")]
    UnknownType {
        /// `spec.data[i]` or `spec.dataFrom[i].extract`.
        field: String,
        /// The key as written.
        key: String,
    },
    /// The name is not a Key Vault object name.
    #[error("{field}.remoteRef.key {key:?}: a Key Vault object name is 1 to 127 letters, digits and hyphens")]
    InvalidName {
        /// `spec.data[i]` or `spec.dataFrom[i].extract`.
        field: String,
        /// The key as written.
        key: String,
    },
}

/// The vault objects `spec` reads through the namespace's SecretStore `store`, as ESO's Azure
/// provider reads them, with the first entry that kvbind cannot grant by name as the error.
pub fn objects_read_through(spec: &ExternalSecretSpec, store: &str) -> Result<Vec<KeyVaultObject>, RemoteRefError> {
    // An entry's own sourceRef wins; a generator reads no store.
    let uses = |source: &Option<SourceRef>| match source {
        Some(SourceRef { generator_ref: Some(_), .. }) => false,
        Some(SourceRef { store_ref: Some(own), .. }) => own.is_secret_store(store),
        _ => spec.secret_store_ref.as_ref().is_some_and(|r| r.is_secret_store(store)),
    };
    let mut objects = Vec::new();
    for (index, entry) in spec.data.iter().enumerate() {
        if uses(&entry.source_ref) {
            objects.push(object_of(&format!("spec.data[{index}]"), &entry.remote_ref)?);
        }
    }
    for (index, entry) in spec.data_from.iter().enumerate() {
        if !uses(&entry.source_ref) {
            continue;
        }
        if entry.find.is_some() {
            return Err(RemoteRefError::Find { index });
        }
        if let Some(extract) = &entry.extract {
            objects.push(object_of(&format!("spec.dataFrom[{index}].extract"), extract)?);
        }
    }
    Ok(objects)
}

/// True when `spec` reads anything through the namespace's SecretStore `store`.
pub fn reads_through(spec: &ExternalSecretSpec, store: &str) -> bool {
    let named = |r: &Option<StoreRef>| r.as_ref().is_some_and(|r| r.is_secret_store(store));
    named(&spec.secret_store_ref)
        || spec.data.iter().filter_map(|d| d.source_ref.as_ref()).any(|s| named(&s.store_ref))
        || spec.data_from.iter().filter_map(|d| d.source_ref.as_ref()).any(|s| named(&s.store_ref))
}

/// One object as ESO's provider splits its key: before the first `/` the type when there is
/// one, the name after it. ESO ignores anything after a second `/`, and so does this.
fn object_of(field: &str, remote: &RemoteRef) -> Result<KeyVaultObject, RemoteRefError> {
    let key = &remote.key;
    let mut parts = key.split('/');
    let first = parts.next().unwrap_or_default();
    let (object_type, name) = match parts.next() {
        None => (ObjectType::Secret, first),
        Some(name) => {
            let object_type = match first {
                "secret" => ObjectType::Secret,
                "key" => ObjectType::Key,
                "cert" => ObjectType::Cert,
                _ => return Err(RemoteRefError::UnknownType { field: field.to_owned(), key: key.clone() }),
            };
            (object_type, name)
        }
    };
    if name.is_empty() {
        return Err(RemoteRefError::NoName { field: field.to_owned(), key: key.clone() });
    }
    if name.len() > 127 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(RemoteRefError::InvalidName { field: field.to_owned(), key: key.clone() });
    }
    Ok(KeyVaultObject {
        name: name.to_owned(),
        object_type,
        version: remote.version.clone().filter(|v| !v.is_empty()),
        version_history: 1,
        alias: None,
        format: None,
        encoding: None,
    })
}

/// Why a store's vault URL names no vault of the cloud kvbind serves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultUrlError {
    /// `vaultUrl` is not set.
    #[error("spec.provider.azurekv.vaultUrl is required")]
    Missing,
    /// The URL is not `https://NAME.<suffix>`.
    #[error("spec.provider.azurekv.vaultUrl {url:?} is not https://NAME.{suffix}")]
    NotAVault {
        /// The URL as written.
        url: String,
        /// The cloud's Key Vault DNS suffix.
        suffix: String,
    },
}

/// The vault's name (lowercase) from a store's `vaultUrl`, which must be in the cloud whose
/// Key Vault DNS suffix is `suffix`.
pub fn vault_name_of(url: Option<&str>, suffix: &str) -> Result<String, VaultUrlError> {
    let url = url.filter(|u| !u.is_empty()).ok_or(VaultUrlError::Missing)?;
    let wrong = || VaultUrlError::NotAVault { url: url.to_owned(), suffix: suffix.to_owned() };
    let host = url.strip_prefix("https://").ok_or_else(wrong)?.trim_end_matches('/').to_ascii_lowercase();
    let (name, rest) = host.split_once('.').ok_or_else(wrong)?;
    let valid = (3..=24).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !valid || rest != suffix.to_ascii_lowercase() {
        return Err(wrong());
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> ExternalSecretSpec {
        serde_yaml_ng::from_str(yaml).expect("spec")
    }

    fn names(objects: &[KeyVaultObject]) -> Vec<String> {
        objects.iter().map(|o| format!("{}/{}", o.object_type, o.name)).collect()
    }

    #[test]
    fn keys_are_split_as_esos_provider_splits_them() {
        let s = spec(
            "secretStoreRef: {name: vault}
data:
- remoteRef: {key: db-password}
- remoteRef: {key: key/signing, version: abc}
- remoteRef: {key: cert/tls/ignored}
dataFrom:
- extract: {key: secret/config}",
        );
        let objects = objects_read_through(&s, "vault").expect("objects");
        assert_eq!(names(&objects), ["secret/db-password", "key/signing", "cert/tls", "secret/config"]);
        assert_eq!(objects[1].version.as_deref(), Some("abc"));
    }

    #[test]
    fn only_the_entries_that_read_through_the_store_count() {
        let s = spec(
            "secretStoreRef: {name: vault}
data:
- remoteRef: {key: mine}
- remoteRef: {key: elsewhere}
  sourceRef: {storeRef: {name: other}}
- remoteRef: {key: cluster}
  sourceRef: {storeRef: {name: vault, kind: ClusterSecretStore}}
- remoteRef: {key: generated}
  sourceRef: {generatorRef: {kind: Password, name: p}}
dataFrom:
- find: {name: {regexp: '.*'}}
  sourceRef: {storeRef: {name: other}}",
        );
        assert_eq!(names(&objects_read_through(&s, "vault").expect("objects")), ["secret/mine"]);
        assert!(reads_through(&s, "other"));
        assert!(objects_read_through(&s, "other").is_err(), "other's entries include a find");
        assert!(!reads_through(&s, "nobody"));
    }

    #[test]
    fn an_entry_of_its_own_store_is_read_even_when_the_secret_names_another() {
        let s = spec("secretStoreRef: {name: other}\ndata:\n- remoteRef: {key: x}\n  sourceRef: {storeRef: {name: vault, kind: SecretStore}}");
        assert!(reads_through(&s, "vault"));
        assert_eq!(names(&objects_read_through(&s, "vault").expect("objects")), ["secret/x"]);
    }

    #[test]
    fn what_cannot_be_granted_by_name_is_named() {
        let find = spec("secretStoreRef: {name: v}\ndataFrom:\n- extract: {key: ok}\n- find: {tags: {team: a}}");
        assert_eq!(objects_read_through(&find, "v"), Err(RemoteRefError::Find { index: 1 }));
        let typed = spec("secretStoreRef: {name: v}\ndata:\n- remoteRef: {key: certificate/tls}");
        let err = objects_read_through(&typed, "v").expect_err("unknown type");
        assert!(err.to_string().contains("spec.data[0].remoteRef.key \"certificate/tls\""), "{err}");
        for key in ["", "secret/", "bad_name", "a.b"] {
            let s = spec(&format!("secretStoreRef: {{name: v}}\ndata:\n- remoteRef: {{key: {key:?}}}"));
            assert!(objects_read_through(&s, "v").is_err(), "{key:?} must be refused");
        }
    }

    #[test]
    fn a_vault_url_names_a_vault_only_in_the_cloud_served() {
        let suffix = "vault.azure.net";
        assert_eq!(vault_name_of(Some("https://Team-A-kv.vault.azure.net/"), suffix), Ok("team-a-kv".to_owned()));
        assert_eq!(vault_name_of(None, suffix), Err(VaultUrlError::Missing));
        for url in ["http://kv1.vault.azure.net", "https://kv1.vault.azure.cn", "https://kv1.vault.azure.net.evil.example", "https://k.vault.azure.net", "kv1"]
        {
            assert!(vault_name_of(Some(url), suffix).is_err(), "{url} must be refused");
        }
    }
}
