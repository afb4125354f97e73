//! kvbind's Kubernetes API.
//!
//! - [`IdentityBinding`]: the `kvbind.io/v1alpha1` custom resource that asks kvbind to
//!   give the pods behind some SecretProviderClasses a user-assigned managed identity
//!   with just enough Key Vault access.
//! - [`secret_provider_class`]: the Secrets Store CSI driver's `SecretProviderClass`,
//!   modelled as far as kvbind reads and writes it.
//! - [`external_secrets`]: the External Secrets Operator's `SecretStore` and
//!   `ExternalSecret`, as far as kvbind reads them.
//! - [`class_lint`]: the lint of a class's parameters the provider never reports.
//! - [`objects`]: the parser for the Azure provider's `objects` parameter.
//! - [`condition`]: `metav1.Condition`-shaped status conditions and the kstatus rules.
//!
//! This crate does no I/O.

pub mod binding_policy;
pub mod class_lint;
pub mod condition;
pub mod crdgen;
pub mod external_secrets;
pub mod identity_binding;
pub mod objects;
pub mod secret_provider_class;

pub use binding_policy::{BindingPolicy, BindingPolicySpec};
pub use condition::{Condition, ConditionStatus};
pub use identity_binding::{DeletionPolicy, IdentityBinding, IdentityBindingSpec, IdentityBindingStatus, IdentitySpec};
pub use objects::{KeyVaultObject, ObjectType, ObjectsError, parse_objects};

/// The API group of kvbind's own resources.
pub const GROUP: &str = "kvbind.io";

/// The field manager kvbind uses for every server-side apply it sends.
pub const FIELD_MANAGER: &str = "kvbind";

/// The finalizer that holds a binding until kvbind has undone its work in Azure.
pub const FINALIZER: &str = "kvbind.io/cleanup";
