//! Writing down what kvbind is about to do before it does it, so a crash forgets nothing.

use kvbind_azure::IdentityId;

use crate::context::Context;
use crate::error::BindingError;
use crate::records::Records;

/// Notes in the ledger a write about to be made for an identity kvbind adopted, and keeps
/// the ledger's record of it (see [`crate::records::adoption_records`]): first, so that a crash right
/// after the write still leaves a record of it.
pub(super) async fn record_ahead(
    ctx: &Context,
    identity: &IdentityId,
    note: impl FnOnce(&crate::records::ledger::Ledger, &IdentityId),
) -> Result<(), BindingError> {
    note(&ctx.ledger, identity);
    keep_adoption_record(ctx, identity).await
}

/// Keeps what the ledger holds for adopted `identity` where it outlives the process.
pub async fn keep_adoption_record(ctx: &Context, identity: &IdentityId) -> Result<(), BindingError> {
    let Some(store) = &ctx.adoption else { return Ok(()) };
    let mut records = Records::default();
    ctx.ledger.add_to(identity, &mut records);
    store.save(identity, &records).await.map_err(|source| BindingError::Kube { action: "recording what kvbind did to an adopted identity", source })
}
