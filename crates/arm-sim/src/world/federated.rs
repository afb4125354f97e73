//! Federated identity credentials under user-assigned identities
//! (`…/userAssignedIdentities/{name}/federatedIdentityCredentials/{fic}`), with the rules
//! ARM applies: names of 3-120 letters, digits, hyphens and underscores; an HTTPS issuer;
//! one audience; at most 20 per identity; an issuer and subject pair only once per identity.

use serde::Serialize;
use serde_json::{Value, json};

use super::{ArmError, World, check_name, identity_key, not_found};

/// The most credentials one identity may hold.
pub const MAX_PER_IDENTITY: usize = 20;

/// One federated identity credential.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FederatedCredentialResource {
    /// The name as created.
    pub name: String,
    /// The trusted issuer.
    pub issuer: String,
    /// The subject of the external identity.
    pub subject: String,
    /// The audiences.
    pub audiences: Vec<String>,
}

const TYPE: &str = "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials";

impl World {
    /// `FederatedIdentityCredentials_Get`.
    pub fn get_federated_credential(&self, sub: &str, rg: &str, identity: &str, name: &str) -> Result<Value, ArmError> {
        let parent = self.federated_parent(sub, rg, identity)?;
        parent
            .federated_credentials
            .get(&name.to_ascii_lowercase())
            .map(|c| credential_json(sub, rg, identity, c))
            .ok_or_else(|| not_found(TYPE, &format!("{identity}/{name}"), rg))
    }

    /// `FederatedIdentityCredentials_List`: one page with every credential.
    pub fn list_federated_credentials(&self, sub: &str, rg: &str, identity: &str) -> Result<Value, ArmError> {
        let parent = self.federated_parent(sub, rg, identity)?;
        let value: Vec<Value> = parent.federated_credentials.values().map(|c| credential_json(sub, rg, identity, c)).collect();
        Ok(json!({ "value": value }))
    }

    /// `FederatedIdentityCredentials_CreateOrUpdate`: 201 when created, 200 when replaced.
    pub fn put_federated_credential(&mut self, sub: &str, rg: &str, identity: &str, name: &str, body: &Value) -> Result<(u16, Value), ArmError> {
        self.federated_parent(sub, rg, identity)?;
        check_name(name, 120)?;
        let invalid = |message: String| ArmError::new(400, "BadRequest", message);
        let properties = body.get("properties").ok_or_else(|| invalid("The request body must contain properties.".to_owned()))?;
        let text = |field: &str| properties.get(field).and_then(Value::as_str).unwrap_or_default().to_owned();
        let (issuer, subject) = (text("issuer"), text("subject"));
        let issuer_ok = url::Url::parse(&issuer).is_ok_and(|u| u.scheme() == "https" && u.host_str().is_some());
        if !issuer_ok {
            return Err(invalid(format!("The issuer '{issuer}' must be a valid URL starting with https://.")));
        }
        if subject.is_empty() || subject.len() > 600 {
            return Err(invalid("The subject must be between 1 and 600 characters long.".to_owned()));
        }
        let audiences: Vec<String> = properties
            .get("audiences")
            .and_then(Value::as_array)
            .map(|list| list.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        if audiences.len() != 1 {
            return Err(invalid("Exactly one audience is supported.".to_owned()));
        }
        let key = name.to_ascii_lowercase();
        let parent = self
            .identities
            .get_mut(&identity_key(sub, rg, identity))
            .ok_or_else(|| not_found("Microsoft.ManagedIdentity/userAssignedIdentities", identity, rg))?;
        let clash = parent.federated_credentials.iter().find(|(k, c)| **k != key && c.issuer == issuer && c.subject == subject);
        if let Some((_, other)) = clash {
            return Err(invalid(format!("A federated identity credential with the same issuer and subject already exists: '{}'.", other.name)));
        }
        let replaced = parent.federated_credentials.contains_key(&key);
        if !replaced && parent.federated_credentials.len() >= MAX_PER_IDENTITY {
            return Err(invalid(format!("An identity can hold at most {MAX_PER_IDENTITY} federated identity credentials.")));
        }
        let credential = FederatedCredentialResource { name: name.to_owned(), issuer, subject, audiences };
        parent.federated_credentials.insert(key, credential.clone());
        Ok((if replaced { 200 } else { 201 }, credential_json(sub, rg, identity, &credential)))
    }

    /// `FederatedIdentityCredentials_Delete`: 200 when deleted, 204 when there was none.
    pub fn delete_federated_credential(&mut self, sub: &str, rg: &str, identity: &str, name: &str) -> Result<u16, ArmError> {
        self.federated_parent(sub, rg, identity)?;
        let parent = self
            .identities
            .get_mut(&identity_key(sub, rg, identity))
            .ok_or_else(|| not_found("Microsoft.ManagedIdentity/userAssignedIdentities", identity, rg))?;
        Ok(if parent.federated_credentials.remove(&name.to_ascii_lowercase()).is_some() { 200 } else { 204 })
    }

    fn federated_parent(&self, sub: &str, rg: &str, identity: &str) -> Result<&super::IdentityResource, ArmError> {
        self.require_group(sub, rg)?;
        self.identities.get(&identity_key(sub, rg, identity)).ok_or_else(|| not_found("Microsoft.ManagedIdentity/userAssignedIdentities", identity, rg))
    }
}

fn credential_json(sub: &str, rg: &str, identity: &str, c: &FederatedCredentialResource) -> Value {
    json!({
        "id": format!("/subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{identity}/federatedIdentityCredentials/{}", c.name),
        "name": c.name,
        "type": TYPE,
        "properties": {"issuer": c.issuer, "subject": c.subject, "audiences": c.audiences},
    })
}
