//! kvbind's ARM port: the one place in kvbind that talks to Azure.
//!
//! - [`Arm`]: every operation kvbind performs, in its own types ([`model`], [`ids`]).
//! - [`ArmClient`]: the implementation on the azure_mgmt 0.21 crates, going around them
//!   where they are wrong for these operations (see README.md beside this crate).
//! - [`AzureError`]: the error classes the controller decides retries on.
//! - [`cloud`], [`credential`]: where to talk to and as whom.

#[cfg(feature = "client")]
pub mod client;
pub mod cloud;
#[cfg(feature = "client")]
pub mod credential;
pub mod error;
pub mod identity_patch;
pub mod ids;
pub mod intern;
pub mod model;
pub mod port;
pub mod roles;

/// The credential trait the clients authenticate with.
#[cfg(feature = "client")]
pub use azure_core::auth::TokenCredential;
#[cfg(feature = "client")]
pub use client::pacing::{Budget, DEFAULT_RESERVE, PacingSettings};
#[cfg(feature = "client")]
pub use client::{ArmClient, ArmClientConfig, LroSettings};
pub use cloud::Cloud;
#[cfg(feature = "client")]
pub use credential::{CredentialConfig, build_credential};
pub use error::AzureError;
pub use ids::{ComputeId, GroupResourceId, IdentityId, NodeLocation, ResourceKind, VaultId};
pub use port::Arm;
