use kvbind_api::identity_binding::IdentityMode::{AksIdentityBinding as Aks, VmManagedIdentity as Vm, WorkloadIdentity as Wi};
use serde_json::json;

use super::*;

/// A class as read: `vm` (`useVMManagedIdentity`), `proxy` (`useAzureTokenProxy`), and the
/// client IDs in `userAssignedIdentityID` and `clientID`.
fn class(vm: bool, proxy: bool, identity_id: Option<&str>, client_id: Option<&str>) -> ClassInput {
    ClassInput {
        name: "app".into(),
        vault_name: "kv1".into(),
        tenant_id: "t".into(),
        objects: Vec::new(),
        identity_id: identity_id.map(Into::into),
        uses_vm_identity: vm,
        uses_token_proxy: proxy,
        client_id: client_id.map(Into::into),
        warnings: Vec::new(),
    }
}

/// A store as read: `authType`, `identityId` and `serviceAccountRef.name`.
fn store(auth_type: Option<&str>, identity_id: Option<&str>, service_account: Option<&str>) -> StoreInput {
    StoreInput {
        name: "eso".into(),
        vault_name: "kv1".into(),
        tenant_id: "t".into(),
        objects: Vec::new(),
        auth_type: auth_type.map(Into::into),
        identity_id: identity_id.map(Into::into),
        service_account: service_account.map(Into::into),
    }
}

#[test]
fn a_class_is_written_unless_it_carries_exactly_the_modes_fields() {
    let vm = Some(json!({"useVMManagedIdentity": "true", "userAssignedIdentityID": "c"}));
    let wi = Some(json!({"clientID": "c"}));
    let aks = Some(json!({"useAzureTokenProxy": "true", "clientID": "c"}));
    let rows = [
        ("a new class gets the VM fields", class(false, false, None, None), Vm, vm.clone()),
        ("a class that carries them is left alone", class(true, false, Some("c"), None), Vm, None),
        ("another identity's client ID is written over", class(true, false, Some("other"), None), Vm, vm.clone()),
        ("workload identity's clientID left from an earlier mode goes", class(true, false, Some("c"), Some("c")), Vm, vm),
        ("a new class gets clientID", class(false, false, None, None), Wi, wi.clone()),
        ("a federated class that carries it is left alone", class(false, false, None, Some("c")), Wi, None),
        ("VM mode's fields left from an earlier mode go", class(true, false, Some("c"), Some("c")), Wi, wi.clone()),
        ("the token proxy left from AKS identity binding goes", class(false, true, None, Some("c")), Wi, wi),
        ("AKS identity binding adds the token proxy", class(false, false, None, Some("c")), Aks, aks.clone()),
        ("a class bound through AKS is left alone", class(false, true, None, Some("c")), Aks, None),
        ("VM mode's identity left from an earlier mode goes", class(false, true, Some("c"), Some("c")), Aks, aks),
    ];
    for (case, class, mode, expected) in rows {
        assert_eq!(class_parameters(&class, "c", mode), expected, "{case}");
    }
}

#[test]
fn a_store_is_written_unless_it_carries_exactly_the_modes_fields() {
    let vm = Some(json!({"authType": "ManagedIdentity", "identityId": "c"}));
    let wi = Some(json!({"authType": "WorkloadIdentity", "serviceAccountRef": {"name": "app"}}));
    let rows = [
        ("a new store gets the managed identity", store(None, None, None), Vm, vm.clone()),
        ("a store that carries it is left alone", store(Some("ManagedIdentity"), Some("c"), None), Vm, None),
        ("another identity's client ID is written over", store(Some("ManagedIdentity"), Some("other"), None), Vm, vm.clone()),
        ("a ServiceAccount left from workload identity goes", store(Some("ManagedIdentity"), Some("c"), Some("app")), Vm, vm),
        ("a new store gets the ServiceAccount", store(None, None, None), Wi, wi.clone()),
        ("a federated store that carries it is left alone", store(Some("WorkloadIdentity"), None, Some("app")), Wi, None),
        ("another ServiceAccount is written over", store(Some("WorkloadIdentity"), None, Some("other")), Wi, wi.clone()),
        ("the managed identity left from VM mode goes", store(Some("WorkloadIdentity"), Some("c"), Some("app")), Wi, wi),
    ];
    for (case, store, mode, expected) in rows {
        assert_eq!(store_provider(&store, "c", mode, Some("app")), expected, "{case}");
    }
}
