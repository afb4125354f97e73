//! Label selectors, as Kubernetes evaluates them.

use std::collections::BTreeMap;

use kvbind_api::identity_binding::{LabelSelector, LabelSelectorOperator};

/// True when `labels` satisfy every part of `selector` (an empty selector matches all).
pub fn matches(selector: &LabelSelector, labels: Option<&BTreeMap<String, String>>) -> bool {
    let empty = BTreeMap::new();
    let labels = labels.unwrap_or(&empty);
    selector.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
        && selector.match_expressions.iter().all(|req| {
            let value = labels.get(&req.key);
            match req.operator {
                LabelSelectorOperator::In => value.is_some_and(|v| req.values.contains(v)),
                LabelSelectorOperator::NotIn => value.is_none_or(|v| !req.values.contains(v)),
                LabelSelectorOperator::Exists => value.is_some(),
                LabelSelectorOperator::DoesNotExist => value.is_none(),
            }
        })
}

#[cfg(test)]
mod tests {
    use kvbind_api::identity_binding::LabelSelectorRequirement;

    use super::*;

    #[test]
    fn match_labels_and_expressions() {
        let labels: BTreeMap<String, String> = [("pool".to_owned(), "apps".to_owned())].into();
        let mut s = LabelSelector::default();
        assert!(matches(&s, Some(&labels)));
        s.match_labels.insert("pool".into(), "apps".into());
        assert!(matches(&s, Some(&labels)));
        s.match_expressions.push(LabelSelectorRequirement { key: "gpu".into(), operator: LabelSelectorOperator::DoesNotExist, values: vec![] });
        assert!(matches(&s, Some(&labels)));
        s.match_expressions.push(LabelSelectorRequirement { key: "pool".into(), operator: LabelSelectorOperator::NotIn, values: vec!["apps".into()] });
        assert!(!matches(&s, Some(&labels)));
        assert!(!matches(&s, None));
    }
}
