//! The writers that take kvbind's slow Azure writes off the reconciles: one per scale set
//! or VM and one per vault, each batching what many bindings ask for into one request, and
//! the handoffs that wake each binding when its write has landed.

pub mod access_batcher;
pub mod batcher;
pub mod handoff;
pub mod write_queue;
