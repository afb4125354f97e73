//! Where tokens can be had without the node pools, and what to write for it: the federated
//! credential and the ServiceAccount's annotation (workload identity), or the ARM identity
//! binding and the ClusterRole that lets one ServiceAccount use it (AKS identity bindings).

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kvbind_azure::IdentityId;
use kvbind_azure::model::{ClusterIdentityBinding, FederatedCredential};

/// The API group AKS's token proxy authorises against.
pub const API_GROUP: &str = "cid.wi.aks.azure.com";
/// The verb AKS's token proxy asks for, on a resource named by the identity's client ID.
pub const VERB: &str = "use-managed-identity";

/// What workload identity writes for one ServiceAccount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FederationStep {
    /// The federated credential is missing or differs (another issuer, subject or
    /// audience): put it.
    pub credential: bool,
    /// The ServiceAccount does not carry the client ID: annotate it.
    pub annotation: bool,
}

/// Decides what workload identity writes, from the credential found under kvbind's name
/// and the client ID the ServiceAccount is annotated with. A ServiceAccount annotated with
/// another identity that this binding did not federate before is someone else's: the
/// conflict is returned with the client ID found, and nothing is written.
pub fn federation_step(
    wanted: &FederatedCredential,
    found: Option<&FederatedCredential>,
    annotated: Option<&str>,
    client_id: &str,
    federated_before: bool,
) -> Result<FederationStep, String> {
    if let Some(other) = annotated
        && other != client_id
        && !federated_before
    {
        return Err(other.to_owned());
    }
    Ok(FederationStep { credential: found != Some(wanted), annotation: annotated != Some(client_id) })
}

/// True when the ARM identity binding found under kvbind's name binds `identity` and has
/// finished: anything else (missing, another identity, failed or still running) is put
/// again.
pub fn aks_binding_current(found: Option<&ClusterIdentityBinding>, identity: &IdentityId) -> bool {
    found.is_some_and(|found| found.identity == *identity && found.provisioning_state.eq_ignore_ascii_case("Succeeded"))
}

/// True when the ClusterRole `name` lets its subjects use `client_id` and nothing else,
/// and its ClusterRoleBinding (of the same name) binds it to the one ServiceAccount and no
/// other subject: a role widened or a subject added by hand is written back.
pub fn aks_rbac_current(
    role: Option<&ClusterRole>,
    binding: Option<&ClusterRoleBinding>,
    name: &str,
    namespace: &str,
    service_account: &str,
    client_id: &str,
) -> bool {
    let role_current = role.is_some_and(|r| {
        r.rules.as_deref().is_some_and(|rules| {
            rules.len() == 1
                && rules[0].verbs == [VERB]
                && rules[0].api_groups.as_deref() == Some(&[API_GROUP.to_owned()])
                && rules[0].resources.as_deref() == Some(&[client_id.to_owned()])
        })
    });
    let binding_current = binding.is_some_and(|b| {
        b.role_ref.name == name
            && b.subjects
                .as_deref()
                .is_some_and(|s| s.len() == 1 && s[0].kind == "ServiceAccount" && s[0].name == service_account && s[0].namespace.as_deref() == Some(namespace))
    });
    role_current && binding_current
}

#[cfg(test)]
mod tests;
