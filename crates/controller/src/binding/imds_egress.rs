//! The NetworkPolicy that keeps a namespace's pods off IMDS (a BindingPolicy's
//! `imdsEgress: Deny`). Every pod on a node pool can ask IMDS for the tokens of every
//! identity on the pool (the provider's issue #837); the CSI driver, which mounts the
//! secrets, runs on the host network, where NetworkPolicies do not apply, so it keeps
//! working while the namespace's own pods lose that path.

use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, Patch, PatchParams};
use kvbind_api::FIELD_MANAGER;
use serde_json::{Value, json};

use super::absent::delete_if_present;
use super::azure_sync::Change;
use crate::context::Context;
use crate::error::BindingError;

/// The NetworkPolicy's name in each namespace.
pub const NAME: &str = "kvbind-deny-imds";

/// The instance metadata service's address.
pub const IMDS: &str = "169.254.169.254/32";

/// The NetworkPolicy for `namespace`: egress from every pod to every address but IMDS.
pub fn network_policy(namespace: &str) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": NAME, "namespace": namespace, "labels": {"app.kubernetes.io/managed-by": "kvbind"}},
        "spec": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": [IMDS]}}, {"ipBlock": {"cidr": "::/0"}}]}],
        },
    })
}

/// Whether `found` is the NetworkPolicy kvbind would write.
fn is_current(found: &NetworkPolicy, namespace: &str) -> bool {
    let Ok(found) = serde_json::to_value(&found.spec) else {
        return false;
    };
    found == network_policy(namespace)["spec"]
}

/// Makes the namespace's NetworkPolicy what `deny` says: present and current, or absent.
pub async fn keep(ctx: &Context, namespace: &str, deny: bool, changes: &mut Vec<Change>) -> Result<(), BindingError> {
    if ctx.imds_looked.fresh(namespace, deny, ctx.config.resync) {
        return Ok(());
    }
    let api: Api<NetworkPolicy> = Api::namespaced(ctx.kube.client.clone(), namespace);
    let found = api.get_opt(NAME).await.map_err(|source| BindingError::Kube { action: "reading the NetworkPolicy that keeps pods off IMDS", source })?;
    match (deny, found) {
        (true, Some(found)) if is_current(&found, namespace) => {}
        (true, _) => {
            api.patch(NAME, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(network_policy(namespace)))
                .await
                .map_err(|source| BindingError::Kube { action: "applying the NetworkPolicy that keeps pods off IMDS", source })?;
            changes.push(("ImdsEgressDenied", format!("NetworkPolicy {NAME} keeps this namespace's pods off IMDS ({IMDS}), as its BindingPolicy says")));
        }
        (false, None) => {}
        (false, Some(_)) => {
            let removed = delete_if_present(&api, NAME)
                .await
                .map_err(|source| BindingError::Kube { action: "deleting the NetworkPolicy that kept pods off IMDS", source })?;
            if removed {
                changes.push(("ImdsEgressAllowed", format!("removed NetworkPolicy {NAME}: no BindingPolicy of this namespace denies IMDS any more")));
            }
        }
    }
    ctx.imds_looked.record(namespace, deny);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_isolates_egress_of_every_pod_and_allows_all_but_imds() {
        let policy = network_policy("team-a");
        assert_eq!(policy["spec"]["podSelector"], json!({}), "every pod of the namespace");
        assert_eq!(policy["spec"]["policyTypes"], json!(["Egress"]), "ingress stays as it was");
        assert_eq!(policy["spec"]["egress"][0]["to"][0]["ipBlock"]["except"], json!([IMDS]));
        let typed: NetworkPolicy = serde_json::from_value(policy.clone()).expect("a NetworkPolicy");
        assert!(is_current(&typed, "team-a"), "what kvbind writes reads back as current");
        let mut wider = typed.clone();
        if let Some(rule) = wider.spec.as_mut().and_then(|s| s.egress.as_mut()).and_then(|e| e.first_mut()) {
            rule.to = None;
        }
        assert!(!is_current(&wider, "team-a"), "a rule someone opened is put back");
    }
}
