//! Key Vaults (`Microsoft.KeyVault/vaults`): reads, the by-subscription list, and the
//! access-policy updates (`add`, `replace`, `remove`) with Azure's entry limit.

use serde_json::{Value, json};

use super::{ArmError, VaultResource, World, key, not_found, tracked_resource};

impl World {
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
}

/// The key of a vault in [`World::vaults`].
pub(super) fn vault_key(sub: &str, rg: &str, name: &str) -> String {
    key(&format!("subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{name}"))
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
    let id = format!("/subscriptions/{}/resourceGroups/{}/providers/Microsoft.KeyVault/vaults/{}", v.subscription, v.resource_group, v.name);
    let mut body = tracked_resource(id, &v.name, "Microsoft.KeyVault/vaults", &v.location, json!({}), properties);
    body["systemData"] = json!({"createdBy": "kvbind-arm-sim", "createdByType": "Application", "createdAt": "2026-01-01T00:00:00Z",
                                "lastModifiedBy": "kvbind-arm-sim", "lastModifiedByType": "Application", "lastModifiedAt": "2026-01-01T00:00:00Z"});
    body
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
