//! BindingPolicies across namespaces: default deny with no Azure call, each part of a
//! binding refused by name, a policy that arrives or widens later allowing bindings without
//! a restart, and a policy that narrows revoking what kvbind had done, per deletion policy.

use kvbind_e2e::TestNamespace;
use kvbind_e2e::operator::{SUBSCRIPTION, Scenario, seed};
use kvbind_e2e::world::{binding, class, cluster, namespace_policy as policy, perms, policy_of, uami};

const VAULT: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-vaults/providers/Microsoft.KeyVault/vaults/kvname";

/// `yaml` with the run's label, which is how this test's operator picks its bindings.
fn labelled(yaml: &str, run: &str) -> String {
    yaml.replacen("metadata:\n  name:", &format!("metadata:\n  labels: {{kvbind.io/run: {run}}}\n  name:"), 1)
}

fn apply(ns: &TestNamespace, yaml: &str) {
    let out = ns.kubectl_apply(yaml);
    assert!(out.status.success(), "kubectl apply failed: {}", String::from_utf8_lossy(&out.stderr));
}

async fn wait_for(ns: &TestNamespace, name: &str, condition: &str) {
    let out = ns.kubectl_off_runtime(&["wait", &format!("--for={condition}"), &format!("identitybinding/{name}"), "--timeout=60s"]).await;
    assert!(
        out.status.success(),
        "{}/{name} never met {condition}: {}\n{}",
        ns.name,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&ns.kubectl(&["get", "identitybinding", name, "-o", "yaml"]).stdout)
    );
}

fn ready_message(ns: &TestNamespace, name: &str) -> String {
    let out = ns.kubectl(&["get", "identitybinding", name, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].message}"]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const REFUSED: &str = "jsonpath={.status.conditions[?(@.type==\"Ready\")].reason}=NotAllowedByPolicy";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_decide_which_bindings_converge_and_revoke_what_they_no_longer_allow() {
    let a = TestNamespace::unpoliced("pol-a").await;
    let run = a.name.clone();
    let client = a.client.clone();
    let s = Scenario::start_in(a, client, seed(&cluster(&["pool-a-vmss", "pool-b-vmss"], &[], false)), |config| {
        config.namespace = None;
        config.binding_selector = Some(format!("kvbind.io/run={run}"));
    })
    .await;
    let (b, c) = (TestNamespace::unpoliced("pol-b").await, TestNamespace::unpoliced("pol-c").await);
    s.node("pool-a", &Scenario::vmss_node("pool-a-vmss", 0), &[("pool", "a")]).await;
    s.node("pool-b", &Scenario::vmss_node("pool-b-vmss", 0), &[("pool", "b")]).await;
    for ns in [&s.ns, &b, &c] {
        apply(ns, &class("app", &[("db-password", "secret", 0)]));
        apply(ns, &class("keys", &[("signing", "key", 0)]));
    }
    apply(&s.ns, &class("elsewhere", &[("db-password", "secret", 0)]).replace("keyvaultName: kvname", "keyvaultName: otherkv"));

    // Default deny: no policy selects these namespaces, and Azure hears nothing of it.
    apply(&s.ns, &labelled(&binding("a-app", "a-reader", &["app"], ""), &run));
    wait_for(&s.ns, "a-app", REFUSED).await;
    assert!(ready_message(&s.ns, "a-app").contains(&format!("no BindingPolicy selects namespace {}", s.ns.name)));
    let counters = s.sim.counters();
    assert_eq!((counters.reads, counters.writes), (0, 0), "a refused binding costs no Azure call: {counters:?}");

    // A policy arrives: the waiting binding converges without a restart.
    let (pa, pb, pc) = (format!("{run}-a"), format!("{run}-b"), format!("{run}-c"));
    let rg = format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-identities");
    apply(&s.ns, &policy(&pa, &s.ns.name, &format!("  identityResourceGroups: [{rg}]\n  vaults: [{VAULT}]\n  modes: [VMManagedIdentity]\n")));
    // b: pool b only, and sharing across namespaces only when `sharing`.
    let b_policy = |sharing: bool| {
        let vaults = format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-vaults");
        let spec = format!(
            "  identityResourceGroups: [{rg}]\n  vaults: [{vaults}]\n  nodeSelectors:\n    - matchLabels: {{pool: b}}\n  allowCrossNamespaceSharing: {sharing}\n"
        );
        policy(&pb, &b.name, &spec)
    };
    apply(&s.ns, &b_policy(false));
    apply(&s.ns, &policy(&pc, &c.name, &format!("  identityResourceGroups: [{rg}]\n  vaults: [/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-elsewhere]\n")));
    wait_for(&s.ns, "a-app", "condition=Ready").await;

    // Each part of a binding is checked, and the refusal names it and the policy.
    let on_pool_b = "  nodes:\n    matchLabels: {pool: b}\n";
    let adopt = format!(
        "apiVersion: kvbind.io/v1alpha1\nkind: IdentityBinding\nmetadata:\n  name: a-adopt\nspec:\n  identity:\n    resourceId: {}\n  secretProviderClasses:\n    names: [app]\n",
        uami("rg-identities", "team-foreign")
    );
    let cases: Vec<(&TestNamespace, &str, String, String)> = vec![
        (
            &s.ns,
            "a-group",
            binding("a-group", "a-group-reader", &["app"], "").replace("resourceGroup: rg-identities", "resourceGroup: rg-other"),
            "spec.identity.resourceGroup".into(),
        ),
        (
            &s.ns,
            "a-wi",
            binding("a-wi", "a-wi-reader", &["app"], "  mode: WorkloadIdentity\n  serviceAccount: {name: app}\n"),
            "spec.mode WorkloadIdentity".into(),
        ),
        (&s.ns, "a-vault", binding("a-vault", "a-vault-reader", &["elsewhere"], ""), "keyvaultName otherkv is outside its vaults".into()),
        (&s.ns, "a-adopt", adopt, "adoptableIdentities".into()),
        (&b, "b-all-nodes", binding("b-all-nodes", "b-all-reader", &["app"], ""), format!("spec.nodes selects node {}-pool-a", s.ns.name)),
        (&b, "b-shared", binding("b-shared", "a-reader", &["keys"], on_pool_b), format!("already used by binding {}/a-app", s.ns.name)),
        (&c, "c-app", binding("c-app", "c-reader", &["app"], ""), format!("vault {VAULT} is outside spec.vaults")),
    ];
    for (ns, _, yaml, _) in &cases {
        apply(ns, &labelled(yaml, &run));
    }
    apply(&b, &labelled(&binding("b-app", "b-reader", &["app"], on_pool_b), &run));
    for (ns, name, _, words) in &cases {
        wait_for(ns, name, REFUSED).await;
        let message = ready_message(ns, name);
        assert!(message.contains(words.as_str()), "{name}: {message} (should name {words})");
        let policy = if ns.name == s.ns.name {
            &pa
        } else if ns.name == b.name {
            &pb
        } else {
            &pc
        };
        assert!(message.contains(&format!("BindingPolicy {policy}")), "{name}: {message}");
        let stalled = ns.kubectl(&["get", "identitybinding", name, "-o", "jsonpath={.status.conditions[?(@.type==\"Stalled\")].status}"]);
        assert_eq!(String::from_utf8_lossy(&stalled.stdout), "True", "{name} is Stalled for kstatus");
    }
    wait_for(&b, "b-app", "condition=Ready").await;
    for identity in ["a-group-reader", "a-wi-reader", "a-vault-reader", "b-all-reader"] {
        let touched: Vec<_> = s.sim.requests().into_iter().filter(|r| r.path.to_ascii_lowercase().contains(identity)).collect();
        assert!(touched.is_empty(), "Azure was asked about {identity}, which no policy allows: {touched:?}");
    }
    let on_pool_a = kvbind_e2e::world::identities_on(&s.sim, "pool-a-vmss");
    assert!(!on_pool_a.iter().any(|k| k.contains("b-reader")), "b-app reached a pool its policy excludes");

    // Sharing across namespaces, once both sides' policies allow it: the joiner's alone is
    // not enough, the identity is the first namespace's.
    apply(&s.ns, &b_policy(true));
    s.eventually("b-shared to be told a's namespace has not agreed", |_| ready_message(&b, "b-shared").contains("both sides' consent")).await;
    apply(
        &s.ns,
        &policy(
            &pa,
            &s.ns.name,
            &format!("  identityResourceGroups: [{rg}]\n  vaults: [{VAULT}]\n  modes: [VMManagedIdentity]\n  allowCrossNamespaceSharing: true\n"),
        ),
    );
    wait_for(&b, "b-shared", "condition=Ready").await;

    // Narrowing a-policy revokes: Delete removes what kvbind made, Retain keeps it, and a
    // shared identity keeps what its other binding still needs.
    // Each with a class of its own: a class carries one identity.
    apply(&s.ns, &class("solo", &[("db-password", "secret", 0)]));
    apply(&s.ns, &class("kept", &[("db-password", "secret", 0)]));
    apply(&s.ns, &labelled(&binding("a-solo", "a-solo-reader", &["solo"], ""), &run));
    apply(&s.ns, &labelled(&binding("a-kept", "a-kept-reader", &["kept"], "  deletionPolicy: Retain\n"), &run));
    for name in ["a-solo", "a-kept"] {
        wait_for(&s.ns, name, "condition=Ready").await;
    }
    let principal = |name: &str| s.jsonpath(&format!("identitybinding/{name}"), "{.status.identity.principalId}");
    let (solo, kept, shared) = (principal("a-solo"), principal("a-kept"), principal("a-app"));
    // Still agreeing to share, so b-shared keeps its part.
    apply(
        &s.ns,
        &policy(
            &pa,
            &s.ns.name,
            &format!("  identityResourceGroups: [{rg}]\n  vaults: [{VAULT}]\n  modes: [WorkloadIdentity]\n  allowCrossNamespaceSharing: true\n"),
        ),
    );
    for name in ["a-app", "a-solo", "a-kept"] {
        wait_for(&s.ns, name, REFUSED).await;
    }
    let identities = s.sim.snapshot()["identities"].clone();
    let has = |name: &str| identities.as_object().is_some_and(|m| m.values().any(|i| i["name"] == name));
    assert!(!has("a-solo-reader"), "Delete: the identity kvbind created is gone");
    assert!(policy_of(&s.sim, &solo).is_none(), "Delete: its grant is gone");
    assert!(has("a-kept-reader") && perms(&policy_of(&s.sim, &kept), "secrets") == ["get"], "Retain keeps the identity and grant");
    let shared_entry = policy_of(&s.sim, &shared);
    assert_eq!(
        (perms(&shared_entry, "secrets"), perms(&shared_entry, "keys")),
        (vec![], vec!["get".to_owned()]),
        "b-shared still needs its key, a-app's secret goes"
    );
    s.eventually("an AccessRevoked event", |s| s.event_reasons("a-solo").iter().any(|r| r == "AccessRevoked")).await;
    assert!(kvbind_e2e::world::identities_on(&s.sim, "pool-a-vmss").iter().all(|k| !k.contains("a-solo-reader")), "detached from its pool");
    for name in [&pa, &pb, &pc] {
        let _ = s.ns.kubectl(&["delete", "bindingpolicy", name]);
    }
    s.stop().await;
}
