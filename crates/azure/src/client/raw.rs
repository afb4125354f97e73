//! Hand-built ARM requests, for the operations the generated clients get wrong. They go
//! through a pipeline with the same transport and credential as the generated ones.

use std::sync::Arc;

use azure_core::auth::TokenCredential;
use azure_core::headers::Headers;
use azure_core::{ClientOptions, Context, Method, Pipeline, Request, RetryOptions, StatusCode, TransportOptions, Url};
use bytes::Bytes;
use serde_json::Value;

use super::transport::ArmTransport;

/// A response read to the end.
pub struct RawResponse {
    /// The HTTP status.
    pub status: StatusCode,
    /// The headers.
    pub headers: Headers,
    /// The body.
    pub body: Bytes,
}

impl RawResponse {
    /// The body as JSON (`null` when empty or not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// Sends typed requests of kvbind's own to ARM.
#[derive(Clone)]
pub struct RawArm {
    pipeline: Pipeline,
    credential: Arc<dyn TokenCredential>,
    scope: String,
    endpoint: Url,
}

impl RawArm {
    /// A sender on `transport` with `credential` for `scope`.
    pub fn new(endpoint: Url, credential: Arc<dyn TokenCredential>, scope: String, transport: Arc<ArmTransport>) -> Self {
        let options = ClientOptions::new(TransportOptions::new_custom_policy(transport)).retry(RetryOptions::none());
        let pipeline = Pipeline::new(Some("kvbind"), Some(env!("CARGO_PKG_VERSION")), options, Vec::new(), Vec::new());
        RawArm { pipeline, credential, scope, endpoint }
    }

    /// `{endpoint}{path}?api-version={api_version}`.
    pub fn url(&self, path: &str, api_version: &str) -> azure_core::Result<Url> {
        let mut url = self.endpoint.clone();
        url.set_path(path);
        url.query_pairs_mut().append_pair("api-version", api_version);
        Ok(url)
    }

    /// Sends a request with a bearer token and an optional JSON body.
    pub async fn send(&self, method: Method, url: Url, body: Option<&Value>) -> azure_core::Result<RawResponse> {
        let mut request = Request::new(url, method);
        let token = self.credential.get_token(&[self.scope.as_str()]).await?;
        request.insert_header("authorization", format!("Bearer {}", token.token.secret()));
        if let Some(body) = body {
            request.insert_header("content-type", "application/json");
            request.set_body(serde_json::to_vec(body)?);
        }
        let response = self.pipeline.send(&Context::new(), &mut request).await?;
        let (status, headers, body) = response.deconstruct();
        Ok(RawResponse { status, headers, body: body.collect().await? })
    }
}
