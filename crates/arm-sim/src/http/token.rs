//! Where tokens come from: an AAD-style token endpoint (the client-credentials grant with
//! a client secret or a federated assertion, in the v2.0 endpoint's JSON) and the Instance
//! Metadata Service's managed-identity endpoint, once for the simulator's own registered
//! managed identities and once per node, as a VM or scale-set instance sees it.
//!
//! A user-assigned identity's federated assertion is checked as Entra ID checks it: its
//! `iss`, `sub` and `aud` must match one of the identity's federated credentials and it
//! must not have expired. The signature is not verified (the simulator cannot reach the
//! issuer's keys). A seed client registered as `federated` takes any non-empty assertion.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

use super::{Caller, Shared, lock};
use crate::world::{World, key};

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

/// `GET /_imds/{compute ID}/metadata/identity/oauth2/token`: IMDS as a node of that scale
/// set or VM sees it. It answers only for the identities the scale set or VM carries, and
/// without `client_id`, `object_id` or `msi_res_id` only when that picks one: the
/// system-assigned identity, or the only user-assigned one.
pub async fn node_imds(
    State(shared): State<Arc<Shared>>,
    Path(node): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let response = match node.strip_suffix("/metadata/identity/oauth2/token") {
        Some(compute) => match resource_asked(&headers, &query) {
            Ok(resource) => node_token(&shared, compute, &query, resource),
            Err(refusal) => *refusal,
        },
        None => refuse(StatusCode::NOT_FOUND, "invalid_request", "No such IMDS endpoint"),
    };
    shared.record("GET", &format!("/_imds/{node}"), "Token", response.status().as_u16(), None);
    response
}

/// The resource an IMDS token request asks for, or IMDS's refusal of a request without its
/// `Metadata: true` header or `resource`.
fn resource_asked<'q>(headers: &HeaderMap, query: &'q HashMap<String, String>) -> Result<&'q str, Box<Response>> {
    if headers.get("metadata").and_then(|v| v.to_str().ok()) != Some("true") {
        return Err(Box::new(refuse(StatusCode::BAD_REQUEST, "invalid_request", "Required metadata header not specified")));
    }
    query
        .get("resource")
        .map(String::as_str)
        .ok_or_else(|| Box::new(refuse(StatusCode::BAD_REQUEST, "invalid_request", "Required query variable 'resource' is missing")))
}

fn node_token(shared: &Shared, compute: &str, query: &HashMap<String, String>, resource: &str) -> Response {
    let picked = pick_node_identity(&lock(&shared.world), compute, query);
    match picked {
        Ok((client_id, principal_id)) => imds_answer(shared, client_id, principal_id, resource),
        Err(description) => refuse(StatusCode::BAD_REQUEST, "invalid_request", description),
    }
}

/// The identity IMDS on a node of `compute` gives a token for: its client and principal ID.
fn pick_node_identity(world: &World, compute: &str, query: &HashMap<String, String>) -> Result<(String, String), &'static str> {
    let compute = world.compute.get(&key(compute)).ok_or("Identity not found")?;
    let attached: Vec<_> = compute.user_assigned.keys().filter_map(|k| world.identities.get(k).map(|i| (k, i))).collect();
    let chosen = if let Some(id) = query.get("client_id") {
        attached.iter().find(|(_, i)| i.client_id.eq_ignore_ascii_case(id))
    } else if let Some(id) = query.get("object_id") {
        attached.iter().find(|(_, i)| i.principal_id.eq_ignore_ascii_case(id))
    } else if let Some(id) = query.get("msi_res_id") {
        attached.iter().find(|(k, _)| **k == key(id))
    } else if let Some(system) = &compute.system_principal {
        return Ok((system.clone(), system.clone()));
    } else if attached.len() > 1 {
        return Err("Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request");
    } else {
        attached.first()
    };
    chosen.map(|(_, i)| (i.client_id.clone(), i.principal_id.clone())).ok_or("Identity not found")
}

fn imds_token(shared: &Shared, headers: &HeaderMap, query: &HashMap<String, String>) -> Response {
    let resource = match resource_asked(headers, query) {
        Ok(resource) => resource,
        Err(refusal) => return *refusal,
    };
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
    imds_answer(shared, client.client_id, client.principal_id.unwrap_or_default(), resource)
}

/// IMDS's answer: a token for `client_id` (principal `principal_id`) for `resource`.
fn imds_answer(shared: &Shared, client_id: String, principal_id: String, resource: &str) -> Response {
    let actions = lock(&shared.clients).get(&client_id).map(|c| c.actions.clone()).unwrap_or_default();
    let token = mint(shared, Caller { client_id: client_id.clone(), principal_id, actions, audience: resource.to_owned() });
    let expires_on = (time::OffsetDateTime::now_utc().unix_timestamp() + 86_399).to_string();
    axum::Json(json!({
        "access_token": token, "client_id": client_id, "expires_in": "86399", "expires_on": expires_on,
        "ext_expires_in": "86399", "not_before": expires_on, "resource": resource, "token_type": "Bearer",
    }))
    .into_response()
}

fn mint(shared: &Shared, caller: Caller) -> String {
    let token = format!("sim.{}", uuid::Uuid::new_v4().simple());
    lock(&shared.tokens).insert(token.clone(), caller);
    token
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
    let audience = form.get("scope").cloned().unwrap_or_default();
    let assertion = form
        .get("client_assertion")
        .filter(|a| !a.trim().is_empty())
        .filter(|_| form.get("client_assertion_type").map(String::as_str) == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer"));
    let Some(client) = lock(&shared.clients).get(&client_id).cloned() else {
        // Not an application the seed registered: a user-assigned identity, which takes
        // only a federated assertion one of its credentials trusts.
        let exchanged = exchange_for_identity(&lock(&shared.world), &client_id, assertion.map(String::as_str));
        return match exchanged {
            Ok(principal_id) => {
                let token = mint(shared, Caller { client_id, principal_id, actions: Vec::new(), audience });
                axum::Json(json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token})).into_response()
            }
            Err((status, error, description)) => refuse(status, error, &description),
        };
    };
    let secret_ok = client.secret.as_deref().is_some_and(|s| form.get("client_secret").map(String::as_str) == Some(s));
    let assertion_ok = client.federated && assertion.is_some();
    if !secret_ok && !assertion_ok {
        return refuse(StatusCode::UNAUTHORIZED, "invalid_client", "AADSTS7000215: Invalid client secret or assertion provided.");
    }
    let principal_id = client.principal_id.clone().unwrap_or_default();
    let token = mint(shared, Caller { client_id: client.client_id.clone(), principal_id, actions: client.actions.clone(), audience });
    axum::Json(json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token})).into_response()
}

type Refusal = (StatusCode, &'static str, String);

/// The principal of user-assigned identity `client_id` when `assertion` matches one of its
/// federated credentials.
fn exchange_for_identity(world: &World, client_id: &str, assertion: Option<&str>) -> Result<String, Refusal> {
    let Some(identity) = world.identities.values().find(|i| i.client_id.eq_ignore_ascii_case(client_id)) else {
        let message = format!("AADSTS700016: Application with identifier '{client_id}' was not found in the directory.");
        return Err((StatusCode::BAD_REQUEST, "unauthorized_client", message));
    };
    let invalid = |message: String| (StatusCode::UNAUTHORIZED, "invalid_client", message);
    let claims = assertion.and_then(claims_of).ok_or_else(|| invalid("AADSTS50027: JWT token is invalid or malformed.".to_owned()))?;
    let text = |name: &str| claims.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
    let (issuer, subject) = (text("iss"), text("sub"));
    let audiences: Vec<String> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if claims.get("exp").and_then(Value::as_i64).is_none_or(|exp| exp <= now) {
        return Err(invalid("AADSTS700024: Client assertion is not within its valid time range.".to_owned()));
    }
    let trusted =
        identity.federated_credentials.values().any(|c| c.issuer == issuer && c.subject == subject && c.audiences.iter().any(|a| audiences.contains(a)));
    if !trusted {
        return Err(invalid(format!(
            "AADSTS70021: No matching federated identity record found for presented assertion. Assertion Issuer: '{issuer}'. Assertion Subject: '{subject}'. Assertion Audience: '{}'.",
            audiences.join(", ")
        )));
    }
    Ok(identity.principal_id.clone())
}

/// The claims of a compact JWT, unverified.
fn claims_of(jwt: &str) -> Option<serde_json::Map<String, Value>> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::Seed;

    fn world() -> World {
        let seed = Seed::from_yaml(
            "tenantId: t\nsubscriptions:\n  - id: s\n    resourceGroups:\n      - name: g\n        identities: [{name: a}, {name: b}]\n        scaleSets:\n          - {name: one, userAssigned: [/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/a]}\n          - {name: two, userAssigned: [/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/a, /subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/b]}\n          - {name: sys, systemAssigned: true, userAssigned: [/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/a]}\n",
        )
        .expect("seed");
        World::from_seed(&seed)
    }

    fn identity(world: &World, name: &str) -> (String, String) {
        let i = world.identities.values().find(|i| i.name == name).expect("identity");
        (i.client_id.clone(), i.principal_id.clone())
    }

    #[test]
    fn a_nodes_imds_answers_only_for_what_its_scale_set_carries_and_only_when_that_picks_one() {
        let w = world();
        let vmss = |name: &str| format!("/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachineScaleSets/{name}");
        let none = HashMap::new();
        let asking = |id: &str| HashMap::from([("client_id".to_owned(), id.to_owned())]);
        let (a, b) = (identity(&w, "a"), identity(&w, "b"));
        assert_eq!(pick_node_identity(&w, &vmss("one"), &none), Ok(a.clone()), "the only user-assigned identity");
        assert_eq!(pick_node_identity(&w, &vmss("one"), &asking(&b.0)), Err("Identity not found"), "b is not on pool one");
        assert!(pick_node_identity(&w, &vmss("two"), &none).expect_err("two identities").starts_with("Multiple user assigned identities"));
        assert_eq!(pick_node_identity(&w, &vmss("two"), &asking(&b.0)), Ok(b));
        let system = pick_node_identity(&w, &vmss("sys"), &none).expect("system-assigned");
        assert_ne!(system, a, "unpinned, a node with a system identity hands out that one");
        assert_eq!(pick_node_identity(&w, &vmss("nowhere"), &none), Err("Identity not found"));
    }

    #[test]
    fn a_federated_assertion_must_match_a_credential_of_the_identity() {
        let mut w = world();
        let credential = json!({"properties": {"issuer": "https://issuer.example/", "subject": "system:serviceaccount:ns:app", "audiences": ["api://AzureADTokenExchange"]}});
        w.put_federated_credential("s", "g", "a", "fic", &credential).expect("credential");
        let (client, principal) = identity(&w, "a");
        let jwt = |claims: Value| {
            let encode = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
            format!("{}.{}.sig", encode(&json!({"alg": "RS256"})), encode(&claims))
        };
        let exp = time::OffsetDateTime::now_utc().unix_timestamp() + 600;
        let good = jwt(json!({"iss": "https://issuer.example/", "sub": "system:serviceaccount:ns:app", "aud": ["api://AzureADTokenExchange"], "exp": exp}));
        assert_eq!(exchange_for_identity(&w, &client, Some(&good)), Ok(principal));
        let other_sa = jwt(json!({"iss": "https://issuer.example/", "sub": "system:serviceaccount:ns:other", "aud": "api://AzureADTokenExchange", "exp": exp}));
        assert!(exchange_for_identity(&w, &client, Some(&other_sa)).expect_err("other subject").2.contains("AADSTS70021"));
        let expired = jwt(json!({"iss": "https://issuer.example/", "sub": "system:serviceaccount:ns:app", "aud": "api://AzureADTokenExchange", "exp": 1}));
        assert!(exchange_for_identity(&w, &client, Some(&expired)).expect_err("expired").2.contains("AADSTS700024"));
        assert!(exchange_for_identity(&w, &client, Some("not-a-jwt")).expect_err("malformed").2.contains("AADSTS50027"));
        let (b, _) = identity(&w, "b");
        assert!(exchange_for_identity(&w, &b, Some(&good)).is_err(), "b trusts no issuer");
    }
}
