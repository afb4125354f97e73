//! Pure planning, no I/O: from what the bindings sharing an identity ask for and what Azure
//! holds, to the changes to make. Each decision here is a function of its inputs with a
//! table test; the steps in [`super::azure_sync`] read Azure, ask these, and write.
//!
//! - [`group`]: what an identity's group of bindings needs together, and what it may remove;
//! - [`identity`]: whose the identity is, and whether to create, keep, retag or adopt it;
//! - [`reach`]: which way the pods reach the identity (pools, federation, AKS), and what an
//!   earlier way left to take back;
//! - [`federation`]: the federated credential and annotation, or the AKS identity binding
//!   and its ClusterRole, from what is there;
//! - [`attach`]: per scale set or VM, keep, attach, refuse past Azure's limit, or detach;
//! - [`undo`]: what a leaving binding takes back in its namespace, and what its sharers
//!   keep;
//! - [`grants`]: per vault, the least-privilege permissions or role assignments, and the
//!   change from what the vault holds;
//! - [`write_back`]: the fields kvbind owns in a class or store for the binding's mode.

pub mod attach;
pub mod federation;
pub mod grants;
pub mod group;
pub mod identity;
pub mod reach;
pub mod undo;
pub mod write_back;

pub use attach::{AttachStep, plan_attachments};
pub use grants::{RoleChange, access_policy_permissions, access_policy_plan, list_reason, made_by_kvbind, role_assignment_change, role_assignments};
