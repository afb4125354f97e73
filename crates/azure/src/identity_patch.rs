//! The body of a VM scale set or VM identity PATCH.
//!
//! ARM merges the `userAssignedIdentities` dictionary: `{}` adds an entry, `null` removes
//! it, absent entries stay. `type` describes the resulting set, and a `type` without
//! `SystemAssigned` deletes the system-assigned identity for good. So the body names only
//! the identities that change, and `type` keeps the system-assigned identity whenever the
//! resource has one.

use serde_json::{Map, Value, json};

use crate::model::{ComputeIdentity, IdentityChange};

/// The PATCH body that applies `change` to a resource whose identity block is `current`,
/// or `None` when the resource already looks like that.
pub fn identity_patch(current: &ComputeIdentity, change: &IdentityChange) -> Option<Value> {
    let adding: Vec<String> = change.add.iter().filter(|id| !current.has(id)).map(ToString::to_string).collect();
    let removing: Vec<String> = change
        .remove
        .iter()
        .filter(|id| current.has(id) && !change.add.contains(*id))
        .map(|id| {
            // Send the key back as ARM spelled it, so the merge matches it exactly.
            current.spelled(id).map_or_else(|| id.to_string(), str::to_owned)
        })
        .collect();
    if adding.is_empty() && removing.is_empty() {
        return None;
    }
    let remaining = current.user_assigned().len() + adding.len() - removing.len();
    let kind = match (current.system_assigned, remaining > 0) {
        (true, true) => "SystemAssigned, UserAssigned",
        (false, true) => "UserAssigned",
        (true, false) => "SystemAssigned",
        (false, false) => "None",
    };
    if remaining == 0 {
        // ARM's documented way to drop the last user-assigned identity is to change the type;
        // a dictionary of nulls alone is not accepted everywhere.
        return Some(json!({ "identity": { "type": kind } }));
    }
    let mut entries = Map::new();
    for id in adding {
        entries.insert(id, json!({}));
    }
    for id in removing {
        entries.insert(id, Value::Null);
    }
    Some(json!({ "identity": { "type": kind, "userAssignedIdentities": entries } }))
}

/// Only the `identity` block of a VM scale set or VM body: the rest (a scale set's model
/// can be large) is skipped while parsing.
#[derive(serde::Deserialize)]
struct IdentityOnly {
    identity: Option<IdentityBlock>,
}

#[derive(serde::Deserialize)]
struct IdentityBlock {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(rename = "userAssignedIdentities")]
    user_assigned: Option<std::collections::HashMap<String, Option<UserAssignedEntry>>>,
}

#[derive(serde::Deserialize)]
struct UserAssignedEntry {
    #[serde(rename = "principalId")]
    principal_id: Option<String>,
}

/// Reads the `identity` block of a VM scale set or VM body as it comes off the wire
/// (`type` in any casing, with or without the space after the comma).
pub fn read_identity(body: &[u8]) -> Result<ComputeIdentity, serde_json::Error> {
    let IdentityOnly { identity } = serde_json::from_slice(body)?;
    let Some(IdentityBlock { kind, user_assigned }) = identity else {
        return Ok(ComputeIdentity::default());
    };
    let kind = kind.unwrap_or_default().to_ascii_lowercase();
    let user_assigned = user_assigned.into_iter().flatten().map(|(id, entry)| (id, entry.and_then(|e| e.principal_id).unwrap_or_default())).collect();
    Ok(ComputeIdentity::new(kind.contains("systemassigned"), user_assigned))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::ids::{IdentityId, ResourceKind};

    fn attached(system_assigned: bool, ids: &[String]) -> ComputeIdentity {
        ComputeIdentity::new(system_assigned, ids.iter().map(|id| (id.clone(), String::new())).collect())
    }

    fn uami(name: &str) -> IdentityId {
        IdentityId::new(ResourceKind::UserAssignedIdentity, "s", "rg", name).expect("valid")
    }

    fn change(add: &[&str], remove: &[&str]) -> IdentityChange {
        let ids = |names: &[&str]| names.iter().map(|n| std::sync::Arc::new(uami(n))).collect::<BTreeSet<_>>();
        IdentityChange { add: ids(add), remove: ids(remove) }
    }

    #[test]
    fn adding_keeps_system_assigned_and_sends_only_the_new_identity() {
        let current = attached(true, &[uami("foreign").to_string().replace("resourceGroups", "resourcegroups")]);
        let body = identity_patch(&current, &change(&["kvbind"], &[])).expect("a change");
        assert_eq!(body["identity"]["type"], "SystemAssigned, UserAssigned");
        let entries = body["identity"]["userAssignedIdentities"].as_object().expect("map");
        assert_eq!(entries.len(), 1);
        assert!(entries.contains_key(&uami("kvbind").to_string()));
    }

    #[test]
    fn nothing_to_do_when_already_attached_in_other_casing() {
        let current = attached(false, &[uami("KVBIND").to_string().to_ascii_lowercase()]);
        assert_eq!(identity_patch(&current, &change(&["kvbind"], &[])), None);
    }

    #[test]
    fn removing_the_last_identity_switches_type_and_keeps_system_assigned() {
        let current = attached(true, &[uami("kvbind").to_string()]);
        let body = identity_patch(&current, &change(&[], &["kvbind"])).expect("a change");
        assert_eq!(body, json!({"identity": {"type": "SystemAssigned"}}));
        let current = attached(false, &[uami("kvbind").to_string()]);
        let body = identity_patch(&current, &change(&[], &["kvbind"])).expect("a change");
        assert_eq!(body, json!({"identity": {"type": "None"}}));
    }

    #[test]
    fn removing_one_of_several_sends_null_for_it_only() {
        let current = attached(false, &[uami("foreign").to_string(), uami("kvbind").to_string()]);
        let body = identity_patch(&current, &change(&[], &["kvbind"])).expect("a change");
        assert_eq!(body["identity"]["type"], "UserAssigned");
        assert_eq!(body["identity"]["userAssignedIdentities"][uami("kvbind").to_string()], Value::Null);
        assert!(body["identity"]["userAssignedIdentities"].get(uami("foreign").to_string()).is_none());
    }

    #[test]
    fn reads_type_in_any_spelling() {
        for kind in ["SystemAssigned, UserAssigned", "SystemAssigned,UserAssigned", "systemAssigned"] {
            let id = read_identity(json!({"identity": {"type": kind}}).to_string().as_bytes()).expect("parsed");
            assert!(id.system_assigned, "{kind}");
        }
        assert_eq!(read_identity(br#"{"name": "x"}"#).expect("parsed"), ComputeIdentity::default());
    }

    #[test]
    fn reads_each_attached_identity_with_its_principal() {
        let kvbind = uami("kvbind").to_string();
        let gone = uami("gone").to_string();
        let block = read_identity(
            json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {
                kvbind.clone(): {"principalId": "p-1", "clientId": "c-1"},
                gone.clone(): {"principalId": "", "clientId": ""},
            }}})
            .to_string()
            .as_bytes(),
        )
        .expect("parsed");
        assert_eq!(block.principal_of(&uami("KVBIND")), Some("p-1"));
        assert!(block.has(&uami("gone")));
        assert_eq!(block.principal_of(&uami("gone")), None, "an empty principal is no principal");
        assert_eq!(block.principal_of(&uami("other")), None);
    }

    #[test]
    fn finds_each_of_many_identities_in_any_order_and_casing() {
        let names: Vec<String> = (0..50).map(|i| format!("id-{:02}", (i * 37) % 50)).collect();
        let spelled: Vec<String> =
            names.iter().enumerate().map(|(i, n)| if i % 2 == 0 { uami(n).to_string().to_ascii_uppercase() } else { uami(n).to_string() }).collect();
        let block = attached(true, &spelled);
        for name in &names {
            assert!(block.has(&uami(name)), "{name}");
            assert!(block.spelled(&uami(name)).is_some_and(|s| s.eq_ignore_ascii_case(&uami(name).to_string())));
        }
        assert!(!block.has(&uami("id-50")));
        assert!(!block.has(&uami("id-0")));
    }

    #[test]
    fn reads_only_the_identity_block_of_a_full_body() {
        let body = json!({"name": "pool", "properties": {"virtualMachineProfile": {"osProfile": {}}}, "identity": {
            "type": "SystemAssigned,UserAssigned", "principalId": "sys",
            "userAssignedIdentities": {uami("b").to_string(): {"principalId": "p-b"}, uami("a").to_string(): {"principalId": "p-a", "clientId": "c"}},
        }});
        let bytes = serde_json::to_vec(&body).expect("json");
        let block = read_identity(&bytes).expect("parsed");
        assert!(block.system_assigned);
        assert_eq!(block.user_assigned().iter().map(|id| &**id).collect::<Vec<_>>(), [uami("a").to_string(), uami("b").to_string()]);
        assert_eq!(block.principal_of(&uami("b")), Some("p-b"));
        assert_eq!(read_identity(br#"{"name": "vm"}"#).expect("parsed"), ComputeIdentity::default());
    }
}
