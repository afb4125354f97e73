//! User-assigned managed identities (`Microsoft.ManagedIdentity/userAssignedIdentities`):
//! get, create or update, and delete, with ARM's name rule and the api-versions that know
//! `isolationScope`.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{Value, json};

use super::{ArmError, IdentityResource, World, check_name, guid, key, not_found, tracked_resource};

impl World {
    /// `UserAssignedIdentities_Get`.
    pub fn get_identity(&self, sub: &str, rg: &str, name: &str, api: &str) -> Result<Value, ArmError> {
        self.require_group(sub, rg)?;
        self.identities
            .get(&identity_key(sub, rg, name))
            .map(|i| identity_json(i, &self.tenant_id, api))
            .ok_or_else(|| not_found("Microsoft.ManagedIdentity/userAssignedIdentities", name, rg))
    }

    /// `UserAssignedIdentities_CreateOrUpdate`: 201 when created, 200 when updated.
    pub fn put_identity(&mut self, sub: &str, rg: &str, name: &str, body: &Value, api: &str) -> Result<(u16, Value), ArmError> {
        self.require_group(sub, rg)?;
        check_identity_name(name)?;
        let location = body
            .get("location")
            .and_then(Value::as_str)
            .ok_or_else(|| ArmError::new(400, "LocationRequired", "The location property is required for this definition."))?
            .to_ascii_lowercase();
        let tags = body.get("tags").and_then(Value::as_object).cloned().unwrap_or_default();
        let isolation = isolation_scope(body, api)?;
        let k = identity_key(sub, rg, name);
        let (status, identity) = match self.identities.get_mut(&k) {
            Some(existing) => {
                existing.tags = tags;
                if let Some(scope) = isolation {
                    existing.isolation_scope = scope;
                }
                (200, existing.clone())
            }
            None => {
                let principal = guid();
                self.principals.insert(principal.clone(), Instant::now());
                let created = IdentityResource {
                    subscription: sub.to_owned(),
                    resource_group: rg.to_owned(),
                    name: name.to_owned(),
                    location,
                    tags,
                    client_id: guid(),
                    principal_id: principal,
                    isolation_scope: isolation.unwrap_or_else(|| "None".to_owned()),
                    federated_credentials: BTreeMap::new(),
                };
                self.identities.insert(k, created.clone());
                (201, created)
            }
        };
        Ok((status, identity_json(&identity, &self.tenant_id, api)))
    }

    /// `UserAssignedIdentities_Delete`: 200 when deleted, 204 when there was none.
    pub fn delete_identity(&mut self, sub: &str, rg: &str, name: &str) -> Result<u16, ArmError> {
        self.require_group(sub, rg)?;
        Ok(if self.identities.remove(&identity_key(sub, rg, name)).is_some() { 200 } else { 204 })
    }
}

/// The key of an identity in [`World::identities`].
pub fn identity_key(sub: &str, rg: &str, name: &str) -> String {
    key(&format!("subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"))
}

/// Azure's rule for identity names: 3–128 letters, digits, hyphens and underscores,
/// starting with a letter or digit.
fn check_identity_name(name: &str) -> Result<(), ArmError> {
    check_name(name, 128)
}

/// `properties.isolationScope` of an identity PUT, where the api-version has it.
fn isolation_scope(body: &Value, api: &str) -> Result<Option<String>, ArmError> {
    let Some(scope) = body.pointer("/properties/isolationScope").and_then(Value::as_str) else { return Ok(None) };
    if api < "2024-11-30" {
        return Ok(None);
    }
    match scope {
        "None" | "Regional" => Ok(Some(scope.to_owned())),
        other => Err(ArmError::new(400, "InvalidParameter", format!("The value '{other}' of properties.isolationScope is not valid; use None or Regional."))),
    }
}

pub(super) fn identity_json(i: &IdentityResource, tenant: &str, api: &str) -> Value {
    let mut properties = json!({"tenantId": tenant, "principalId": i.principal_id, "clientId": i.client_id});
    if api >= "2024-11-30" {
        properties["isolationScope"] = json!(i.isolation_scope);
    }
    let id =
        format!("/subscriptions/{}/resourcegroups/{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{}", i.subscription, i.resource_group, i.name);
    tracked_resource(id, &i.name, "Microsoft.ManagedIdentity/userAssignedIdentities", &i.location, json!(i.tags), properties)
}
