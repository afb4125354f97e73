//! Azure RBAC role assignments (`Microsoft.Authorization/roleAssignments`) at any scope,
//! with the subscription's limit and ARM's answers to a duplicate or a changed assignment.

use serde_json::{Value, json};
use uuid::Uuid;

use super::{ArmError, RoleAssignmentResource, World, key, now_rfc3339};

impl World {
    /// `RoleAssignments_Create`: 201 created, 200 the same again.
    pub fn put_role_assignment(&mut self, scope: &str, name: &str, body: &Value) -> Result<(u16, Value), ArmError> {
        if Uuid::parse_str(name).is_err() {
            return Err(ArmError::new(
                400,
                "InvalidRoleAssignmentId",
                format!("The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID."),
            ));
        }
        let props = body.get("properties").cloned().unwrap_or(Value::Null);
        let text = |k: &str| props.get(k).and_then(Value::as_str).map(str::to_owned);
        let role = text("roleDefinitionId").ok_or_else(|| ArmError::new(400, "InvalidRequestContent", "roleDefinitionId is required."))?;
        let principal = text("principalId").ok_or_else(|| ArmError::new(400, "InvalidRequestContent", "principalId is required."))?;
        let scope = format!("/{}", scope.trim_matches('/'));
        let role_guid = role.rsplit('/').next().unwrap_or_default().to_ascii_lowercase();
        if let Some(existing) = self.role_assignments.get(&name.to_ascii_lowercase()) {
            let same = existing.principal_id.eq_ignore_ascii_case(&principal)
                && key(&existing.scope) == key(&scope)
                && existing.role_definition_id.rsplit('/').next().unwrap_or_default().eq_ignore_ascii_case(&role_guid);
            if !same {
                return Err(ArmError::new(
                    400,
                    "RoleAssignmentUpdateNotPermitted",
                    "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
                ));
            }
            return Ok((200, role_assignment_json(existing)));
        }
        let duplicate = self.role_assignments.values().find(|a| {
            a.principal_id.eq_ignore_ascii_case(&principal)
                && key(&a.scope) == key(&scope)
                && a.role_definition_id.rsplit('/').next().unwrap_or_default().eq_ignore_ascii_case(&role_guid)
        });
        if let Some(d) = duplicate {
            return Err(ArmError::new(
                409,
                "RoleAssignmentExists",
                format!("The role assignment already exists. The ID of the existing role assignment is {}.", d.name.replace('-', "")),
            ));
        }
        let subscription = scope.split('/').nth(2).unwrap_or_default().to_ascii_lowercase();
        let in_subscription =
            self.role_assignments.values().filter(|a| a.scope.split('/').nth(2).is_some_and(|s| s.eq_ignore_ascii_case(&subscription))).count();
        if in_subscription >= self.limits.role_assignments_per_subscription {
            return Err(ArmError::new(400, "RoleAssignmentLimitExceeded", "No more role assignments can be created."));
        }
        let created = RoleAssignmentResource {
            name: name.to_owned(),
            scope,
            role_definition_id: role,
            principal_id: principal,
            principal_type: text("principalType"),
            created_on: now_rfc3339(),
        };
        let body = role_assignment_json(&created);
        self.role_assignments.insert(name.to_ascii_lowercase(), created);
        Ok((201, body))
    }

    /// `RoleAssignments_Get`.
    pub fn get_role_assignment(&self, scope: &str, name: &str) -> Result<Value, ArmError> {
        self.role_assignments
            .get(&name.to_ascii_lowercase())
            .filter(|a| key(&a.scope) == key(scope))
            .map(role_assignment_json)
            .ok_or_else(|| ArmError::new(404, "RoleAssignmentNotFound", "The role assignment does not exist."))
    }

    /// `RoleAssignments_Delete`: 200 with the body, 204 when there was none.
    pub fn delete_role_assignment(&mut self, scope: &str, name: &str) -> (u16, Value) {
        let k = name.to_ascii_lowercase();
        match self.role_assignments.get(&k).filter(|a| key(&a.scope) == key(scope)) {
            Some(a) => {
                let body = role_assignment_json(a);
                self.role_assignments.remove(&k);
                (200, body)
            }
            None => (204, Value::Null),
        }
    }

    /// `RoleAssignments_ListForScope`: at, above or below the scope, optionally for one principal.
    pub fn list_role_assignments(&self, scope: &str, principal: Option<&str>) -> Vec<Value> {
        let scope = key(scope);
        self.role_assignments
            .values()
            .filter(|a| {
                let s = key(&a.scope);
                let related = s == scope || scope.starts_with(&format!("{s}/")) || s.starts_with(&format!("{scope}/"));
                related && principal.is_none_or(|p| a.principal_id.eq_ignore_ascii_case(p))
            })
            .map(role_assignment_json)
            .collect()
    }
}

fn role_assignment_json(a: &RoleAssignmentResource) -> Value {
    json!({
        "id": format!("{}/providers/Microsoft.Authorization/roleAssignments/{}", a.scope, a.name),
        "name": a.name,
        "type": "Microsoft.Authorization/roleAssignments",
        "properties": {
            "roleDefinitionId": a.role_definition_id,
            "principalId": a.principal_id,
            "principalType": a.principal_type.clone().unwrap_or_else(|| "ServicePrincipal".to_owned()),
            "scope": a.scope,
            "createdOn": a.created_on,
            "updatedOn": a.created_on,
            "createdBy": null,
            "updatedBy": null,
        }
    })
}
