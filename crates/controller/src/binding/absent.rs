//! Removing a Kubernetes object kvbind made: one that is already gone is as good as removed,
//! so cleanup stays idempotent across retries and restarts.

use kube::Api;
use kube::api::DeleteParams;
use serde::de::DeserializeOwned;

/// Deletes `name` through `api`; true when this call removed it, false when it was gone.
pub async fn delete_if_present<K: Clone + DeserializeOwned + std::fmt::Debug>(api: &Api<K>, name: &str) -> Result<bool, kube::Error> {
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}
