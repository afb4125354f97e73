//! What kvbind keeps of the cluster and of Azure between reconciles, and how the watches
//! keep it current: each cache is dropped or refreshed by the change that makes it stale.

pub mod cache_trim;
pub mod imds_looked;
pub mod needs_memo;
pub mod node_targets;
pub mod parsed_classes;
pub mod shelf;
pub mod stamped;
pub mod unpinned_classes;
pub mod watch_backoff;
