//! The real ARM client, through the azure_mgmt crates and a real credential flow, against
//! the ARM simulator: every operation of the port.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use kvbind_arm_sim::{Fault, FaultRule, Seed, Simulator};
use kvbind_azure::client::http_client;
use kvbind_azure::model::{AccessPolicy, AccessPolicyOp, IdentityChange, Permissions, RoleAssignment};
use kvbind_azure::roles::{KEY_VAULT_SECRETS_USER, assignment_name};
use kvbind_azure::{
    Arm, ArmClient, ArmClientConfig, AzureError, ComputeId, CredentialConfig, IdentityId, LroSettings, ResourceKind, VaultId, build_credential,
};

const SUB: &str = "00000000-0000-0000-0000-000000000001";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

fn seed(actions: &[&str]) -> Seed {
    let actions: Vec<String> = actions.iter().map(|a| format!("\"{a}\"")).collect();
    Seed::from_yaml(&format!(
        r#"
tenantId: {TENANT}
lro: {{durationMs: 300, retryAfterSeconds: 0}}
pageSize: 2
clients:
  - clientId: kvbind-operator
    secret: not-a-real-secret
    federated: true
    actions: [{}]
subscriptions:
  - id: {SUB}
    resourceGroups:
      - name: rg-identities
        identities: [{{name: foreign}}]
      - name: MC_rg_aks_eastus
        scaleSets:
          - name: aks-pool1-vmss
            systemAssigned: true
            userAssigned: ["/subscriptions/{SUB}/resourcegroups/rg-identities/providers/Microsoft.ManagedIdentity/userAssignedIdentities/foreign"]
        virtualMachines:
          - name: aks-avset-0
      - name: rg-vaults
        vaults:
          - name: kv-policies
            accessPolicies:
              - {{tenantId: {TENANT}, objectId: someone-else, permissions: {{secrets: [get, list, set]}}}}
          - name: kv-rbac
            rbac: true
          - name: kv-three
          - name: kv-four
"#,
        actions.join(", ")
    ))
    .expect("seed parses")
}

async fn client(sim: &Simulator, credential: CredentialConfig) -> ArmClient {
    let endpoint: url::Url = sim.url.parse().expect("url");
    let http = http_client(None, Duration::from_secs(10)).expect("http");
    let credential = build_credential(&credential, &endpoint, http);
    let config = ArmClientConfig {
        endpoint: endpoint.clone(),
        scope: format!("{}/.default", sim.url),
        extra_ca: None,
        request_timeout: Duration::from_secs(10),
        lro: LroSettings { poll_interval: Duration::from_millis(100), max_poll_interval: Duration::from_secs(1), deadline: Duration::from_secs(20) },
        observer: None,
        fence: None,
        pacing: kvbind_azure::PacingSettings::default(),
    };
    ArmClient::new(&config, credential).expect("client")
}

fn secret_credential() -> CredentialConfig {
    CredentialConfig::ClientSecret { tenant_id: TENANT.into(), client_id: "kvbind-operator".into(), secret: "not-a-real-secret".into() }
}

fn identity(rg: &str, name: &str) -> IdentityId {
    IdentityId::new(ResourceKind::UserAssignedIdentity, SUB, rg, name).expect("id")
}

fn compute(kind: ResourceKind, rg: &str, name: &str) -> ComputeId {
    ComputeId::new(kind, SUB, rg, name).expect("id")
}

fn vault_id(rg: &str, name: &str) -> VaultId {
    VaultId::new(ResourceKind::Vault, SUB, rg, name).expect("id")
}

async fn sim(actions: &[&str]) -> Simulator {
    Simulator::start(&seed(actions), "127.0.0.1:0".parse().expect("addr")).await.expect("simulator")
}

#[tokio::test]
async fn identities_create_read_and_delete() {
    let sim = sim(&["*"]).await;
    let arm = client(&sim, secret_credential()).await;
    let uami = identity("rg-identities", "app-reader");
    assert_eq!(arm.get_identity(&uami).await.expect("get"), None);
    let tags = BTreeMap::from([("kvbind.io-created-by".to_owned(), "kvbind".to_owned())]);
    let created = arm.create_or_update_identity(&uami, "eastus", &tags).await.expect("create");
    assert_eq!(created.tags, tags);
    assert!(uuid::Uuid::parse_str(&created.client_id).is_ok() && uuid::Uuid::parse_str(&created.principal_id).is_ok());
    let again = arm.create_or_update_identity(&uami, "eastus", &tags).await.expect("update");
    assert_eq!(again.principal_id, created.principal_id, "a repeat PUT keeps the principal");
    assert_eq!(arm.get_identity(&uami).await.expect("get"), Some(created));
    arm.delete_identity(&uami).await.expect("delete");
    arm.delete_identity(&uami).await.expect("deleting twice succeeds");
    assert_eq!(arm.get_identity(&uami).await.expect("get"), None);
    let counters = sim.counters();
    assert_eq!(counters.by_operation.get("UserAssignedIdentities_CreateOrUpdate"), Some(&2));
    assert_eq!(counters.tokens, 1, "the token is fetched once and reused");
}

#[tokio::test]
async fn missing_resource_group_is_not_mistaken_for_a_missing_identity() {
    let sim = sim(&["*"]).await;
    let arm = client(&sim, secret_credential()).await;
    let err = arm.get_identity(&identity("no-such-rg", "x")).await.expect_err("rg missing");
    assert!(matches!(&err, AzureError::NotFound { code, .. } if code == "ResourceGroupNotFound"), "{err:?}");
}

#[tokio::test]
async fn attach_and_detach_keep_system_and_foreign_identities() {
    let sim = sim(&["*"]).await;
    let arm = client(&sim, secret_credential()).await;
    let uami = identity("rg-identities", "app-reader");
    arm.create_or_update_identity(&uami, "eastus", &BTreeMap::new()).await.expect("create");
    let vmss = compute(ResourceKind::VirtualMachineScaleSet, "MC_rg_aks_eastus", "aks-pool1-vmss");

    let before = arm.get_compute_identity(&vmss).await.expect("read");
    assert!(before.system_assigned);
    assert_eq!(before.user_assigned().len(), 1, "the foreign identity is read, not dropped");

    let add = IdentityChange { add: BTreeSet::from([std::sync::Arc::new(uami.clone())]), remove: BTreeSet::new() };
    let after = arm.update_compute_identities(&vmss, &before, &add).await.expect("attach");
    assert!(after.system_assigned && after.has(&uami) && after.user_assigned().len() == 2, "{after:?}");

    let polls = sim.counters().by_operation.get("Operations_Get").copied().unwrap_or(0);
    assert!(polls >= 1, "the long-running operation was polled to its end");

    let remove = IdentityChange { add: BTreeSet::new(), remove: BTreeSet::from([std::sync::Arc::new(uami.clone())]) };
    let last = arm.update_compute_identities(&vmss, &after, &remove).await.expect("detach");
    assert_eq!(last, before);
    for state in sim.history() {
        if state.resource.contains("aks-pool1-vmss") {
            assert!(state.system_assigned && state.user_assigned.iter().any(|u| u.ends_with("/foreign")), "{state:?}");
        }
    }

    let vm = compute(ResourceKind::VirtualMachine, "MC_rg_aks_eastus", "aks-avset-0");
    let bare = arm.get_compute_identity(&vm).await.expect("read vm");
    let on_vm = arm.update_compute_identities(&vm, &bare, &add).await.expect("attach vm");
    assert!(!on_vm.system_assigned && on_vm.has(&uami));
    let off = arm.update_compute_identities(&vm, &on_vm, &remove).await.expect("detach vm");
    assert_eq!(off, bare);
}

#[tokio::test]
async fn throttling_and_conflicts_come_back_with_the_server_delay() {
    let sim = sim(&["*"]).await;
    let arm = client(&sim, secret_credential()).await;
    let vmss = compute(ResourceKind::VirtualMachineScaleSet, "MC_rg_aks_eastus", "aks-pool1-vmss");
    sim.set_faults(vec![
        FaultRule { operation: "VirtualMachineScaleSets_Get".into(), path_contains: None, fault: Fault::Throttle { retry_after_seconds: 1 }, count: Some(1) },
        FaultRule { operation: "VirtualMachineScaleSets_Update".into(), path_contains: None, fault: Fault::Conflict, count: Some(1) },
    ]);
    let err = arm.get_compute_identity(&vmss).await.expect_err("throttled");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(1)), "{err:?}");
    assert!(matches!(err, AzureError::Throttled { .. }));
    assert_eq!(sim.counters().reads, 1, "no retry inside the call");
    let early = arm.get_compute_identity(&vmss).await.expect_err("too early");
    assert!(early.retry_after().is_some_and(|d| d <= Duration::from_secs(1)), "{early:?}");
    assert_eq!(sim.counters().reads, 1, "nothing is sent before Retry-After has passed");
    // Honouring the server's delay is the behaviour under test here.
    tokio::time::sleep(early.retry_after().unwrap_or_default()).await;
    let current = arm.get_compute_identity(&vmss).await.expect("after the delay");

    let uami = identity("rg-identities", "foreign");
    let other = arm.create_or_update_identity(&identity("rg-identities", "extra-one"), "eastus", &BTreeMap::new()).await.expect("create");
    let change = IdentityChange { add: BTreeSet::from([std::sync::Arc::new(other.id.clone())]), remove: BTreeSet::new() };
    let err = arm.update_compute_identities(&vmss, &current, &change).await.expect_err("conflict");
    assert!(matches!(err, AzureError::Conflict { .. }) && err.retry_after().is_some(), "{err:?}");
    let done = arm.update_compute_identities(&vmss, &current, &change).await.expect("retried");
    assert!(done.has(&uami) && done.has(&other.id));
}

#[tokio::test]
async fn a_failed_operation_is_reported_and_leaves_the_scale_set_as_it_was() {
    let sim = sim(&["*"]).await;
    let arm = client(&sim, secret_credential()).await;
    let vmss = compute(ResourceKind::VirtualMachineScaleSet, "MC_rg_aks_eastus", "aks-pool1-vmss");
    let uami = arm.create_or_update_identity(&identity("rg-identities", "extra-two"), "eastus", &BTreeMap::new()).await.expect("create");
    sim.set_faults(vec![FaultRule { operation: "VirtualMachineScaleSets_Update".into(), path_contains: None, fault: Fault::LroFail, count: Some(1) }]);
    let current = arm.get_compute_identity(&vmss).await.expect("read");
    let change = IdentityChange { add: BTreeSet::from([std::sync::Arc::new(uami.id.clone())]), remove: BTreeSet::new() };
    let err = arm.update_compute_identities(&vmss, &current, &change).await.expect_err("failed");
    assert!(err.is_retryable(), "{err:?}");
    assert!(!arm.get_compute_identity(&vmss).await.expect("read").has(&uami.id));
}

#[tokio::test]
async fn vault_access_policies_touch_only_our_entry() {
    let sim = sim(&["*"]).await;
    let arm = client(&sim, secret_credential()).await;
    let vault = vault_id("rg-vaults", "kv-policies");
    let read = arm.get_vault(&vault).await.expect("vault");
    assert!(!read.rbac_authorization, "absent enableRbacAuthorization reads as false");
    assert_eq!(read.tenant_id, TENANT);
    let ours = AccessPolicy {
        tenant_id: TENANT.into(),
        object_id: "our-principal".into(),
        permissions: Permissions { secrets: BTreeSet::from(["get".into()]), keys: BTreeSet::from(["get".into()]), ..Permissions::default() },
    };
    arm.update_access_policy(&vault, AccessPolicyOp::Add, std::slice::from_ref(&ours)).await.expect("add");
    let read = arm.get_vault(&vault).await.expect("vault");
    assert_eq!(read.access_policies.len(), 2);
    assert!(read.access_policies.contains(&ours));
    arm.update_access_policy(&vault, AccessPolicyOp::Remove, std::slice::from_ref(&ours)).await.expect("remove");
    let read = arm.get_vault(&vault).await.expect("vault");
    assert_eq!(read.access_policies.len(), 1);
    assert_eq!(read.access_policies[0].object_id, "someone-else");

    assert!(arm.get_vault(&vault_id("rg-vaults", "kv-rbac")).await.expect("rbac").rbac_authorization);
    let found = arm.find_vault(SUB, "KV-FOUR").await.expect("list pages");
    assert_eq!(found.map(|v| v.name.clone()), Some("kv-four".to_owned()), "found on the second page");
    assert_eq!(arm.find_vault(SUB, "nope").await.expect("list"), None);
}

#[tokio::test]
async fn role_assignments_are_idempotent_and_deletes_tolerate_204() {
    let sim = sim(&["*"]).await;
    let arm = client(&sim, secret_credential()).await;
    let uami = arm.create_or_update_identity(&identity("rg-identities", "reader"), "eastus", &BTreeMap::new()).await.expect("create");
    let scope = format!("{}/secrets/db-password", vault_id("rg-vaults", "kv-rbac"));
    let wanted = RoleAssignment {
        name: assignment_name(&scope, &uami.principal_id, KEY_VAULT_SECRETS_USER),
        scope: scope.clone(),
        role_definition: KEY_VAULT_SECRETS_USER.into(),
        principal_id: uami.principal_id.clone(),
    };
    assert_eq!(arm.create_role_assignment(&wanted).await.expect("create"), wanted);
    assert_eq!(arm.create_role_assignment(&wanted).await.expect("again"), wanted);
    let mut renamed = wanted.clone();
    renamed.name = uuid::Uuid::new_v4().to_string();
    assert_eq!(arm.create_role_assignment(&renamed).await.expect("adopts the existing one"), wanted);
    assert_eq!(arm.list_role_assignments(&scope, &uami.principal_id).await.expect("list"), vec![wanted.clone()]);
    arm.delete_role_assignment(&scope, &wanted.name).await.expect("delete");
    arm.delete_role_assignment(&scope, &wanted.name).await.expect("204 is success");
    assert!(arm.list_role_assignments(&scope, &uami.principal_id).await.expect("list").is_empty());
}

#[tokio::test]
async fn a_fresh_principal_is_reported_as_not_yet_replicated() {
    let sim = sim(&["*"]).await;
    let arm = client(&sim, secret_credential()).await;
    let uami = arm.create_or_update_identity(&identity("rg-identities", "fresh"), "eastus", &BTreeMap::new()).await.expect("create");
    sim.set_faults(vec![FaultRule { operation: "*".into(), path_contains: None, fault: Fault::PrincipalReplicationDelay { seconds: 30 }, count: None }]);
    let scope = vault_id("rg-vaults", "kv-rbac").to_string();
    let wanted = RoleAssignment {
        name: assignment_name(&scope, &uami.principal_id, KEY_VAULT_SECRETS_USER),
        scope,
        role_definition: KEY_VAULT_SECRETS_USER.into(),
        principal_id: uami.principal_id.clone(),
    };
    let err = arm.create_role_assignment(&wanted).await.expect_err("not replicated");
    assert!(matches!(err, AzureError::PrincipalNotReplicated { .. }) && err.is_retryable(), "{err:?}");
}

#[tokio::test]
async fn a_missing_permission_names_the_action() {
    let sim = sim(&["Microsoft.ManagedIdentity/*", "Microsoft.Compute/*/read"]).await;
    let arm = client(&sim, secret_credential()).await;
    let err = arm.get_vault(&vault_id("rg-vaults", "kv-rbac")).await.expect_err("forbidden");
    assert!(matches!(&err, AzureError::Forbidden { action: Some(a), .. } if a == "Microsoft.KeyVault/vaults/read"), "{err:?}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn workload_identity_rereads_the_token_file_and_bad_secrets_are_refused() {
    let sim = sim(&["*"]).await;
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), "projected-service-account-token").expect("write");
    let arm =
        client(&sim, CredentialConfig::WorkloadIdentity { tenant_id: TENANT.into(), client_id: "kvbind-operator".into(), token_file: file.path().to_owned() })
            .await;
    arm.get_vault(&vault_id("rg-vaults", "kv-rbac")).await.expect("federated token works");

    let wrong = client(&sim, CredentialConfig::ClientSecret { tenant_id: TENANT.into(), client_id: "kvbind-operator".into(), secret: "wrong".into() }).await;
    let err = wrong.get_vault(&vault_id("rg-vaults", "kv-rbac")).await.expect_err("refused");
    assert!(matches!(err, AzureError::Unauthenticated { .. }), "{err:?}");

    let stranger = client(&sim, CredentialConfig::StaticToken("made-up".into())).await;
    let err = stranger.get_vault(&vault_id("rg-vaults", "kv-rbac")).await.expect_err("401");
    assert!(matches!(err, AzureError::Unauthenticated { .. }), "{err:?}");
}

#[tokio::test]
async fn https_with_a_private_ca_and_a_managed_identity_from_imds() {
    let mut seed = seed(&["*"]);
    seed.clients.push(
        serde_json::from_value(serde_json::json!({"clientId": "kvbind-uami", "managedIdentity": true, "actions": ["Microsoft.KeyVault/*"]})).expect("client"),
    );
    let sim = Simulator::start_tls(&seed, "127.0.0.1:0".parse().expect("addr")).await.expect("TLS simulator");
    assert!(sim.url.starts_with("https://"));
    let ca = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(ca.path(), sim.ca_pem().expect("a CA")).expect("write");

    let endpoint: url::Url = sim.url.parse().expect("url");
    let http = http_client(Some(&ca.path().to_owned()), Duration::from_secs(10)).expect("http");
    let imds = format!("{}/metadata/identity/oauth2/token", sim.url).parse().expect("url");
    let credential = build_credential(&CredentialConfig::ManagedIdentity { client_id: Some("kvbind-uami".into()), endpoint: imds }, &endpoint, http);
    let config = ArmClientConfig {
        endpoint,
        scope: format!("{}/.default", sim.url),
        extra_ca: Some(ca.path().to_owned()),
        request_timeout: Duration::from_secs(10),
        lro: LroSettings::default(),
        observer: None,
        fence: None,
        pacing: kvbind_azure::PacingSettings::default(),
    };
    let arm = ArmClient::new(&config, credential).expect("client");
    assert!(arm.get_vault(&vault_id("rg-vaults", "kv-rbac")).await.expect("vault over HTTPS").rbac_authorization);
    let err = arm.get_identity(&identity("rg-identities", "foreign")).await.expect_err("this identity may only read vaults");
    assert!(matches!(err, AzureError::Forbidden { .. }), "{err:?}");

    let untrusting = ArmClient::new(
        &ArmClientConfig { extra_ca: None, ..config },
        build_credential(&CredentialConfig::StaticToken("x".into()), &sim.url.parse().expect("url"), http_client(None, Duration::from_secs(5)).expect("http")),
    )
    .expect("client");
    let err = untrusting.get_vault(&vault_id("rg-vaults", "kv-rbac")).await.expect_err("unknown CA");
    assert!(matches!(err, AzureError::Transient { .. }), "{err:?}");
}

/// A fence that allows writes until it is closed.
#[derive(Debug, Default)]
struct Switch(std::sync::atomic::AtomicBool);

impl kvbind_azure::client::WriteFence for Switch {
    fn may_write(&self) -> Result<(), String> {
        if self.0.load(std::sync::atomic::Ordering::SeqCst) { Err("the lease was lost".into()) } else { Ok(()) }
    }
}

#[tokio::test]
async fn a_closed_fence_stops_writes_but_not_reads() {
    let sim = sim(&["*"]).await;
    let endpoint: url::Url = sim.url.parse().expect("url");
    let fence = Arc::new(Switch::default());
    let config = ArmClientConfig {
        endpoint: endpoint.clone(),
        scope: format!("{}/.default", sim.url),
        extra_ca: None,
        request_timeout: Duration::from_secs(10),
        lro: LroSettings::default(),
        observer: None,
        fence: Some(fence.clone()),
        pacing: kvbind_azure::PacingSettings::default(),
    };
    let arm =
        ArmClient::new(&config, build_credential(&secret_credential(), &endpoint, http_client(None, Duration::from_secs(10)).expect("http"))).expect("client");
    let uami = identity("rg-identities", "app-reader");
    arm.create_or_update_identity(&uami, "eastus", &BTreeMap::new()).await.expect("an open fence lets writes through");
    fence.0.store(true, std::sync::atomic::Ordering::SeqCst);
    let refused = arm.delete_identity(&uami).await.expect_err("a closed fence refuses");
    assert!(refused.is_retryable() && refused.to_string().contains("the lease was lost"), "{refused}");
    assert!(arm.get_identity(&uami).await.expect("reads go on").is_some(), "the identity was not deleted");
    assert_eq!(sim.counters().by_operation.get("UserAssignedIdentities_Delete"), None, "the delete never reached ARM");
}

#[tokio::test]
async fn dropped_connections_are_transient_and_a_lost_answer_leaves_the_change_made() {
    let sim = sim(&["*"]).await;
    let arm = client(&sim, secret_credential()).await;
    let uami = identity("rg-identities", "app-reader");
    let rule = |operation: &str, fault| FaultRule { operation: operation.into(), path_contains: None, fault, count: Some(1) };
    sim.set_faults(vec![rule("UserAssignedIdentities_Get", Fault::Reset), rule("UserAssignedIdentities_CreateOrUpdate", Fault::ResponseLost)]);
    let reset = arm.get_identity(&uami).await.expect_err("a reset fails the call");
    assert!(matches!(reset, AzureError::Transient { .. }), "{reset:?}");
    let lost = arm.create_or_update_identity(&uami, "eastus", &BTreeMap::new()).await.expect_err("a lost answer fails the call");
    assert!(lost.is_retryable(), "{lost:?}");
    assert!(arm.get_identity(&uami).await.expect("get").is_some(), "the PUT took effect although its answer was lost");
}

#[tokio::test]
async fn federated_credentials_are_created_read_replaced_and_deleted() {
    let sim = sim(&["*"]).await;
    let arm = client(&sim, secret_credential()).await;
    let uami = identity("rg-identities", "app-reader");
    arm.create_or_update_identity(&uami, "eastus", &BTreeMap::new()).await.expect("identity");
    let credential = kvbind_azure::model::FederatedCredential {
        name: "kvbind-team-a-app".into(),
        issuer: "https://oidc.prod-aks.azure.com/tenant/issuer/".into(),
        subject: "system:serviceaccount:team-a:app".into(),
        audiences: vec![kvbind_azure::model::TOKEN_EXCHANGE_AUDIENCE.into()],
    };
    assert_eq!(arm.get_federated_credential(&uami, &credential.name).await.expect("get"), None);
    arm.put_federated_credential(&uami, &credential).await.expect("create");
    assert_eq!(arm.get_federated_credential(&uami, &credential.name).await.expect("get"), Some(credential.clone()));
    arm.put_federated_credential(&uami, &credential).await.expect("a repeat PUT replaces");
    let plain_http = kvbind_azure::model::FederatedCredential { name: "other".into(), issuer: "http://issuer".into(), ..credential.clone() };
    let refused = arm.put_federated_credential(&uami, &plain_http).await.expect_err("an HTTP issuer is refused");
    assert!(matches!(refused, AzureError::Invalid { .. }), "{refused:?}");
    arm.delete_federated_credential(&uami, &credential.name).await.expect("delete");
    arm.delete_federated_credential(&uami, &credential.name).await.expect("deleting twice succeeds");
    assert_eq!(arm.get_federated_credential(&uami, &credential.name).await.expect("get"), None);
}
