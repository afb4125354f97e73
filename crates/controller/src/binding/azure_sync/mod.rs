//! The Azure steps of a binding, in the order of the manual page they replace: the
//! identity, its attachment to the node pools, and the Key Vault grants. Each step reads
//! first and writes only what differs, so a converged binding costs no ARM write.

mod attachments;
mod grants;
mod identity;
mod records;
mod vaults;

pub use self::attachments::{Attachments, sync_attachments};
pub use self::grants::{Grants, sync_grants};
pub use self::identity::{delete_identity, ensure_identity};
pub use self::records::keep_adoption_record;
pub use self::vaults::resolve_vaults;
/// Something kvbind changed in Azure, for an Event.
pub use crate::desks::handoff::Change;
