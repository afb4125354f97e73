//! What the informer caches keep of each object: only what kvbind reads. A thousand
//! bindings and classes and a few thousand nodes are the bulk of the operator's memory, and
//! most of each object as the API server sends it is managed fields, `kubectl apply`'s copy
//! and, on a node, its status.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Node, NodeSpec};
use kube::ResourceExt;
use kvbind_api::class_lint::near_miss;
use kvbind_api::secret_provider_class::SecretProviderClass;
use kvbind_api::{FIELD_MANAGER, IdentityBinding};
use kvbind_azure::intern::intern;

/// The annotation `kubectl apply` keeps a copy of the whole object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Where a cached class says which of its parameters kvbind's field manager owns,
/// space-separated, in place of the managed fields that say so on the API server. Cache
/// only: kvbind never writes a class it read from the cache, and the value the API server
/// sends under this name is dropped, so no one can claim a parameter for kvbind.
const KVBIND_OWNED_PARAMETERS: &str = "kvbind.io/cached-owned-parameters";

/// Keeps only what kvbind reads of a Node: labels and providerID.
pub fn strip_node(node: &mut Node) {
    node.metadata.managed_fields = None;
    node.metadata.annotations = None;
    node.metadata.owner_references = None;
    node.metadata.finalizers = None;
    node.metadata.creation_timestamp = None;
    node.status = None;
    let provider_id = node.spec.as_ref().and_then(|s| s.provider_id.clone());
    node.spec = Some(NodeSpec { provider_id, ..NodeSpec::default() });
}

/// Drops from an IdentityBinding its managed fields and `kubectl apply`'s copy, and shares
/// the scale set IDs its status records: a thousand bindings on the same twenty pools
/// record the same twenty IDs.
pub fn strip_binding(binding: &mut IdentityBinding) {
    binding.metadata.managed_fields = None;
    drop_last_applied(&mut binding.metadata.annotations);
    for attachment in binding.status.iter_mut().flat_map(|s| s.attachments.iter_mut()) {
        attachment.resource_id = intern(&attachment.resource_id);
    }
}

/// The longest `objects` parameter a cached class keeps. A tenant may write classes of up
/// to the API server's object limit (about 1.5 MB) in any number; kvbind caches every class
/// it may serve, so a longer list is kept only as its length, and the binding is refused
/// naming the limit (`objects_too_long`).
pub const MAX_OBJECTS_BYTES: usize = 128 * 1024;

/// The near misses of parameter keys a cached class keeps for the lint.
pub const MAX_NEAR_MISSES: usize = 8;

/// Where a cached class keeps the length of an `objects` parameter too long to keep.
const OBJECTS_TOO_LONG: &str = "kvbind.io/cached-objects-bytes";

/// Drops from a SecretProviderClass what kvbind never reads: `kubectl apply`'s copy, its
/// managed fields (noting first which parameters kvbind owns, see
/// [`kvbind_owns_parameter`]), `secretObjects`, every parameter that is neither one the
/// Azure provider reads nor a near miss of one, the values of the near misses, and an
/// `objects` parameter past [`MAX_OBJECTS_BYTES`].
pub fn strip_class(class: &mut SecretProviderClass) {
    let spec = &mut class.spec.0;
    spec.secret_objects = None;
    // A near miss of a key is kept for the lint to name, but only as its key, and only the
    // first few: its value is never read, and a tenant may write a megabyte of values, or
    // tens of thousands of case variants of one key.
    let mut near_misses = 0;
    spec.parameters.retain(|key, value| {
        if kvbind_api::secret_provider_class::keys::ALL.contains(&key.as_str()) {
            return true;
        }
        if near_misses == MAX_NEAR_MISSES || near_miss(key).is_none() {
            return false;
        }
        near_misses += 1;
        value.clear();
        true
    });
    let too_long = spec.parameters.get(kvbind_api::secret_provider_class::keys::OBJECTS).map(String::len).filter(|n| *n > MAX_OBJECTS_BYTES);
    if too_long.is_some() {
        spec.parameters.remove(kvbind_api::secret_provider_class::keys::OBJECTS);
    }
    let owned = fields_kvbind_owns(class.managed_fields(), "/f:spec/f:parameters");
    class.metadata.managed_fields = None;
    let annotations = &mut class.metadata.annotations;
    if let Some(map) = annotations.as_mut() {
        map.remove(KVBIND_OWNED_PARAMETERS);
    }
    if let Some(map) = annotations.as_mut() {
        map.remove(OBJECTS_TOO_LONG);
    }
    if !owned.is_empty() {
        annotations.get_or_insert_default().insert(KVBIND_OWNED_PARAMETERS.to_owned(), owned);
    }
    if let Some(bytes) = too_long {
        annotations.get_or_insert_default().insert(OBJECTS_TOO_LONG.to_owned(), bytes.to_string());
    }
    drop_last_applied(annotations);
}

/// The fields directly under `pointer` (a managed-fields path such as `/f:spec/f:parameters`)
/// that kvbind's field manager owns, sorted and space-separated, for a cache note that
/// stands in for the managed fields.
pub fn fields_kvbind_owns(managed: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry], pointer: &str) -> String {
    let owned: BTreeSet<&str> = managed
        .iter()
        .filter(|entry| entry.manager.as_deref() == Some(FIELD_MANAGER))
        .filter_map(|entry| entry.fields_v1.as_ref()?.0.pointer(pointer)?.as_object())
        .flat_map(|fields| fields.keys().filter_map(|field| field.strip_prefix("f:")))
        .collect();
    owned.into_iter().collect::<Vec<_>>().join(" ")
}

/// The length of a cached class's `objects` parameter when it was too long to keep.
pub fn objects_too_long(class: &SecretProviderClass) -> Option<usize> {
    class.annotations().get(OBJECTS_TOO_LONG).and_then(|n| n.parse().ok())
}

/// True when kvbind's field manager owns `spec.parameters.<parameter>` of a cached class.
pub fn kvbind_owns_parameter(class: &SecretProviderClass, parameter: &str) -> bool {
    class.annotations().get(KVBIND_OWNED_PARAMETERS).is_some_and(|owned| owned.split(' ').any(|p| p == parameter))
}

fn drop_last_applied(annotations: &mut Option<std::collections::BTreeMap<String, String>>) {
    if let Some(map) = annotations.as_mut() {
        map.remove(LAST_APPLIED);
        if map.is_empty() {
            *annotations = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
    use kvbind_api::identity_binding::{AttachmentOrigin, AttachmentStatus, IdentityBindingStatus};
    use serde_json::json;

    use super::*;

    fn entry(manager: &str, parameters: &[&str]) -> ManagedFieldsEntry {
        let fields: serde_json::Map<String, serde_json::Value> = parameters.iter().map(|p| (format!("f:{p}"), json!({}))).collect();
        ManagedFieldsEntry {
            manager: Some(manager.to_owned()),
            fields_v1: Some(FieldsV1(json!({"f:spec": {"f:parameters": fields}}))),
            ..ManagedFieldsEntry::default()
        }
    }

    fn class(annotations: serde_json::Value) -> SecretProviderClass {
        serde_json::from_value(json!({
            "apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass",
            "metadata": {"name": "app", "annotations": annotations},
            "spec": {"provider": "azure"},
        }))
        .expect("class")
    }

    #[test]
    fn a_cached_class_knows_only_which_parameters_kvbind_owns() {
        let mut class = class(json!({LAST_APPLIED: "{}", "team": "a"}));
        class.metadata.managed_fields = Some(vec![
            entry("kubectl-client-side-apply", &["keyvaultName", "clientID"]),
            entry(FIELD_MANAGER, &["userAssignedIdentityID", "useVMManagedIdentity"]),
        ]);
        strip_class(&mut class);
        assert!(class.metadata.managed_fields.is_none());
        assert!(kvbind_owns_parameter(&class, "userAssignedIdentityID"));
        assert!(kvbind_owns_parameter(&class, "useVMManagedIdentity"));
        assert!(!kvbind_owns_parameter(&class, "clientID"), "another manager's parameter");
        assert!(!kvbind_owns_parameter(&class, "useVM"), "a prefix of an owned parameter");
        assert!(!class.annotations().contains_key(LAST_APPLIED));
        assert_eq!(class.annotations()["team"], "a");
    }

    #[test]
    fn no_one_can_claim_a_parameter_for_kvbind_through_the_annotation() {
        let mut class = class(json!({KVBIND_OWNED_PARAMETERS: "clientID"}));
        class.metadata.managed_fields = Some(vec![entry("someone", &["clientID"])]);
        strip_class(&mut class);
        assert!(!kvbind_owns_parameter(&class, "clientID"));
        assert!(class.metadata.annotations.is_none(), "an emptied annotation map is dropped");
    }

    #[test]
    fn a_cached_class_keeps_only_the_parameters_the_provider_reads() {
        let mut class = class(json!({}));
        class.spec.0.parameters =
            [("keyvaultName", "kv"), ("userAssignedIdentityId", "near miss"), ("filler", "x"), ("objets", "one slip"), ("objects", "array: []")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        class.spec.0.secret_objects = Some(json!([{"secretName": "s"}]));
        strip_class(&mut class);
        let kept: Vec<&str> = class.spec.0.parameters.keys().map(String::as_str).collect();
        assert_eq!(kept, ["keyvaultName", "objects", "objets", "userAssignedIdentityId"], "near misses stay, for the lint");
        assert_eq!(class.spec.0.parameters["objets"], "", "but not their values");
        assert_eq!(class.spec.0.parameters["keyvaultName"], "kv");

        let mut variants = class.clone();
        variants.spec.0.parameters = [("objects".to_owned(), "array: []".to_owned())].into();
        variants.spec.0.parameters.extend((0..64u32).map(|i| {
            let key: String =
                "userassignedidentityid".chars().enumerate().map(|(j, c)| if i >> (j % 6) & 1 == 1 { c.to_ascii_uppercase() } else { c }).collect();
            (key, "v".to_owned())
        }));
        strip_class(&mut variants);
        assert_eq!(variants.spec.0.parameters.len(), MAX_NEAR_MISSES + 1, "a flood of near misses is cut: {:?}", variants.spec.0.parameters.keys());
        assert_eq!(variants.spec.0.parameters["objects"], "array: []", "the keys the provider reads all stay");
        assert!(class.spec.0.secret_objects.is_none());
        assert_eq!(objects_too_long(&class), None);
    }

    #[test]
    fn an_objects_parameter_past_the_limit_is_kept_only_as_its_length() {
        let mut class = class(json!({OBJECTS_TOO_LONG: "1"}));
        assert_eq!(
            objects_too_long(&{
                let mut c = class.clone();
                strip_class(&mut c);
                c
            }),
            None,
            "the API server's value of the annotation is dropped"
        );
        class.spec.0.parameters.insert("objects".into(), "x".repeat(MAX_OBJECTS_BYTES + 1));
        strip_class(&mut class);
        assert!(!class.spec.0.parameters.contains_key("objects"));
        assert_eq!(objects_too_long(&class), Some(MAX_OBJECTS_BYTES + 1));
    }

    #[test]
    fn cached_bindings_share_their_attachment_ids() {
        let pool = "/subscriptions/s/resourceGroups/mc/providers/Microsoft.Compute/virtualMachineScaleSets/pool";
        let cached = |name: &str| {
            let mut binding: IdentityBinding = serde_json::from_value(json!({
                "apiVersion": "kvbind.io/v1alpha1", "kind": "IdentityBinding",
                "metadata": {"name": name, "namespace": "ns"},
                "spec": {"identity": {"name": "id", "resourceGroup": "rg"}, "secretProviderClasses": {"names": ["app"]}},
            }))
            .expect("binding");
            binding.status = Some(IdentityBindingStatus {
                attachments: vec![AttachmentStatus { resource_id: pool.into(), origin: AttachmentOrigin::Attached }],
                ..Default::default()
            });
            strip_binding(&mut binding);
            binding.status.expect("status").attachments.remove(0).resource_id
        };
        let (a, b) = (cached("a"), cached("b"));
        assert_eq!(&*a, pool);
        assert!(std::sync::Arc::ptr_eq(&a, &b));
    }
}
