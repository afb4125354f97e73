//! Workload identity: instead of attaching the identity to node pools, federate it with
//! one ServiceAccount (a federated identity credential trusting the cluster's OIDC issuer
//! for `system:serviceaccount:<namespace>:<name>`) and annotate that ServiceAccount with
//! the client ID, so only its pods can get the identity's tokens.

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, Patch, PatchParams};
use kvbind_api::FIELD_MANAGER;
use kvbind_api::identity_binding::WorkloadIdentityStatus;
use kvbind_azure::IdentityId;
use kvbind_azure::model::{FederatedCredential, Identity, TOKEN_EXCHANGE_AUDIENCE};
use serde_json::json;

use super::azure_sync::Change;
use super::plan::federation::federation_step;
use crate::context::Context;
use crate::error::{BindingError, Step};

/// The annotation the workload identity webhook reads.
pub const CLIENT_ID_ANNOTATION: &str = "azure.workload.identity/client-id";

/// The credential's name for a ServiceAccount of `namespace` in this `installation`:
/// readable as far as ARM's 120 characters allow, and ending in a digest of all three, so
/// that `team`/`a-app` and `team-a`/`app` differ, and two clusters' kvbind never share (and
/// overwrite the issuer of) one credential.
pub fn credential_name(installation: &str, namespace: &str, service_account: &str) -> String {
    let digest = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("{installation}/{namespace}/{service_account}").as_bytes()).simple().to_string();
    let digest = &digest[..12];
    let readable: String =
        format!("kvbind-{namespace}-{service_account}").chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
    let room = 120 - digest.len() - 1;
    format!("{}-{digest}", &readable[..readable.len().min(room)])
}

/// The subject Kubernetes puts into a ServiceAccount's tokens.
pub fn subject(namespace: &str, service_account: &str) -> String {
    format!("system:serviceaccount:{namespace}:{service_account}")
}

/// Federates `identity` with the ServiceAccount and annotates it, writing only what
/// differs. `previous` is what the binding's status recorded.
pub async fn federate(
    ctx: &Context,
    namespace: &str,
    service_account: &str,
    identity: &Identity,
    previous: Option<&WorkloadIdentityStatus>,
    changes: &mut Vec<Change>,
) -> Result<WorkloadIdentityStatus, BindingError> {
    let issuer = ctx.config.oidc_issuer.clone().ok_or(BindingError::NoIssuer)?;
    let accounts: Api<ServiceAccount> = Api::namespaced(ctx.kube.client.clone(), namespace);
    let account = accounts
        .get_opt(service_account)
        .await
        .map_err(|source| BindingError::Kube { action: "reading the ServiceAccount", source })?
        .ok_or_else(|| BindingError::ServiceAccountNotFound(service_account.to_owned()))?;
    let annotated = account.metadata.annotations.as_ref().and_then(|a| a.get(CLIENT_ID_ANNOTATION)).map(String::as_str);
    let federated_before = previous.is_some_and(|p| p.service_account == service_account);
    let wanted = FederatedCredential {
        name: credential_name(&ctx.config.installation, namespace, service_account),
        issuer: issuer.clone(),
        subject: subject(namespace, service_account),
        audiences: vec![TOKEN_EXCHANGE_AUDIENCE.to_owned()],
    };
    let found = ctx
        .azure
        .arm
        .get_federated_credential(&identity.id, &wanted.name)
        .await
        .map_err(BindingError::azure(Step::Nodes, "reading the federated credential"))?;
    let step = federation_step(&wanted, found.as_ref(), annotated, &identity.client_id, federated_before)
        .map_err(|found| BindingError::ServiceAccountConflict { name: service_account.to_owned(), found })?;
    if step.credential {
        ctx.azure.arm.put_federated_credential(&identity.id, &wanted).await.map_err(BindingError::azure(Step::Nodes, "creating the federated credential"))?;
        changes
            .push(("FederatedCredentialCreated", format!("federated identity {} with ServiceAccount {service_account} (issuer {issuer})", identity.id.name)));
    }

    if step.annotation {
        let patch = json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": service_account, "namespace": namespace, "annotations": {CLIENT_ID_ANNOTATION: identity.client_id}},
        });
        accounts
            .patch(service_account, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
            .await
            .map_err(|source| BindingError::Kube { action: "annotating the ServiceAccount", source })?;
        changes.push(("ServiceAccountAnnotated", format!("annotated ServiceAccount {service_account} with client ID {}", identity.client_id)));
    }
    Ok(WorkloadIdentityStatus { federated_credential: wanted.name, issuer, subject: wanted.subject, service_account: service_account.to_owned() })
}

/// Removes the federation of `identity` with `service_account` of `namespace`: the
/// credential kvbind names for that pair (never one a status names: the tenant writes
/// status, and could name any credential of the identity) and kvbind's annotation on the
/// ServiceAccount.
pub async fn unfederate(ctx: &Context, namespace: &str, identity: &IdentityId, service_account: &str, changes: &mut Vec<Change>) -> Result<(), BindingError> {
    ctx.azure
        .arm
        .delete_federated_credential(identity, &credential_name(&ctx.config.installation, namespace, service_account))
        .await
        .map_err(BindingError::azure(Step::Nodes, "deleting the federated credential"))?;
    changes.push(("FederatedCredentialDeleted", format!("removed the federation of identity {} with ServiceAccount {service_account}", identity.name)));
    let status = WorkloadIdentityStatus { service_account: service_account.to_owned(), ..WorkloadIdentityStatus::default() };
    let accounts: Api<ServiceAccount> = Api::namespaced(ctx.kube.client.clone(), namespace);
    let exists = accounts.get_opt(&status.service_account).await.map_err(|source| BindingError::Kube { action: "reading the ServiceAccount", source })?;
    if exists.is_none() {
        // An apply would create it.
        return Ok(());
    }
    // Applying no fields under kvbind's manager removes the annotation only kvbind owned.
    let patch = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": status.service_account, "namespace": namespace}});
    match accounts.patch(&status.service_account, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(source) => Err(BindingError::Kube { action: "removing the client ID from the ServiceAccount", source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_names_fit_arm_and_stay_unique() {
        let name = credential_name("cluster-1", "team-a", "app.reader");
        assert!(name.starts_with("kvbind-team-a-app-reader-") && name.len() == "kvbind-team-a-app-reader-".len() + 12, "{name}");
        assert_ne!(credential_name("cluster-1", "team", "a-app"), credential_name("cluster-1", "team-a", "app"), "the split between the two parts counts");
        assert_ne!(credential_name("cluster-1", "team-a", "app"), credential_name("cluster-2", "team-a", "app"), "each cluster has its own");
        let long_sa = "s".repeat(200);
        let (one, two) = (credential_name("c", "team-a", &long_sa), credential_name("c", "team-b", &long_sa));
        assert!(one.len() <= 120 && two.len() <= 120, "{one}");
        assert_ne!(one, two);
        assert!(one.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }
}
