//! Step 1's decision: which identities are this installation's (the tags kvbind writes
//! and reads), and whether to create, keep, retag, adopt, or refuse the one a binding names.

use std::collections::BTreeMap;

use kvbind_api::identity_binding::IdentitySpec;
use kvbind_azure::model::Identity;

/// Tag that marks an identity kvbind created (and so may delete), with the installation
/// ID as its value: an identity another cluster's kvbind made, or one tagged by hand, is not
/// this installation's.
pub const MANAGED_BY_TAG: &str = "kvbind.io-managed-by";

/// Tag that names the bindings using an identity kvbind created.
pub const BINDINGS_TAG: &str = "kvbind.io-bindings";

/// True when this installation of kvbind created `identity`: its tag carries our
/// installation ID. Only kvbind writes Azure tags; tenants write none.
pub fn made_here(identity: &Identity, installation: &str) -> bool {
    identity.tags.get(MANAGED_BY_TAG).is_some_and(|v| !installation.is_empty() && v == installation)
}

/// Whether `namespace`'s bindings may take `identity`, which this installation made, as
/// theirs: its bindings tag names a binding of that namespace, or one of `users` (the live
/// bindings sharing it). An identity whose every binding is gone (a `Retain` leftover) is
/// taken over only by its own namespace's bindings; anyone else must adopt it.
pub fn ours_to_join(identity: &Identity, namespace: &str, users: &[String]) -> bool {
    let named: Vec<&str> = identity.tags.get(BINDINGS_TAG).map(|t| t.split(',').collect()).unwrap_or_default();
    named.iter().any(|key| key.split_once('/').is_some_and(|(ns, _)| ns == namespace) || users.iter().any(|u| u == key))
}

/// Whether what kvbind did with `identity` for a binding of `namespace` was done to its
/// own: the identity was named (not adopted by resource ID, `adopted`), this installation
/// made it, and made it for this namespace or for `users`. Only then are its attachments
/// and grants kvbind's to take back without a record of each, and the identity kvbind's to
/// delete.
pub fn owned(identity: &Identity, adopted: bool, installation: &str, namespace: &str, users: &[String]) -> bool {
    !adopted && made_here(identity, installation) && ours_to_join(identity, namespace, users)
}

/// The bindings tag: the users' keys, whole, as many as fit in Azure's 256 characters.
pub fn owners_tag(users: &[String]) -> String {
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

/// The tags kvbind wants on an identity it made: the spec's, this installation's mark, and
/// the bindings using it.
pub fn identity_tags(spec: &IdentitySpec, installation: &str, users: &[String]) -> BTreeMap<String, String> {
    let mut tags = spec.tags.clone().unwrap_or_default();
    tags.insert(MANAGED_BY_TAG.to_owned(), installation.to_owned());
    tags.insert(BINDINGS_TAG.to_owned(), owners_tag(users));
    tags
}

/// What step 1 does with the identity found under a binding's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityStep {
    /// None exists: create it.
    Create,
    /// This installation made it for this namespace (or its sharers), tagged as wanted.
    Keep,
    /// This installation's, with tags to bring up to date.
    Retag,
    /// Someone else's, or left by another namespace's bindings: used as found, never
    /// changed or deleted, because a policy lists it among its `adoptableIdentities`.
    Adopt,
    /// Adoption that no policy allows.
    RefuseAdoption,
}

/// Decides step 1 for an identity a binding names by `name` (one named by `resourceId` is
/// adoption from the start): `found` is what Azure has, `tags` what kvbind would write.
pub fn identity_step(
    found: Option<&Identity>,
    may_adopt: bool,
    installation: &str,
    namespace: &str,
    users: &[String],
    tags: &BTreeMap<String, String>,
) -> IdentityStep {
    match found {
        None => IdentityStep::Create,
        // Made by someone else, or left by bindings of another namespace: taking it is
        // adoption, never a change to it.
        Some(identity) if !made_here(identity, installation) || !ours_to_join(identity, namespace, users) => {
            if may_adopt {
                IdentityStep::Adopt
            } else {
                IdentityStep::RefuseAdoption
            }
        }
        Some(identity) if identity.tags == *tags => IdentityStep::Keep,
        Some(_) => IdentityStep::Retag,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HERE: &str = "installation-a";

    fn identity(tags: &[(&str, &str)]) -> Identity {
        let id =
            kvbind_azure::IdentityId::parse("/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app").expect("id");
        let tags = tags.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Identity { id, location: "eastus".into(), client_id: "c".into(), principal_id: "p".into(), tenant_id: "t".into(), tags }
    }

    #[test]
    fn created_found_adopted_or_refused_by_whose_mark_and_whose_bindings_it_carries() {
        let users = vec!["team-a/app".to_owned()];
        let wanted = identity_tags(&IdentitySpec::default(), HERE, &users);
        let wanted_list: Vec<(&str, &str)> = wanted.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let ours_other_bindings = [(MANAGED_BY_TAG, HERE), (BINDINGS_TAG, "team-a/old")];
        let leftover_of_b = [(MANAGED_BY_TAG, HERE), (BINDINGS_TAG, "team-b/app")];
        let another_installation = [(MANAGED_BY_TAG, "installation-b"), (BINDINGS_TAG, "team-a/app")];
        let hand_tagged_unmarked = [(BINDINGS_TAG, "team-a/app")];
        let table: Vec<(&str, Option<Identity>, bool, IdentityStep)> = vec![
            ("none yet", None, false, IdentityStep::Create),
            ("ours, as wanted", Some(identity(&wanted_list)), false, IdentityStep::Keep),
            ("ours, for the namespace, tags behind", Some(identity(&ours_other_bindings)), false, IdentityStep::Retag),
            ("a Retain leftover of another namespace", Some(identity(&leftover_of_b)), false, IdentityStep::RefuseAdoption),
            ("another installation's, even naming our binding", Some(identity(&another_installation)), false, IdentityStep::RefuseAdoption),
            ("another installation's, adoptable", Some(identity(&another_installation)), true, IdentityStep::Adopt),
            ("unmarked, whatever its bindings tag says", Some(identity(&hand_tagged_unmarked)), false, IdentityStep::RefuseAdoption),
            ("someone else's, adoptable", Some(identity(&[])), true, IdentityStep::Adopt),
        ];
        for (case, found, may_adopt, step) in table {
            assert_eq!(identity_step(found.as_ref(), may_adopt, HERE, "team-a", &users, &wanted), step, "{case}");
        }
        assert!(owned(&identity(&wanted_list), false, HERE, "team-a", &users), "made here, for this namespace");
        assert!(!owned(&identity(&wanted_list), true, HERE, "team-a", &users), "adopted by ID, whoever tagged it");
        assert!(!owned(&identity(&leftover_of_b), false, HERE, "team-a", &users), "made here for another namespace");
        assert!(!owned(&identity(&another_installation), false, HERE, "team-a", &users), "another installation's");
        assert_eq!(
            identity_step(Some(&identity(&wanted_list)), false, "", "team-a", &users, &wanted),
            IdentityStep::RefuseAdoption,
            "no installation ID marks nothing as ours"
        );
    }
}
