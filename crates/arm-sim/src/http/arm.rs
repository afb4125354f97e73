//! The ARM face: api-version, bearer token, faults, permissions, then the operation.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::route::{Provider, Route, Target, route};
use super::{Caller, Shared, lock};
use crate::faults::Fault;
use crate::world::ArmError;

/// Every request that is not for the admin API or the token endpoint.
pub async fn handle(State(shared): State<Arc<Shared>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = percent_encoding::percent_decode_str(uri.path()).decode_utf8_lossy().into_owned();
    let query: Vec<(String, String)> = url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()).into_owned().collect();
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or_default();
    if let Some((vault, host)) = super::key_vault::vault_of_host(host) {
        let (operation, client_id, response) = super::key_vault::serve(&shared, &vault, &host, &method, &path, &query, &headers);
        shared.record(method.as_str(), &format!("https://{host}{path}"), operation, response.status().as_u16(), client_id);
        return response;
    }
    let (operation, response) = match route(method.as_str(), &path) {
        Ok(route) => {
            let operation = route.operation;
            (operation, serve(&shared, route, &method, &path, &query, &headers, &body).await)
        }
        Err(e) => ("Unknown", error(&e, None)),
    };
    let client_id = authenticate(&shared, &headers).ok().map(|caller| caller.client_id);
    shared.record(method.as_str(), &path, operation, response.status().as_u16(), client_id);
    response
}

async fn serve(shared: &Shared, route: Route, method: &Method, path: &str, query: &[(String, String)], headers: &HeaderMap, body: &Bytes) -> Response {
    let param = |name: &str| query.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    let Some(api) = param("api-version") else {
        return error(&ArmError::new(400, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests."), None);
    };
    if !route.provider.api_versions().contains(&api.as_str()) {
        return error(
            &ArmError::new(
                400,
                "NoRegisteredProviderFound",
                format!(
                    "No registered resource provider found for location 'eastus' and API version '{api}' for type '{}'. The supported api-versions are '{}'.",
                    route.provider.resource_type(),
                    route.provider.api_versions().join(", ")
                ),
            ),
            None,
        );
    }
    let caller = match authenticate(shared, headers) {
        Ok(caller) => caller,
        Err(e) => return error(&e, None),
    };

    let faults = lock(&shared.faults).take(route.operation, path);
    for fault in &faults {
        if let Some(wait) = fault.latency() {
            tokio::time::sleep(wait).await;
        }
    }
    if let Some(fault) = faults.iter().find(|f| f.is_immediate()) {
        return injected(fault, route.provider);
    }
    if !route.action.is_empty() && !allowed(&caller.actions, &route.action) {
        return error(&forbidden(&caller, &route.action, path), None);
    }

    let json: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                return error(
                    &ArmError::new(400, "InvalidRequestContent", format!("The request content was invalid and could not be deserialized: '{e}'.")),
                    None,
                );
            }
        }
    };
    let replication_delay = faults.iter().find_map(|f| match f {
        Fault::PrincipalReplicationDelay { seconds } => Some(Duration::from_secs(*seconds)),
        _ => None,
    });
    let origin = lock(&shared.origin).clone();
    let mut world = lock(&shared.world);
    // A deny assignment overrides every role: AKS's node resource group lockdown.
    if !matches!(*method, Method::GET | Method::HEAD)
        && let Some(denied) = world.denied_by_lockdown(path, &route.action, &caller.client_id, &caller.principal_id)
    {
        return error(&denied, None);
    }
    // Azure's rates: a request over one of them changes nothing.
    let charges = super::throttle::charges(&world, &route.target, method, path, &json, &caller);
    let left = match world.rates.take(&charges) {
        Ok(left) => left,
        Err(throttled) => return super::throttle::refusal(&throttled, &caller, path),
    };
    let result: Result<Response, ArmError> = match (&route.target, method.as_str()) {
        (Target::Identity { sub, rg, name }, "GET") => world.get_identity(sub, rg, name, &api).map(ok),
        (Target::Identity { sub, rg, name }, "PUT") => world.put_identity(sub, rg, name, &json, &api).map(|(s, b)| with_status(s, b)),
        (Target::Identity { sub, rg, name }, "PATCH") => {
            let location = world.get_identity(sub, rg, name, &api).map(|b| b["location"].clone());
            location.and_then(|loc| {
                let mut body = json.clone();
                body["location"] = loc;
                world.put_identity(sub, rg, name, &body, &api).map(|(_, b)| ok(b))
            })
        }
        (Target::Identity { sub, rg, name }, "DELETE") => world.delete_identity(sub, rg, name).map(empty),
        (Target::FederatedCredential { sub, rg, identity, name }, "GET") => world.get_federated_credential(sub, rg, identity, name).map(ok),
        (Target::FederatedCredential { sub, rg, identity, name }, "PUT") => {
            world.put_federated_credential(sub, rg, identity, name, &json).map(|(s, b)| with_status(s, b))
        }
        (Target::FederatedCredential { sub, rg, identity, name }, _) => world.delete_federated_credential(sub, rg, identity, name).map(empty),
        (Target::FederatedCredentials { sub, rg, identity }, _) => world.list_federated_credentials(sub, rg, identity).map(ok),
        (Target::Compute { path, .. }, "GET") => world.get_compute(path).map(ok),
        (Target::Compute { path, sub, .. }, "PATCH") => {
            if let Err(e) = check_assign(&caller, &json) {
                return error(&e, None);
            }
            let fails = faults.contains(&Fault::LroFail);
            let never = faults.contains(&Fault::LroNeverEnds);
            let poll = Poll { origin: &origin, sub, api: &api, retry_after: world.lro.retry_after_seconds };
            world.patch_compute(path, &json, fails, never).map(|(body, op)| poll.compute(200, body, &op))
        }
        (Target::Compute { path, sub, kind }, "PUT") => {
            if let Err(e) = check_assign(&caller, &json) {
                return error(&e, None);
            }
            let poll = Poll { origin: &origin, sub, api: &api, retry_after: world.lro.retry_after_seconds };
            world.put_compute(path, kind, &json).map(|(status, body, op)| poll.compute(status, body, &op))
        }
        (Target::Operation { id }, _) => world.operation_status(id).map(|b| {
            let mut response = ok(b);
            set_header(&mut response, "retry-after", &world.lro.retry_after_seconds.to_string());
            response
        }),
        (Target::Vault { sub, rg, name }, "PUT") => world.put_vault(sub, rg, name, &json, &api).map(|(status, body)| with_status(status, body)),
        (Target::Vault { sub, rg, name }, _) => world.get_vault(sub, rg, name, &api).map(ok),
        (Target::Subscriptions, _) => Ok(ok(json!({"value": world.list_subscriptions()}))),
        (Target::ResourceGroup { sub, rg }, _) => world.get_resource_group(sub, rg).map(ok),
        (Target::Resources { sub }, _) => {
            let filter = param("$filter");
            world.list_resources(sub, filter.as_deref()).map(|all| page(&all, world.page_size, &origin, path, &api, &param("$skiptoken"), filter.as_deref()))
        }
        (Target::Identities { sub, rg }, _) => {
            world.list_identities(sub, rg.as_deref(), &api).map(|all| page(&all, world.page_size, &origin, path, &api, &param("$skiptoken"), None))
        }
        (Target::Vaults { sub }, _) => world.list_vaults(sub, &api).map(|all| page(&all, world.page_size, &origin, path, &api, &param("$skiptoken"), None)),
        (Target::AccessPolicy { sub, rg, name, kind }, _) => {
            let young = replication_delay.and_then(|delay| {
                json.pointer("/properties/accessPolicies")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e.get("objectId").and_then(Value::as_str))
                    .find(|p| world.principal_age(p).is_some_and(|age| age < delay))
                    .map(str::to_owned)
            });
            match young {
                Some(p) => Err(principal_not_found(&p, &world.tenant_id)),
                None => world.update_access_policy(sub, rg, name, kind, &json).map(ok),
            }
        }
        (Target::RoleAssignment { scope, name }, "PUT") => {
            let principal = json.pointer("/properties/principalId").and_then(Value::as_str).unwrap_or_default().to_owned();
            let age = world.principal_age(&principal);
            let unknown = age.is_none() && !principal.is_empty();
            match (replication_delay, age) {
                (Some(delay), Some(age)) if age < delay => Err(principal_not_found(&principal, &world.tenant_id)),
                _ if unknown => Err(principal_not_found(&principal, &world.tenant_id)),
                _ => world.put_role_assignment(scope, name, &json).map(|(s, b)| with_status(s, b)),
            }
        }
        (Target::RoleAssignment { scope, name }, "GET") => world.get_role_assignment(scope, name).map(ok),
        (Target::RoleAssignment { scope, name }, _) => {
            let (status, body) = world.delete_role_assignment(scope, name);
            Ok(if status == 204 { empty(204) } else { ok(body) })
        }
        (Target::Permissions { .. }, _) => Ok(ok(json!({"value": [{"actions": caller.actions, "notActions": [], "dataActions": [], "notDataActions": []}]}))),
        (Target::ManagedCluster { sub, rg, name }, _) => world.get_managed_cluster(sub, rg, name).map(ok),
        (Target::IdentityBinding { sub, rg, cluster, name }, "GET") => world.get_identity_binding(sub, rg, cluster, name).map(ok),
        (Target::IdentityBinding { sub, rg, cluster, name }, _) => {
            let poll = Poll { origin: &origin, sub, api: &api, retry_after: world.lro.retry_after_seconds };
            let location = world.managed_cluster_location(sub, rg, cluster);
            let started = |response, op: &str| poll.started(response, "Microsoft.ContainerService", &location, op, true);
            if method.as_str() == "PUT" {
                world.put_identity_binding(sub, rg, cluster, name, &json).map(|(status, body, op)| started(with_status(status, body), &op))
            } else {
                world.delete_identity_binding(sub, rg, cluster, name).map(|op| match op {
                    Some(op) => started(empty(202), &op),
                    None => empty(204),
                })
            }
        }
        (Target::DenyAssignments { sub, rg }, _) => Ok(ok(json!({"value": world.deny_assignments(sub, rg)}))),
        (Target::RoleAssignments { scope }, _) => {
            let filter = param("$filter");
            let principal = filter.as_deref().and_then(principal_filter);
            let all = world.list_role_assignments(scope, principal.as_deref());
            Ok(page(&all, world.page_size, &origin, path, &api, &param("$skiptoken"), filter.as_deref()))
        }
        _ => Err(ArmError::new(405, "MethodNotAllowed", "The requested method is not allowed.")),
    };
    drop(world);
    let mut response = result.unwrap_or_else(|e| error(&e, None));
    set_header(&mut response, "x-ms-request-id", &uuid::Uuid::new_v4().to_string());
    set_header(&mut response, "x-ms-correlation-request-id", &uuid::Uuid::new_v4().to_string());
    super::throttle::remaining_headers(&mut response, &charges, &left, path);
    if faults.contains(&Fault::ResponseLost) {
        return broken();
    }
    response
}

fn authenticate(shared: &Shared, headers: &HeaderMap) -> Result<Caller, ArmError> {
    let header = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if header.is_empty() {
        return Err(ArmError::new(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."));
    }
    let token = header
        .strip_prefix("Bearer ")
        .ok_or_else(|| ArmError::new(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is provided in an invalid format."))?;
    lock(&shared.tokens).get(token.trim()).cloned().ok_or_else(|| ArmError::new(401, "InvalidAuthenticationToken", "The access token is invalid."))
}

/// ARM action matching: `*` matches any run of characters, case-insensitively.
fn allowed(actions: &[String], action: &str) -> bool {
    actions.iter().any(|pattern| wildcard(&pattern.to_ascii_lowercase(), &action.to_ascii_lowercase()))
}

fn wildcard(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => text.starts_with(head) && (0..=text.len() - head.len()).any(|i| wildcard(rest, &text[head.len() + i..])),
    }
}

fn forbidden(caller: &Caller, action: &str, scope: &str) -> ArmError {
    ArmError::new(
        403,
        "AuthorizationFailed",
        format!(
            "The client '{}' with object id '{}' does not have authorization to perform action '{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh your credentials.",
            caller.client_id, caller.principal_id
        ),
    )
}

/// Attaching an identity also needs `assign/action` on that identity (a linked scope).
fn check_assign(caller: &Caller, body: &Value) -> Result<(), ArmError> {
    let action = "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action";
    if allowed(&caller.actions, action) {
        return Ok(());
    }
    let added =
        body.pointer("/identity/userAssignedIdentities").and_then(Value::as_object).and_then(|m| m.iter().find(|(_, v)| !v.is_null()).map(|(k, _)| k.clone()));
    match added {
        None => Ok(()),
        Some(id) => Err(ArmError::new(
            403,
            "LinkedAuthorizationFailed",
            format!(
                "The client '{}' with object id '{}' has permission to perform action 'Microsoft.Compute/virtualMachineScaleSets/write'; however, it does not have permission to perform action '{action}' on the linked scope(s) '{id}' or the linked scope(s) are invalid.",
                caller.client_id, caller.principal_id
            ),
        )),
    }
}

fn principal_not_found(principal: &str, tenant: &str) -> ArmError {
    ArmError::new(
        400,
        "PrincipalNotFound",
        format!(
            "Principal {principal} does not exist in the directory {tenant}. Check that you have the correct principal ID. If you are creating this principal and then immediately assigning a role, this error might be related to a replication delay. In this case, set the role assignment principalType property to a value, such as ServicePrincipal, User, or Group.  See https://aka.ms/docs-principaltype"
        ),
    )
}

/// `principalId eq 'GUID'` (quoted or not).
fn principal_filter(filter: &str) -> Option<String> {
    let rest = filter.trim().strip_prefix("principalId eq ")?;
    Some(rest.trim().trim_matches('\'').to_owned())
}

fn page(all: &[Value], size: usize, origin: &str, path: &str, api: &str, skip: &Option<String>, filter: Option<&str>) -> Response {
    let start: usize = skip.as_deref().and_then(|s| s.parse().ok()).unwrap_or(0);
    let items: Vec<Value> = all.iter().skip(start).take(size).cloned().collect();
    let mut body = json!({"value": items});
    if start + size < all.len() {
        let mut next = url::form_urlencoded::Serializer::new(String::new());
        next.append_pair("api-version", api);
        if let Some(f) = filter {
            next.append_pair("$filter", f);
        }
        next.append_pair("$skiptoken", &(start + size).to_string());
        body["nextLink"] = json!(format!("{origin}{path}?{}", next.finish()));
    }
    ok(body)
}

fn injected(fault: &Fault, provider: Provider) -> Response {
    match fault {
        Fault::Throttle { retry_after_seconds } => {
            let body = if provider == Provider::Compute {
                // Compute's throttling body is not wrapped in "error".
                json!({"code": "OperationNotAllowed", "message": "The server rejected the request because too many requests have been received for this subscription.",
                       "details": [{"code": "TooManyRequests", "target": "VMScaleSetUpdate3Min", "message": "{\"operationGroup\":\"VMScaleSetUpdate3Min\"}"}]})
            } else {
                json!({"error": {"code": "SubscriptionRequestsThrottled", "message": format!("Number of requests for subscription exceeded. Please try again after '{retry_after_seconds}' seconds.")}})
            };
            let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
            set_header(&mut response, "retry-after", &retry_after_seconds.to_string());
            response
        }
        Fault::Conflict => error(&ArmError::new(409, "Conflict", "The request failed due to conflict with a concurrent request."), None),
        Fault::Reset => broken(),
        Fault::Error { status, code } => error(&ArmError::new(*status, code.clone(), "An injected failure."), None),
        _ => error(&ArmError::new(500, "InternalServerError", "An unexpected fault."), None),
    }
}

/// A response whose body fails at once: the server aborts the connection mid-answer, which
/// the client sees as a reset or an incomplete message.
fn broken() -> Response {
    let failing = futures::stream::once(async { Err::<Bytes, std::io::Error>(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected reset")) });
    Response::new(axum::body::Body::from_stream(failing))
}

/// Where the long-running operations a request starts are polled: the simulator's origin,
/// the subscription and api-version of the request, and the wait asked between polls.
struct Poll<'a> {
    origin: &'a str,
    sub: &'a str,
    api: &'a str,
    retry_after: u64,
}

impl Poll<'_> {
    /// `response` to a write that started operation `op` of provider `namespace` in
    /// `location`: the operation's URL (`Azure-AsyncOperation`, and `Location` too where
    /// the provider's spec sends it) and the `Retry-After` between polls.
    fn started(&self, mut response: Response, namespace: &str, location: &str, op: &str, location_header: bool) -> Response {
        let Poll { origin, sub, api, retry_after } = self;
        let url = format!("{origin}/subscriptions/{sub}/providers/{namespace}/locations/{location}/operations/{op}?api-version={api}");
        set_header(&mut response, "azure-asyncoperation", &url);
        if location_header {
            set_header(&mut response, "location", &url);
        }
        set_header(&mut response, "retry-after", &retry_after.to_string());
        response
    }

    /// A Compute write's: the resource body, polled where the body's region says.
    fn compute(&self, status: u16, body: Value, op: &str) -> Response {
        let location = body["location"].as_str().unwrap_or("eastus").to_owned();
        self.started(with_status(status, body), "Microsoft.Compute", &location, op, false)
    }
}

fn ok(body: Value) -> Response {
    with_status(200, body)
}

fn with_status(status: u16, body: Value) -> Response {
    (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), axum::Json(body)).into_response()
}

fn empty(status: u16) -> Response {
    StatusCode::from_u16(status).unwrap_or(StatusCode::NO_CONTENT).into_response()
}

fn error(e: &ArmError, target: Option<&str>) -> Response {
    let mut body = json!({"error": {"code": e.code, "message": e.message}});
    if let Some(t) = target {
        body["error"]["target"] = json!(t);
    }
    let mut response = with_status(e.status, body);
    set_header(&mut response, "x-ms-error-code", &e.code);
    response
}

pub(super) fn set_header(response: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, v);
    }
}
