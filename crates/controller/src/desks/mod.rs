//! One desk per kind of Azure resource kvbind writes: what stands between the reconciles
//! and ARM for it.
//!
//! A desk keeps the resource as last read or written (fresh for a resync, read once
//! however many reconciles ask at once: [`crate::caches::shelf::Shelf`]), takes the writes
//! to it one at a time, and tells whoever waits when a write lands:
//! - [`compute`]: a scale set's or VM's identity block; attachments and detachments from
//!   every binding batched into one PATCH per window, within Azure's 150 identities;
//! - [`vault`]: a vault, and what vault a name stands for; access-policy entries batched
//!   16 to a request, within Azure's 1,024 entries;
//! - [`identity`]: an identity, one turn at a time for creating and tagging it, and its
//!   AKS identity bindings.
//!
//! The batching desks are one generic [`desk::Desk`], each with its resource's
//! [`desk::Clerk`]. A reconcile hands its slow writes to a desk and ends; the desk wakes it
//! when they land ([`handoff`]). The queue the batching desks share is [`queue`].

pub mod compute;
pub mod desk;
pub mod handoff;
pub mod identity;
pub mod queue;
pub mod vault;
