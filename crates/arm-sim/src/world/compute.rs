//! Scale sets and VMs (`Microsoft.Compute`): their identity blocks as ARM merges a PATCH
//! or replaces them on a PUT, Azure's count of user-assigned identities, the long-running
//! operations an update starts, and the history of every identity block.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::{ArmError, ComputeResource, IdentityResource, Operation, World, guid, key, not_found, now_rfc3339};

impl World {
    /// `VirtualMachineScaleSets_Get` / `VirtualMachines_Get`.
    pub fn get_compute(&self, path: &str) -> Result<Value, ArmError> {
        let c = self.compute.get(&key(path)).ok_or_else(|| compute_not_found(path))?;
        Ok(self.compute_json(c, "Succeeded"))
    }

    /// `VirtualMachineScaleSets_Update` / `VirtualMachines_Update` of the identity block.
    /// Returns the resource body (`Updating`) and the new operation's ID.
    pub fn patch_compute(&mut self, path: &str, body: &Value, fails: bool, never_ends: bool) -> Result<(Value, String), ArmError> {
        let k = key(path);
        let now = Instant::now();
        let resource = self.compute.get(&k).ok_or_else(|| compute_not_found(path))?;
        if let Some(until) = resource.busy_until
            && until.is_none_or(|t| t > now)
        {
            return Err(ArmError::new(409, "Conflict", "The request failed due to conflict with a concurrent request."));
        }
        if resource.auto_provisioned && body.get("identity").is_some() {
            // No source gives AKS's exact answer; modelled as a refusal that changes nothing.
            return Err(ArmError::new(
                400,
                "OperationNotAllowed",
                format!("The VM '{}' is managed by node auto-provisioning and cannot carry user-assigned identities.", resource.name),
            ));
        }
        let mut next = resource.clone();
        if let Some(identity) = body.get("identity") {
            apply_identity_patch(&mut next, identity, &self.identities)?;
        }
        self.check_identity_count(&next)?;
        let ends = (!never_ends).then(|| now + Duration::from_millis(self.lro.duration_ms));
        next.busy_until = Some(ends);
        let op = guid();
        self.operations.insert(op.clone(), Operation { ends, fails, started: now_rfc3339() });
        // A failing operation leaves the model as it was (kvbind must notice and retry).
        if !fails {
            if next.user_assigned != resource.user_assigned || next.system_principal != resource.system_principal {
                self.record(&k, &next);
            }
            self.compute.insert(k.clone(), next);
        } else if let Some(r) = self.compute.get_mut(&k) {
            r.busy_until = Some(ends);
        }
        let resource = self.compute.get(&k).cloned().ok_or_else(|| compute_not_found(path))?;
        Ok((self.compute_json(&resource, "Updating"), op))
    }

    /// `VirtualMachineScaleSets_CreateOrUpdate` / `VirtualMachines_CreateOrUpdate`: the
    /// identity block is set from the body, everything else kvbind does not model is
    /// echoed back. Returns the status, body and operation ID.
    pub fn put_compute(&mut self, path: &str, kind: &'static str, body: &Value) -> Result<(u16, Value, String), ArmError> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (sub, rg, name) = (parts[1], parts[3], parts[7]);
        self.require_group(sub, rg)?;
        let location = body
            .get("location")
            .and_then(Value::as_str)
            .ok_or_else(|| ArmError::new(400, "LocationRequired", "The location property is required for this definition."))?;
        let k = key(path);
        let existed = self.compute.contains_key(&k);
        let mut resource = self.compute.get(&k).cloned().unwrap_or(ComputeResource {
            kind,
            subscription: sub.to_owned(),
            resource_group: rg.to_owned(),
            name: name.to_owned(),
            location: location.to_ascii_lowercase(),
            system_principal: None,
            user_assigned: BTreeMap::new(),
            auto_provisioned: false,
            busy_until: None,
        });
        let identity = body.get("identity").cloned().unwrap_or_else(|| json!({"type": "None"}));
        resource.user_assigned.clear();
        apply_identity_patch(&mut resource, &identity, &self.identities)?;
        self.check_identity_count(&resource)?;
        let ends = Some(Instant::now() + Duration::from_millis(self.lro.duration_ms));
        resource.busy_until = Some(ends);
        let op = guid();
        self.operations.insert(op.clone(), Operation { ends, fails: false, started: now_rfc3339() });
        self.record(&k, &resource);
        self.compute.insert(k, resource.clone());
        let state = if existed { "Updating" } else { "Creating" };
        Ok((if existed { 200 } else { 201 }, self.compute_json(&resource, state), op))
    }

    /// Starts a long-running operation that succeeds after the seeded duration.
    pub fn start_operation(&mut self) -> String {
        let op = guid();
        let ends = Some(Instant::now() + Duration::from_millis(self.lro.duration_ms));
        self.operations.insert(op.clone(), Operation { ends, fails: false, started: now_rfc3339() });
        op
    }

    /// The status body of an operation.
    pub fn operation_status(&self, id: &str) -> Result<Value, ArmError> {
        let op = self.operations.get(id).ok_or_else(|| ArmError::new(404, "ResourceNotFound", format!("The operation '{id}' was not found.")))?;
        let done = op.ends.is_some_and(|t| t <= Instant::now());
        Ok(match (done, op.fails) {
            (false, _) => json!({"name": id, "status": "InProgress", "startTime": op.started}),
            (true, false) => json!({"name": id, "status": "Succeeded", "startTime": op.started, "endTime": now_rfc3339()}),
            (true, true) => json!({
                "name": id, "status": "Failed", "startTime": op.started, "endTime": now_rfc3339(),
                "error": {"code": "InternalExecutionError", "message": "An internal execution error occurred. Please retry later."}
            }),
        })
    }

    fn compute_json(&self, c: &ComputeResource, state: &str) -> Value {
        let id = format!("/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/{}/{}", c.subscription, c.resource_group, c.kind, c.name);
        let busy = c.busy_until.is_some_and(|u| u.is_none_or(|t| t > Instant::now()));
        let mut body = json!({
            "id": id, "name": c.name, "type": format!("Microsoft.Compute/{}", c.kind), "location": c.location,
            "properties": {"provisioningState": if busy { "Updating" } else { state }},
        });
        if c.kind == "virtualMachineScaleSets" {
            body["sku"] = json!({"name": "Standard_D2s_v3", "tier": "Standard", "capacity": 3});
            body["properties"]["orchestrationMode"] = json!("Uniform");
        }
        let kind = match (c.system_principal.is_some(), !c.user_assigned.is_empty()) {
            (true, true) => Some("SystemAssigned, UserAssigned"),
            (true, false) => Some("SystemAssigned"),
            (false, true) => Some("UserAssigned"),
            (false, false) => None,
        };
        if let Some(kind) = kind {
            let mut identity = json!({"type": kind});
            if let Some(p) = &c.system_principal {
                identity["principalId"] = json!(p);
                identity["tenantId"] = json!(self.tenant_id);
            }
            if !c.user_assigned.is_empty() {
                let entries: Map<String, Value> = c
                    .user_assigned
                    .iter()
                    .map(|(k, id)| {
                        let known = self.identities.get(k);
                        (
                            id.clone(),
                            json!({
                                "principalId": known.map(|i| i.principal_id.clone()).unwrap_or_default(),
                                "clientId": known.map(|i| i.client_id.clone()).unwrap_or_default(),
                            }),
                        )
                    })
                    .collect();
                identity["userAssignedIdentities"] = Value::Object(entries);
            }
            body["identity"] = identity;
        }
        body
    }

    /// Azure's answer to a VM or scale set that would carry too many user-assigned identities.
    fn check_identity_count(&self, resource: &ComputeResource) -> Result<(), ArmError> {
        let (count, limit) = (resource.user_assigned.len(), self.limits.user_assigned_per_compute);
        if count > limit {
            return Err(ArmError::new(400, "BadRequest", format!("User Assigned Identities Number '{count}' Assign exceed limit '{limit}' in one request.")));
        }
        Ok(())
    }
}

fn compute_not_found(path: &str) -> ArmError {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rg = parts.get(3).copied().unwrap_or_default();
    let kind = format!("{}/{}", parts.get(5).copied().unwrap_or_default(), parts.get(6).copied().unwrap_or_default());
    not_found(&kind, parts.last().copied().unwrap_or_default(), rg)
}

/// ARM's merge: `{}` adds or keeps an identity, `null` removes it, absent keys stay, and
/// `type` decides the system-assigned identity (a type without it deletes it).
fn apply_identity_patch(resource: &mut ComputeResource, identity: &Value, known: &BTreeMap<String, IdentityResource>) -> Result<(), ArmError> {
    let kind = identity
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| ArmError::new(400, "InvalidParameter", "identity.type is required."))?
        .to_ascii_lowercase()
        .replace(' ', "");
    let (system, user) = match kind.as_str() {
        "systemassigned" => (true, false),
        "userassigned" => (false, true),
        "systemassigned,userassigned" => (true, true),
        "none" => (false, false),
        other => return Err(ArmError::new(400, "InvalidParameter", format!("The value '{other}' of identity.type is not valid."))),
    };
    match (system, resource.system_principal.is_some()) {
        (true, false) => resource.system_principal = Some(guid()),
        (false, true) => resource.system_principal = None,
        _ => {}
    }
    if !user {
        if identity.get("userAssignedIdentities").is_some_and(|v| v.as_object().is_some_and(|m| !m.is_empty())) {
            return Err(ArmError::new(400, "InvalidParameter", "userAssignedIdentities may only be given with a UserAssigned identity type."));
        }
        resource.user_assigned.clear();
        return Ok(());
    }
    let entries = identity.get("userAssignedIdentities").and_then(Value::as_object).cloned().unwrap_or_default();
    for (id, value) in &entries {
        let k = key(id);
        if value.is_null() {
            resource.user_assigned.remove(&k);
        } else {
            let Some(assigned) = known.get(&k) else {
                return Err(ArmError::new(400, "FailedIdentityOperation", format!("Identity '{id}' could not be found or is not a user-assigned identity.")));
            };
            // No source gives ARM's answer to a Regional identity assigned across regions;
            // modelled as the refusal of an identity that cannot be assigned, naming it.
            if assigned.isolation_scope == "Regional" && !resource.user_assigned.contains_key(&k) && !assigned.location.eq_ignore_ascii_case(&resource.location)
            {
                return Err(ArmError::new(
                    400,
                    "FailedIdentityOperation",
                    format!(
                        "Identity '{id}' has isolationScope 'Regional' in '{}' and cannot be assigned to a resource in '{}'.",
                        assigned.location, resource.location
                    ),
                ));
            }
            resource.user_assigned.insert(k, id.clone());
        }
    }
    if resource.user_assigned.is_empty() {
        return Err(ArmError::new(400, "InvalidParameter", "A UserAssigned identity type needs at least one user-assigned identity."));
    }
    Ok(())
}
