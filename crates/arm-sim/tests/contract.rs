//! Contract tests: every example from the public REST specs, replayed against the
//! simulator, answers with one of the example's status codes and a body of the example's
//! shape (the same fields with the same JSON types) for every field kvbind relies on.

use std::collections::BTreeSet;
use std::path::Path;

use kvbind_arm_sim::{Seed, Simulator};
use serde_json::{Value, json};

const TOKEN: &str = "contract-test-token";

struct Example {
    file: String,
    operation: String,
    params: Value,
    responses: Value,
}

fn examples() -> Vec<Example> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out: Vec<Example> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let file = p.file_name().unwrap_or_default().to_string_lossy().into_owned();
            let operation = file.split('.').next().unwrap_or_default().to_owned();
            let json: Value = serde_json::from_str(&std::fs::read_to_string(&p).expect("read")).expect("json");
            Example { file, operation, params: json["parameters"].clone(), responses: json["responses"].clone() }
        })
        .collect();
    out.sort_by(|a, b| a.file.cmp(&b.file));
    out
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or_default()
}

/// Every field path of a JSON value, with its JSON type; arrays contribute their first item.
fn shape(v: &Value, prefix: &str, out: &mut BTreeSet<(String, &'static str)>) {
    let kind = match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    out.insert((prefix.to_owned(), kind));
    match v {
        Value::Object(m) => m.iter().for_each(|(k, x)| shape(x, &format!("{prefix}/{k}"), out)),
        Value::Array(a) => a.iter().take(1).for_each(|x| shape(x, &format!("{prefix}[]"), out)),
        _ => {}
    }
}

/// Fields of the examples that kvbind does not read and the simulator does not model.
fn modelled(operation: &str, path: &str) -> bool {
    let compute = operation.starts_with("VirtualMachine");
    if compute {
        return ["", "/id", "/name", "/type", "/location", "/properties", "/properties/provisioningState", "/sku"].contains(&path)
            || path.starts_with("/identity")
            || path.starts_with("/sku/");
    }
    // One page holds every credential of an identity (at most 20), so no nextLink.
    !matches!(path, "/properties/hsmPoolResourceId" | "/nextLink")
}

fn seed_for(example: &Example, identity_ids: &[String]) -> Seed {
    let p = &example.params;
    let sub = if s(p, "subscriptionId").is_empty() { "00000000-0000-0000-0000-000000000000" } else { s(p, "subscriptionId") };
    let rg = if s(p, "resourceGroupName").is_empty() { "rg" } else { s(p, "resourceGroupName") };
    let response = example.responses.get("200").or_else(|| example.responses.get("201")).and_then(|r| r.get("body"));
    let policies = response.and_then(|b| b.pointer("/properties/accessPolicies")).cloned().unwrap_or(json!([]));
    let principals: Vec<Value> = [
        p.pointer("/parameters/properties/principalId"),
        response.and_then(|b| b.pointer("/properties/principalId")),
        response.and_then(|b| b.pointer("/value/0/properties/principalId")),
    ]
    .into_iter()
    .flatten()
    .cloned()
    .collect();
    let identity_names: Vec<Value> = identity_ids.iter().map(|id| json!({"name": id.rsplit('/').next().unwrap_or_default()})).collect();
    let mut group = json!({"name": rg, "identities": identity_names});
    let op = example.operation.as_str();
    if op.starts_with("FederatedIdentityCredentials") {
        let mut parent = json!({"name": s(p, "resourceName")});
        if op != "FederatedIdentityCredentials_CreateOrUpdate" {
            parent["federatedCredentials"] = json!([{"name": "ficResourceName", "issuer": "https://oidc.prod-aks.azure.com/TenantGUID/IssuerGUID", "subject": "system:serviceaccount:ns:svcaccount"}]);
        }
        group["identities"].as_array_mut().expect("array").push(parent);
    }
    if op.starts_with("UserAssignedIdentities") && !op.ends_with("CreateOrUpdate") {
        group["identities"].as_array_mut().expect("array").push(json!({"name": s(p, "resourceName"), "tags": {"key1": "value1", "key2": "value2"}}));
    }
    if op.starts_with("VirtualMachineScaleSets") {
        group["scaleSets"] = json!([{"name": s(p, "vmScaleSetName"), "systemAssigned": true}]);
    }
    if op.starts_with("VirtualMachines") && !op.ends_with("CreateOrUpdate") {
        group["virtualMachines"] = json!([{"name": s(p, "vmName")}]);
    }
    if op.starts_with("Vaults") {
        group["vaults"] = json!([{"name": s(p, "vaultName"), "accessPolicies": policies}]);
    }
    serde_json::from_value(json!({
        "subscriptions": [{"id": sub, "resourceGroups": [group]}],
        "clients": [{"clientId": "contract", "staticTokens": [TOKEN]}],
        "principals": principals,
        "lro": {"durationMs": 0, "retryAfterSeconds": 0},
    }))
    .expect("seed")
}

/// The request the example describes: method, path and body.
fn request(example: &Example) -> (reqwest::Method, String, Option<Value>) {
    let p = &example.params;
    let (sub, rg) = (s(p, "subscriptionId"), s(p, "resourceGroupName"));
    let group = format!("/subscriptions/{sub}/resourceGroups/{rg}/providers");
    let body = p.get("parameters").cloned();
    let ra = format!("/{}/providers/Microsoft.Authorization/roleAssignments", s(p, "scope"));
    let fic = format!("{group}/Microsoft.ManagedIdentity/userAssignedIdentities/{}/federatedIdentityCredentials", s(p, "resourceName"));
    use reqwest::Method as M;
    match example.operation.as_str() {
        "UserAssignedIdentities_CreateOrUpdate" => (M::PUT, format!("{group}/Microsoft.ManagedIdentity/userAssignedIdentities/{}", s(p, "resourceName")), body),
        "UserAssignedIdentities_Get" => (M::GET, format!("{group}/Microsoft.ManagedIdentity/userAssignedIdentities/{}", s(p, "resourceName")), None),
        "UserAssignedIdentities_Update" => (M::PATCH, format!("{group}/Microsoft.ManagedIdentity/userAssignedIdentities/{}", s(p, "resourceName")), body),
        "UserAssignedIdentities_Delete" => (M::DELETE, format!("{group}/Microsoft.ManagedIdentity/userAssignedIdentities/{}", s(p, "resourceName")), None),
        "VirtualMachineScaleSets_Get" => (M::GET, format!("{group}/Microsoft.Compute/virtualMachineScaleSets/{}", s(p, "vmScaleSetName")), None),
        "VirtualMachineScaleSets_Update" => (M::PATCH, format!("{group}/Microsoft.Compute/virtualMachineScaleSets/{}", s(p, "vmScaleSetName")), body),
        "VirtualMachines_Get" => (M::GET, format!("{group}/Microsoft.Compute/virtualMachines/{}", s(p, "vmName")), None),
        "VirtualMachines_Update" => (M::PATCH, format!("{group}/Microsoft.Compute/virtualMachines/{}", s(p, "vmName")), body),
        "VirtualMachines_CreateOrUpdate" => (M::PUT, format!("{group}/Microsoft.Compute/virtualMachines/{}", s(p, "vmName")), body),
        "Vaults_Get" => (M::GET, format!("{group}/Microsoft.KeyVault/vaults/{}", s(p, "vaultName")), None),
        "Vaults_UpdateAccessPolicy" => {
            (M::PUT, format!("{group}/Microsoft.KeyVault/vaults/{}/accessPolicies/{}", s(p, "vaultName"), s(p, "operationKind")), body)
        }
        "RoleAssignments_Create" => (M::PUT, format!("{ra}/{}", s(p, "roleAssignmentName")), body),
        "RoleAssignments_Get" => (M::GET, format!("{ra}/{}", s(p, "roleAssignmentName")), None),
        "RoleAssignments_Delete" => (M::DELETE, format!("{ra}/{}", s(p, "roleAssignmentName")), None),
        "RoleAssignments_ListForScope" => (M::GET, ra, None),
        "FederatedIdentityCredentials_CreateOrUpdate" => (M::PUT, format!("{fic}/{}", s(p, "federatedIdentityCredentialResourceName")), body),
        "FederatedIdentityCredentials_Get" => (M::GET, format!("{fic}/{}", s(p, "federatedIdentityCredentialResourceName")), None),
        "FederatedIdentityCredentials_Delete" => (M::DELETE, format!("{fic}/{}", s(p, "federatedIdentityCredentialResourceName")), None),
        "FederatedIdentityCredentials_List" => (M::GET, fic, None),
        other => panic!("no request for {other}"),
    }
}

/// The MaximumSet example uses placeholder keys (`key3951`) where ARM wants identity IDs,
/// with a `type` that cannot hold them; it is replayed with a real ID and the matching type.
fn real_identity_keys(body: &mut Value, real: &str) -> Option<String> {
    let map = body.pointer_mut("/identity/userAssignedIdentities")?.as_object_mut()?;
    let placeholder = map.keys().find(|k| !k.starts_with('/'))?.clone();
    let value = map.remove(&placeholder)?;
    map.insert(real.to_owned(), value);
    body["identity"]["type"] = json!("SystemAssigned, UserAssigned");
    Some(placeholder)
}

#[tokio::test]
async fn every_spec_example_replays_against_the_simulator() {
    let examples = examples();
    assert!(examples.len() >= 25, "fixtures missing: {}", examples.len());
    let http = reqwest::Client::new();
    for example in &examples {
        let real = format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/contract-identity",
            s(&example.params, "subscriptionId"),
            s(&example.params, "resourceGroupName")
        );
        let mut identities = vec![real.clone()];
        if let Some(keys) = example.params.pointer("/parameters/identity/userAssignedIdentities").and_then(Value::as_object) {
            identities.extend(keys.keys().filter(|k| k.starts_with('/')).cloned());
        }
        let sim = Simulator::start(&seed_for(example, &identities), "127.0.0.1:0".parse().expect("addr")).await.expect("sim");
        let api = s(&example.params, "api-version");
        let send = |method: reqwest::Method, path: String, body: Option<Value>| {
            let mut req = http.request(method, format!("{}{path}?api-version={api}", sim.url)).bearer_auth(TOKEN);
            if let Some(b) = body {
                req = req.json(&b);
            }
            req.send()
        };

        let (method, path, mut body) = request(example);
        // Get, Delete and List need the example's own assignment to exist first.
        if example.operation.starts_with("RoleAssignments") && example.operation != "RoleAssignments_Create" {
            let existing = example.responses["200"]["body"].get("value").and_then(|v| v.get(0)).unwrap_or(&example.responses["200"]["body"]).clone();
            let put = format!(
                "/{}/providers/Microsoft.Authorization/roleAssignments/{}",
                s(&existing["properties"], "scope").trim_start_matches('/'),
                s(&existing, "name")
            );
            let created = send(reqwest::Method::PUT, put, Some(json!({"properties": existing["properties"]}))).await.expect("put");
            assert_eq!(created.status(), 201, "{}: creating the example's assignment", example.file);
        }
        let placeholder = body.as_mut().and_then(|b| real_identity_keys(b, &real));
        let response = send(method, path, body).await.expect("request");
        let status = response.status().as_u16().to_string();
        let actual: Value = response.json().await.unwrap_or(Value::Null);
        let expected = example.responses.get(&status).unwrap_or_else(|| {
            panic!(
                "{}: status {status} is not among the example's {:?}: {actual}",
                example.file,
                example.responses.as_object().map(|m| m.keys().collect::<Vec<_>>())
            )
        });
        let Some(expected_body) = expected.get("body") else { continue };
        let mut expected_body = expected_body.clone();
        if let Some(p) = &placeholder
            && let Some(map) = expected_body.pointer_mut("/identity/userAssignedIdentities").and_then(Value::as_object_mut)
            && let Some(v) = map.remove(p)
        {
            map.insert(real.clone(), v);
        }
        let mut want = BTreeSet::new();
        shape(&expected_body, "", &mut want);
        let mut got = BTreeSet::new();
        shape(&actual, "", &mut got);
        let got_paths: BTreeSet<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
        for (path, kind) in &want {
            if !modelled(&example.operation, path) {
                continue;
            }
            assert!(got_paths.contains(path.as_str()), "{}: the simulator's body lacks {path}: {actual:#}", example.file);
            let null_allowed = *kind == "null";
            assert!(null_allowed || got.contains(&(path.clone(), *kind)), "{}: {path} should be a {kind}: {actual:#}", example.file);
        }
    }
}

#[tokio::test]
async fn malformed_requests_get_arm_errors() {
    let seed: Seed = serde_json::from_value(json!({
        "subscriptions": [{"id": "s", "resourceGroups": [{"name": "rg", "vaults": [{"name": "kv"}]}]}],
        "clients": [{"clientId": "c", "staticTokens": [TOKEN]}],
    }))
    .expect("seed");
    let sim = Simulator::start(&seed, "127.0.0.1:0".parse().expect("addr")).await.expect("sim");
    let http = reqwest::Client::new();
    let vault = format!("{}/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv", sim.url);
    let cases = [
        (http.get(&vault).bearer_auth(TOKEN), 400, "MissingApiVersionParameter"),
        (http.get(format!("{vault}?api-version=1999-01-01")).bearer_auth(TOKEN), 400, "NoRegisteredProviderFound"),
        (http.get(format!("{vault}?api-version=2019-09-01")), 401, "AuthenticationFailed"),
        (http.get(format!("{vault}?api-version=2019-09-01")).bearer_auth("forged"), 401, "InvalidAuthenticationToken"),
        (
            http.put(format!("{vault}/accessPolicies/add?api-version=2019-09-01"))
                .bearer_auth(TOKEN)
                .header("content-type", "application/json")
                .body("{not json"),
            400,
            "InvalidRequestContent",
        ),
        (
            http.put(format!("{vault}/accessPolicies/merge?api-version=2019-09-01"))
                .bearer_auth(TOKEN)
                .json(&json!({"properties": {"accessPolicies": [{"tenantId": "t", "objectId": "o", "permissions": {}}]}})),
            400,
            "BadRequest",
        ),
        (
            http.get(format!("{}/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/none?api-version=2019-09-01", sim.url))
                .bearer_auth(TOKEN),
            404,
            "ResourceNotFound",
        ),
        (
            http.get(format!("{}/subscriptions/s/resourceGroups/other/providers/Microsoft.KeyVault/vaults/kv?api-version=2019-09-01", sim.url))
                .bearer_auth(TOKEN),
            404,
            "ResourceGroupNotFound",
        ),
        (http.get(format!("{}/subscriptions/s/providers/Microsoft.Web/sites?api-version=2019-09-01", sim.url)).bearer_auth(TOKEN), 404, "InvalidResourceType"),
    ];
    for (request, status, code) in cases {
        let response = request.send().await.expect("send");
        assert_eq!(response.status().as_u16(), status, "{code}");
        let body: Value = response.json().await.expect("an ARM error body");
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
}
