//! Writing the identity into the SecretProviderClasses and External Secrets stores, and
//! taking it back, with server-side apply under kvbind's field manager, so every other
//! field stays as its owner wrote it. What to write is [`super::plan::write_back`]'s.

use std::fmt::Debug;
use std::sync::Arc;

use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use kvbind_api::FIELD_MANAGER;
use kvbind_api::external_secrets::SecretStore;
use kvbind_api::identity_binding::IdentityMode;
use kvbind_api::secret_provider_class::SecretProviderClass;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::azure_sync::Change;
use super::plan::write_back::{class_parameters, store_provider};
use crate::context::Context;
use crate::error::BindingError;
use crate::needs::{ClassInput, StoreInput};

/// Writes the identity into each class that does not carry it yet, as
/// [`class_parameters`] decides.
pub async fn write_identity(
    ctx: &Context,
    namespace: &str,
    classes: &[Arc<ClassInput>],
    client_id: &str,
    mode: IdentityMode,
    changes: &mut Vec<Change>,
) -> Result<(), BindingError> {
    let api: Api<SecretProviderClass> = Api::namespaced(ctx.kube.client.clone(), namespace);
    for class in classes {
        let Some(parameters) = class_parameters(class, client_id, mode) else { continue };
        apply(&api, &class.name, namespace, Some(json!({"parameters": parameters})))
            .await
            .map_err(|source| BindingError::Kube { action: "writing the client ID into the SecretProviderClass", source })?;
        changes.push(("SecretProviderClassUpdated", format!("wrote client ID {client_id} into SecretProviderClass {}", class.name)));
    }
    Ok(())
}

/// Takes back what kvbind wrote into a class.
pub async fn forget_identity(ctx: &Context, namespace: &str, class: &str) -> Result<(), BindingError> {
    let api: Api<SecretProviderClass> = Api::namespaced(ctx.kube.client.clone(), namespace);
    take_back(&api, class, namespace).await.map_err(|source| BindingError::Kube { action: "removing the client ID from the SecretProviderClass", source })
}

/// Writes the identity into each External Secrets store that does not carry it yet, as
/// [`store_provider`] decides.
pub async fn write_store_identity(
    ctx: &Context,
    namespace: &str,
    stores: &[StoreInput],
    client_id: &str,
    mode: IdentityMode,
    service_account: Option<&str>,
    changes: &mut Vec<Change>,
) -> Result<(), BindingError> {
    let api: Api<SecretStore> = Api::namespaced(ctx.kube.client.clone(), namespace);
    for store in stores {
        let Some(azurekv) = store_provider(store, client_id, mode, service_account) else { continue };
        apply(&api, &store.name, namespace, Some(json!({"provider": {"azurekv": azurekv}})))
            .await
            .map_err(|source| BindingError::Kube { action: "writing the identity into the SecretStore", source })?;
        changes.push(("SecretStoreUpdated", format!("wrote the identity (client ID {client_id}) into SecretStore {}", store.name)));
    }
    Ok(())
}

/// Takes back what kvbind wrote into a store.
pub async fn forget_store_identity(ctx: &Context, namespace: &str, store: &str) -> Result<(), BindingError> {
    let api: Api<SecretStore> = Api::namespaced(ctx.kube.client.clone(), namespace);
    take_back(&api, store, namespace).await.map_err(|source| BindingError::Kube { action: "removing the identity from the SecretStore", source })
}

/// Applies `spec` as kvbind's fields of object `name`, under kvbind's field manager, so
/// every other field stays as its owner wrote it.
async fn apply<K>(api: &Api<K>, name: &str, namespace: &str, spec: Option<Value>) -> kube::Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let mut configuration = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": {"name": name, "namespace": namespace},
    });
    if let Some(spec) = spec {
        configuration["spec"] = spec;
    }
    api.patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&configuration)).await.map(drop)
}

/// Applies an empty configuration under kvbind's field manager, which removes the fields
/// only kvbind owned. An object gone holds nothing of kvbind's.
async fn take_back<K>(api: &Api<K>, name: &str, namespace: &str) -> kube::Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    match apply(api, name, namespace, None).await {
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        other => other,
    }
}
