//! What each request costs in Azure's rate buckets (`crate::rates`), and ARM's answers:
//! the `x-ms-ratelimit-remaining-*` headers on what it admits, 429 with `Retry-After` on
//! what it refuses.

use axum::Json;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Caller;
use super::arm::set_header;
use super::route::Target;
use crate::rates::{Charge, Rate, Throttled};
use crate::world::{World, key};

/// The subscription a path is under, if any.
fn subscription(path: &str) -> Option<&str> {
    let mut parts = path.split('/').filter(|p| !p.is_empty());
    (parts.next()?.eq_ignore_ascii_case("subscriptions")).then(|| parts.next()).flatten()
}

/// What the request costs: one token of ARM's bucket for its kind (per subscription and
/// principal), plus, for an update of a scale set or VM, one of that resource's update
/// bucket and one per identity it newly assigns (per subscription and region), and, for
/// an identity that does not exist yet, one create (per subscription and region).
pub fn charges(world: &World, target: &Target, method: &Method, path: &str, body: &Value, caller: &Caller) -> Vec<Charge> {
    let read = matches!(*method, Method::GET | Method::HEAD);
    let tenant = world.tenant_id.to_ascii_lowercase();
    let Some(sub) = subscription(path) else {
        // Outside any subscription (the subscription list, provider metadata): the
        // tenant's buckets, per principal.
        let rate = if read { Rate::TenantReads } else { Rate::TenantWrites };
        return vec![Charge { rate, key: format!("{tenant}/{}", caller.principal_id), tokens: 1.0 }];
    };
    let sub = sub.to_ascii_lowercase();
    let (arm, global) = match *method {
        Method::GET | Method::HEAD => (Rate::Reads, Rate::GlobalReads),
        Method::DELETE => (Rate::Deletes, Rate::GlobalDeletes),
        _ => (Rate::Writes, Rate::GlobalWrites),
    };
    let mut charges =
        vec![Charge { rate: arm, key: format!("{sub}/{}", caller.principal_id), tokens: 1.0 }, Charge { rate: global, key: sub.clone(), tokens: 1.0 }];
    match (target, method.as_str()) {
        (Target::Compute { path, .. }, "PATCH" | "PUT") => {
            if let Some(resource) = world.compute.get(&key(path)) {
                charges.push(Charge { rate: Rate::ComputeUpdates, key: key(path), tokens: 1.0 });
                let assigned = body
                    .pointer("/identity/userAssignedIdentities")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                    .filter(|(id, value)| !value.is_null() && !resource.user_assigned.contains_key(&id.to_ascii_lowercase()))
                    .count();
                if assigned > 0 {
                    let region = resource.location.to_ascii_lowercase();
                    charges.push(Charge { rate: Rate::IdentityAssignments, key: format!("{sub}/{region}"), tokens: assigned as f64 });
                    charges.push(Charge { rate: Rate::TenantIdentityAssignments, key: format!("{tenant}/{region}"), tokens: assigned as f64 });
                }
            }
        }
        (Target::Identity { sub: s, rg, name }, "PUT") if !world.identities.contains_key(&crate::world::identity_key(s, rg, name)) => {
            let region = body.get("location").and_then(Value::as_str).unwrap_or_default().to_ascii_lowercase();
            charges.push(Charge { rate: Rate::IdentityCreates, key: format!("{sub}/{region}"), tokens: 1.0 });
            charges.push(Charge { rate: Rate::TenantIdentityCreates, key: format!("{tenant}/{region}"), tokens: 1.0 });
        }
        _ => {}
    }
    charges
}

/// The name ARM gives the bucket of `rate` in its messages and headers.
fn operation_kind(rate: Rate) -> &'static str {
    match rate {
        Rate::Reads | Rate::GlobalReads | Rate::TenantReads => "read",
        Rate::Deletes | Rate::GlobalDeletes => "delete",
        _ => "write",
    }
}

/// Compute's policy name for an update of one scale set or VM. No Microsoft source names
/// the update policy exactly (ARM-NOTES §8.2), so this is the simulator's.
fn compute_policy(path: &str) -> &'static str {
    if path.to_ascii_lowercase().contains("/virtualmachinescalesets/") { "Microsoft.Compute/VMScaleSetUpdate" } else { "Microsoft.Compute/VMUpdate" }
}

/// ARM's 429 for `throttled`, with its `Retry-After`.
pub fn refusal(throttled: &Throttled, caller: &Caller, path: &str) -> Response {
    let seconds = throttled.retry_after.as_secs().max(1);
    let wrapped = |code: &str, message: String| json!({"error": {"code": code, "message": message}});
    // ARM's own throttle: its bucket's scope, and the actor where the bucket is one
    // principal's. No source gives the global and tenant buckets' messages; they are
    // modelled on the principal's, without the actor where every principal shares it.
    let arm = |code: &'static str, scope: &str, actor: Option<&str>| {
        let id = throttled.key.split('/').next().unwrap_or_default();
        let actor = actor.map(|a| format!(" actor '{a}'")).unwrap_or_default();
        let message = format!(
            "Number of '{}' requests for {scope} '{id}'{actor} exceeded. Please try again after '{seconds}' seconds after additional tokens are available. Refer to https://aka.ms/arm-throttling",
            operation_kind(throttled.rate)
        );
        (code, wrapped(code, message), None)
    };
    let (code, body, resource) = match throttled.rate {
        Rate::Reads | Rate::Writes | Rate::Deletes => arm("SubscriptionRequestsThrottled", "subscription", Some(&caller.principal_id)),
        Rate::GlobalReads | Rate::GlobalWrites | Rate::GlobalDeletes => arm("SubscriptionRequestsThrottled", "subscription", None),
        Rate::TenantReads | Rate::TenantWrites => arm("TenantRequestsThrottled", "tenant", Some(&caller.principal_id)),
        Rate::ComputeUpdates => {
            let policy = compute_policy(path);
            let group = policy.trim_start_matches("Microsoft.Compute/");
            // Compute's own shape (not wrapped in "error"), as its troubleshooting page shows it.
            let body = json!({
                "code": "OperationNotAllowed",
                "message": "The server rejected the request because too many requests have been received for this subscription.",
                "details": [{"code": "TooManyRequests", "target": group,
                    "message": json!({"operationGroup": group, "retryAfterSeconds": seconds}).to_string()}],
            });
            ("OperationNotAllowed", body, Some(format!("{policy};0")))
        }
        // No source gives these two's code; the simulator answers as ARM's own throttle does.
        Rate::IdentityCreates | Rate::TenantIdentityCreates => {
            let message = format!(
                "Too many user-assigned identities are being created in '{}' ({}/region). Please try again after '{seconds}' seconds.",
                throttled.key,
                if throttled.rate == Rate::TenantIdentityCreates { "tenant" } else { "subscription" }
            );
            ("TooManyRequests", wrapped("TooManyRequests", message), None)
        }
        Rate::IdentityAssignments | Rate::TenantIdentityAssignments => {
            let message = format!(
                "Too many identities are being assigned to resources in '{}' ({}/region). Please try again after '{seconds}' seconds.",
                throttled.key,
                if throttled.rate == Rate::TenantIdentityAssignments { "tenant" } else { "subscription" }
            );
            ("TooManyRequests", wrapped("TooManyRequests", message), None)
        }
    };
    let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
    set_header(&mut response, "retry-after", &seconds.to_string());
    set_header(&mut response, "x-ms-error-code", code);
    if let Some(resource) = resource {
        set_header(&mut response, "x-ms-ratelimit-remaining-resource", &resource);
    }
    response
}

/// The headers on an admitted request: what is left of the buckets it used.
pub fn remaining_headers(response: &mut Response, charges: &[Charge], left: &[u64], path: &str) {
    for (charge, left) in charges.iter().zip(left) {
        match charge.rate {
            Rate::Reads => set_header(response, "x-ms-ratelimit-remaining-subscription-reads", &left.to_string()),
            Rate::Writes => set_header(response, "x-ms-ratelimit-remaining-subscription-writes", &left.to_string()),
            Rate::Deletes => set_header(response, "x-ms-ratelimit-remaining-subscription-deletes", &left.to_string()),
            Rate::ComputeUpdates => set_header(response, "x-ms-ratelimit-remaining-resource", &format!("{};{left}", compute_policy(path))),
            Rate::TenantReads => set_header(response, "x-ms-ratelimit-remaining-tenant-reads", &left.to_string()),
            Rate::TenantWrites => set_header(response, "x-ms-ratelimit-remaining-tenant-writes", &left.to_string()),
            // ARM names no header for the global buckets: a principal sees its own.
            Rate::GlobalReads
            | Rate::GlobalWrites
            | Rate::GlobalDeletes
            | Rate::IdentityCreates
            | Rate::IdentityAssignments
            | Rate::TenantIdentityCreates
            | Rate::TenantIdentityAssignments => {}
        }
    }
}
