//! Azure's request rates, answered as ARM answers them: honest `x-ms-ratelimit-remaining-*`
//! counts on what it admits, 429 with `Retry-After` on what it refuses, and a refused
//! request changes nothing. On by default with Azure's numbers; a seed shrinks them.

use kvbind_arm_sim::{Seed, Simulator};
use serde_json::{Value, json};

const TOKEN: &str = "rates-test-token";
const IDENTITY_API: &str = "api-version=2023-01-31";
const COMPUTE_API: &str = "api-version=2024-07-01";

async fn simulator(rates: Value) -> Simulator {
    let mut seed = json!({
        "subscriptions": [{"id": "s", "resourceGroups": [{"name": "rg", "scaleSets": [{"name": "pool"}], "identities": [{"name": "existing"}]}]}],
        "clients": [{"clientId": "c", "staticTokens": [TOKEN]}],
        "lro": {"durationMs": 0, "retryAfterSeconds": 0},
    });
    if !rates.is_null() {
        seed["rates"] = rates;
    }
    let seed: Seed = serde_json::from_value(seed).expect("seed");
    Simulator::start(&seed, "127.0.0.1:0".parse().expect("addr")).await.expect("sim")
}

fn identity(sim: &Simulator, name: &str) -> String {
    format!("{}/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}?{IDENTITY_API}", sim.url)
}

async fn create(sim: &Simulator, name: &str) -> reqwest::Response {
    reqwest::Client::new().put(identity(sim, name)).bearer_auth(TOKEN).json(&json!({"location": "eastus"})).send().await.expect("PUT")
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

#[tokio::test]
async fn the_write_budget_counts_down_and_an_empty_one_answers_429_with_retry_after() {
    let sim = simulator(json!({"writes": {"size": 3, "perSecond": 0.01}})).await;
    let mut left = Vec::new();
    for i in 0..3 {
        let response = create(&sim, &format!("id-{i}")).await;
        assert_eq!(response.status(), 201);
        left.push(header(&response, "x-ms-ratelimit-remaining-subscription-writes").expect("the remaining writes"));
    }
    assert_eq!(left, ["2", "1", "0"], "what ARM says is left");

    let refused = create(&sim, "id-3").await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = header(&refused, "retry-after").expect("Retry-After").parse().expect("seconds");
    assert_eq!(retry_after, 100, "one token at 0.01 a second");
    let body: Value = refused.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "SubscriptionRequestsThrottled");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("Number of 'write' requests for subscription 's'")), "{body}");

    // The refused PUT created nothing; reads have their own budget.
    let read = reqwest::Client::new().get(identity(&sim, "id-3")).bearer_auth(TOKEN).send().await.expect("GET");
    assert_eq!(read.status(), 404);
    assert!(header(&read, "x-ms-ratelimit-remaining-subscription-reads").is_some());
}

#[tokio::test]
async fn identity_creates_have_a_budget_of_their_own_that_updates_do_not_spend() {
    let sim = simulator(json!({"identityCreates": {"size": 2, "perSecond": 0.01}})).await;
    assert_eq!(create(&sim, "app-a").await.status(), 201);
    assert_eq!(create(&sim, "app-b").await.status(), 201);
    let refused = create(&sim, "app-c").await;
    assert_eq!(refused.status(), 429);
    assert!(header(&refused, "retry-after").is_some());
    let body: Value = refused.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "TooManyRequests", "{body}");
    // Updating an identity that exists is not a create.
    assert_eq!(create(&sim, "existing").await.status(), 200);
}

#[tokio::test]
async fn a_scale_set_takes_a_burst_of_updates_then_compute_refuses_in_its_own_shape() {
    let sim = simulator(Value::Null).await;
    let pool = format!("{}/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/pool?{COMPUTE_API}", sim.url);
    let http = reqwest::Client::new();
    let mut counts = Vec::new();
    // Azure's own numbers: a burst of 12 updates a scale set.
    for _ in 0..12 {
        let response = http.patch(&pool).bearer_auth(TOKEN).json(&json!({"tags": {"k": "v"}})).send().await.expect("PATCH");
        assert_eq!(response.status(), 200, "{:?}", response.text().await);
        counts.push(header(&response, "x-ms-ratelimit-remaining-resource").expect("Compute's remaining count"));
        // Each update is a long-running operation; the next waits for it, as in Azure.
        poll_until_idle(&http, &pool).await;
    }
    assert_eq!(counts.first().map(String::as_str), Some("Microsoft.Compute/VMScaleSetUpdate;11"));
    assert_eq!(counts.last().map(String::as_str), Some("Microsoft.Compute/VMScaleSetUpdate;0"));
    let refused = http.patch(&pool).bearer_auth(TOKEN).json(&json!({"tags": {"k": "v"}})).send().await.expect("PATCH");
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = header(&refused, "retry-after").expect("Retry-After").parse().expect("seconds");
    assert_eq!(retry_after, 15, "4 updates a minute");
    let body: Value = refused.json().await.expect("JSON");
    assert_eq!(body["code"], "OperationNotAllowed", "Compute's error is not wrapped: {body}");
    assert_eq!(body["details"][0]["code"], "TooManyRequests");
}

async fn poll_until_idle(http: &reqwest::Client, pool: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let body: Value = http.get(pool).bearer_auth(TOKEN).send().await.expect("GET").json().await.expect("JSON");
        if body["properties"]["provisioningState"] == "Succeeded" {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "the update did not finish");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn assigning_identities_spends_the_regions_assignment_budget_by_the_identities_added() {
    let sim = simulator(json!({"identityAssignments": {"size": 2, "perSecond": 0.01}})).await;
    let pool = format!("{}/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/pool?{COMPUTE_API}", sim.url);
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for name in ["app-a", "app-b", "app-c"] {
        assert_eq!(create(&sim, name).await.status(), 201);
        ids.push(format!("/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"));
    }
    let attach = |names: &[String]| {
        let entries: serde_json::Map<String, Value> = names.iter().map(|id| (id.clone(), json!({}))).collect();
        json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": entries}})
    };
    let admitted = http.patch(&pool).bearer_auth(TOKEN).json(&attach(&ids[..2])).send().await.expect("PATCH");
    assert_eq!(admitted.status(), 200, "two identities, two tokens");
    poll_until_idle(&http, &pool).await;
    // The two already there cost nothing again; the third finds the budget spent.
    let refused = http.patch(&pool).bearer_auth(TOKEN).json(&attach(&ids)).send().await.expect("PATCH");
    assert_eq!(refused.status(), 429, "a third identity, no token");
    let body: Value = refused.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "TooManyRequests", "{body}");
    let state: Value = http.get(&pool).bearer_auth(TOKEN).send().await.expect("GET").json().await.expect("JSON");
    assert_eq!(state["identity"]["userAssignedIdentities"].as_object().map(|o| o.len()), Some(2), "nothing more attached: {state}");
}

#[tokio::test]
async fn rates_turned_off_refuse_nothing() {
    let sim = simulator(json!({"enabled": false, "writes": {"size": 1, "perSecond": 0.01}})).await;
    for i in 0..5 {
        assert_eq!(create(&sim, &format!("id-{i}")).await.status(), 201);
    }
}

#[tokio::test]
async fn a_subscriptions_global_bucket_is_shared_by_every_principal_and_tenant_requests_have_their_own() {
    // Each principal may write 4 at once; the subscription's global bucket holds twice
    // that, shared: the third principal finds it empty with its own bucket full.
    let seed: Seed = serde_json::from_value(json!({
        "subscriptions": [{"id": "s", "resourceGroups": [{"name": "rg"}]}],
        "clients": [
            {"clientId": "a", "staticTokens": ["token-a"]},
            {"clientId": "b", "staticTokens": ["token-b"]},
            {"clientId": "c", "staticTokens": ["token-c"]},
        ],
        "rates": {"writes": {"size": 4, "perSecond": 0.01}, "subscriptionGlobalMultiple": 2, "tenantReads": {"size": 2, "perSecond": 0.01}},
    }))
    .expect("seed");
    let sim = Simulator::start(&seed, "127.0.0.1:0".parse().expect("addr")).await.expect("sim");
    let http = reqwest::Client::new();
    let put = |token: &'static str, name: String| {
        http.put(format!("{}/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}?{IDENTITY_API}", sim.url))
            .bearer_auth(token)
            .json(&json!({"location": "eastus"}))
            .send()
    };
    for token in ["token-a", "token-b"] {
        for i in 0..4 {
            assert_eq!(put(token, format!("{token}-{i}")).await.expect("PUT").status(), 201);
        }
    }
    let refused = put("token-c", "c-0".to_owned()).await.expect("PUT");
    assert_eq!(refused.status(), 429, "the subscription's global bucket is empty");
    let body: Value = refused.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "SubscriptionRequestsThrottled");
    assert!(!body["error"]["message"].as_str().unwrap_or_default().contains("actor"), "every principal's bucket: {body}");

    // The subscription list is the tenant's, per principal.
    let list = || http.get(format!("{}/subscriptions?api-version=2022-12-01", sim.url)).bearer_auth("token-a").send();
    let first = list().await.expect("GET");
    assert_eq!(header(&first, "x-ms-ratelimit-remaining-tenant-reads").as_deref(), Some("1"));
    list().await.expect("GET");
    let throttled = list().await.expect("GET");
    assert_eq!(throttled.status(), 429);
    let body: Value = throttled.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "TenantRequestsThrottled");
}
