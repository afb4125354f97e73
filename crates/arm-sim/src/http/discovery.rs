//! What current clients (the Azure CLI, the Azure SDKs through MSAL) read before and
//! around the ARM operations: the cloud's metadata document, the authority's OpenID
//! Connect discovery document, and the one Microsoft Graph lookup `az keyvault set-policy
//! --spn` makes. Every address they name is this server's own.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Shared, lock};

/// `GET /metadata/endpoints`: the cloud as `az cloud register --endpoint-resource-manager`
/// discovers it (the shape of ARM's own document), pointing everything at this server.
pub async fn endpoints(State(shared): State<Arc<Shared>>) -> Response {
    let origin = lock(&shared.origin).clone();
    shared.record("GET", "/metadata/endpoints", "Metadata_Endpoints", 200, None);
    Json(json!({
        "name": "ArmSimulator",
        "portal": format!("{origin}/"),
        "resourceManager": format!("{origin}/"),
        "authentication": {"loginEndpoint": format!("{origin}/"), "audiences": [format!("{origin}/")], "tenant": "common", "identityProvider": "AAD"},
        "graph": format!("{origin}/"),
        "graphAudience": format!("{origin}/"),
        "microsoftGraphResourceId": format!("{origin}/"),
        "media": format!("{origin}/"),
        "batch": format!("{origin}/"),
        "sqlManagement": format!("{origin}/"),
        "gallery": format!("{origin}/"),
        "activeDirectoryDataLake": format!("{origin}/"),
        "vmImageAliasDoc": format!("{origin}/vmimagealiases.json"),
        "suffixes": {
            "keyVaultDns": "vault.azure.net",
            "storage": "core.windows.net",
            "sqlServerHostname": "database.windows.net",
            "acrLoginServer": "azurecr.io",
            "azureDataLakeStoreFileSystem": "azuredatalakestore.net",
            "azureDataLakeAnalyticsCatalogAndJob": "azuredatalakeanalytics.net",
        },
    }))
    .into_response()
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`: what MSAL reads first, and the
/// token endpoint it then uses.
pub async fn openid_configuration(State(shared): State<Arc<Shared>>, Path(tenant): Path<String>) -> Response {
    let origin = lock(&shared.origin).clone();
    let known = lock(&shared.world).tenant_id.clone();
    let path = format!("/{tenant}/v2.0/.well-known/openid-configuration");
    if !tenant.eq_ignore_ascii_case(&known) && !matches!(tenant.as_str(), "organizations" | "common") {
        shared.record("GET", &path, "OpenIdConfiguration", 400, None);
        let body = json!({"error": "invalid_tenant", "error_description": format!("AADSTS90002: Tenant '{tenant}' not found.")});
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    }
    shared.record("GET", &path, "OpenIdConfiguration", 200, None);
    Json(json!({
        "issuer": format!("{origin}/{known}/v2.0"),
        "token_endpoint": format!("{origin}/{tenant}/oauth2/v2.0/token"),
        "authorization_endpoint": format!("{origin}/{tenant}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{origin}/{tenant}/oauth2/v2.0/devicecode"),
        "jwks_uri": format!("{origin}/{tenant}/discovery/v2.0/keys"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "tenant_region_scope": "NA",
        "cloud_instance_name": "arm-sim",
    }))
    .into_response()
}

/// `GET /v1.0/servicePrincipals?$filter=servicePrincipalNames/any(c:c eq 'ID')` (or
/// `appId eq 'ID'`): the directory's service principal of a managed identity or of a
/// registered client, found by its client ID. Needs a bearer token this server issued.
pub async fn service_principals(State(shared): State<Arc<Shared>>, headers: HeaderMap, Query(query): Query<HashMap<String, String>>) -> Response {
    let path = "/v1.0/servicePrincipals";
    let token = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).unwrap_or_default().trim().to_owned();
    if !lock(&shared.tokens).contains_key(&token) {
        shared.record("GET", path, "ServicePrincipals_List", 401, None);
        let body = json!({"error": {"code": "InvalidAuthenticationToken", "message": "Access token validation failure."}});
        return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    }
    let wanted = query.get("$filter").and_then(|f| quoted(f)).unwrap_or_default();
    let mut found: Vec<Value> = Vec::new();
    {
        let world = lock(&shared.world);
        for identity in world.identities.values().filter(|i| i.client_id.eq_ignore_ascii_case(&wanted)) {
            found.push(json!({
                "id": identity.principal_id, "appId": identity.client_id, "displayName": identity.name,
                "servicePrincipalNames": [identity.client_id, format!("https://identity.azure.net/{}", identity.client_id)],
                "servicePrincipalType": "ManagedIdentity", "accountEnabled": true,
            }));
        }
    }
    for client in lock(&shared.clients).values().filter(|c| c.client_id.eq_ignore_ascii_case(&wanted)) {
        if let Some(principal) = &client.principal_id {
            found.push(json!({
                "id": principal, "appId": client.client_id, "displayName": client.client_id,
                "servicePrincipalNames": [client.client_id], "servicePrincipalType": "Application", "accountEnabled": true,
            }));
        }
    }
    shared.record("GET", path, "ServicePrincipals_List", 200, None);
    Json(json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#servicePrincipals", "value": found})).into_response()
}

/// The first single-quoted value in an OData filter.
fn quoted(filter: &str) -> Option<String> {
    let start = filter.find('\'')? + 1;
    let len = filter[start..].find('\'')?;
    Some(filter[start..start + len].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_value_is_read_from_either_shape() {
        assert_eq!(quoted("servicePrincipalNames/any(c:c eq 'abc')").as_deref(), Some("abc"));
        assert_eq!(quoted("appId eq 'def'").as_deref(), Some("def"));
        assert_eq!(quoted("displayName eq x"), None);
    }
}
