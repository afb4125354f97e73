//! The simulated Azure: resources, their rules, and the history of every identity block.
//!
//! Every method here is synchronous and pure apart from the state it changes; the HTTP
//! layer decides on auth, faults and wire format.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::seed::{ComputeSeed, LroSeed, Seed};

mod clients;
pub mod federated;
pub mod key_vault_data;
pub mod managed_clusters;

/// An ARM error to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArmError {
    /// The HTTP status.
    pub status: u16,
    /// The ARM error code.
    pub code: String,
    /// The message.
    pub message: String,
}

impl ArmError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        ArmError { status, code: code.into(), message: message.into() }
    }
}

/// The lowercase key of an ARM path.
pub fn key(path: &str) -> String {
    path.trim_matches('/').to_ascii_lowercase()
}

/// A user-assigned identity.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityResource {
    /// Subscription.
    pub subscription: String,
    /// Resource group.
    pub resource_group: String,
    /// Name.
    pub name: String,
    /// Region.
    pub location: String,
    /// Tags.
    pub tags: Map<String, Value>,
    /// Client ID.
    pub client_id: String,
    /// Principal ID.
    pub principal_id: String,
    /// `None`, or `Regional`: the identity may be assigned only to resources in its own
    /// region (api-version 2024-11-30 and later).
    pub isolation_scope: String,
    /// Federated identity credentials by lowercase name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub federated_credentials: BTreeMap<String, federated::FederatedCredentialResource>,
}

/// A VM scale set or VM.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComputeResource {
    /// `virtualMachineScaleSets` or `virtualMachines`.
    pub kind: &'static str,
    /// Subscription.
    pub subscription: String,
    /// Resource group.
    pub resource_group: String,
    /// Name.
    pub name: String,
    /// Region.
    pub location: String,
    /// The system-assigned identity's principal, when enabled.
    pub system_principal: Option<String>,
    /// User-assigned identity IDs, keyed by lowercase ID.
    pub user_assigned: BTreeMap<String, String>,
    /// Made and managed by node auto-provisioning: identity changes are refused.
    pub auto_provisioned: bool,
    /// The operation in flight, if any.
    #[serde(skip)]
    pub busy_until: Option<Option<Instant>>,
}

/// A Key Vault.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VaultResource {
    /// Subscription.
    pub subscription: String,
    /// Resource group.
    pub resource_group: String,
    /// Name.
    pub name: String,
    /// Region.
    pub location: String,
    /// RBAC authorisation.
    pub rbac: bool,
    /// Access policies, in ARM's JSON form.
    pub access_policies: Vec<Value>,
    /// The objects in the vault, for the data plane.
    #[serde(skip_serializing_if = "key_vault_data::VaultObjects::is_empty")]
    pub objects: key_vault_data::VaultObjects,
}

/// A role assignment.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleAssignmentResource {
    /// The GUID name.
    pub name: String,
    /// The scope with a leading slash.
    pub scope: String,
    /// The role definition ID as sent.
    pub role_definition_id: String,
    /// The principal.
    pub principal_id: String,
    /// The principal type as sent.
    pub principal_type: Option<String>,
    /// When it was created (RFC 3339).
    pub created_on: String,
}

/// A long-running operation.
#[derive(Debug, Clone)]
pub struct Operation {
    /// When it ends; `None` never.
    pub ends: Option<Instant>,
    /// Whether it ends `Failed`.
    pub fails: bool,
    /// When it started.
    pub started: String,
}

/// One recorded state of a VMSS/VM identity block.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityHistoryEntry {
    /// The resource ID (lowercase).
    pub resource: String,
    /// A system-assigned identity was enabled.
    pub system_assigned: bool,
    /// The user-assigned identity IDs (lowercase).
    pub user_assigned: Vec<String>,
}

/// The whole simulated Azure.
#[derive(Debug, Default)]
pub struct World {
    /// The tenant.
    pub tenant_id: String,
    /// Subscriptions (lowercase).
    pub subscriptions: BTreeMap<String, String>,
    /// Resource groups by lowercase `subscriptions/S/resourcegroups/G`.
    pub resource_groups: BTreeMap<String, (String, String)>,
    /// The resource groups a deny assignment locks (AKS's node resource group lockdown), by
    /// the same key.
    pub locked_groups: std::collections::BTreeSet<String>,
    /// Identities by key.
    pub identities: BTreeMap<String, IdentityResource>,
    /// VM scale sets and VMs by key.
    pub compute: BTreeMap<String, ComputeResource>,
    /// Vaults by key.
    pub vaults: BTreeMap<String, VaultResource>,
    /// AKS managed clusters by key.
    pub managed_clusters: BTreeMap<String, managed_clusters::ManagedClusterResource>,
    /// AKS identity bindings by key.
    pub identity_bindings: BTreeMap<String, managed_clusters::IdentityBindingResource>,
    /// Role assignments by lowercase name.
    pub role_assignments: BTreeMap<String, RoleAssignmentResource>,
    /// Operations by ID.
    pub operations: BTreeMap<String, Operation>,
    /// Principals and when they appeared.
    pub principals: BTreeMap<String, Instant>,
    /// Every identity block each VMSS/VM has had, in order.
    pub history: Vec<IdentityHistoryEntry>,
    /// LRO timing.
    pub lro: LroSeed,
    /// List page size.
    pub page_size: usize,
    /// Azure's hard limits.
    pub limits: crate::seed::LimitsSeed,
    /// Azure's request rates and what is left of them.
    pub rates: crate::rates::Rates,
}

/// ISO 8601 now.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

fn guid() -> String {
    Uuid::new_v4().to_string()
}

impl World {
    /// A world with the given seed's contents.
    pub fn from_seed(seed: &Seed) -> World {
        let mut world = World {
            tenant_id: seed.tenant_id.clone().unwrap_or_else(|| "72f988bf-86f1-41af-91ab-2d7cd011db47".to_owned()),
            page_size: seed.page_size.unwrap_or(100).max(1),
            lro: seed.lro.unwrap_or_default(),
            limits: seed.limits.unwrap_or_default(),
            rates: crate::rates::Rates::new(seed.rates.unwrap_or_default()),
            ..World::default()
        };
        world.add_seed(seed);
        world
    }

    /// Adds the resources of `seed` (existing ones are replaced).
    pub fn add_seed(&mut self, seed: &Seed) {
        if let Some(lro) = seed.lro {
            self.lro = lro;
        }
        if let Some(size) = seed.page_size {
            self.page_size = size.max(1);
        }
        for principal in &seed.principals {
            self.principals.insert(principal.to_ascii_lowercase(), Instant::now() - Duration::from_secs(3600));
        }
        for sub in &seed.subscriptions {
            self.subscriptions.insert(sub.id.to_ascii_lowercase(), sub.id.clone());
            for rg in &sub.resource_groups {
                let rg_key = key(&format!("subscriptions/{}/resourceGroups/{}", sub.id, rg.name));
                if rg.lockdown {
                    self.locked_groups.insert(rg_key.clone());
                }
                self.resource_groups.insert(rg_key, (rg.name.clone(), rg.location.clone()));
                for id in &rg.identities {
                    let principal = id.principal_id.clone().unwrap_or_else(guid);
                    self.principals.insert(principal.to_ascii_lowercase(), Instant::now() - Duration::from_secs(3600));
                    let resource = IdentityResource {
                        subscription: sub.id.clone(),
                        resource_group: rg.name.clone(),
                        name: id.name.clone(),
                        location: rg.location.clone(),
                        tags: id.tags.iter().map(|(k, v)| (k.clone(), json!(v))).collect(),
                        client_id: id.client_id.clone().unwrap_or_else(guid),
                        principal_id: principal,
                        isolation_scope: id.isolation_scope.clone().unwrap_or_else(|| "None".to_owned()),
                        federated_credentials: id
                            .federated_credentials
                            .iter()
                            .map(|c| {
                                let credential = federated::FederatedCredentialResource {
                                    name: c.name.clone(),
                                    issuer: c.issuer.clone(),
                                    subject: c.subject.clone(),
                                    audiences: vec!["api://AzureADTokenExchange".to_owned()],
                                };
                                (c.name.to_ascii_lowercase(), credential)
                            })
                            .collect(),
                    };
                    self.identities.insert(identity_key(&sub.id, &rg.name, &id.name), resource);
                }
                for (kind, list) in [("virtualMachineScaleSets", &rg.scale_sets), ("virtualMachines", &rg.virtual_machines)] {
                    for c in list {
                        self.add_compute(kind, &sub.id, &rg.name, &rg.location, c);
                    }
                }
                for c in &rg.managed_clusters {
                    self.managed_clusters.insert(
                        managed_clusters::cluster_key(&sub.id, &rg.name, &c.name),
                        managed_clusters::ManagedClusterResource {
                            subscription: sub.id.clone(),
                            resource_group: rg.name.clone(),
                            name: c.name.clone(),
                            location: rg.location.clone(),
                            node_resource_group: c.node_resource_group.clone(),
                            key_vault_secrets_provider: c.key_vault_secrets_provider.clone(),
                        },
                    );
                }
                for v in &rg.vaults {
                    let k = key(&format!("subscriptions/{}/resourceGroups/{}/providers/Microsoft.KeyVault/vaults/{}", sub.id, rg.name, v.name));
                    self.vaults.insert(
                        k,
                        VaultResource {
                            subscription: sub.id.clone(),
                            resource_group: rg.name.clone(),
                            name: v.name.clone(),
                            location: rg.location.clone(),
                            rbac: v.rbac,
                            access_policies: v.access_policies.clone(),
                            objects: key_vault_data::VaultObjects::from_seed(v),
                        },
                    );
                }
            }
        }
    }

    fn add_compute(&mut self, kind: &'static str, sub: &str, rg: &str, location: &str, seed: &ComputeSeed) {
        let k = key(&format!("subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/{kind}/{}", seed.name));
        let resource = ComputeResource {
            kind,
            subscription: sub.to_owned(),
            resource_group: rg.to_owned(),
            name: seed.name.clone(),
            location: location.to_owned(),
            system_principal: seed.system_assigned.then(guid),
            user_assigned: seed.user_assigned.iter().map(|id| (key(id), id.clone())).collect(),
            auto_provisioned: seed.auto_provisioned,
            busy_until: None,
        };
        self.record(&k, &resource);
        self.compute.insert(k, resource);
    }

    fn record(&mut self, k: &str, resource: &ComputeResource) {
        self.history.push(IdentityHistoryEntry {
            resource: k.to_owned(),
            system_assigned: resource.system_principal.is_some(),
            user_assigned: resource.user_assigned.keys().cloned().collect(),
        });
    }

    /// The deny assignment's refusal of a write to `path`, when a locked resource group
    /// holds it. AKS documents the 403; the code and the message are modelled on ARM's
    /// deny-assignment answers, as no source gives the lockdown's exact text.
    pub fn denied_by_lockdown(&self, path: &str, action: &str, client_id: &str, principal_id: &str) -> Option<ArmError> {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let [subs, sub, groups, group, ..] = parts.as_slice() else { return None };
        if !subs.eq_ignore_ascii_case("subscriptions") || !groups.eq_ignore_ascii_case("resourcegroups") {
            return None;
        }
        let scope = format!("/subscriptions/{sub}/resourceGroups/{group}");
        self.locked_groups.contains(&key(&scope)).then(|| {
            ArmError::new(
                403,
                "DenyAssignmentAuthorizationFailed",
                format!(
                    "The client '{client_id}' with object id '{principal_id}' has permission to perform action '{action}' on scope '{path}'; however, the access is denied because of the deny assignment with name 'System deny assignment created by managed cluster' and Id '00000000-0000-0000-0000-00000000d0c0' at scope '{scope}'."
                ),
            )
        })
    }

    /// `DenyAssignments_ListForResourceGroup`: the lockdown's deny assignment on a locked
    /// group (every write and delete, for every principal but AKS's own), in the shape of
    /// the REST spec's `DenyAssignment`.
    pub fn deny_assignments(&self, sub: &str, rg: &str) -> Vec<Value> {
        let scope = format!("/subscriptions/{sub}/resourceGroups/{rg}");
        if !self.locked_groups.contains(&key(&scope)) {
            return Vec::new();
        }
        vec![json!({
            "id": format!("{scope}/providers/Microsoft.Authorization/denyAssignments/00000000-0000-0000-0000-00000000d0c0"),
            "name": "00000000-0000-0000-0000-00000000d0c0",
            "type": "Microsoft.Authorization/denyAssignments",
            "properties": {
                "denyAssignmentName": "System deny assignment created by managed cluster",
                "description": "Node resource group lockdown",
                "permissions": [{"actions": ["*"], "notActions": ["*/read"], "dataActions": [], "notDataActions": []}],
                "scope": scope,
                "doNotApplyToChildScopes": false,
                "principals": [{"id": "00000000-0000-0000-0000-000000000000", "type": "SystemDefined"}],
                "excludePrincipals": [],
                "isSystemProtected": true,
            },
        })]
    }

    /// Checks that the subscription and resource group exist.
    pub fn require_group(&self, sub: &str, rg: &str) -> Result<(), ArmError> {
        if !self.subscriptions.contains_key(&sub.to_ascii_lowercase()) {
            return Err(ArmError::new(404, "SubscriptionNotFound", format!("The subscription '{sub}' could not be found.")));
        }
        if !self.resource_groups.contains_key(&key(&format!("subscriptions/{sub}/resourceGroups/{rg}"))) {
            return Err(ArmError::new(404, "ResourceGroupNotFound", format!("Resource group '{rg}' could not be found.")));
        }
        Ok(())
    }

    // ---- identities -------------------------------------------------------------------

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

    // ---- compute ------------------------------------------------------------------------

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

    // ---- vaults -------------------------------------------------------------------------

    /// `Vaults_Get`.
    pub fn get_vault(&self, sub: &str, rg: &str, name: &str, api: &str) -> Result<Value, ArmError> {
        self.require_group(sub, rg)?;
        let v = self.vault(sub, rg, name)?;
        Ok(vault_json(v, &self.tenant_id, api))
    }

    fn vault(&self, sub: &str, rg: &str, name: &str) -> Result<&VaultResource, ArmError> {
        self.vaults.get(&vault_key(sub, rg, name)).ok_or_else(|| not_found("Microsoft.KeyVault/vaults", name, rg))
    }

    /// `Vaults_ListBySubscription`: every vault of a subscription, in key order.
    pub fn list_vaults(&self, sub: &str, api: &str) -> Result<Vec<Value>, ArmError> {
        if !self.subscriptions.contains_key(&sub.to_ascii_lowercase()) {
            return Err(ArmError::new(404, "SubscriptionNotFound", format!("The subscription '{sub}' could not be found.")));
        }
        Ok(self.vaults.values().filter(|v| v.subscription.eq_ignore_ascii_case(sub)).map(|v| vault_json(v, &self.tenant_id, api)).collect())
    }

    /// Azure's answer to a VM or scale set that would carry too many user-assigned identities.
    fn check_identity_count(&self, resource: &ComputeResource) -> Result<(), ArmError> {
        let (count, limit) = (resource.user_assigned.len(), self.limits.user_assigned_per_compute);
        if count > limit {
            return Err(ArmError::new(400, "BadRequest", format!("User Assigned Identities Number '{count}' Assign exceed limit '{limit}' in one request.")));
        }
        Ok(())
    }

    /// `Vaults_UpdateAccessPolicy`.
    pub fn update_access_policy(&mut self, sub: &str, rg: &str, name: &str, kind: &str, body: &Value) -> Result<Value, ArmError> {
        self.require_group(sub, rg)?;
        let entries = body
            .pointer("/properties/accessPolicies")
            .and_then(Value::as_array)
            .cloned()
            .ok_or_else(|| ArmError::new(400, "BadRequest", "properties.accessPolicies is required."))?;
        if entries.len() > 16 {
            return Err(ArmError::new(400, "BadRequest", "At most 16 access policies may be sent at once."));
        }
        let k = vault_key(sub, rg, name);
        let limit = self.limits.access_policies_per_vault;
        let vault = self.vaults.get_mut(&k).ok_or_else(|| not_found("Microsoft.KeyVault/vaults", name, rg))?;
        // All or nothing: the entries are merged into a copy that replaces the vault's only
        // if every one merged and the vault stays within its limit.
        let mut policies = vault.access_policies.clone();
        for entry in &entries {
            merge_policy(&mut policies, entry, kind)?;
        }
        // No source states the exact answer; the REST spec allows 0 to 1024 entries.
        if policies.len() > limit {
            return Err(ArmError::new(
                400,
                "AccessPolicyLimitExceeded",
                format!("The vault would hold {} access policies; at most {limit} are allowed.", policies.len()),
            ));
        }
        vault.access_policies = policies;
        let id = format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{name}/accessPolicies/");
        Ok(json!({"id": id, "type": "Microsoft.KeyVault/vaults/accessPolicies", "properties": {"accessPolicies": entries}}))
    }

    // ---- role assignments ----------------------------------------------------------------

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

    /// Seconds since a principal appeared, or `None` for unknown principals.
    pub fn principal_age(&self, principal: &str) -> Option<Duration> {
        self.principals.get(&principal.to_ascii_lowercase()).map(Instant::elapsed)
    }
}

/// The key of an identity in [`World::identities`].
pub fn identity_key(sub: &str, rg: &str, name: &str) -> String {
    key(&format!("subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"))
}

fn vault_key(sub: &str, rg: &str, name: &str) -> String {
    key(&format!("subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{name}"))
}

pub(crate) fn not_found(kind: &str, name: &str, rg: &str) -> ArmError {
    ArmError::new(
        404,
        "ResourceNotFound",
        format!("The Resource '{kind}/{name}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"),
    )
}

fn compute_not_found(path: &str) -> ArmError {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rg = parts.get(3).copied().unwrap_or_default();
    let kind = format!("{}/{}", parts.get(5).copied().unwrap_or_default(), parts.get(6).copied().unwrap_or_default());
    not_found(&kind, parts.last().copied().unwrap_or_default(), rg)
}

/// Azure's rule for identity names: 3–128 letters, digits, hyphens and underscores,
/// starting with a letter or digit.
fn check_identity_name(name: &str) -> Result<(), ArmError> {
    check_name(name, 128)
}

/// ARM's rule for identity and federated credential names: `max` letters, digits, hyphens
/// and underscores at most, at least three, starting with a letter or digit.
pub(crate) fn check_name(name: &str, max: usize) -> Result<(), ArmError> {
    let ok = (3..=max).contains(&name.len())
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ArmError::new(
            400,
            "InvalidResourceName",
            format!(
                "Resource name {name} is invalid. The name can be 3-{max} characters long and may contain letters, numbers, hyphens and underscores, starting with a letter or number."
            ),
        ))
    }
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

fn identity_json(i: &IdentityResource, tenant: &str, api: &str) -> Value {
    let mut properties = json!({"tenantId": tenant, "principalId": i.principal_id, "clientId": i.client_id});
    if api >= "2024-11-30" {
        properties["isolationScope"] = json!(i.isolation_scope);
    }
    json!({
        "id": format!("/subscriptions/{}/resourcegroups/{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{}", i.subscription, i.resource_group, i.name),
        "name": i.name,
        "type": "Microsoft.ManagedIdentity/userAssignedIdentities",
        "location": i.location,
        "tags": i.tags,
        "properties": properties,
    })
}

fn vault_json(v: &VaultResource, tenant: &str, api: &str) -> Value {
    let mut properties = json!({
        "tenantId": tenant,
        "sku": {"family": "A", "name": "standard"},
        "accessPolicies": v.access_policies,
        "enabledForDeployment": false,
        "enabledForDiskEncryption": false,
        "enabledForTemplateDeployment": false,
        "enableSoftDelete": true,
        "softDeleteRetentionInDays": 90,
        "vaultUri": format!("https://{}.vault.azure.net/", v.name.to_ascii_lowercase()),
        "provisioningState": "Succeeded",
        "publicNetworkAccess": "Enabled",
    });
    // Older api-versions leave the flag out when it is false, as ARM does.
    if v.rbac || api >= "2026-02-01" {
        properties["enableRbacAuthorization"] = json!(v.rbac);
    }
    json!({
        "id": format!("/subscriptions/{}/resourceGroups/{}/providers/Microsoft.KeyVault/vaults/{}", v.subscription, v.resource_group, v.name),
        "name": v.name,
        "type": "Microsoft.KeyVault/vaults",
        "location": v.location,
        "tags": {},
        "systemData": {"createdBy": "kvbind-arm-sim", "createdByType": "Application", "createdAt": "2026-01-01T00:00:00Z",
                       "lastModifiedBy": "kvbind-arm-sim", "lastModifiedByType": "Application", "lastModifiedAt": "2026-01-01T00:00:00Z"},
        "properties": properties,
    })
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

/// `add` unions permissions, `replace` sets them, `remove` subtracts them and drops an
/// entry left empty. Entries are matched on tenant and object ID, ignoring case.
fn merge_policy(policies: &mut Vec<Value>, entry: &Value, kind: &str) -> Result<(), ArmError> {
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_ascii_lowercase();
    let (tenant, object) = (text(entry, "tenantId"), text(entry, "objectId"));
    if tenant.is_empty() || object.is_empty() || entry.get("permissions").is_none() {
        return Err(ArmError::new(400, "BadRequest", "Each access policy needs tenantId, objectId and permissions."));
    }
    let position = policies.iter().position(|p| text(p, "tenantId") == tenant && text(p, "objectId") == object);
    let categories = ["keys", "secrets", "certificates", "storage"];
    let perms = |v: &Value, c: &str| -> Vec<String> {
        v.pointer(&format!("/permissions/{c}"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_ascii_lowercase).collect())
            .unwrap_or_default()
    };
    match (kind, position) {
        ("add" | "replace", None) => policies.push(entry.clone()),
        ("add", Some(i)) => {
            for c in categories {
                let mut merged = perms(&policies[i], c);
                for p in perms(entry, c) {
                    if !merged.contains(&p) {
                        merged.push(p);
                    }
                }
                policies[i]["permissions"][c] = json!(merged);
            }
        }
        ("replace", Some(i)) => policies[i]["permissions"] = entry["permissions"].clone(),
        ("remove", Some(i)) => {
            for c in categories {
                let drop = perms(entry, c);
                let left: Vec<String> = perms(&policies[i], c).into_iter().filter(|p| !drop.contains(p)).collect();
                policies[i]["permissions"][c] = json!(left);
            }
            if categories.iter().all(|c| perms(&policies[i], c).is_empty()) {
                policies.remove(i);
            }
        }
        ("remove", None) => {}
        (other, _) => {
            return Err(ArmError::new(400, "BadRequest", format!("The operation kind '{other}' is not one of add, replace, remove.")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
