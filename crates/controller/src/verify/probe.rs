//! The probe: a token for the bound identity from where a pod gets it, then a read of each
//! object a class lists, as the Secrets Store CSI provider reads it.
//!
//! It runs in two places: in a short-lived Pod on a node of each bound pool (VM mode,
//! where the token comes from that node's IMDS), and in the operator (the federated modes,
//! where the token comes from exchanging a ServiceAccount token). Either way it keeps
//! only each read's status and version: a secret's value is in the response body, which
//! is read into a type that has no field for it, and never logged.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The Key Vault data-plane api-version the CSI provider's SDK sends.
const API_VERSION: &str = "7.4";

/// Failures listed in a report; the rest are counted, so a report fits a Pod's
/// termination message (4 KiB).
pub const LISTED_FAILURES: usize = 8;

/// What to prove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeRequest {
    /// The cloud's Key Vault DNS suffix (`vault.azure.net`).
    pub key_vault_suffix: String,
    /// The identity the classes bind.
    pub expected_client_id: String,
    /// The client ID the classes pin (`userAssignedIdentityID`), which the token is asked
    /// for; `None` leaves IMDS to pick, as an unpinned class does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_client_id: Option<String>,
    /// The objects the classes list.
    pub objects: Vec<ProbeObject>,
}

/// One object a class lists.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeObject {
    /// The vault's name.
    pub vault: String,
    /// `secret`, `key` or `cert`, as the class's `objectType`.
    pub kind: String,
    /// The object's name.
    pub name: String,
}

/// Where the token comes from.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// The node's Instance Metadata Service at `endpoint`, asking for `client_id` when the
    /// class pins one (`userAssignedIdentityID`), as the CSI provider does.
    Imds {
        /// IMDS (`http://169.254.169.254` on a node).
        endpoint: url::Url,
        /// The pinned client ID, if any.
        client_id: Option<String>,
    },
    /// An access token already exchanged for (the federated modes).
    Exchanged {
        /// The token; never logged.
        token: String,
        /// The client it was issued to.
        client_id: String,
    },
}

/// What the probe found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeReport {
    /// The identity the token was issued for, when one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_client_id: Option<String>,
    /// Why no token was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_error: Option<String>,
    /// How many objects were read.
    pub readable: usize,
    /// The first objects that could not be read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<ObjectFailure>,
    /// How many more could not be read.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub more_failures: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// One object that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectFailure {
    /// The object.
    #[serde(flatten)]
    pub object: ProbeObject,
    /// The HTTP status, when Key Vault answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Key Vault's error code (`Forbidden`, `SecretNotFound`, …) or the transport error.
    pub error: String,
}

/// An HTTP client for IMDS, token endpoints and vaults. `address` sends every request to
/// one address instead of what DNS says (local runs against the simulator); the URL keeps
/// the vault's host name, so the server sees the same `Host` as Key Vault would.
pub fn http_client(address: Option<IpAddr>) -> Result<reqwest::Client, reqwest::Error> {
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(10)).no_proxy();
    if let Some(ip) = address {
        builder = builder.dns_resolver(Arc::new(OneAddress(ip)));
    }
    builder.build()
}

struct OneAddress(IpAddr);

impl reqwest::dns::Resolve for OneAddress {
    fn resolve(&self, _name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let addr = SocketAddr::new(self.0, 0);
        Box::pin(async move { Ok(Box::new(std::iter::once(addr)) as reqwest::dns::Addrs) })
    }
}

/// The data plane's origin: `https://{vault}.{suffix}`, or with `origin`'s scheme and port
/// when set (the simulator).
pub fn vault_url(vault: &str, suffix: &str, origin: Option<&url::Url>) -> String {
    match origin {
        Some(o) => format!("{}://{vault}.{suffix}:{}", o.scheme(), o.port_or_known_default().unwrap_or(443)),
        None => format!("https://{vault}.{suffix}"),
    }
}

/// Runs the probe: the token, then every object.
pub async fn run(http: &reqwest::Client, source: &TokenSource, request: &ProbeRequest, origin: Option<&url::Url>) -> ProbeReport {
    let mut report = ProbeReport::default();
    let resource = format!("https://{}", request.key_vault_suffix);
    let token = match source {
        TokenSource::Imds { endpoint, client_id } => imds_token(http, endpoint, client_id.as_deref(), &resource).await,
        TokenSource::Exchanged { token, client_id } => Ok((token.clone(), client_id.clone())),
    };
    let token = match token {
        Ok((token, client_id)) => {
            report.token_client_id = Some(client_id);
            token
        }
        Err(e) => {
            report.token_error = Some(e);
            return report;
        }
    };
    for object in &request.objects {
        match read(http, &token, object, &request.key_vault_suffix, origin).await {
            Ok(()) => report.readable += 1,
            Err((status, error)) if report.failures.len() < LISTED_FAILURES => {
                report.failures.push(ObjectFailure { object: object.clone(), status, error });
            }
            Err(_) => report.more_failures += 1,
        }
    }
    report
}

#[derive(Deserialize)]
struct ImdsToken {
    access_token: String,
    client_id: String,
}

async fn imds_token(http: &reqwest::Client, endpoint: &url::Url, client_id: Option<&str>, resource: &str) -> Result<(String, String), String> {
    let mut url = endpoint.join("metadata/identity/oauth2/token").map_err(|e| e.to_string())?;
    url.query_pairs_mut().append_pair("api-version", "2018-02-01").append_pair("resource", resource);
    if let Some(id) = client_id {
        url.query_pairs_mut().append_pair("client_id", id);
    }
    let response = http.get(url).header("Metadata", "true").send().await.map_err(|e| format!("IMDS did not answer: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let why = body["error_description"].as_str().unwrap_or("no description").to_owned();
        return Err(format!("IMDS answered {}: {why}", status.as_u16()));
    }
    let token: ImdsToken = response.json().await.map_err(|e| format!("IMDS's answer is not a token: {e}"))?;
    Ok((token.access_token, token.client_id))
}

/// The parts of Key Vault's answers the probe keeps: none (a secret's `value` has no field
/// here, so it is skipped unread).
#[derive(Deserialize)]
struct Found {}

#[derive(Deserialize, Default)]
struct KeyVaultError {
    #[serde(default)]
    error: KeyVaultErrorBody,
}

#[derive(Deserialize, Default)]
struct KeyVaultErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    innererror: Option<Box<KeyVaultErrorBody>>,
}

async fn read(http: &reqwest::Client, token: &str, object: &ProbeObject, suffix: &str, origin: Option<&url::Url>) -> Result<(), (Option<u16>, String)> {
    let collection = match object.kind.as_str() {
        "key" => "keys",
        "cert" => "certificates",
        _ => "secrets",
    };
    let url = format!("{}/{collection}/{}?api-version={API_VERSION}", vault_url(&object.vault, suffix, origin), object.name);
    let response = http.get(url).bearer_auth(token).send().await.map_err(|e| (None, format!("the vault did not answer: {e}")))?;
    let status = response.status().as_u16();
    if response.status().is_success() {
        return response.json::<Found>().await.map(|_| ()).map_err(|_| (Some(status), "the vault's answer is not an object".to_owned()));
    }
    let body: KeyVaultError = response.json().await.unwrap_or_default();
    let inner = body.error.innererror.map(|i| i.code).filter(|c| !c.is_empty());
    let code = match inner {
        Some(inner) => format!("{} ({inner})", body.error.code),
        None => body.error.code,
    };
    Err((Some(status), code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_round_trips_and_stays_small() {
        let object = ProbeObject { vault: "kvname".into(), kind: "secret".into(), name: "a-fairly-long-secret-name-for-the-size-check".into() };
        let failure = ObjectFailure { object, status: Some(403), error: "Forbidden (AccessDenied)".into() };
        let report = ProbeReport {
            token_client_id: Some("00000000-0000-0000-0000-000000000000".into()),
            token_error: None,
            readable: 1000,
            failures: vec![failure; LISTED_FAILURES],
            more_failures: 992,
        };
        let text = serde_json::to_string(&report).expect("serialises");
        assert!(text.len() < 4096, "fits a termination message: {} bytes", text.len());
        assert_eq!(serde_json::from_str::<ProbeReport>(&text).expect("parses"), report);
    }

    #[test]
    fn the_vault_url_keeps_the_vault_host_and_takes_only_scheme_and_port_from_an_override() {
        assert_eq!(vault_url("kv", "vault.azure.net", None), "https://kv.vault.azure.net");
        let sim: url::Url = "http://127.0.0.1:8080".parse().expect("url");
        assert_eq!(vault_url("kv", "vault.azure.net", Some(&sim)), "http://kv.vault.azure.net:8080");
    }
}
