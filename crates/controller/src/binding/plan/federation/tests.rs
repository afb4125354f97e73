//! The reach steps' decisions without a cluster or Azure: what is written for workload
//! identity and for an AKS identity binding, from what is found.

use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef, Subject};
use kube::api::ObjectMeta;

use super::*;

fn credential(issuer: &str) -> FederatedCredential {
    FederatedCredential {
        name: "kvbind-team-a-app-0123456789ab".into(),
        issuer: issuer.into(),
        subject: "system:serviceaccount:team-a:app".into(),
        audiences: vec!["api://AzureADTokenExchange".into()],
    }
}

#[test]
fn workload_identity_writes_what_differs_and_never_takes_a_service_account_annotated_for_another_identity() {
    let wanted = credential("https://issuer/a");
    let moved = credential("https://issuer/b");
    let step = |credential, annotation| Ok(FederationStep { credential, annotation });
    // (case, credential found, annotation found, federated by this binding before, step)
    type Row<'a> = (&'a str, Option<&'a FederatedCredential>, Option<&'a str>, bool, Result<FederationStep, String>);
    let table: Vec<Row> = vec![
        ("nothing yet", None, None, false, step(true, true)),
        ("federated and annotated", Some(&wanted), Some("client-a"), false, step(false, false)),
        ("the cluster's issuer moved", Some(&moved), Some("client-a"), false, step(true, false)),
        ("annotation removed by hand", Some(&wanted), None, true, step(false, true)),
        ("annotated for another identity by someone else", None, Some("client-b"), false, Err("client-b".into())),
        ("annotated for its earlier identity by this binding", Some(&wanted), Some("client-b"), true, step(false, true)),
    ];
    for (case, found, annotated, before, expected) in table {
        assert_eq!(federation_step(&wanted, found, annotated, "client-a", before), expected, "{case}");
    }
}

fn identity(name: &str) -> IdentityId {
    IdentityId::parse(&format!("/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}")).expect("id")
}

#[test]
fn an_aks_identity_binding_is_put_again_unless_it_binds_the_identity_and_succeeded() {
    let binding = |of: &str, state: &str| ClusterIdentityBinding {
        id: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c/identityBindings/b".into(),
        identity: identity(of),
        client_id: None,
        oidc_issuer: None,
        provisioning_state: state.into(),
    };
    let table = [
        ("none", None, false),
        ("bound, succeeded", Some(binding("app", "Succeeded")), true),
        ("ARM's case", Some(binding("APP", "succeeded")), true),
        ("another identity", Some(binding("other", "Succeeded")), false),
        ("failed", Some(binding("app", "Failed")), false),
        ("still running", Some(binding("app", "Updating")), false),
    ];
    for (case, found, current) in table {
        assert_eq!(aks_binding_current(found.as_ref(), &identity("app")), current, "{case}");
    }
}

fn role(client_ids: &[&str], verbs: &[&str]) -> ClusterRole {
    ClusterRole {
        metadata: ObjectMeta { name: Some("r".into()), ..ObjectMeta::default() },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![API_GROUP.into()]),
            resources: Some(client_ids.iter().map(|c| (*c).to_owned()).collect()),
            verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
            ..PolicyRule::default()
        }]),
        ..ClusterRole::default()
    }
}

fn role_binding(role: &str, subjects: &[(&str, &str)]) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: ObjectMeta { name: Some("r".into()), ..ObjectMeta::default() },
        role_ref: RoleRef { api_group: "rbac.authorization.k8s.io".into(), kind: "ClusterRole".into(), name: role.into() },
        subjects: Some(
            subjects
                .iter()
                .map(|(ns, sa)| Subject { kind: "ServiceAccount".into(), name: (*sa).into(), namespace: Some((*ns).into()), ..Subject::default() })
                .collect(),
        ),
    }
}

#[test]
fn the_cluster_role_is_written_back_when_widened_or_bound_to_anyone_else() {
    let (good_role, good_binding) = (role(&["client-a"], &[VERB]), role_binding("r", &[("team-a", "app")]));
    let table = [
        ("as kvbind writes them", Some(good_role.clone()), Some(good_binding.clone()), true),
        ("no role", None, Some(good_binding.clone()), false),
        ("no binding", Some(good_role.clone()), None, false),
        ("another identity added to the role", Some(role(&["client-a", "client-b"], &[VERB])), Some(good_binding.clone()), false),
        ("another verb", Some(role(&["client-a"], &[VERB, "get"])), Some(good_binding.clone()), false),
        ("another namespace's ServiceAccount added", Some(good_role.clone()), Some(role_binding("r", &[("team-a", "app"), ("team-b", "app")])), false),
        ("bound to another role", Some(good_role.clone()), Some(role_binding("other", &[("team-a", "app")])), false),
    ];
    for (case, role, binding, current) in table {
        assert_eq!(aks_rbac_current(role.as_ref(), binding.as_ref(), "r", "team-a", "app", "client-a"), current, "{case}");
    }
}
