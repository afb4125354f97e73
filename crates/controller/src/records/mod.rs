//! What kvbind did, kept where only kvbind writes: the ledger of attachments and grants per
//! identity, its durable part for adopted identities, and the identities' namespaces
//! published for the admission policy. Never read back from a binding's spec or status.

pub mod adoption_records;
pub(crate) mod bound_identities;
pub mod ledger;
