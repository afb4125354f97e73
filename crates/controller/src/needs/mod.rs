//! What a binding asks for, as kvbind reads it from the cluster: the identity, the
//! SecretProviderClasses and External Secrets stores it serves with their objects, and the
//! VM scale sets and VMs of its nodes. Parsing and checking only, no I/O: bad input fails
//! here, before anything is written anywhere. Gathering them from the caches is
//! `binding::inputs`'s.

mod class;
mod identity;
mod inputs;
mod store;

pub use self::class::{class_input, selects_class};
pub use self::identity::{identity_of, names_identity};
pub use self::inputs::{ClassInput, Needs, StoreInput};
pub use self::store::{store_auth_type, store_input};
