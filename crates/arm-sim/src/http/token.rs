//! An AAD-style token endpoint: the client-credentials grant with a client secret or a
//! federated assertion, answering in the v2.0 endpoint's JSON.
//!
//! Assertions are not verified cryptographically: a client registered as `federated`
//! gets a token for any non-empty assertion.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{Caller, Shared, lock};

fn refuse(status: StatusCode, error: &str, description: &str) -> Response {
    (status, axum::Json(json!({"error": error, "error_description": description}))).into_response()
}

/// `POST /{tenant}/oauth2/v2.0/token`.
pub async fn issue(State(shared): State<Arc<Shared>>, Path(tenant): Path<String>, Form(form): Form<HashMap<String, String>>) -> Response {
    let response = issue_token(&shared, &tenant, &form);
    shared.record("POST", &format!("/{tenant}/oauth2/v2.0/token"), "Token", response.status().as_u16(), None);
    response
}

/// `GET /metadata/identity/oauth2/token`: the Instance Metadata Service's token endpoint,
/// for clients registered as managed identities; `client_id` picks one, as on a VM with
/// several user-assigned identities.
pub async fn imds(State(shared): State<Arc<Shared>>, headers: HeaderMap, Query(query): Query<HashMap<String, String>>) -> Response {
    let response = imds_token(&shared, &headers, &query);
    shared.record("GET", "/metadata/identity/oauth2/token", "Token", response.status().as_u16(), None);
    response
}

fn imds_token(shared: &Shared, headers: &HeaderMap, query: &HashMap<String, String>) -> Response {
    if headers.get("metadata").and_then(|v| v.to_str().ok()) != Some("true") {
        return refuse(StatusCode::BAD_REQUEST, "invalid_request", "Required metadata header not specified");
    }
    if !query.contains_key("resource") {
        return refuse(StatusCode::BAD_REQUEST, "invalid_request", "Required query variable 'resource' is missing");
    }
    let client = {
        let clients = lock(&shared.clients);
        let managed = clients.values().filter(|c| c.managed_identity);
        match query.get("client_id") {
            Some(id) => managed.into_iter().find(|c| &c.client_id == id).cloned(),
            None => managed.into_iter().next().cloned(),
        }
    };
    let Some(client) = client else {
        return refuse(StatusCode::BAD_REQUEST, "invalid_request", "Identity not found");
    };
    let token = format!("sim.{}", uuid::Uuid::new_v4().simple());
    lock(&shared.tokens).insert(
        token.clone(),
        Caller { client_id: client.client_id.clone(), principal_id: client.principal_id.clone().unwrap_or_default(), actions: client.actions.clone() },
    );
    let expires_on = (time::OffsetDateTime::now_utc().unix_timestamp() + 86_399).to_string();
    axum::Json(json!({
        "access_token": token, "client_id": client.client_id, "expires_in": "86399", "expires_on": expires_on,
        "ext_expires_in": "86399", "not_before": expires_on, "resource": query.get("resource"), "token_type": "Bearer",
    }))
    .into_response()
}

fn issue_token(shared: &Shared, tenant: &str, form: &HashMap<String, String>) -> Response {
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return refuse(StatusCode::BAD_REQUEST, "unsupported_grant_type", "AADSTS70003: only client_credentials is supported.");
    }
    let world_tenant = lock(&shared.world).tenant_id.clone();
    if !tenant.eq_ignore_ascii_case(&world_tenant) && tenant != "organizations" {
        return refuse(StatusCode::BAD_REQUEST, "invalid_request", &format!("AADSTS90002: Tenant '{tenant}' not found."));
    }
    let client_id = form.get("client_id").cloned().unwrap_or_default();
    let Some(client) = lock(&shared.clients).get(&client_id).cloned() else {
        return refuse(StatusCode::BAD_REQUEST, "unauthorized_client", &format!("AADSTS700016: Application with identifier '{client_id}' was not found."));
    };
    let secret_ok = client.secret.as_deref().is_some_and(|s| form.get("client_secret").map(String::as_str) == Some(s));
    let assertion_ok = client.federated
        && form.get("client_assertion_type").map(String::as_str) == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        && form.get("client_assertion").is_some_and(|a| !a.trim().is_empty());
    if !secret_ok && !assertion_ok {
        return refuse(StatusCode::UNAUTHORIZED, "invalid_client", "AADSTS7000215: Invalid client secret or assertion provided.");
    }
    let token = format!("sim.{}", uuid::Uuid::new_v4().simple());
    lock(&shared.tokens).insert(
        token.clone(),
        Caller { client_id: client.client_id.clone(), principal_id: client.principal_id.clone().unwrap_or_default(), actions: client.actions.clone() },
    );
    axum::Json(json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token})).into_response()
}
