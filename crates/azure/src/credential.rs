//! The operator's own Azure credential, chosen by configuration.
//!
//! azure_identity 0.21 reads the workload-identity token file once, at creation, while the
//! projected service-account token rotates hourly; and it has no credential for a
//! user-assigned managed identity on IMDS. [`FederatedTokenFileCredential`] and
//! [`ImdsCredential`] fill those gaps. Client secrets use azure_identity as it is.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::auth::{AccessToken, Secret, TokenCredential};
use azure_core::{HttpClient, Method, Request, Url};
use time::OffsetDateTime;
use tokio::sync::Mutex;

/// How the operator authenticates to Azure.
#[derive(Clone)]
pub enum CredentialConfig {
    /// Workload identity: a federated token file exchanged at the authority.
    WorkloadIdentity {
        /// The directory.
        tenant_id: String,
        /// The identity's client ID.
        client_id: String,
        /// The projected service-account token.
        token_file: PathBuf,
    },
    /// A managed identity on IMDS; `client_id` picks a user-assigned one.
    ManagedIdentity {
        /// The user-assigned identity's client ID, or `None` for the system-assigned one.
        client_id: Option<String>,
        /// The IMDS token endpoint.
        endpoint: Url,
    },
    /// A service principal with a client secret.
    ClientSecret {
        /// The directory.
        tenant_id: String,
        /// The application's client ID.
        client_id: String,
        /// The secret.
        secret: String,
    },
    /// A fixed bearer token (tests and local runs only).
    StaticToken(String),
}

impl fmt::Debug for CredentialConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialConfig::WorkloadIdentity { tenant_id, client_id, token_file } => {
                f.debug_struct("WorkloadIdentity").field("tenant_id", tenant_id).field("client_id", client_id).field("token_file", token_file).finish()
            }
            CredentialConfig::ManagedIdentity { client_id, endpoint } => {
                f.debug_struct("ManagedIdentity").field("client_id", client_id).field("endpoint", &endpoint.as_str()).finish()
            }
            CredentialConfig::ClientSecret { tenant_id, client_id, .. } => {
                f.debug_struct("ClientSecret").field("tenant_id", tenant_id).field("client_id", client_id).field("secret", &"<redacted>").finish()
            }
            CredentialConfig::StaticToken(_) => f.write_str("StaticToken(<redacted>)"),
        }
    }
}

/// The IMDS token endpoint on every Azure VM.
pub const IMDS_TOKEN_ENDPOINT: &str = "http://169.254.169.254/metadata/identity/oauth2/token";

/// Builds the credential for `config`, authenticating at `authority_host`.
pub fn build_credential(config: &CredentialConfig, authority_host: &Url, http: Arc<dyn HttpClient>) -> Arc<dyn TokenCredential> {
    match config {
        CredentialConfig::WorkloadIdentity { tenant_id, client_id, token_file } => Arc::new(FederatedTokenFileCredential {
            http,
            authority_host: authority_host.clone(),
            tenant_id: tenant_id.clone(),
            client_id: client_id.clone(),
            token_file: token_file.clone(),
            cache: Mutex::new(None),
        }),
        CredentialConfig::ManagedIdentity { client_id, endpoint } => {
            Arc::new(ImdsCredential { http, endpoint: endpoint.clone(), client_id: client_id.clone(), cache: Mutex::new(None) })
        }
        CredentialConfig::ClientSecret { tenant_id, client_id, secret } => {
            Arc::new(azure_identity::ClientSecretCredential::new(http, authority_host.clone(), tenant_id.clone(), client_id.clone(), secret.clone()))
        }
        CredentialConfig::StaticToken(token) => Arc::new(StaticTokenCredential(Secret::new(token.clone()))),
    }
}

/// A token is refreshed this long before it expires.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

fn fresh(cached: &Option<AccessToken>) -> Option<AccessToken> {
    cached.as_ref().filter(|t| t.expires_on - OffsetDateTime::now_utc() > REFRESH_MARGIN).cloned()
}

/// A fixed token.
pub struct StaticTokenCredential(Secret);

impl fmt::Debug for StaticTokenCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaticTokenCredential(<redacted>)")
    }
}

#[async_trait]
impl TokenCredential for StaticTokenCredential {
    async fn get_token(&self, _scopes: &[&str]) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(self.0.clone(), OffsetDateTime::now_utc() + Duration::from_secs(3600)))
    }

    async fn clear_cache(&self) -> azure_core::Result<()> {
        Ok(())
    }
}

/// Workload identity that reads the (rotating) token file again whenever it needs a new
/// access token, and exchanges it through azure_identity's own federated flow.
pub struct FederatedTokenFileCredential {
    http: Arc<dyn HttpClient>,
    authority_host: Url,
    tenant_id: String,
    client_id: String,
    token_file: PathBuf,
    cache: Mutex<Option<AccessToken>>,
}

impl fmt::Debug for FederatedTokenFileCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FederatedTokenFileCredential").field("client_id", &self.client_id).field("token_file", &self.token_file).finish_non_exhaustive()
    }
}

#[async_trait]
impl TokenCredential for FederatedTokenFileCredential {
    async fn get_token(&self, scopes: &[&str]) -> azure_core::Result<AccessToken> {
        let mut cache = self.cache.lock().await;
        if let Some(token) = fresh(&cache) {
            return Ok(token);
        }
        let assertion = tokio::fs::read_to_string(&self.token_file).await.map_err(|e| {
            azure_core::Error::full(azure_core::error::ErrorKind::Credential, e, format!("reading the federated token file {}", self.token_file.display()))
        })?;
        let exchange = azure_identity::WorkloadIdentityCredential::new(
            self.http.clone(),
            self.authority_host.clone(),
            self.tenant_id.clone(),
            self.client_id.clone(),
            assertion.trim().to_owned(),
        );
        let token = exchange.get_token(scopes).await?;
        *cache = Some(token.clone());
        Ok(token)
    }

    async fn clear_cache(&self) -> azure_core::Result<()> {
        *self.cache.lock().await = None;
        Ok(())
    }
}

/// A managed identity token from IMDS, for the system-assigned identity or a user-assigned
/// one by client ID.
pub struct ImdsCredential {
    http: Arc<dyn HttpClient>,
    endpoint: Url,
    client_id: Option<String>,
    cache: Mutex<Option<AccessToken>>,
}

impl fmt::Debug for ImdsCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImdsCredential").field("client_id", &self.client_id).finish_non_exhaustive()
    }
}

#[async_trait]
impl TokenCredential for ImdsCredential {
    async fn get_token(&self, scopes: &[&str]) -> azure_core::Result<AccessToken> {
        #[derive(serde::Deserialize)]
        struct ImdsToken {
            access_token: String,
            expires_on: String,
        }
        let mut cache = self.cache.lock().await;
        if let Some(token) = fresh(&cache) {
            return Ok(token);
        }
        let resource = scopes.first().map(|s| s.trim_end_matches("/.default")).unwrap_or_default();
        let mut url = self.endpoint.clone();
        url.query_pairs_mut().append_pair("api-version", "2019-08-01").append_pair("resource", resource);
        if let Some(id) = &self.client_id {
            url.query_pairs_mut().append_pair("client_id", id);
        }
        let mut request = Request::new(url, Method::Get);
        request.insert_header("metadata", "true");
        let response = self.http.execute_request(&request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?;
        if !status.is_success() {
            return Err(azure_core::Error::message(
                azure_core::error::ErrorKind::Credential,
                format!("IMDS answered {status}: {}", String::from_utf8_lossy(&body)),
            ));
        }
        let token: ImdsToken = serde_json::from_slice(&body)?;
        let expires = token.expires_on.parse::<i64>().unwrap_or(0);
        let expires_on = OffsetDateTime::from_unix_timestamp(expires).unwrap_or_else(|_| OffsetDateTime::now_utc() + Duration::from_secs(600));
        let token = AccessToken::new(Secret::new(token.access_token), expires_on);
        *cache = Some(token.clone());
        Ok(token)
    }

    async fn clear_cache(&self) -> azure_core::Result<()> {
        *self.cache.lock().await = None;
        Ok(())
    }
}
