//! What the lint of the binding's SecretProviderClasses found that misleads but does not
//! stop the mount: said as a condition while it holds, and as a Warning Event when it is
//! new. The findings that would stop the mount fail the binding in [`super::inputs`].

use std::sync::Arc;

use kube::Resource;
use kube::runtime::events::{Event, EventType};
use kvbind_api::IdentityBinding;
use kvbind_api::condition::{CLASS_LINT, find};

use super::status::Progress;
use crate::context::Context;
use crate::event_queue::Repeats;
use crate::needs::ClassInput;

/// The condition's reason and message for `classes`' warnings; `None` when there are none.
pub fn summary(classes: &[Arc<ClassInput>]) -> Option<(&'static str, String)> {
    let found: Vec<(&str, &kvbind_api::class_lint::Finding)> = classes.iter().flat_map(|c| c.warnings.iter().map(move |w| (c.name.as_str(), w))).collect();
    let (_, first) = found.first()?;
    let reason = if found.iter().all(|(_, f)| f.reason() == first.reason()) { first.reason() } else { "ParameterWarnings" };
    let message = found.iter().map(|(class, finding)| format!("SecretProviderClass {class}: {finding}")).collect::<Vec<_>>().join("; ");
    Some((reason, message))
}

/// Adds the condition to `progress`, and queues the Event when the message is new.
pub fn report(ctx: &Context, binding: &IdentityBinding, classes: &[Arc<ClassInput>], progress: &mut Progress) {
    let Some((reason, message)) = summary(classes) else { return };
    let said = binding.status.as_ref().and_then(|s| find(&s.conditions, CLASS_LINT)).is_some_and(|c| c.message == message);
    if !said {
        let event = Event { type_: EventType::Warning, reason: reason.to_owned(), note: Some(message.clone()), action: "Lint".to_owned(), secondary: None };
        ctx.kube.events.send(event, binding.object_ref(&()), Repeats::Folded);
    }
    progress.notices.push((CLASS_LINT, reason, message));
}

#[cfg(test)]
mod tests {
    use kvbind_api::class_lint::Finding;
    use kvbind_api::secret_provider_class::keys;

    use super::*;

    fn class(name: &str, warnings: Vec<Finding>) -> Arc<ClassInput> {
        Arc::new(ClassInput {
            name: name.into(),
            vault_name: "kv".into(),
            tenant_id: "t".into(),
            objects: Vec::new(),
            identity_id: None,
            uses_vm_identity: false,
            uses_token_proxy: false,
            client_id: None,
            warnings,
        })
    }

    #[test]
    fn every_classs_findings_are_named_under_one_reason_or_the_general_one() {
        assert_eq!(summary(&[class("clean", Vec::new())]), None);
        let near = Finding::NearMissKey { found: "clientId".into(), meant: keys::CLIENT_ID, alone: true };
        let (reason, message) = summary(&[class("a", vec![near.clone()]), class("b", vec![near.clone()])]).expect("findings");
        assert_eq!(reason, "NearMissParameterKey");
        assert!(message.starts_with("SecretProviderClass a: spec.parameters.clientId") && message.contains("; SecretProviderClass b: "), "{message}");
        let (reason, _) = summary(&[class("a", vec![near, Finding::DifferingTenants])]).expect("findings");
        assert_eq!(reason, "ParameterWarnings");
    }
}
