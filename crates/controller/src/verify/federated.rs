//! The federated modes' path, taken by kvbind itself: a ServiceAccount token for Entra ID's
//! token-exchange audience (ten minutes, the shortest the API server issues), exchanged in
//! the class's tenant for a Key Vault token of the bound identity, then the reads. kvbind
//! asks only for its bindings' ServiceAccounts and only that audience, and keeps neither
//! token beyond the probe.

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use kvbind_api::condition::ConditionStatus;
use kvbind_api::identity_binding::IdentityBinding;
use kvbind_azure::model::TOKEN_EXCHANGE_AUDIENCE;
use serde::Deserialize;

use super::probe::{self, ProbeReport, ProbeRequest, TokenSource};
use super::verdict::{Probed, Verdict, verdict};
use super::{Prover, Wanted};

/// The lifetime asked of the ServiceAccount token: the API server's minimum.
const TOKEN_SECONDS: i64 = 600;

pub(super) async fn check(prover: &Prover<'_>, binding: &IdentityBinding, client_id: &str, wanted: &Wanted) -> Verdict {
    let Some(account) = binding.spec.service_account.as_ref().map(|s| s.name.clone()) else {
        return (ConditionStatus::Unknown, "ProbeUnavailable", "spec.serviceAccount is not set".to_owned());
    };
    let namespace = binding.namespace().unwrap_or_default();
    let assertion = match service_account_token(prover, &namespace, &account).await {
        Ok(token) => token,
        Err(e) => return (ConditionStatus::Unknown, "ProbeFailed", format!("no token for ServiceAccount {account}: {e}")),
    };
    let suffix = prover.config.cloud.key_vault_suffix.clone();
    let several = wanted.by_tenant.len() > 1;
    let mut probed = Vec::new();
    for (tenant, objects) in &wanted.by_tenant {
        let place = if several { format!("ServiceAccount {account} in tenant {tenant}") } else { format!("ServiceAccount {account}") };
        let request = ProbeRequest {
            key_vault_suffix: suffix.clone(),
            expected_client_id: client_id.to_owned(),
            pinned_client_id: Some(client_id.to_owned()),
            objects: objects.iter().cloned().collect(),
        };
        let report = match exchange(prover, tenant, client_id, &assertion, &suffix).await {
            Ok(token) => {
                let source = TokenSource::Exchanged { token, client_id: client_id.to_owned() };
                probe::run(prover.http, &source, &request, prover.config.access_probe.data_plane_origin.as_ref()).await
            }
            Err(e) => ProbeReport { token_error: Some(e), ..ProbeReport::default() },
        };
        probed.push(Probed { place, pinned: true, report });
    }
    verdict(client_id, &probed)
}

async fn service_account_token(prover: &Prover<'_>, namespace: &str, account: &str) -> Result<String, kube::Error> {
    let request = TokenRequest {
        spec: TokenRequestSpec { audiences: vec![TOKEN_EXCHANGE_AUDIENCE.to_owned()], expiration_seconds: Some(TOKEN_SECONDS), bound_object_ref: None },
        ..TokenRequest::default()
    };
    let api: Api<ServiceAccount> = Api::namespaced(prover.client.clone(), namespace);
    let issued = api.create_token_request(account, &PostParams::default(), &request).await?;
    Ok(issued.status.map(|s| s.token).unwrap_or_default())
}

#[derive(Deserialize)]
struct Exchanged {
    access_token: String,
}

#[derive(Deserialize, Default)]
struct Refused {
    #[serde(default)]
    error_description: String,
}

/// The client-credentials grant with the ServiceAccount token as the client assertion, as
/// the CSI provider sends it.
async fn exchange(prover: &Prover<'_>, tenant: &str, client_id: &str, assertion: &str, suffix: &str) -> Result<String, String> {
    let authority = prover.config.cloud.authority_host.join(&format!("{tenant}/oauth2/v2.0/token")).map_err(|e| e.to_string())?;
    let scope = format!("https://{suffix}/.default");
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
        ("scope", scope.as_str()),
        ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
        ("client_assertion", assertion),
    ];
    let response = prover.http.post(authority).form(&form).send().await.map_err(|e| format!("Entra ID did not answer: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        let refused: Refused = response.json().await.unwrap_or_default();
        return Err(format!("the federated exchange was refused ({}): {}", status.as_u16(), refused.error_description));
    }
    response.json::<Exchanged>().await.map(|t| t.access_token).map_err(|e| format!("Entra ID's answer is not a token: {e}"))
}
