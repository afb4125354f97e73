//! What can stop a binding from converging, which condition it belongs to, and when to
//! try again.
//!
//! Longer than most files on purpose: every way a binding can fail is one variant of one
//! enum, and its step, reason, retry and stall are decided side by side in the matches
//! below, so a new variant cannot be added without saying all four.

use std::time::Duration;

use kvbind_api::secret_provider_class::ParametersError;
use kvbind_azure::AzureError;
use kvbind_azure::ids::IdError;

/// The domain conditions a failure can belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// `AllowedByPolicy`.
    Policy,
    /// `IdentityReady`.
    Identity,
    /// `NodesAssigned`.
    Nodes,
    /// `AccessGranted`.
    Access,
    /// `SecretProviderClassesUpdated`.
    Classes,
    /// `SecretStoresUpdated`, for bindings that name External Secrets stores.
    Stores,
}

impl Step {
    /// The condition type.
    pub fn condition(self) -> &'static str {
        match self {
            Step::Policy => "AllowedByPolicy",
            Step::Identity => "IdentityReady",
            Step::Nodes => "NodesAssigned",
            Step::Access => "AccessGranted",
            Step::Classes => "SecretProviderClassesUpdated",
            Step::Stores => "SecretStoresUpdated",
        }
    }

    /// Every step, in the order the reconciler takes them.
    pub const ALL: [Step; 6] = [Step::Policy, Step::Identity, Step::Nodes, Step::Access, Step::Classes, Step::Stores];
}

/// When to look at a failed binding again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// After exactly this long (the server said so).
    After(Duration),
    /// With exponential backoff and jitter.
    Backoff,
    /// Not before something changes (the spec, a SecretProviderClass, a node), or a slow
    /// resync in case the fix is in Azure.
    OnChange,
}

/// Why a binding did not converge.
#[derive(Debug, thiserror::Error)]
pub enum BindingError {
    /// The identity in the spec cannot be used.
    #[error("spec.identity: {0}")]
    InvalidIdentity(String),
    /// The identity to adopt does not exist.
    #[error("spec.identity.resourceId: identity {0} does not exist")]
    IdentityNotFound(String),
    /// A named SecretProviderClass does not exist.
    #[error("SecretProviderClass {0} does not exist in this namespace")]
    ClassNotFound(String),
    /// A SecretProviderClass is not for the Azure provider.
    #[error("SecretProviderClass {name}: spec.provider is {provider:?}, kvbind serves only \"azure\"")]
    NotAzure {
        /// The class.
        name: String,
        /// Its provider.
        provider: String,
    },
    /// A SecretProviderClass's parameters are malformed.
    #[error("SecretProviderClass {name}: {source}")]
    InvalidClass {
        /// The class.
        name: String,
        /// What is wrong.
        source: ParametersError,
    },
    /// A SecretProviderClass's parameters would make the mount fail or use another identity.
    #[error("SecretProviderClass {name}: {finding}")]
    ClassLint {
        /// The class.
        name: String,
        /// What the lint found.
        finding: kvbind_api::class_lint::Finding,
    },
    /// No BindingPolicy allows every part of the binding.
    #[error("not allowed by policy: {0}")]
    NotAllowedByPolicy(String),
    /// The namespace has made as many Azure writes this hour as its policies allow.
    #[error(
        "namespace {namespace} has made {spent} Azure writes in the last hour and BindingPolicy {policy} allows {max} (spec.maxAzureWritesPerHour); kvbind writes for it again in {} s",
        resume.as_secs()
    )]
    AzureWriteQuota {
        /// The namespace.
        namespace: String,
        /// Writes in the last hour.
        spent: usize,
        /// The most generous quota among the policies that allow the binding.
        max: u32,
        /// That policy.
        policy: String,
        /// When one write leaves the window.
        resume: std::time::Duration,
    },
    /// The role assignments a grant needs would take a namespace past its quota.
    #[error(
        "namespace {namespace}'s identities hold {held} role assignments kvbind made; this grant needs {needed} more and BindingPolicy {policy} allows {max} (spec.maxRoleAssignmentsPerNamespace): none was made. List fewer objects, or grant by access policy"
    )]
    RoleAssignmentQuota {
        /// The namespace over its quota.
        namespace: String,
        /// What its identities hold now.
        held: usize,
        /// What the grant would add (net of what it removes).
        needed: usize,
        /// The most generous quota among the policies that select the namespace.
        max: u32,
        /// That policy.
        policy: String,
    },
    /// Workload identity needs the cluster's OIDC issuer, which the operator was not given.
    #[error(
        "spec.mode: WorkloadIdentity needs the cluster's OIDC issuer URL, and the operator has none (--oidc-issuer-url; on AKS: az aks show --query oidcIssuerProfile.issuerUrl)"
    )]
    NoIssuer,
    /// An AKS identity binding needs the managed cluster, and the operator was told none.
    #[error(
        "spec.mode: AKSIdentityBinding needs the AKS cluster's ARM ID, and the operator has none (--managed-cluster-id, chart value controller.managedClusterId; on AKS: az aks show --query id)"
    )]
    NoManagedCluster,
    /// The ServiceAccount to federate does not exist.
    #[error("spec.serviceAccount.name: ServiceAccount {0} does not exist in this namespace")]
    ServiceAccountNotFound(String),
    /// The ServiceAccount already names another client ID.
    #[error(
        "spec.serviceAccount.name: ServiceAccount {name} carries azure.workload.identity/client-id {found:?}, set by someone else; kvbind will not overwrite it"
    )]
    ServiceAccountConflict {
        /// The ServiceAccount.
        name: String,
        /// The client ID it names.
        found: String,
    },
    /// A SecretProviderClass already names another identity.
    #[error("SecretProviderClass {name}: spec.parameters.{parameter} is {found:?}, set by someone else; kvbind will not overwrite it")]
    IdentityConflict {
        /// The class.
        name: String,
        /// The parameter that names it.
        parameter: &'static str,
        /// The identity it names.
        found: String,
    },
    /// Attaching the identity would take a scale set or VM past Azure's limit.
    #[error("PoolIdentityLimit: {}", pool_identity_limit(target, *count, *limit))]
    PoolIdentityLimit {
        /// The scale set's or VM's name.
        target: String,
        /// How many it would carry.
        count: usize,
        /// Azure's limit.
        limit: usize,
    },
    /// A SecretProviderClass's `objects` parameter is longer than kvbind reads.
    #[error("SecretProviderClass {name}: spec.parameters.objects is {bytes} bytes, more than the {limit} kvbind reads; split the objects across classes")]
    ObjectsTooLong {
        /// The class.
        name: String,
        /// Its length.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// Another binding serves the same SecretProviderClass with another identity or mode:
    /// a class carries one identity, and writing each in turn would never settle.
    #[error(
        "SecretProviderClass {class} is also served by IdentityBinding {other} with another identity or mode; a class carries one identity, so kvbind writes it for neither until one of them stops naming it"
    )]
    ClassConflict {
        /// The class.
        class: String,
        /// The other binding, `namespace/name`.
        other: String,
    },
    /// A SecretProviderClass names a cloud other than the operator's.
    #[error("SecretProviderClass {name}: spec.parameters.cloudName {cloud:?} is not the cloud kvbind works in ({ours})")]
    CloudMismatch {
        /// The class.
        name: String,
        /// The cloud it names.
        cloud: String,
        /// The operator's cloud.
        ours: String,
    },
    /// No vault of that name in the configured subscriptions.
    #[error("{}: {} {vault:?} was not found in subscriptions {subscriptions}", origin.object(), origin.vault_field())]
    VaultNotFound {
        /// The class or store that names the vault.
        origin: VaultOrigin,
        /// The vault name.
        vault: String,
        /// Where kvbind looked.
        subscriptions: String,
    },
    /// The vault trusts another tenant than the class names.
    #[error("{}: {} {expected} is not the tenant of vault {vault} ({found})", origin.object(), origin.tenant_field())]
    TenantMismatch {
        /// The class or store that names the vault.
        origin: VaultOrigin,
        /// The vault.
        vault: String,
        /// The tenant the class names.
        expected: String,
        /// The vault's tenant.
        found: String,
    },
    /// ESO's SecretStores are not served, so the stores a binding names cannot be used.
    #[error(
        "spec.secretStores: the API server does not serve external-secrets.io/v1 SecretStores and ExternalSecrets; install the External Secrets Operator, then restart kvbind"
    )]
    SecretStoresNotServed,
    /// A named SecretStore does not exist.
    #[error("spec.secretStores: SecretStore {0} does not exist in this namespace")]
    SecretStoreNotFound(String),
    /// A SecretStore is not one kvbind can serve.
    #[error("SecretStore {name}: {problem}")]
    InvalidSecretStore {
        /// The store.
        name: String,
        /// What is wrong, naming the field.
        problem: String,
    },
    /// A SecretStore's field that kvbind writes was set by someone else to something else.
    #[error("SecretStore {name}: spec.provider.azurekv.{field} is {found:?}, set by someone else; kvbind will not overwrite it")]
    SecretStoreConflict {
        /// The store.
        name: String,
        /// The field.
        field: &'static str,
        /// What it holds.
        found: String,
    },
    /// Another binding serves the same SecretStore with another identity, mode or
    /// ServiceAccount.
    #[error(
        "SecretStore {store} is also served by IdentityBinding {other} with another identity, mode or ServiceAccount; a store carries one identity, so kvbind writes it for neither until one of them stops naming it"
    )]
    SecretStoreShared {
        /// The store.
        store: String,
        /// The other binding, `namespace/name`.
        other: String,
    },
    /// An ExternalSecret reads through a bound store what kvbind cannot grant by name.
    #[error("ExternalSecret {name} (through SecretStore {store}): {source}")]
    InvalidExternalSecret {
        /// The ExternalSecret.
        name: String,
        /// The store it reads through.
        store: String,
        /// What cannot be granted.
        source: kvbind_api::external_secrets::RemoteRefError,
    },
    /// A selected node's providerID is not an Azure VM.
    #[error("node {node}: {source}")]
    InvalidNode {
        /// The node.
        node: String,
        /// What is wrong.
        source: IdError,
    },
    /// An Azure call failed.
    #[error("{action}: {source}")]
    Azure {
        /// Which condition.
        step: Step,
        /// What kvbind was doing.
        action: &'static str,
        /// The classified failure.
        source: AzureError,
    },
    /// A Kubernetes call failed.
    #[error("{action}: {source}")]
    Kube {
        /// What kvbind was doing.
        action: &'static str,
        /// The failure.
        source: kube::Error,
    },
}

/// How soon a binding stalled on a class conflict looks again.
const CLASS_CONFLICT_RECHECK: std::time::Duration = std::time::Duration::from_secs(60);

impl BindingError {
    /// Wraps an Azure failure of `action` in `step`.
    pub fn azure(step: Step, action: &'static str) -> impl FnOnce(AzureError) -> BindingError {
        move |source| BindingError::Azure { step, action, source }
    }

    /// The condition this failure belongs to.
    pub fn step(&self) -> Step {
        match self {
            BindingError::NotAllowedByPolicy(_) | BindingError::AzureWriteQuota { .. } => Step::Policy,
            BindingError::InvalidIdentity(_) | BindingError::IdentityNotFound(_) => Step::Identity,
            BindingError::InvalidNode { .. }
            | BindingError::NoIssuer
            | BindingError::NoManagedCluster
            | BindingError::ServiceAccountNotFound(_)
            | BindingError::ServiceAccountConflict { .. }
            | BindingError::PoolIdentityLimit { .. } => Step::Nodes,
            BindingError::VaultNotFound { .. } | BindingError::TenantMismatch { .. } | BindingError::RoleAssignmentQuota { .. } => Step::Access,
            BindingError::ClassNotFound(_)
            | BindingError::NotAzure { .. }
            | BindingError::InvalidClass { .. }
            | BindingError::ClassLint { .. }
            | BindingError::IdentityConflict { .. }
            | BindingError::ClassConflict { .. }
            | BindingError::ObjectsTooLong { .. }
            | BindingError::CloudMismatch { .. }
            | BindingError::Kube { .. } => Step::Classes,
            BindingError::SecretStoresNotServed
            | BindingError::SecretStoreNotFound(_)
            | BindingError::InvalidSecretStore { .. }
            | BindingError::SecretStoreConflict { .. }
            | BindingError::SecretStoreShared { .. }
            | BindingError::InvalidExternalSecret { .. } => Step::Stores,
            BindingError::Azure { step, .. } => *step,
        }
    }

    /// A CamelCase reason for conditions, Events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            BindingError::NotAllowedByPolicy(_) => "NotAllowedByPolicy",
            BindingError::AzureWriteQuota { .. } => "AzureWriteQuotaReached",
            BindingError::RoleAssignmentQuota { .. } => "RoleAssignmentQuotaReached",
            BindingError::NoIssuer => "OIDCIssuerNotConfigured",
            BindingError::NoManagedCluster => "ManagedClusterNotConfigured",
            BindingError::ServiceAccountNotFound(_) => "ServiceAccountNotFound",
            BindingError::ServiceAccountConflict { .. } => "ServiceAccountConflict",
            BindingError::InvalidIdentity(_) => "InvalidIdentity",
            BindingError::IdentityNotFound(_) => "IdentityNotFound",
            BindingError::ClassNotFound(_) => "SecretProviderClassNotFound",
            BindingError::NotAzure { .. } => "NotAzureProvider",
            BindingError::InvalidClass { source: ParametersError::Objects(_), .. } => "InvalidObjects",
            BindingError::InvalidClass { .. } => "InvalidParameters",
            BindingError::ClassLint { finding, .. } => finding.reason(),
            BindingError::IdentityConflict { .. } => "IdentityConflict",
            BindingError::ClassConflict { .. } => "SecretProviderClassConflict",
            BindingError::ObjectsTooLong { .. } => "ObjectsTooLong",
            BindingError::PoolIdentityLimit { .. } => "PoolIdentityLimit",
            BindingError::CloudMismatch { .. } => "CloudMismatch",
            BindingError::SecretStoresNotServed => "SecretStoresNotServed",
            BindingError::SecretStoreNotFound(_) => "SecretStoreNotFound",
            BindingError::InvalidSecretStore { .. } => "InvalidSecretStore",
            BindingError::SecretStoreConflict { .. } => "SecretStoreConflict",
            BindingError::SecretStoreShared { .. } => "SecretStoreShared",
            BindingError::InvalidExternalSecret { .. } => "InvalidExternalSecret",
            BindingError::VaultNotFound { .. } => "VaultNotFound",
            BindingError::TenantMismatch { .. } => "TenantMismatch",
            BindingError::InvalidNode { .. } => "InvalidProviderID",
            BindingError::Azure { source, .. } => source.reason(),
            BindingError::Kube { .. } => "KubernetesError",
        }
    }

    /// When to try again.
    pub fn retry(&self) -> Retry {
        match self {
            BindingError::Azure { source, .. } if source.is_retryable() => source.retry_after().map_or(Retry::Backoff, Retry::After),
            // ServiceAccounts are not watched: look again soon.
            BindingError::Kube { .. } | BindingError::ServiceAccountNotFound(_) => Retry::Backoff,
            // The other binding's deletion does not wake this one; a look a minute later,
            // with no write unless it went, does.
            BindingError::ClassConflict { .. } | BindingError::SecretStoreShared { .. } => Retry::After(CLASS_CONFLICT_RECHECK),
            BindingError::AzureWriteQuota { resume, .. } => Retry::After(*resume),
            _ => Retry::OnChange,
        }
    }

    /// True when nothing will change without a change to the spec, the cluster or Azure
    /// permissions (kstatus `Stalled`).
    pub fn is_stalled(&self) -> bool {
        self.retry() == Retry::OnChange || matches!(self, BindingError::ClassConflict { .. } | BindingError::SecretStoreShared { .. })
    }
}

/// What names a vault: a SecretProviderClass's parameters or a SecretStore's provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaultOrigin {
    /// A SecretProviderClass, by name.
    Class(String),
    /// An External Secrets SecretStore, by name.
    Store(String),
}

impl VaultOrigin {
    /// The object, as a message names it.
    pub fn object(&self) -> String {
        match self {
            VaultOrigin::Class(name) => format!("SecretProviderClass {name}"),
            VaultOrigin::Store(name) => format!("SecretStore {name}"),
        }
    }

    /// The field that names the vault.
    pub fn vault_field(&self) -> &'static str {
        match self {
            VaultOrigin::Class(_) => "spec.parameters.keyvaultName",
            VaultOrigin::Store(_) => "spec.provider.azurekv.vaultUrl",
        }
    }

    /// The field that names the vault's tenant.
    pub fn tenant_field(&self) -> &'static str {
        match self {
            VaultOrigin::Class(_) => "spec.parameters.tenantID",
            VaultOrigin::Store(_) => "spec.provider.azurekv.tenantId",
        }
    }
}

/// A failure of the reconciler itself (Kubernetes writes of status or finalizers).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Writing the status failed.
    #[error("patching the status of {binding}: {source}")]
    PatchStatus {
        /// `namespace/name`.
        binding: String,
        /// The failure.
        source: kube::Error,
    },
    /// The finalizer could not be added or removed.
    #[error(transparent)]
    Finalizer(#[from] FinalizerError),
    /// The binding has no namespace.
    #[error("the binding has no namespace")]
    NoNamespace,
    /// Undoing what kvbind did for a deleted binding failed; the finalizer stays.
    #[error("cleaning up: {0}")]
    Cleanup(#[source] BindingError),
}

/// What passes a scale set's or VM's identity limit, and the ways out: the one wording of
/// the planner's refusal and of the scale set writer's, which cuts a batch to what fits.
pub fn pool_identity_limit(target: &str, count: usize, limit: usize) -> String {
    format!(
        "{target} would carry {count} user-assigned identities; Azure allows {limit}. Share an identity between bindings, select fewer pools with spec.nodes, or use mode WorkloadIdentity"
    )
}

/// Failures writing the finalizer.
#[derive(Debug, thiserror::Error)]
pub enum FinalizerError {
    /// The binding has no name.
    #[error("the binding has no name")]
    Unnamed,
    /// The patch could not be built.
    #[error("building the finalizer patch: {0}")]
    Patch(#[source] serde_json::Error),
    /// The API server refused the patch (a failed test is a conflict: retried).
    #[error("{action} finalizer {}: {source}", kvbind_api::FINALIZER)]
    Write {
        /// Adding or removing.
        action: &'static str,
        /// The API server's answer.
        #[source]
        source: kube::Error,
    },
}
