//! What kvbind did, kept where only kvbind writes: the ledger of attachments and grants per
//! identity, its durable part for adopted identities, and the identities' namespaces
//! published for the admission policy. Never read back from a binding's spec or status.

pub mod adoption_records;
pub(crate) mod bound_identities;
pub mod ledger;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kvbind_api::identity_binding::{AttachmentOrigin, IdentityBindingStatus, VaultAccessModel};
use kvbind_azure::intern::intern;
use kvbind_azure::model::Permissions;

/// What kvbind did for one identity: its attachments and access-policy grants, as the ledger
/// keeps them (and as a status shows them, which is how one binding's own are written down).
#[derive(Debug, Default, Clone)]
pub struct Records {
    /// Targets kvbind attached the identity to (lowercase IDs).
    /// Shared copies: every binding on the same pools records the same few IDs.
    pub attached: BTreeSet<Arc<str>>,
    /// Access-policy permissions kvbind granted, per vault (lowercase ID).
    pub granted: BTreeMap<String, Permissions>,
}

impl Records {
    /// Collects the records of `statuses`.
    pub fn from_statuses<'a>(statuses: impl IntoIterator<Item = &'a IdentityBindingStatus>) -> Records {
        let mut r = Records::default();
        for status in statuses {
            for a in &status.attachments {
                if a.origin == AttachmentOrigin::Attached {
                    r.attached.insert(intern(&a.resource_id.to_ascii_lowercase()));
                }
            }
            for g in status.grants.iter().filter(|g| g.model == VaultAccessModel::AccessPolicy) {
                let granted = Permissions {
                    secrets: g.secrets.iter().cloned().collect(),
                    keys: g.keys.iter().cloned().collect(),
                    certificates: g.certificates.iter().cloned().collect(),
                    ..Permissions::default()
                };
                r.granted.entry(g.vault_id.to_ascii_lowercase()).or_default().merge(&granted);
            }
        }
        r
    }
}
