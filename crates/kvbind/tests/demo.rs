//! `kvbind demo`, the README's first command, run as a new user runs it: the same
//! binary and code path, its output captured and held to what the README promises.
//! If any example it applies is refused, or any binding is not Ready, it fails.

use std::process::Command;

/// One run of the demo for every assertion below: it starts its own control plane and
/// simulator, which takes a few seconds once the control plane is built.
fn run_demo() -> (bool, String, String) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(env!("CARGO_BIN_EXE_kvbind"))
        .args(["demo", "--root"])
        .arg(&root)
        // As many shells and CI images set it: it must not change what a user reads.
        .env("RUST_BACKTRACE", "1")
        .env_remove("RUST_LOG")
        .output()
        .expect("kvbind demo runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The lines of the section the demo heads with `==> {heading}`.
fn section<'a>(stdout: &'a str, heading: &str) -> Vec<&'a str> {
    let start = stdout.find(&format!("==> {heading}")).unwrap_or_else(|| panic!("no section {heading:?} in:\n{stdout}"));
    stdout[start..].lines().skip(1).take_while(|l| !l.starts_with("==> ")).filter(|l| !l.trim().is_empty()).collect()
}

#[test]
fn the_demo_ends_with_every_binding_ready_and_tells_what_it_did() {
    let (ok, stdout, stderr) = run_demo();
    assert!(ok, "kvbind demo failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
    assert!(!stderr.contains("Stack backtrace"), "{stderr}");

    // Every example applied: kubectl reports each object it made.
    let applied = section(&stdout, "applying");
    for object in [
        "bindingpolicy.kvbind.io/default",
        "identitybinding.kvbind.io/kvname-reader",
        "pod/busybox-secrets-store-inline-user-msi",
        "secretproviderclass.secrets-store.csi.x-k8s.io/azure-kvname-user-msi",
        "identitybinding.kvbind.io/payments",
    ] {
        assert!(applied.iter().any(|l| l.starts_with(object)), "{object} was not applied: {applied:#?}");
    }

    // `kubectl get identitybindings -o wide`: both bindings, Ready True, with a client ID.
    let table = section(&stdout, "kubectl get identitybindings");
    assert!(table[0].starts_with("NAME") && table[0].contains("READY") && table[0].contains("CLIENT ID"), "{table:#?}");
    let rows: Vec<Vec<&str>> = table[1..].iter().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.iter().map(|r| r[0]).collect::<Vec<_>>(), ["kvname-reader", "payments"], "{table:#?}");
    let mut client_ids = Vec::new();
    for row in &rows {
        assert_eq!(row[1], "True", "{} is not Ready: {table:#?}", row[0]);
        let client_id = row.iter().find(|w| uuid::Uuid::parse_str(w).is_ok()).unwrap_or_else(|| panic!("{} shows no client ID: {table:#?}", row[0]));
        client_ids.push((*client_id).to_owned());
    }

    // Each binding's conditions: Ready and the domain conditions all True, nothing stalled.
    let conditions = section(&stdout, "conditions");
    for name in ["kvname-reader", "payments"] {
        let at = conditions.iter().position(|l| *l == name).unwrap_or_else(|| panic!("no conditions for {name}: {conditions:#?}"));
        let own: Vec<&str> = conditions[at + 1..].iter().take_while(|l| l.starts_with("  ")).map(|l| l.trim()).collect();
        for kind in ["Ready", "AllowedByPolicy", "IdentityReady", "NodesAssigned", "AccessGranted", "SecretProviderClassesUpdated"] {
            assert!(own.iter().any(|c| c.starts_with(&format!("{kind}=True "))), "{name}: {kind} is not True: {own:#?}");
        }
        assert!(!own.iter().any(|c| c.starts_with("Stalled=") || c.starts_with("Reconciling=")), "{name}: {own:#?}");
    }

    // The classes carry the client IDs the bindings show.
    let classes = section(&stdout, "what the SecretProviderClasses carry now");
    for (class, client_id) in [("azure-kvname-user-msi", &client_ids[0]), ("payments-tls", &client_ids[1])] {
        let line = classes.iter().find(|l| l.starts_with(&format!("{class}:"))).unwrap_or_else(|| panic!("no {class}: {classes:#?}"));
        assert!(line.contains("useVMManagedIdentity=true"), "{line}");
        assert!(line.ends_with(&format!("userAssignedIdentityID={client_id}")), "{line} should carry {client_id}");
    }

    // The seed page's four steps, each beside what kvbind did and its ARM requests.
    let story = section(&stdout, "the seed page's manual steps");
    let text = story.join("\n");
    for step in
        ["1. by hand: az identity create", "2. by hand: az vmss identity assign", "3. by hand: az keyvault set-policy", "4. by hand: copy the client ID"]
    {
        assert!(text.contains(step), "{step} missing:\n{text}");
    }
    assert!(text.contains(&format!("created kvname-reader in rg-identities, client ID {}", client_ids[0])), "{text}");
    assert!(text.contains("adopted payments in rg-identities (kvbind never deletes it)"), "{text}");
    assert!(text.contains("UserAssignedIdentities_CreateOrUpdate 1"), "{text}");
    assert!(text.contains("VirtualMachineScaleSets_Update"), "{text}");
    assert!(text.contains("Vaults_UpdateAccessPolicy"), "{text}");
    assert!(text.contains("RoleAssignments_Create"), "the RBAC vault's object gets a role assignment:\n{text}");

    // The counters: some reads and writes, and each counted operation listed.
    let counts = section(&stdout, "ARM calls made");
    let totals: Vec<u64> = counts[0].split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect();
    assert!(totals.len() == 3 && totals[0] > 0 && totals[1] > 0 && totals[2] > 0, "reads, writes, tokens: {counts:#?}");
    assert!(counts.iter().any(|l| l.trim_start().starts_with("VirtualMachineScaleSets_Update")), "{counts:#?}");
    assert!(stdout.trim_end().ends_with("Every binding is Ready. The servers stop as this command exits."), "{stdout}");
}
