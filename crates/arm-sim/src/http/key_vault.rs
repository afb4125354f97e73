//! The Key Vault data plane, for requests whose `Host` is `{vault}.vault.azure.net` (or
//! another cloud's suffix): `GET /{secrets|keys|certificates}/{name}[/{version}]`, with the
//! bearer token's audience checked as Key Vault checks it, and the read authorised by the
//! vault's permission model (`world::key_vault_data`).

use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::arm::set_header;
use super::{Caller, Shared, lock};
use crate::world::key_vault_data::{DataPlaneError, ObjectKind, Reader};

/// The Key Vault DNS suffixes of the clouds kvbind knows.
const SUFFIXES: [&str; 3] = ["vault.azure.net", "vault.azure.cn", "vault.usgovcloudapi.net"];

/// The data-plane api-versions of the published Key Vault specs.
const API_VERSIONS: [&str; 7] = ["7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6"];

/// The vault a `Host` header names, when it is a vault's data-plane host.
pub fn vault_of_host(host: &str) -> Option<(String, String)> {
    let host = host.split(':').next().unwrap_or_default().to_ascii_lowercase();
    SUFFIXES.iter().find_map(|suffix| {
        let name = host.strip_suffix(suffix)?.strip_suffix('.')?;
        (!name.is_empty() && !name.contains('.')).then(|| (name.to_owned(), host.clone()))
    })
}

/// Serves one data-plane request for `vault` (host `host`): the operation name it logs,
/// the caller's client ID when the token was good, and the response.
pub fn serve(
    shared: &Shared,
    vault: &str,
    host: &str,
    method: &Method,
    path: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
) -> (&'static str, Option<String>, Response) {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (kind, name) = match (method, segments.as_slice()) {
        (&Method::GET, [kind, name] | [kind, name, _]) if !name.eq_ignore_ascii_case("versions") => match ObjectKind::from_segment(kind) {
            Some(kind) => (kind, *name),
            None => return ("Unknown", None, refuse(400, "BadParameter", &format!("The request path '{path}' is not a Key Vault operation."))),
        },
        _ => {
            return (
                "Unknown",
                None,
                refuse(400, "BadParameter", &format!("The request '{method} {path}' is not a Key Vault operation the simulator serves.")),
            );
        }
    };
    let operation = match kind {
        ObjectKind::Secret => "GetSecret",
        ObjectKind::Key => "GetKey",
        ObjectKind::Certificate => "GetCertificate",
    };
    let api = query.iter().find(|(k, _)| k == "api-version").map(|(_, v)| v.as_str());
    if !api.is_some_and(|api| API_VERSIONS.contains(&api)) {
        return (operation, None, refuse(400, "BadParameter", "The request URI contains an invalid API version."));
    }
    let caller = match authenticate(shared, headers) {
        Ok(caller) => caller,
        Err(response) => return (operation, None, *response),
    };
    let world = lock(&shared.world);
    let reader = Reader { client_id: &caller.client_id, principal_id: &caller.principal_id };
    let response = match world.read_vault_object(vault, kind, name, reader, host) {
        Ok(body) => (StatusCode::OK, axum::Json(body)).into_response(),
        Err(e) => {
            let mut response = error_response(&e);
            set_header(&mut response, "x-ms-keyvault-error-code", e.code);
            response
        }
    };
    (operation, Some(caller.client_id.clone()), response)
}

/// The caller of a bearer token issued for Key Vault; 401 with Key Vault's challenge
/// otherwise.
fn authenticate(shared: &Shared, headers: &HeaderMap) -> Result<Caller, Box<Response>> {
    let tenant = lock(&shared.world).tenant_id.clone();
    let challenge = |code: &str, message: &str| {
        let mut response = refuse(401, "Unauthorized", &format!("{code}: {message}"));
        let origin = lock(&shared.origin).clone();
        set_header(&mut response, "www-authenticate", &format!("Bearer authorization=\"{origin}/{tenant}\", resource=\"https://vault.azure.net\""));
        Box::new(response)
    };
    let header = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let Some(token) = header.strip_prefix("Bearer ") else {
        return Err(challenge("AKV10000", "Request is missing a Bearer or PoP token."));
    };
    let caller = lock(&shared.tokens).get(token.trim()).cloned().ok_or_else(|| challenge("AKV10032", "Invalid issuer or token."))?;
    if !is_vault_audience(&caller.audience) {
        return Err(challenge("AKV10022", "Invalid audience."));
    }
    Ok(caller)
}

/// Whether a token's audience is Key Vault's, as a resource (`https://vault.azure.net`) or
/// a scope (`…/.default`).
fn is_vault_audience(audience: &str) -> bool {
    let audience = audience.trim_end_matches("/.default").trim_end_matches('/');
    SUFFIXES.iter().any(|suffix| audience.eq_ignore_ascii_case(&format!("https://{suffix}")))
}

/// Key Vault's answer to a request it refuses.
fn error_response(e: &DataPlaneError) -> Response {
    (StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST), axum::Json(e.body())).into_response()
}

fn refuse(status: u16, code: &'static str, message: &str) -> Response {
    error_response(&DataPlaneError { status, code, inner: None, message: message.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vault_host_is_known_by_its_clouds_suffix_and_nothing_else() {
        assert_eq!(vault_of_host("KVName.vault.azure.net:8443"), Some(("kvname".to_owned(), "kvname.vault.azure.net".to_owned())));
        assert_eq!(vault_of_host("kv.vault.azure.cn").map(|(v, _)| v), Some("kv".to_owned()));
        for host in ["127.0.0.1:80", "vault.azure.net", "a.b.vault.azure.net", "kv.vault.azure.net.evil.example"] {
            assert_eq!(vault_of_host(host), None, "{host}");
        }
    }

    #[test]
    fn only_key_vaults_audience_is_accepted() {
        assert!(is_vault_audience("https://vault.azure.net"));
        assert!(is_vault_audience("https://vault.azure.net/.default"));
        assert!(!is_vault_audience("https://management.azure.com/"));
        assert!(!is_vault_audience(""));
    }
}
