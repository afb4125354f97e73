//! The `IdentityBinding` custom resource: one user-assigned managed identity, the
//! SecretProviderClasses it serves, the nodes it reaches, and what kvbind did about it.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::condition::Condition;

/// Gives the pods that mount some SecretProviderClasses a user-assigned managed identity
/// that can read exactly the Key Vault objects those classes list.
///
/// kvbind creates (or adopts) the identity, attaches it to the VM scale sets or VMs that
/// run the selected nodes, grants it `get` on the listed objects, and writes its client ID
/// into the SecretProviderClasses.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kvbind.io",
    version = "v1alpha1",
    kind = "IdentityBinding",
    namespaced,
    shortname = "ib",
    category = "kvbind",
    doc = "Binds a user-assigned managed identity to SecretProviderClasses: kvbind creates or adopts the identity, attaches it to the nodes' VM scale sets or VMs, grants it read access on exactly the listed Key Vault objects and writes its client ID into the SecretProviderClasses.",
    status = "IdentityBindingStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason","priority":1}"#,
    printcolumn = r#"{"name":"Identity","type":"string","jsonPath":".status.identity.name"}"#,
    printcolumn = r#"{"name":"Client ID","type":"string","jsonPath":".status.identity.clientId"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.mode) && (self.mode == 'WorkloadIdentity' || self.mode == 'AKSIdentityBinding')) == has(self.serviceAccount)").message("spec.serviceAccount is required with modes WorkloadIdentity and AKSIdentityBinding and only then"))]
#[x_kube(validation = Rule::new("!has(self.mode) || self.mode != 'AKSIdentityBinding' || !has(self.secretStores)").message("spec.secretStores does not work with mode AKSIdentityBinding: External Secrets Operator does not use AKS's token proxy"))]
#[x_kube(validation = Rule::new("has(self.secretProviderClasses) || has(self.secretStores)").message("set spec.secretProviderClasses, spec.secretStores or both"))]
#[x_kube(validation = Rule::new("!has(self.identity.addon) || !has(self.mode) || self.mode == 'VMManagedIdentity'").message("spec.identity.addon works only in mode VMManagedIdentity: AKS gives the add-on's identity to the node pools"))]
pub struct IdentityBindingSpec {
    /// The user-assigned managed identity: either created by kvbind (`name` and
    /// `resourceGroup`) or an existing one adopted by `resourceId`.
    pub identity: IdentitySpec,

    /// The SecretProviderClasses in this namespace that use the identity.
    #[serde(default, skip_serializing_if = "SecretProviderClassSelector::is_empty")]
    pub secret_provider_classes: SecretProviderClassSelector,

    /// External Secrets Operator SecretStores in this namespace that use the identity.
    /// kvbind writes the identity into each store's `spec.provider.azurekv` and grants it
    /// the objects that the namespace's ExternalSecrets read through the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_stores: Option<SecretStoreSelector>,

    /// How pods get the identity's tokens. `VMManagedIdentity` (the default) attaches the
    /// identity to the nodes' VM scale sets or VMs, so every pod on those nodes can get its
    /// tokens from IMDS. `WorkloadIdentity` attaches nothing: kvbind federates the identity
    /// with `serviceAccount`, so only pods running as that ServiceAccount get its tokens.
    #[serde(default)]
    pub mode: IdentityMode,

    /// The ServiceAccount in this namespace whose pods use the identity, with
    /// `mode: WorkloadIdentity`. kvbind annotates it with the identity's client ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<ServiceAccountRef>,

    /// Which nodes must be able to use the identity. The VM scale sets and VMs are found
    /// from these nodes' `spec.providerID`. Empty selects every node.
    #[serde(default, skip_serializing_if = "LabelSelector::is_empty")]
    pub nodes: LabelSelector,

    /// The Key Vault to grant access on, when it is not to be found by the
    /// SecretProviderClasses' `keyvaultName` in the configured subscriptions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_vault: Option<KeyVaultRef>,

    /// What happens in Azure when this binding is deleted. `Delete` (the default) removes
    /// the grants, attachments and identity that kvbind made and no other binding needs;
    /// `Retain` leaves Azure as it is.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// The scope of role assignments on vaults that use Azure RBAC. `Object` (the default)
    /// assigns a read role on each listed secret, key or certificate; `Vault` assigns it on
    /// the whole vault, which also reads every other object of that kind.
    #[serde(default)]
    pub rbac_scope: RbacScope,

    /// Prove the path a pod takes, once a resync: a token for the identity from where the
    /// pod gets it (IMDS on a node of each pool in `VMManagedIdentity` mode, the federated
    /// exchange for the ServiceAccount in `WorkloadIdentity` mode) and a read of each
    /// object the classes list, reported as the `AccessVerified` condition, naming each
    /// object that cannot be read and why. While it is False, `Ready` is too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub verify_access: bool,
}

/// The identity to create or adopt.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.name), has(self.resourceId), has(self.addon)].filter(x, x).size() == 1").message("set exactly one of identity.name, identity.resourceId and identity.addon"))]
#[x_kube(validation = Rule::new("!has(self.name) || has(self.resourceGroup)").message("identity.resourceGroup is required with identity.name"))]
#[x_kube(validation = Rule::new("!(has(self.resourceId) || has(self.addon)) || !(has(self.resourceGroup) || has(self.subscriptionId) || has(self.location) || has(self.tags))").message("identity.resourceGroup, subscriptionId, location and tags apply only to an identity that kvbind creates (identity.name)"))]
pub struct IdentitySpec {
    /// Name of a user-assigned identity that kvbind creates (or keeps) in `resourceGroup`.
    /// Azure allows 3 to 128 letters, digits, hyphens and underscores, starting with a
    /// letter or digit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 128), regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"))]
    pub name: Option<String>,

    /// Resource group of the identity named by `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 90), regex(pattern = r"^[-\w\._\(\)]*[-\w_\(\)]$"))]
    pub resource_group: Option<String>,

    /// Subscription of the identity named by `name`. Defaults to the operator's first
    /// configured subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"))]
    pub subscription_id: Option<String>,

    /// Azure region of the identity named by `name`. Defaults to the operator's
    /// configured location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), regex(pattern = r"^[a-z0-9]+$"))]
    pub location: Option<String>,

    /// Extra tags for the identity named by `name`, at most 16 (Azure allows 50 a
    /// resource). kvbind adds its own `kvbind.io-*` tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxProperties" = 16, "additionalProperties" = {"type": "string", "maxLength": 256}))]
    pub tags: Option<BTreeMap<String, String>>,

    /// Full ARM resource ID of an existing user-assigned identity to adopt. kvbind never
    /// deletes an adopted identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 512),
        regex(pattern = r"(?i)^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.ManagedIdentity/userAssignedIdentities/[^/]+$")
    )]
    pub resource_id: Option<String>,

    /// An identity AKS made for one of its add-ons, to adopt as a policy allows: kvbind
    /// grants it and writes its client ID, and never creates, attaches, detaches or deletes
    /// it. Needs the operator's managed cluster ID and mode VMManagedIdentity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addon: Option<AddonIdentity>,
}

/// The AKS add-ons whose identity a binding may use.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddonIdentity {
    /// The Key Vault secrets provider add-on's `azurekeyvaultsecretsprovider-<cluster>`,
    /// which AKS attaches to every node pool.
    #[serde(rename = "azureKeyvaultSecretsProvider")]
    AzureKeyvaultSecretsProvider,
}

/// The SecretProviderClasses a binding serves, by name or by label.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.names) != has(self.selector)").message("set exactly one of secretProviderClasses.names and secretProviderClasses.selector"))]
pub struct SecretProviderClassSelector {
    /// Names of SecretProviderClasses in the binding's namespace, at most 64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), inner(length(min = 1, max = 253)))]
    pub names: Option<Vec<String>>,

    /// A label selector over the SecretProviderClasses in the binding's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

impl SecretProviderClassSelector {
    /// True when the selector names and selects nothing (the field is absent).
    pub fn is_empty(&self) -> bool {
        self.names.is_none() && self.selector.is_none()
    }
}

/// The External Secrets Operator SecretStores a binding serves, by name.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretStoreSelector {
    /// Names of SecretStores (`external-secrets.io/v1`) in the binding's namespace, at
    /// most 16. ClusterSecretStores are cluster-wide and so not a namespace's to bind.
    #[schemars(length(min = 1, max = 16), inner(length(min = 1, max = 253)))]
    pub names: Vec<String>,
}

/// A Kubernetes label selector (`matchLabels` and `matchExpressions`).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// Labels that must all be present with these values, at most 32.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32, "additionalProperties" = {"type": "string", "maxLength": 63}))]
    pub match_labels: BTreeMap<String, String>,

    /// Requirements that must all hold, at most 16.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

impl LabelSelector {
    /// True when the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }
}

/// One requirement of a label selector.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(self.operator == 'In' || self.operator == 'NotIn') == (has(self.values) && size(self.values) > 0)").message("values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist"))]
pub struct LabelSelectorRequirement {
    /// The label key: an optional DNS-subdomain prefix and `/`, then a name of at most 63
    /// characters.
    #[schemars(
        length(min = 1, max = 317),
        regex(pattern = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
    )]
    pub key: String,
    /// How the label's value relates to `values`.
    pub operator: LabelSelectorOperator,
    /// The values for `In` and `NotIn`, at most 64; empty for `Exists` and `DoesNotExist`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 63)))]
    pub values: Vec<String>,
}

/// The operators of a label selector requirement.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelSelectorOperator {
    /// The label's value is one of `values`.
    In,
    /// The label is absent or its value is none of `values`.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

/// An explicit Key Vault, instead of finding it by name.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KeyVaultRef {
    /// Full ARM resource ID of the vault
    /// (`/subscriptions/…/resourceGroups/…/providers/Microsoft.KeyVault/vaults/NAME`).
    #[schemars(length(max = 512), regex(pattern = r"(?i)^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.KeyVault/vaults/[a-zA-Z0-9-]{3,24}$"))]
    pub resource_id: String,
}

/// How pods get the identity's tokens.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IdentityMode {
    /// Attached to the nodes' VM scale sets or VMs; any pod there can use it.
    #[default]
    #[serde(rename = "VMManagedIdentity")]
    VmManagedIdentity,
    /// Federated with one ServiceAccount; only its pods can use it.
    WorkloadIdentity,
    /// Bound to the AKS cluster by an ARM identity binding (preview), and usable by one
    /// ServiceAccount through AKS's token proxy; one federated credential serves every
    /// cluster and ServiceAccount.
    #[serde(rename = "AKSIdentityBinding")]
    AksIdentityBinding,
}

impl IdentityMode {
    /// The name as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityMode::VmManagedIdentity => "VMManagedIdentity",
            IdentityMode::WorkloadIdentity => "WorkloadIdentity",
            IdentityMode::AksIdentityBinding => "AKSIdentityBinding",
        }
    }

    /// True for the modes in which one ServiceAccount, not the node pools, gets the tokens.
    pub fn uses_service_account(self) -> bool {
        matches!(self, IdentityMode::WorkloadIdentity | IdentityMode::AksIdentityBinding)
    }
}

/// A ServiceAccount in the binding's namespace.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountRef {
    /// The ServiceAccount's name.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"))]
    pub name: String,
}

/// What deleting a binding does in Azure.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeletionPolicy {
    /// Remove what kvbind made and no other binding still needs.
    #[default]
    Delete,
    /// Leave Azure as it is.
    Retain,
}

/// Where role assignments go on RBAC vaults.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RbacScope {
    /// One role assignment per listed object.
    #[default]
    Object,
    /// One role assignment per object type on the whole vault.
    Vault,
}

/// What kvbind observed and did for a binding.
//
// The schema's default makes the API server fill in `observedGeneration: 0` until kvbind
// first writes a status, so kstatus (and the Flux and Argo CD health checks built on it)
// reads a binding kvbind has not yet seen as in progress: with no `observedGeneration` and
// no conditions, kstatus takes an object as current.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("default" = {"observedGeneration": 0}))]
pub struct IdentityBindingStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The identity in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityStatus>,

    /// The VM scale sets and VMs that carry the identity.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentStatus>,

    /// The access granted per Key Vault.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<VaultGrantStatus>,

    /// With `mode: WorkloadIdentity`, the federated credential and ServiceAccount kvbind
    /// set up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_identity: Option<WorkloadIdentityStatus>,

    /// In mode AKSIdentityBinding: the ARM identity binding and the Kubernetes RBAC that
    /// lets the ServiceAccount use the identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aks_identity_binding: Option<AksIdentityBindingStatus>,

    /// The SecretProviderClasses this binding serves and whether each carries the identity.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_provider_classes: Vec<SecretProviderClassStatus>,

    /// The External Secrets SecretStores this binding serves and whether each carries the
    /// identity.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_stores: Vec<SecretStoreStatus>,

    /// `Ready`, `Reconciling` and `Stalled` (kstatus); `AllowedByPolicy`, `IdentityReady`,
    /// `NodesAssigned`, `AccessGranted`, `SecretProviderClassesUpdated` (and
    /// `SecretStoresUpdated` when the binding names External Secrets stores); and, while they
    /// hold, `NodeWideAccess` (VM mode: which pools can reach the identity) and
    /// `UnpinnedClassesAtRisk`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// The identity a binding uses.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IdentityStatus {
    /// The identity's name.
    pub name: String,
    /// The identity's ARM resource ID.
    pub resource_id: String,
    /// The client (application) ID that the CSI driver asks tokens for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The object ID of the identity's service principal, which grants name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
    /// True when kvbind created the identity (and so may delete it).
    #[serde(default)]
    pub created_by_kvbind: bool,
}

/// The workload identity federation kvbind made for a binding.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadIdentityStatus {
    /// The federated identity credential's name under the identity.
    pub federated_credential: String,
    /// The issuer it trusts (the cluster's OIDC issuer).
    pub issuer: String,
    /// The subject it trusts (`system:serviceaccount:<namespace>:<name>`).
    pub subject: String,
    /// The ServiceAccount annotated with the client ID.
    pub service_account: String,
}

/// The AKS identity binding kvbind made for a binding.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AksIdentityBindingStatus {
    /// The ARM identity binding under the managed cluster
    /// (`…/managedClusters/NAME/identityBindings/NAME`).
    pub resource_id: String,
    /// The issuer AKS's shared federated credential trusts for this identity.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub oidc_issuer: String,
    /// The ClusterRole (and ClusterRoleBinding of the same name) that lets the
    /// ServiceAccount use the identity through AKS's token proxy.
    pub cluster_role: String,
    /// The ServiceAccount allowed to use the identity.
    pub service_account: String,
}

/// One VM scale set or VM that carries the identity.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentStatus {
    /// The ARM resource ID of the VM scale set or VM.
    pub resource_id: Arc<str>,
    /// Whether kvbind attached the identity or found it already there.
    pub origin: AttachmentOrigin,
}

/// Who put an identity on a VM scale set or VM.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachmentOrigin {
    /// kvbind added it and removes it when no binding needs it.
    Attached,
    /// It was there before kvbind looked; kvbind never removes it.
    Found,
}

/// Access granted on one vault.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VaultGrantStatus {
    /// The vault's ARM resource ID.
    pub vault_id: String,
    /// How the vault authorises data access.
    pub model: VaultAccessModel,
    /// Secret permissions granted (`get`, and `list` where version history is asked for).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// Key permissions granted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// Certificate permissions granted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<String>,
    /// On RBAC vaults, the role assignment IDs kvbind made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub role_assignments: Vec<String>,
    /// Why `list` was granted, if it was: the objects that ask for version history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_reason: Option<String>,
}

/// How a vault authorises data access.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum VaultAccessModel {
    /// Vault access policies.
    AccessPolicy,
    /// Azure RBAC role assignments (`enableRbacAuthorization`).
    Rbac,
}

/// One SecretProviderClass the binding serves.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretProviderClassStatus {
    /// The SecretProviderClass's name.
    pub name: String,
    /// True when it carries this binding's identity.
    pub updated: bool,
}

/// One SecretStore a binding serves.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretStoreStatus {
    /// The SecretStore's name.
    pub name: String,
    /// True when it carries this binding's identity.
    pub updated: bool,
}
