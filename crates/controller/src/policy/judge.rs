//! One reconcile's judge: every policy check of the reconcile reads the caches through it,
//! so what the checks share is worked out once a reconcile rather than once a binding.
//!
//! A reconcile checks its own binding and every other binding that shares its identity (a
//! sharer its policy refuses must not widen what the identity gets). Checked one by one,
//! each check scanned every binding for the identity's elder and the namespace's quotas,
//! and every node for the pools a selector reaches: with k bindings on one identity, each
//! reconcile made k checks of n bindings, and the k reconciles k² of them. The judge keeps,
//! for one reconcile, each binding's verdict and what the verdicts read: per identity, its
//! claimants and the eldest of each namespace; per namespace, its policies and its bindings
//! in age order; per node selector, the nodes it exposes. A reconcile then scans the
//! bindings once per identity and namespace it looks at, and each sharer costs a few map
//! lookups.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kvbind_api::identity_binding::LabelSelector;
use kvbind_api::{BindingPolicy, IdentityBinding};
use kvbind_azure::{ComputeId, IdentityId};

use crate::binding::inputs::needs_of;
use crate::caches::stamped::Stamped;
use crate::context::Context;
use crate::error::BindingError;
use crate::needs::{Needs, identity_of, names_identity};
use crate::selector::matches;

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
struct Eldest {
    age: Age,
    namespace: String,
}

/// A namespace's live bindings in age order, with the identities they use: a quota's
/// count for any one of them is a binary search.
#[derive(Debug, Default)]
struct NamespaceAges {
    ages: Vec<Age>,
    /// Distinct identities among the first `i` bindings, at `i`.
    distinct_before: Vec<usize>,
    /// Where each identity first appears.
    first_seen: HashMap<IdentityId, usize>,
}

impl NamespaceAges {
    fn new(mut live: Vec<(Age, Option<IdentityId>)>) -> Self {
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
    fn usage(&self, mine: &Age, identity: &IdentityId) -> Usage {
        let before = self.ages.partition_point(|a| a < mine);
        Usage { bindings: before, identities: self.distinct_before[before], has_identity: self.first_seen.get(identity).is_some_and(|first| *first < before) }
    }
}

/// The eldest of each namespace among `claimants` that `selected` says a policy selects,
/// eldest first.
fn eldest_per_namespace(claimants: impl Iterator<Item = Age>, selected: impl Fn(&str) -> bool) -> Vec<Eldest> {
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
fn first_elsewhere<'e>(eldest: &'e [Eldest], mine: &Age) -> Option<&'e Eldest> {
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

/// A binding's check: the policies that allow it, or why none does.
pub type CheckRule = for<'j> fn(&IdentityBinding, &IdentityId, bool, &Needs, &Judge<'j>) -> Result<Vec<String>, BindingError>;

/// The policy rules whose answers a judge keeps. The rules consult the judge for what
/// they share, so they are given to it rather than imported: neither module needs the other.
pub struct Rules {
    /// The policies that select a namespace.
    pub selecting: fn(&str, &Context) -> Vec<Arc<BindingPolicy>>,
    /// A binding's check.
    pub check: CheckRule,
}

/// One reconcile's view of the policies and bindings. Its answers are [`Stamped`] that no
/// watch tells of a change: the judge lives for one reconcile, which judges one view.
pub struct Judge<'a> {
    /// The caches.
    pub ctx: &'a Context,
    rules: &'static Rules,
    selecting: Stamped<String, Arc<[Arc<BindingPolicy>]>>,
    claimants: Stamped<IdentityId, Arc<[Arc<IdentityBinding>]>>,
    eldest: Stamped<IdentityId, Arc<[Eldest]>>,
    ages: Stamped<String, Arc<NamespaceAges>>,
    exposed: Stamped<String, Exposed>,
    outside: Stamped<String, Option<Arc<Node>>>,
    verdicts: Stamped<String, Arc<Verdict>>,
}

impl<'a> Judge<'a> {
    /// A judge for one reconcile, keeping the answers of `rules`.
    pub fn with_rules(ctx: &'a Context, rules: &'static Rules) -> Self {
        Judge {
            ctx,
            rules,
            selecting: Stamped::default(),
            claimants: Stamped::default(),
            eldest: Stamped::default(),
            ages: Stamped::default(),
            exposed: Stamped::default(),
            outside: Stamped::default(),
            verdicts: Stamped::default(),
        }
    }

    /// The policies that select `namespace`.
    pub fn selecting(&self, namespace: &str) -> Arc<[Arc<BindingPolicy>]> {
        self.selecting.get_or_make(namespace.to_owned(), || (self.rules.selecting)(namespace, self.ctx).into())
    }

    /// What `binding`'s check comes to.
    pub fn verdict(&self, binding: &IdentityBinding) -> Arc<Verdict> {
        let key = format!("{}/{}", binding.namespace().unwrap_or_default(), binding.name_any());
        self.verdicts.get_or_make(key, || {
            let identity = identity_of(&binding.spec.identity, &self.ctx.config).ok();
            let ctx = self.ctx;
            let needs = ctx.index.needs_memo.get_or_read(binding, || needs_of(binding, ctx)).ok();
            let allowing = match (&identity, &needs) {
                (Some((id, adopt)), Some(needs)) => (self.rules.check)(binding, id, *adopt, needs, self).ok(),
                _ => None,
            };
            Arc::new(Verdict { needs, allowing })
        })
    }

    /// Every live binding that uses `identity`, the asking one included.
    pub fn claimants(&self, identity: &IdentityId) -> Arc<[Arc<IdentityBinding>]> {
        self.claimants.get_or_make(identity.clone(), || {
            self.ctx
                .index
                .bindings
                .state()
                .into_iter()
                .filter(|b| names_identity(&b.spec.identity, &identity.name))
                .filter(|b| b.metadata.deletion_timestamp.is_none())
                .filter(|b| identity_of(&b.spec.identity, &self.ctx.config).is_ok_and(|(id, _)| &id == identity))
                .collect()
        })
    }

    /// The oldest binding, in another namespace that some policy selects, that uses
    /// `identity` and was there before `binding`: the identity is theirs, so a later claim
    /// is the one that needs allowing. A namespace no policy selects cannot squat a name
    /// this way.
    pub fn elder(&self, binding: &IdentityBinding, identity: &IdentityId) -> Option<Elder> {
        let eldest = self.eldest.get_or_make(identity.clone(), || {
            eldest_per_namespace(self.claimants(identity).iter().map(|b| age(b)), |namespace| !self.selecting(namespace).is_empty()).into()
        });
        let other = first_elsewhere(&eldest, &age(binding))?;
        let consents = self.selecting(&other.namespace).iter().any(|p| p.spec.allow_cross_namespace_sharing);
        Some(Elder { key: format!("{}/{}", other.namespace, other.age.2), consents })
    }

    /// What `binding`'s namespace has before it, for `identity`.
    pub fn usage(&self, binding: &IdentityBinding, identity: &IdentityId) -> Usage {
        let namespace = binding.namespace().unwrap_or_default();
        let ages = self.ages.get_or_make(namespace.clone(), || {
            let live = self
                .ctx
                .index
                .bindings
                .state()
                .iter()
                .filter(|b| b.metadata.namespace.as_deref() == Some(namespace.as_str()) && b.metadata.deletion_timestamp.is_none())
                .map(|b| (age(b), identity_of(&b.spec.identity, &self.ctx.config).ok().map(|(id, _)| id)))
                .collect();
            Arc::new(NamespaceAges::new(live))
        });
        ages.usage(&age(binding), identity)
    }

    /// Every node of every scale set or VM that the nodes `selector` selects run on: an
    /// identity is attached to a whole scale set, so every one of its nodes is exposed.
    pub fn exposed(&self, selector: &LabelSelector) -> Exposed {
        let key = serde_json::to_string(selector).unwrap_or_default();
        self.exposed.get_or_make(key, || {
            let ctx = self.ctx;
            let Ok(targets) = ctx.index.node_targets.of(&ctx.index.nodes, selector) else {
                return Arc::from([]);
            };
            if targets.is_empty() {
                return Arc::from([]);
            }
            ctx.index
                .nodes
                .state()
                .into_iter()
                .filter_map(|node| {
                    let provider_id = node.spec.as_ref()?.provider_id.as_deref()?;
                    let target = kvbind_azure::NodeLocation::from_provider_id(provider_id).ok()?.attach_target().clone();
                    targets.contains(&target).then_some((target, node))
                })
                .collect()
        })
    }

    /// A node that `selector` selects (every node, with `None`) and none of `policy`'s
    /// `nodeSelectors` matches.
    pub fn outside(&self, selector: Option<&LabelSelector>, policy: &BindingPolicy) -> Option<Arc<Node>> {
        let selectors = policy.spec.node_selectors.as_deref()?;
        let key = format!("{}\n{}", policy.name_any(), selector.map(|s| serde_json::to_string(s).unwrap_or_default()).unwrap_or_default());
        self.outside.get_or_make(key, || {
            self.ctx
                .index
                .nodes
                .state()
                .into_iter()
                .filter(|n| selector.is_none_or(|s| matches(s, Some(n.labels()))))
                .find(|n| !selectors.iter().any(|s| matches(s, Some(n.labels()))))
        })
    }
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
