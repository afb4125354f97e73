//! Which identities are this installation's: the tags kvbind writes and reads.

use kvbind_azure::model::Identity;

use crate::context::Context;

/// Tag that marks an identity kvbind created (and so may delete), with the installation
/// ID as its value: an identity another cluster's kvbind made, or one tagged by hand, is not
/// this installation's.
pub const MANAGED_BY_TAG: &str = "kvbind.io-managed-by";

/// Tag that names the bindings using an identity kvbind created.
pub const BINDINGS_TAG: &str = "kvbind.io-bindings";

/// True when this installation of kvbind created `identity`: its tag carries our
/// installation ID. Only kvbind writes Azure tags; tenants write none.
pub fn made_here(identity: &Identity, ctx: &Context) -> bool {
    identity.tags.get(MANAGED_BY_TAG).is_some_and(|v| !ctx.config.installation.is_empty() && *v == ctx.config.installation)
}

/// Whether `namespace`'s bindings may take `identity`, which this installation made, as
/// theirs: its bindings tag names a binding of that namespace, or one of `users` (the live
/// bindings sharing it). An identity whose every binding is gone (a `Retain` leftover) is
/// taken over only by its own namespace's bindings; anyone else must adopt it.
pub fn ours_to_join(identity: &Identity, namespace: &str, users: &[String]) -> bool {
    let named: Vec<&str> = identity.tags.get(BINDINGS_TAG).map(|t| t.split(',').collect()).unwrap_or_default();
    named.iter().any(|key| key.split_once('/').is_some_and(|(ns, _)| ns == namespace) || users.iter().any(|u| u == key))
}

/// The bindings tag: the users' keys, whole, as many as fit in Azure's 256 characters.
pub(super) fn owners_tag(users: &[String]) -> String {
    let mut owners = String::new();
    for user in users {
        if owners.len() + user.len() + 1 > 256 {
            break;
        }
        if !owners.is_empty() {
            owners.push(',');
        }
        owners.push_str(user);
    }
    owners
}
