//! What kvbind did, kept where only kvbind writes: the ledger of attachments and grants per
//! identity, its durable part for adopted identities, and the identities' namespaces
//! published for the admission policy. Never read back from a binding's spec or status.

pub mod adoption_records;
pub(crate) mod bound_identities;
pub mod ledger;

use std::collections::{BTreeMap, BTreeSet};

use kvbind_api::identity_binding::{AttachmentOrigin, IdentityBindingStatus, VaultAccessModel};
use kvbind_azure::model::Permissions;
use kvbind_azure::{ComputeId, VaultId};

/// What kvbind did for one identity: its attachments and access-policy grants, as the ledger
/// keeps them (and as a status shows them, which is how one binding's own are written down).
#[derive(Debug, Default, Clone)]
pub struct Records {
    /// Targets kvbind attached the identity to.
    pub attached: BTreeSet<ComputeId>,
    /// Access-policy permissions kvbind granted, per vault.
    pub granted: BTreeMap<VaultId, Permissions>,
}

impl Records {
    /// Collects the records of `statuses` kvbind made (an ID that does not parse is no
    /// record of anything kvbind could have done).
    pub fn from_statuses<'a>(statuses: impl IntoIterator<Item = &'a IdentityBindingStatus>) -> Records {
        let mut r = Records::default();
        for status in statuses {
            for a in status.attachments.iter().filter(|a| a.origin == AttachmentOrigin::Attached) {
                if let Ok(target) = ComputeId::parse(&a.resource_id) {
                    r.attached.insert(target);
                }
            }
            for g in status.grants.iter().filter(|g| g.model == VaultAccessModel::AccessPolicy) {
                let Ok(vault) = VaultId::parse(&g.vault_id) else { continue };
                let granted = Permissions {
                    secrets: g.secrets.iter().cloned().collect(),
                    keys: g.keys.iter().cloned().collect(),
                    certificates: g.certificates.iter().cloned().collect(),
                    ..Permissions::default()
                };
                r.granted.entry(vault).or_default().merge(&granted);
            }
        }
        r
    }
}
