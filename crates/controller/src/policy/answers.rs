//! What the judge's questions come to: each binding's verdict, who claims an identity first,
//! what a namespace already has, and the nodes a selector exposes; with the pure functions
//! that work the claims and quotas out from the bindings' ages.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kvbind_api::IdentityBinding;
use kvbind_azure::{ComputeId, IdentityId};

use crate::needs::Needs;

/// When a binding came, for who was first: creation time, then namespace and name (the
/// API server's times are whole seconds).
pub type Age = (Option<Timestamp>, String, String);

/// The age of `binding`.
pub fn age(binding: &IdentityBinding) -> Age {
    (binding.creation_timestamp().map(|t| t.0), binding.namespace().unwrap_or_default(), binding.name_any())
}

/// The nodes of the scale sets and VMs a selector reaches, each with its own.
pub type Exposed = Arc<[(ComputeId, Arc<Node>)]>;

/// What one binding's check came to, for the reconciles of the bindings sharing its
/// identity.
#[derive(Debug)]
pub struct Verdict {
    /// What it needs, when its input reads.
    pub needs: Option<Arc<Needs>>,
    /// The policies that allow it, when its identity and input read and one does.
    pub allowing: Option<Vec<String>>,
}

/// The oldest live binding of one namespace that claims an identity.
#[derive(Debug, Clone)]
pub struct Eldest {
    /// Its age.
    pub age: Age,
    /// Its namespace.
    pub namespace: String,
}

/// A namespace's live bindings in age order, with the identities they use: a quota's
/// count for any one of them is a binary search.
#[derive(Debug, Default)]
pub struct NamespaceAges {
    ages: Vec<Age>,
    /// Distinct identities among the first `i` bindings, at `i`.
    distinct_before: Vec<usize>,
    /// Where each identity first appears.
    first_seen: HashMap<IdentityId, usize>,
}

impl NamespaceAges {
    /// The ages of a namespace's `live` bindings, with the identity each uses.
    pub fn new(mut live: Vec<(Age, Option<IdentityId>)>) -> Self {
        live.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = NamespaceAges::default();
        for (i, (age, identity)) in live.into_iter().enumerate() {
            out.distinct_before.push(out.first_seen.len());
            if let Some(identity) = identity {
                out.first_seen.entry(identity).or_insert(i);
            }
            out.ages.push(age);
        }
        out.distinct_before.push(out.first_seen.len());
        out
    }

    /// What the namespace has before a binding of age `mine` that uses `identity`.
    pub fn usage(&self, mine: &Age, identity: &IdentityId) -> Usage {
        let before = self.ages.partition_point(|a| a < mine);
        Usage { bindings: before, identities: self.distinct_before[before], has_identity: self.first_seen.get(identity).is_some_and(|first| *first < before) }
    }
}

/// The eldest of each namespace among `claimants` that `selected` says a policy selects,
/// eldest first.
pub fn eldest_per_namespace(claimants: impl Iterator<Item = Age>, selected: impl Fn(&str) -> bool) -> Vec<Eldest> {
    let mut first: BTreeMap<String, Age> = BTreeMap::new();
    for age in claimants {
        let slot = first.entry(age.1.clone()).or_insert_with(|| age.clone());
        if age < *slot {
            *slot = age;
        }
    }
    let mut eldest: Vec<Eldest> = first.into_iter().filter(|(ns, _)| selected(ns)).map(|(namespace, age)| Eldest { age, namespace }).collect();
    eldest.sort_by(|a, b| a.age.cmp(&b.age));
    eldest
}

/// The eldest claimant of another namespace than `mine`'s, if it came before `mine`.
pub fn first_elsewhere<'e>(eldest: &'e [Eldest], mine: &Age) -> Option<&'e Eldest> {
    eldest.iter().find(|e| e.namespace != mine.1).filter(|e| e.age < *mine)
}

/// What a namespace has before a binding: its older live bindings and the identities they
/// use. Counting only the older ones, a quota refuses the newcomers and never takes away
/// what the first ones have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Older live bindings.
    pub bindings: usize,
    /// Distinct identities they use.
    pub identities: usize,
    /// Whether the identity asked about is one of them.
    pub has_identity: bool,
}

/// The binding of another namespace that holds an identity first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elder {
    /// `namespace/name`.
    pub key: String,
    /// Whether a policy of its namespace allows cross-namespace sharing: the identity's
    /// first user must agree to share it as much as the one joining.
    pub consents: bool,
}

#[cfg(test)]
mod tests {
    use kvbind_azure::ResourceKind;

    use super::*;

    fn at(second: i64, namespace: &str, name: &str) -> Age {
        (Some(Timestamp::from_second(second).expect("a time")), namespace.to_owned(), name.to_owned())
    }

    fn id(name: &str) -> IdentityId {
        IdentityId::new(ResourceKind::UserAssignedIdentity, "s", "rg", name).expect("an ID")
    }

    #[test]
    fn the_elder_is_the_eldest_claimant_of_another_selected_namespace_that_came_first() {
        let claimants = [at(10, "a", "x"), at(20, "b", "y"), at(5, "a", "w"), at(30, "c", "z"), at(1, "squat", "s")];
        let eldest = eldest_per_namespace(claimants.iter().cloned(), |ns| ns != "squat");
        let names: Vec<&str> = eldest.iter().map(|e| e.age.2.as_str()).collect();
        assert_eq!(names, ["w", "y", "z"], "one per namespace, eldest first, none from a namespace no policy selects");
        let elder = |mine: Age| first_elsewhere(&eldest, &mine).map(|e| e.age.2.clone());
        assert_eq!(elder(at(25, "c", "late")), Some("w".into()), "the eldest of any other namespace");
        assert_eq!(elder(at(25, "a", "late")), Some("y".into()), "never one of its own namespace");
        assert_eq!(elder(at(5, "a", "w")), None, "the eldest of all has none");
        assert_eq!(elder(at(5, "b", "v")), Some("w".into()), "in the same second, the namespace sorts first");
        assert_eq!(elder(at(5, "0", "v")), None, "and the other way round");
    }

    #[test]
    fn a_namespace_counts_only_what_came_before_a_binding() {
        let ages = NamespaceAges::new(vec![
            (at(3, "n", "c"), Some(id("one"))),
            (at(1, "n", "a"), Some(id("one"))),
            (at(2, "n", "b"), None),
            (at(3, "n", "d"), Some(id("two"))),
        ]);
        assert_eq!(ages.usage(&at(1, "n", "a"), &id("one")), Usage { bindings: 0, identities: 0, has_identity: false }, "the first has nothing before it");
        assert_eq!(ages.usage(&at(3, "n", "c"), &id("two")), Usage { bindings: 2, identities: 1, has_identity: false });
        assert_eq!(ages.usage(&at(3, "n", "d"), &id("one")), Usage { bindings: 3, identities: 1, has_identity: true }, "same second: by name");
        assert_eq!(ages.usage(&at(9, "n", "new"), &id("two")), Usage { bindings: 4, identities: 2, has_identity: true });
    }
}
