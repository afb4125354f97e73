use proptest::prelude::*;

use super::*;

const SUB: &str = "00000000-0000-0000-0000-000000000001";

#[test]
fn parses_an_identity_id_in_either_casing() {
    let a = GroupResourceId::parse(
        ResourceKind::UserAssignedIdentity,
        &format!("/subscriptions/{SUB}/resourcegroups/RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app"),
    )
    .expect("valid");
    let b = GroupResourceId::parse(
        ResourceKind::UserAssignedIdentity,
        &format!("/subscriptions/{SUB}/resourceGroups/rg/providers/microsoft.managedidentity/userassignedidentities/APP"),
    )
    .expect("valid");
    assert_eq!(a, b);
    assert_eq!(a.resource_group, "RG");
}

#[test]
fn rejects_the_wrong_kind_naming_the_expected_shape() {
    let err = GroupResourceId::parse(ResourceKind::Vault, &format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"))
        .expect_err("not a vault");
    assert!(err.to_string().contains("is not a Key Vault ID"), "{err}");
}

#[test]
fn provider_id_of_a_scale_set_instance() {
    let node = NodeLocation::from_provider_id(&format!(
        "azure:///subscriptions/{SUB}/resourceGroups/mc_rg_aks_eastus/providers/Microsoft.Compute/virtualMachineScaleSets/aks-nodepool1-123-vmss/virtualMachines/3"
    ))
    .expect("valid");
    let NodeLocation::ScaleSetInstance { scale_set, instance } = &node else {
        panic!("expected a scale set instance: {node:?}");
    };
    assert_eq!(scale_set.name, "aks-nodepool1-123-vmss");
    assert_eq!(scale_set.resource_group, "mc_rg_aks_eastus");
    assert_eq!(instance, "3");
    assert_eq!(node.attach_target().kind(), ResourceKind::VirtualMachineScaleSet);
}

#[test]
fn provider_id_of_an_availability_set_or_flex_vm() {
    for name in ["aks-agentpool-12345-0", "flexprofile-mp-0_df53ee36"] {
        let node =
            NodeLocation::from_provider_id(&format!("azure:///subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/{name}"))
                .expect("valid");
        assert_eq!(node.attach_target().kind(), ResourceKind::VirtualMachine);
        assert_eq!(node.attach_target().name, name);
    }
}

#[test]
fn rejects_provider_ids_that_are_not_azure_vms() {
    for bad in [
        "",
        "aws:///us-east-1a/i-0123",
        "azure://subscriptions/x",
        &format!("azure:///subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/vmss/virtualMachines/abc"),
        &format!("azure:///subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/loadBalancers/lb"),
        &format!("azure:///subscriptions/{SUB}/resourceGroups//providers/Microsoft.Compute/virtualMachines/vm"),
        "kind://docker/kind/kind-control-plane",
    ] {
        let err = NodeLocation::from_provider_id(bad).expect_err(bad);
        assert!(err.to_string().starts_with("providerID"), "{err}");
    }
}

proptest! {
    #[test]
    fn parsers_never_panic(input in ".{0,300}") {
        let _ = NodeLocation::from_provider_id(&input);
        let _ = GroupResourceId::parse(ResourceKind::Vault, &input);
    }

    #[test]
    fn provider_ids_round_trip(
        sub in "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        // Azure resource group names may hold periods but not end with one.
        rg in "[A-Za-z0-9_.()-]{0,39}[A-Za-z0-9_()-]",
        name in "[A-Za-z0-9_-]{1,40}",
        instance in 0u32..10000,
    ) {
        let pid = format!("azure:///subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachineScaleSets/{name}/virtualMachines/{instance}");
        let node = NodeLocation::from_provider_id(&pid).expect("valid");
        let target = node.attach_target();
        prop_assert_eq!(&target.subscription, &sub);
        prop_assert_eq!(&target.resource_group, &rg);
        prop_assert_eq!(&target.name, &name);
        let reparsed = ComputeId::parse(&target.to_string()).expect("display parses");
        prop_assert_eq!(&reparsed, target);
        prop_assert_eq!(reparsed.kind(), ResourceKind::VirtualMachineScaleSet);
    }
}
