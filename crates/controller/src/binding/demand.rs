//! What one identity needs across every binding that shares it, gathered from the index:
//! the sharers, their needs and the ledger. The sum and its guards are pure, in
//! [`super::plan::group`].

use kvbind_api::IdentityBinding;

use super::names::key;
use super::plan::group::{Demand, Sharer};
use crate::needs::Needs;
use crate::policy::Judge;
use crate::policy::sharing::sharing_identity;
use crate::records::Records;

/// The group's demand for `identity`: `own` is the binding's needs, `None` while it is
/// being deleted.
pub(super) fn demand(binding: &IdentityBinding, identity: &kvbind_azure::IdentityId, own: Option<Needs>, judge: &Judge<'_>) -> Demand {
    let sharers: Vec<Sharer> = sharing_identity(binding, identity, judge)
        .into_iter()
        .map(|member| {
            let needs = judge.verdict(&member).needs.clone();
            (key(&member), member, needs)
        })
        .collect();
    // What kvbind did comes from its own ledger, never from a status: a tenant who may
    // patch `identitybindings/status` could otherwise name anything as kvbind's to undo.
    let mut records = Records::default();
    judge.ctx.ledger.add_to(identity, &mut records);
    Demand::new(own, key(binding), sharers, records)
}
