//! The ARM operations current clients call around the ones kvbind uses: the caller's
//! subscriptions, a resource group, the generic resource list `az keyvault` finds a vault
//! by, the identity lists, and a whole vault's PUT (`az keyvault set-policy` writes the
//! merged access-policy list back that way).

use serde_json::{Value, json};

use super::{ArmError, VaultResource, World, identity_json, key, not_found, vault_key};

impl World {
    /// `Subscriptions_List`: every subscription of the directory.
    pub fn list_subscriptions(&self) -> Vec<Value> {
        self.subscriptions
            .values()
            .map(|id| {
                json!({
                    "id": format!("/subscriptions/{id}"), "subscriptionId": id, "tenantId": self.tenant_id,
                    "displayName": format!("Subscription {id}"), "state": "Enabled", "authorizationSource": "RoleBased",
                    "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01", "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off"},
                })
            })
            .collect()
    }

    /// `ResourceGroups_Get`.
    pub fn get_resource_group(&self, sub: &str, rg: &str) -> Result<Value, ArmError> {
        self.require_group(sub, rg)?;
        let (name, location) = &self.resource_groups[&key(&format!("subscriptions/{sub}/resourceGroups/{rg}"))];
        Ok(json!({
            "id": format!("/subscriptions/{sub}/resourceGroups/{name}"), "name": name, "type": "Microsoft.Resources/resourceGroups",
            "location": location, "properties": {"provisioningState": "Succeeded"},
        }))
    }

    /// `Resources_List`: the subscription's identities, scale sets, VMs and vaults, as
    /// generic resources, filtered by `resourceType eq '…'` and `name eq '…'` clauses
    /// joined by `and` (what the Azure CLI sends).
    pub fn list_resources(&self, sub: &str, filter: Option<&str>) -> Result<Vec<Value>, ArmError> {
        if !self.subscriptions.contains_key(&sub.to_ascii_lowercase()) {
            return Err(ArmError::new(404, "SubscriptionNotFound", format!("The subscription '{sub}' could not be found.")));
        }
        let clauses = match filter {
            Some(f) => parse_filter(f)?,
            None => Vec::new(),
        };
        let generic = |kind: &str, group: &str, name: &str, location: &str| json!({"id": format!("/subscriptions/{sub}/resourceGroups/{group}/providers/{kind}/{name}"), "name": name, "type": kind, "location": location, "tags": {}});
        let mut all = Vec::new();
        for i in self.identities.values().filter(|i| i.subscription.eq_ignore_ascii_case(sub)) {
            all.push(generic("Microsoft.ManagedIdentity/userAssignedIdentities", &i.resource_group, &i.name, &i.location));
        }
        for c in self.compute.values().filter(|c| c.subscription.eq_ignore_ascii_case(sub)) {
            all.push(generic(&format!("Microsoft.Compute/{}", c.kind), &c.resource_group, &c.name, &c.location));
        }
        for v in self.vaults.values().filter(|v| v.subscription.eq_ignore_ascii_case(sub)) {
            all.push(generic("Microsoft.KeyVault/vaults", &v.resource_group, &v.name, &v.location));
        }
        Ok(all.into_iter().filter(|r| clauses.iter().all(|(field, value)| r[field.as_str()].as_str().is_some_and(|v| v.eq_ignore_ascii_case(value)))).collect())
    }

    /// `UserAssignedIdentities_ListByResourceGroup` and `_ListBySubscription`.
    pub fn list_identities(&self, sub: &str, rg: Option<&str>, api: &str) -> Result<Vec<Value>, ArmError> {
        match rg {
            Some(rg) => self.require_group(sub, rg)?,
            None if !self.subscriptions.contains_key(&sub.to_ascii_lowercase()) => {
                return Err(ArmError::new(404, "SubscriptionNotFound", format!("The subscription '{sub}' could not be found.")));
            }
            None => {}
        }
        Ok(self
            .identities
            .values()
            .filter(|i| i.subscription.eq_ignore_ascii_case(sub) && rg.is_none_or(|g| i.resource_group.eq_ignore_ascii_case(g)))
            .map(|i| identity_json(i, &self.tenant_id, api))
            .collect())
    }

    /// `Vaults_CreateOrUpdate`: an existing vault's access-policy list replaced (within the
    /// vault's limit) and its permission model set; or a new vault, which from api-version
    /// 2026-02-01 authorises data access with Azure RBAC unless the request says
    /// `enableRbacAuthorization: false` (Key Vault's "RBAC by default"), and with access
    /// policies before it. Answers 201 for a new vault, 200 for an update.
    pub fn put_vault(&mut self, sub: &str, rg: &str, name: &str, body: &Value, api: &str) -> Result<(u16, Value), ArmError> {
        self.require_group(sub, rg)?;
        let limit = self.limits.access_policies_per_vault;
        let properties = body.get("properties").unwrap_or(&Value::Null);
        let created = !self.vaults.contains_key(&vault_key(sub, rg, name));
        if created {
            let missing = |field: &str| ArmError::new(400, "BadRequest", format!("The parameter {field} is required to create vault '{name}'."));
            let location = body.get("location").and_then(Value::as_str).ok_or_else(|| missing("location"))?;
            properties.get("tenantId").and_then(Value::as_str).ok_or_else(|| missing("properties.tenantId"))?;
            properties.get("sku").ok_or_else(|| missing("properties.sku"))?;
            let rbac_by_default = api >= "2026-02-01";
            let vault = VaultResource {
                subscription: sub.to_owned(),
                resource_group: rg.to_owned(),
                name: name.to_owned(),
                location: location.to_owned(),
                rbac: rbac_by_default,
                access_policies: Vec::new(),
                objects: super::key_vault_data::VaultObjects::default(),
            };
            self.vaults.insert(vault_key(sub, rg, name), vault);
        }
        let vault = self.vaults.get_mut(&vault_key(sub, rg, name)).ok_or_else(|| not_found("vault", name, rg))?;
        if let Some(policies) = properties.get("accessPolicies").and_then(Value::as_array) {
            if policies.len() > limit {
                return Err(ArmError::new(
                    400,
                    "AccessPolicyLimitExceeded",
                    format!("The vault '{name}' may hold at most {limit} access policies; the request has {}.", policies.len()),
                ));
            }
            vault.access_policies = policies.clone();
        }
        if let Some(rbac) = properties.get("enableRbacAuthorization").and_then(Value::as_bool) {
            vault.rbac = rbac;
        }
        Ok((if created { 201 } else { 200 }, self.get_vault(sub, rg, name, api)?))
    }
}

/// `resourceType eq 'X' and name eq 'Y'` as `[("type", X), ("name", Y)]`.
fn parse_filter(filter: &str) -> Result<Vec<(String, String)>, ArmError> {
    let invalid = || ArmError::new(400, "InvalidFilterInQueryString", format!("Invalid $filter '{filter}' specified in the query string."));
    let mut clauses = Vec::new();
    for clause in filter.split(" and ") {
        let (field, value) = clause.trim().split_once(" eq ").ok_or_else(invalid)?;
        let value = value.trim().strip_prefix('\'').and_then(|v| v.strip_suffix('\'')).ok_or_else(invalid)?;
        let field = match field.trim() {
            "resourceType" => "type",
            "name" => "name",
            "location" => "location",
            _ => return Err(invalid()),
        };
        clauses.push((field.to_owned(), value.to_owned()));
    }
    Ok(clauses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clis_filter_is_understood_and_anything_else_refused() {
        assert_eq!(
            parse_filter("resourceType eq 'Microsoft.KeyVault/vaults' and name eq 'kvname'").expect("filter"),
            [("type".to_owned(), "Microsoft.KeyVault/vaults".to_owned()), ("name".to_owned(), "kvname".to_owned())]
        );
        assert_eq!(parse_filter("tagName eq 'x'").expect_err("unknown field").code, "InvalidFilterInQueryString");
        assert_eq!(parse_filter("name eq kvname").expect_err("unquoted").status, 400);
    }
}
