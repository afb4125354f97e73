//! One reconcile's judge: every policy check of the reconcile reads the caches through it,
//! so what the checks share is worked out once rather than once a binding.
//!
//! A reconcile checks its own binding and every other binding that shares its identity (a
//! sharer its policy refuses must not widen what the identity gets). Checked one by one,
//! each check scanned every binding for the identity's elder and the namespace's quotas,
//! and every node for the pools a selector reaches: with k bindings on one identity, each
//! reconcile made k checks of n bindings, and the k reconciles k² of them. The judge keeps
//! each binding's verdict and what the verdicts read: per identity, its claimants and the
//! eldest of each namespace; per namespace, its policies and its bindings in age order;
//! per node selector, the nodes it exposes.
//!
//! It keeps them at two levels. Across reconciles, in the index's [`Judged`], until a watch
//! of anything they are read from reports a change: a resync of a thousand sharers works
//! each answer out once, not once a reconcile. Within one reconcile, in the judge itself:
//! a question asked twice gets the same answer even when a change lands in between, so one
//! reconcile judges one view.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;
use kvbind_api::identity_binding::LabelSelector;
use kvbind_api::{BindingPolicy, IdentityBinding};
use kvbind_azure::IdentityId;

use super::answers::{Elder, Eldest, Exposed, NamespaceAges, Usage, Verdict, age, eldest_per_namespace, first_elsewhere};
use super::judged::Judged;
use crate::binding::inputs::needs_of;
use crate::caches::stamped::Stamped;
use crate::context::Context;
use crate::error::BindingError;
use crate::needs::{Needs, identity_of, names_identity};
use crate::selector::matches;

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

/// One reconcile's view of the policies and bindings: its own answers, each worked out
/// once in the reconcile, or taken from the answers kept across reconciles.
pub struct Judge<'a> {
    /// The caches.
    pub ctx: &'a Context,
    rules: &'static Rules,
    kept: &'a Judged,
    /// The reconcile's own answers; `None` for a judge that works out an answer to keep,
    /// which must read only answers as fresh as its own (see [`Stamped`]).
    own: Option<Answers>,
}

/// One reconcile's answers, never told of a change.
#[derive(Default)]
struct Answers {
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
        Judge { ctx, rules, kept: &ctx.index.judged, own: Some(Answers::default()) }
    }

    /// The answer to a question: the reconcile's own, else the kept one, else `work_out`'s
    /// (kept at both levels).
    fn answer<K: Eq + std::hash::Hash + Clone, V: Clone>(
        &self,
        own: impl FnOnce(&Answers) -> &Stamped<K, V>,
        kept: impl FnOnce(&Judged) -> &Stamped<K, V>,
        key: K,
        work_out: impl FnOnce() -> V,
    ) -> V {
        let from_kept = |key| kept(self.kept).get_or_make(key, work_out);
        match &self.own {
            Some(answers) => own(answers).get_or_make(key.clone(), || from_kept(key)),
            None => from_kept(key),
        }
    }

    /// The policies that select `namespace`.
    pub fn selecting(&self, namespace: &str) -> Arc<[Arc<BindingPolicy>]> {
        self.answer(|a| &a.selecting, |k| &k.selecting, namespace.to_owned(), || (self.rules.selecting)(namespace, self.ctx).into())
    }

    /// What `binding`'s check comes to.
    pub fn verdict(&self, binding: &IdentityBinding) -> Arc<Verdict> {
        let from_kept = || match Judged::verdict_key(binding) {
            // Worked out by a judge of its own: this one's answers may be older than the
            // stamp the verdict is kept with.
            Some(key) => self.kept.verdicts.get_or_make(key, || self.shallow().work_out_verdict(binding)),
            None => self.work_out_verdict(binding),
        };
        match &self.own {
            Some(answers) => answers.verdicts.get_or_make(format!("{}/{}", binding.namespace().unwrap_or_default(), binding.name_any()), from_kept),
            None => from_kept(),
        }
    }

    /// A judge of the same caches and rules, with no answers of its own.
    fn shallow(&self) -> Judge<'a> {
        Judge { ctx: self.ctx, rules: self.rules, kept: self.kept, own: None }
    }

    fn work_out_verdict(&self, binding: &IdentityBinding) -> Arc<Verdict> {
        let identity = identity_of(&binding.spec.identity, &self.ctx.config).ok();
        let ctx = self.ctx;
        let needs = ctx.index.needs_memo.get_or_read(binding, || needs_of(binding, ctx)).ok();
        let allowing = match (&identity, &needs) {
            (Some((id, adopt)), Some(needs)) => (self.rules.check)(binding, id, *adopt, needs, self).ok(),
            _ => None,
        };
        Arc::new(Verdict { needs, allowing })
    }

    /// Every live binding that uses `identity`, the asking one included.
    pub fn claimants(&self, identity: &IdentityId) -> Arc<[Arc<IdentityBinding>]> {
        self.answer(|a| &a.claimants, |k| &k.claimants, identity.clone(), || self.work_out_claimants(identity))
    }

    fn work_out_claimants(&self, identity: &IdentityId) -> Arc<[Arc<IdentityBinding>]> {
        self.ctx
            .index
            .bindings
            .state()
            .into_iter()
            .filter(|b| names_identity(&b.spec.identity, &identity.name))
            .filter(|b| b.metadata.deletion_timestamp.is_none())
            .filter(|b| identity_of(&b.spec.identity, &self.ctx.config).is_ok_and(|(id, _)| &id == identity))
            .collect()
    }

    /// The oldest binding, in another namespace that some policy selects, that uses
    /// `identity` and was there before `binding`: the identity is theirs, so a later claim
    /// is the one that needs allowing. A namespace no policy selects cannot squat a name
    /// this way.
    pub fn elder(&self, binding: &IdentityBinding, identity: &IdentityId) -> Option<Elder> {
        let eldest = self.answer(
            |a| &a.eldest,
            |k| &k.eldest,
            identity.clone(),
            || eldest_per_namespace(self.claimants(identity).iter().map(|b| age(b)), |namespace| !self.selecting(namespace).is_empty()).into(),
        );
        let other = first_elsewhere(&eldest, &age(binding))?;
        let consents = self.selecting(&other.namespace).iter().any(|p| p.spec.allow_cross_namespace_sharing);
        Some(Elder { key: format!("{}/{}", other.namespace, other.age.2), consents })
    }

    /// What `binding`'s namespace has before it, for `identity`.
    pub fn usage(&self, binding: &IdentityBinding, identity: &IdentityId) -> Usage {
        let namespace = binding.namespace().unwrap_or_default();
        let ages = self.answer(|a| &a.ages, |k| &k.ages, namespace.clone(), || self.work_out_ages(&namespace));
        ages.usage(&age(binding), identity)
    }

    fn work_out_ages(&self, namespace: &str) -> Arc<NamespaceAges> {
        let live = self
            .ctx
            .index
            .bindings
            .state()
            .iter()
            .filter(|b| b.metadata.namespace.as_deref() == Some(namespace) && b.metadata.deletion_timestamp.is_none())
            .map(|b| (age(b), identity_of(&b.spec.identity, &self.ctx.config).ok().map(|(id, _)| id)))
            .collect();
        Arc::new(NamespaceAges::new(live))
    }

    /// Every node of every scale set or VM that the nodes `selector` selects run on: an
    /// identity is attached to a whole scale set, so every one of its nodes is exposed.
    pub fn exposed(&self, selector: &LabelSelector) -> Exposed {
        let key = serde_json::to_string(selector).unwrap_or_default();
        self.answer(|a| &a.exposed, |k| &k.exposed, key, || self.work_out_exposed(selector))
    }

    fn work_out_exposed(&self, selector: &LabelSelector) -> Exposed {
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
    }

    /// A node that `selector` selects (every node, with `None`) and none of `policy`'s
    /// `nodeSelectors` matches.
    pub fn outside(&self, selector: Option<&LabelSelector>, policy: &BindingPolicy) -> Option<Arc<Node>> {
        let selectors = policy.spec.node_selectors.as_deref()?;
        let key = format!("{}\n{}", policy.name_any(), selector.map(|s| serde_json::to_string(s).unwrap_or_default()).unwrap_or_default());
        let work_out = || {
            self.ctx
                .index
                .nodes
                .state()
                .into_iter()
                .filter(|n| selector.is_none_or(|s| matches(s, Some(n.labels()))))
                .find(|n| !selectors.iter().any(|s| matches(s, Some(n.labels()))))
        };
        self.answer(|a| &a.outside, |k| &k.outside, key, work_out)
    }
}
