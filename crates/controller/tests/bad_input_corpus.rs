//! A corpus of malformed and hostile input for every parser between the cluster and Azure:
//! each is refused with an error that names what is wrong, and none panics.

use kvbind_api::identity_binding::IdentitySpec;
use kvbind_api::parse_objects;
use kvbind_azure::{Cloud, GroupResourceId, NodeLocation, ResourceKind};
use kvbind_controller::ControllerConfig;
use kvbind_controller::needs::identity_of;

fn entry(body: &str) -> String {
    let indented: String = body.lines().map(|l| format!("    {l}\n")).collect();
    format!("array:\n  - |\n{indented}")
}

#[test]
fn malformed_objects_are_refused_naming_the_field() {
    let huge = format!("array:\n{}", "  - |\n    objectName: a\n    objectType: secret\n".repeat(1200));
    let cases: Vec<(String, &str)> = vec![
        ("".into(), "array"),
        ("array".into(), "array"),
        ("array: {}".into(), "array"),
        ("array: 5".into(), "array"),
        ("array: [".into(), "YAML"),
        ("\t- tab".into(), "YAML"),
        ("array:\n  - 42\n".into(), "YAML string"),
        ("array:\n  - [a, b]\n".into(), "YAML string"),
        ("array:\n  - {objectName: a}\n".into(), "YAML string"),
        ("array:\n  - |\n    : :\n".into(), "array[0]"),
        (entry("objectType: secret"), "objectName"),
        (entry("objectName: a"), "objectType"),
        (entry("objectName: a\nobjectType: Secret"), "objectType"),
        (entry("objectName: a\nobjectType: certificate"), "objectType"),
        (entry("objectName: a\nobjectType: [secret]"), "objectType"),
        (entry("objectName: a b\nobjectType: secret"), "objectName"),
        (entry("objectName: a/../../etc\nobjectType: secret"), "objectName"),
        (entry(&format!("objectName: {}\nobjectType: secret", "x".repeat(200))), "objectName"),
        (entry("objectName: {a: b}\nobjectType: secret"), "objectName"),
        (entry("objectName: a\nobjectType: secret\nobjectVersion: ../1"), "objectVersion"),
        (entry("objectName: a\nobjectType: secret\nobjectVersionHistory: -1"), "objectVersionHistory"),
        (entry("objectName: a\nobjectType: secret\nobjectVersionHistory: 1e99"), "objectVersionHistory"),
        (entry("objectName: a\nobjectType: secret\nobjectAlias: ../../passwd"), "objectAlias"),
        (entry("objectName: a\nobjectType: secret\nobjectAlias: .."), "objectAlias"),
        (entry("objectName: a\nobjectType: secret\nobjectFormat: jks"), "objectFormat"),
        (entry("objectName: a\nobjectType: secret\nobjectEncoding: utf-16"), "objectEncoding"),
        (entry("objectName: a\nobjectType: secret\nfilePermission: 777"), "filePermission"),
        (entry("objectName: a\nobjectType: secret\nfilePermission: 0999"), "filePermission"),
        ("array:\n  - |\n    objectName: a\n    objectType: secret\n  - |\n    objectName: a\n    objectType: key\n".into(), "objectAlias"),
        (huge, "1000"),
        ("x".repeat(300 * 1024), "bytes"),
    ];
    for (text, words) in &cases {
        let err = parse_objects(text).expect_err(&format!("accepted: {:.80}", text));
        assert!(err.to_string().contains(words), "{:.80} -> {err} (should mention {words})", text);
    }
    assert!(cases.len() >= 30);
}

#[test]
fn malformed_provider_ids_are_refused() {
    let sub = "00000000-0000-0000-0000-000000000001";
    let cases = [
        String::new(),
        "azure://".into(),
        "azure:///".into(),
        "aws:///us-east-1a/i-0abc".into(),
        "gce://project/zone/name".into(),
        "kind://docker/kind/kind-worker".into(),
        format!("azure:///subscriptions/{sub}"),
        format!("azure:///subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/vmss/virtualMachines/"),
        format!("azure:///subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/vmss/virtualMachines/one"),
        format!("azure:///subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/nic"),
        format!("azure:///subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm/extra"),
        format!("azure:///subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm%2F..%2F"),
        format!("azure:///subscriptions/{sub}/resourceGroups/r g/providers/Microsoft.Compute/virtualMachines/vm"),
    ];
    for input in &cases {
        let err = NodeLocation::from_provider_id(input).expect_err(input);
        assert!(err.to_string().contains("providerID"), "{input} -> {err}");
    }
}

#[test]
fn malformed_resource_ids_are_refused() {
    let cases = [
        "",
        "/",
        "subscriptions",
        "/subscriptions/s/resourceGroups/rg",
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults",
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv/secrets/x",
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/kv",
        "/subscriptions//resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv",
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/k#v",
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/k?v=1",
    ];
    for input in cases {
        let err = GroupResourceId::parse(ResourceKind::Vault, input).expect_err(input);
        assert!(!err.to_string().is_empty(), "{input}");
    }
}

#[test]
fn malformed_cloud_names_and_files_are_refused() {
    for name in ["AzureGermanCloud", "azure", "Public", "AzureStackCloud", "../../etc/passwd"] {
        assert!(Cloud::by_name(name, None).is_err(), "{name}");
    }
    for file in [
        "",
        "null",
        "[]",
        "{\"name\": \"x\"}",
        r#"{"name":"x","resourceManagerEndpoint":"ftp://arm","activeDirectoryEndpoint":"https://aad","keyVaultDNSSuffix":"v"}"#,
        r#"{"name":"x","resourceManagerEndpoint":"https://arm","activeDirectoryEndpoint":"not a url","keyVaultDNSSuffix":"v"}"#,
        r#"{"name":"x","resourceManagerEndpoint":"https://arm","activeDirectoryEndpoint":"https://aad","keyVaultDNSSuffix":"a/b"}"#,
        r#"{"name":"","resourceManagerEndpoint":"https://arm","activeDirectoryEndpoint":"https://aad","keyVaultDNSSuffix":"v"}"#,
        r#"{"name":"x","resourceManagerEndpoint":"https://","activeDirectoryEndpoint":"https://aad","keyVaultDNSSuffix":"v"}"#,
    ] {
        let err = Cloud::from_json(file, false).expect_err(file);
        assert!(err.to_string().starts_with("custom cloud file"), "{file} -> {err}");
    }
}

#[test]
fn invalid_identity_names_are_refused_before_any_call() {
    let config = ControllerConfig { subscriptions: vec!["00000000-0000-0000-0000-000000000001".into()], ..ControllerConfig::default() };
    for name in ["", "ab", "-leading-hyphen", "_leading", "has space", "dots.are.not", "slash/name", &"x".repeat(129), "émoji"] {
        let spec = IdentitySpec { name: Some(name.to_owned()), resource_group: Some("rg".into()), ..IdentitySpec::default() };
        let err = identity_of(&spec, &config).expect_err(name);
        assert!(err.to_string().starts_with("spec.identity"), "{name:?} -> {err}");
    }
    let adopt = IdentitySpec {
        resource_id: Some("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm".into()),
        ..IdentitySpec::default()
    };
    assert!(identity_of(&adopt, &config).is_err());
    let no_default = IdentitySpec { name: Some("app".into()), resource_group: Some("rg".into()), ..IdentitySpec::default() };
    assert!(identity_of(&no_default, &ControllerConfig::default()).expect_err("no subscription").to_string().contains("subscriptionId"));
}
