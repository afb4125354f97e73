//! The Key Vault data plane: reading a secret, key or certificate, authorised exactly as
//! Key Vault does, by the vault's permission model. With access policies, the caller's
//! entry (tenant and object ID) must hold `get` (or `all`) for the object's kind; with
//! Azure RBAC, one of the caller's role assignments at the object, the vault, its group or
//! its subscription must be a built-in role whose data actions include the read.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{Value, json};

use super::{VaultResource, World, key};
use crate::seed::VaultSeed;

/// The kinds of object a vault holds, by their data-plane path segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// `secrets/{name}`.
    Secret,
    /// `keys/{name}`.
    Key,
    /// `certificates/{name}`.
    Certificate,
}

impl ObjectKind {
    /// The kind a path segment names.
    pub fn from_segment(segment: &str) -> Option<ObjectKind> {
        match segment.to_ascii_lowercase().as_str() {
            "secrets" => Some(ObjectKind::Secret),
            "keys" => Some(ObjectKind::Key),
            "certificates" => Some(ObjectKind::Certificate),
            _ => None,
        }
    }

    /// The path segment, which is also the access policy's permission field.
    pub fn segment(self) -> &'static str {
        match self {
            ObjectKind::Secret => "secrets",
            ObjectKind::Key => "keys",
            ObjectKind::Certificate => "certificates",
        }
    }

    fn singular(self) -> &'static str {
        match self {
            ObjectKind::Secret => "secret",
            ObjectKind::Key => "key",
            ObjectKind::Certificate => "certificate",
        }
    }

    fn not_found_code(self) -> &'static str {
        match self {
            ObjectKind::Secret => "SecretNotFound",
            ObjectKind::Key => "KeyNotFound",
            ObjectKind::Certificate => "CertificateNotFound",
        }
    }

    /// The built-in roles whose data actions include reading one object of this kind:
    /// getSecret for secrets, `keys/read` and `certificates/read` for the others.
    fn reading_roles(self) -> &'static [&'static str] {
        const ADMINISTRATOR: &str = "00482a5a-887f-4fb3-b363-3b7fe8e74483";
        const READER: &str = "21090545-7ca7-4776-b22c-e363652d74d2";
        match self {
            // Secrets User, Secrets Officer.
            ObjectKind::Secret => &["4633458b-17de-408a-b874-0445c86b69e6", "b86a8fe4-44ce-4948-aee5-eccb2c155cd7", ADMINISTRATOR],
            // Crypto User, Crypto Officer.
            ObjectKind::Key => &["12338af0-0e69-4776-bea7-57ae8d297424", "14b46e9e-c2b7-41b4-b07b-48a6ebf60603", ADMINISTRATOR, READER],
            // Certificate User, Certificates Officer.
            ObjectKind::Certificate => &["db79e9a7-68ee-4b58-9aeb-b90e7c24fcba", "a4417e6f-fecd-4de8-b567-7b0420556985", ADMINISTRATOR, READER],
        }
    }
}

/// The names of the objects in one vault, lowercase (Key Vault names are case-insensitive).
#[derive(Debug, Clone, Default, Serialize)]
pub struct VaultObjects {
    /// Secret names.
    pub secrets: BTreeSet<String>,
    /// Key names.
    pub keys: BTreeSet<String>,
    /// Certificate names.
    pub certificates: BTreeSet<String>,
}

impl VaultObjects {
    /// The objects a vault seed lists.
    pub fn from_seed(seed: &VaultSeed) -> VaultObjects {
        let lower = |names: &[String]| names.iter().map(|n| n.to_ascii_lowercase()).collect();
        VaultObjects { secrets: lower(&seed.secrets), keys: lower(&seed.keys), certificates: lower(&seed.certificates) }
    }

    /// Whether the vault holds nothing.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty() && self.keys.is_empty() && self.certificates.is_empty()
    }

    fn of(&self, kind: ObjectKind) -> &BTreeSet<String> {
        match kind {
            ObjectKind::Secret => &self.secrets,
            ObjectKind::Key => &self.keys,
            ObjectKind::Certificate => &self.certificates,
        }
    }
}

/// A data-plane refusal, in Key Vault's error shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataPlaneError {
    /// The HTTP status.
    pub status: u16,
    /// `error.code`.
    pub code: &'static str,
    /// `error.innererror.code`, when Key Vault sends one.
    pub inner: Option<&'static str>,
    /// `error.message`.
    pub message: String,
}

impl DataPlaneError {
    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut body = json!({"error": {"code": self.code, "message": self.message}});
        if let Some(inner) = self.inner {
            body["error"]["innererror"] = json!({"code": inner});
        }
        body
    }
}

/// Who is reading: the principal a token was issued to.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    /// The application (client) ID.
    pub client_id: &'a str,
    /// The principal's object ID.
    pub principal_id: &'a str,
}

impl World {
    /// The vault named `name` (vault names are unique across Azure).
    pub fn vault_named(&self, name: &str) -> Option<&VaultResource> {
        self.vaults.values().find(|v| v.name.eq_ignore_ascii_case(name))
    }

    /// `GET https://{vault}.{suffix}/{kind}/{name}[/{version}]`: the object, when `reader`
    /// may read it.
    pub fn read_vault_object(&self, vault: &str, kind: ObjectKind, name: &str, reader: Reader<'_>, host: &str) -> Result<Value, DataPlaneError> {
        let vault = self.vault_named(vault).ok_or_else(|| DataPlaneError {
            status: 404,
            code: "VaultNotFound",
            inner: None,
            message: format!("No vault named '{vault}' exists."),
        })?;
        self.authorise_read(vault, kind, name, reader)?;
        if !vault.objects.of(kind).contains(&name.to_ascii_lowercase()) {
            return Err(DataPlaneError {
                status: 404,
                code: kind.not_found_code(),
                inner: None,
                message: format!("A {} with (name/id) {name} was not found in this key vault.", kind.singular()),
            });
        }
        Ok(object_json(kind, name, host))
    }

    fn authorise_read(&self, vault: &VaultResource, kind: ObjectKind, name: &str, reader: Reader<'_>) -> Result<(), DataPlaneError> {
        let vault_id =
            format!("subscriptions/{}/resourceGroups/{}/providers/Microsoft.KeyVault/vaults/{}", vault.subscription, vault.resource_group, vault.name);
        let allowed = if vault.rbac {
            let object = key(&format!("{vault_id}/{}/{name}", kind.segment()));
            self.role_assignments.values().any(|a| {
                let scope = key(&a.scope);
                let covers = object == scope || object.starts_with(&format!("{scope}/"));
                let role = a.role_definition_id.rsplit('/').next().unwrap_or_default().to_ascii_lowercase();
                covers && a.principal_id.eq_ignore_ascii_case(reader.principal_id) && kind.reading_roles().contains(&role.as_str())
            })
        } else {
            vault.access_policies.iter().any(|entry| {
                let text = |field: &str| entry.get(field).and_then(Value::as_str).unwrap_or_default();
                let permissions = entry.pointer(&format!("/permissions/{}", kind.segment())).and_then(Value::as_array);
                text("objectId").eq_ignore_ascii_case(reader.principal_id)
                    && text("tenantId").eq_ignore_ascii_case(&self.tenant_id)
                    && permissions.is_some_and(|p| p.iter().filter_map(Value::as_str).any(|p| p.eq_ignore_ascii_case("get") || p.eq_ignore_ascii_case("all")))
            })
        };
        if allowed {
            return Ok(());
        }
        let who = format!("appid={};oid={}", reader.client_id, reader.principal_id);
        Err(if vault.rbac {
            DataPlaneError {
                status: 403,
                code: "Forbidden",
                inner: Some("ForbiddenByRbac"),
                message: format!(
                    "Caller is not authorized to perform action on resource. Caller: {who}. Action: 'Microsoft.KeyVault/vaults/{}/read'. Resource: '/{}/{}/{name}'.",
                    kind.segment(),
                    vault_id.to_ascii_lowercase(),
                    kind.segment()
                ),
            }
        } else {
            DataPlaneError {
                status: 403,
                code: "Forbidden",
                inner: Some("AccessDenied"),
                message: format!(
                    "The user, group or application '{who}' does not have {} get permission on key vault '{};location={}'.",
                    kind.segment(),
                    vault.name,
                    vault.location
                ),
            }
        })
    }
}

/// The object as Key Vault returns it; a secret's value is a placeholder.
fn object_json(kind: ObjectKind, name: &str, host: &str) -> Value {
    let version = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, format!("{host}/{}/{name}", kind.segment()).as_bytes()).simple().to_string();
    let id = format!("https://{host}/{}/{name}/{version}", kind.segment());
    let attributes = json!({"enabled": true, "created": 1_700_000_000, "updated": 1_700_000_000, "recoveryLevel": "Recoverable+Purgeable"});
    match kind {
        ObjectKind::Secret => json!({"id": id, "value": format!("simulated value of {name}"), "attributes": attributes, "tags": {}}),
        ObjectKind::Key => json!({"key": {"kid": id, "kty": "RSA", "key_ops": ["verify", "wrapKey"], "n": "sim", "e": "AQAB"}, "attributes": attributes}),
        ObjectKind::Certificate => json!({
            "id": id, "kid": format!("https://{host}/keys/{name}/{version}"), "sid": format!("https://{host}/secrets/{name}/{version}"),
            "x5t": "c2lt", "cer": "c2lt", "attributes": attributes,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::Seed;

    const READER: Reader<'static> = Reader { client_id: "app", principal_id: "p-1" };

    fn world(rbac: bool, permissions: &str) -> World {
        World::from_seed(
            &Seed::from_yaml(&format!(
                "tenantId: t\nsubscriptions:\n  - id: s\n    resourceGroups:\n      - name: g\n        vaults:\n          - name: kv\n            rbac: {rbac}\n            secrets: [db-password, other]\n            keys: [signing]\n            accessPolicies:\n              - {{tenantId: t, objectId: P-1, permissions: {permissions}}}\n"
            ))
            .expect("seed"),
        )
    }

    fn read(w: &World, kind: ObjectKind, name: &str) -> Result<Value, DataPlaneError> {
        w.read_vault_object("KV", kind, name, READER, "kv.vault.azure.net")
    }

    #[test]
    fn access_policies_let_a_principal_read_only_the_kinds_it_may_get() {
        let w = world(false, "{secrets: [Get]}");
        let secret = read(&w, ObjectKind::Secret, "DB-password").expect("secrets get");
        assert!(secret["id"].as_str().is_some_and(|id| id.starts_with("https://kv.vault.azure.net/secrets/DB-password/")));
        let refused = read(&w, ObjectKind::Key, "signing").expect_err("no keys permission");
        assert_eq!((refused.status, refused.inner), (403, Some("AccessDenied")));
        assert!(refused.message.contains("keys get permission"), "{}", refused.message);
        assert_eq!(read(&w, ObjectKind::Secret, "missing").expect_err("absent").code, "SecretNotFound");
        let list_only = world(false, "{secrets: [list]}");
        assert_eq!(read(&list_only, ObjectKind::Secret, "db-password").expect_err("list is not get").status, 403);
    }

    #[test]
    fn with_rbac_only_a_reading_role_at_or_above_the_object_grants_it() {
        let mut w = world(true, "{secrets: [get]}");
        assert_eq!(read(&w, ObjectKind::Secret, "db-password").expect_err("policies do not count").inner, Some("ForbiddenByRbac"));
        let vault = "/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/kv";
        let assign = |w: &mut World, scope: String, role: &str| {
            let name = uuid::Uuid::new_v4().to_string();
            w.role_assignments.insert(
                name.clone(),
                super::super::RoleAssignmentResource {
                    name,
                    scope,
                    role_definition_id: format!("/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/{role}"),
                    principal_id: "p-1".to_owned(),
                    principal_type: None,
                    created_on: String::new(),
                },
            );
        };
        assign(&mut w, format!("{vault}/secrets/db-password"), "4633458b-17de-408a-b874-0445c86b69e6");
        assert!(read(&w, ObjectKind::Secret, "db-password").is_ok(), "Secrets User on the object");
        assert_eq!(read(&w, ObjectKind::Secret, "other").expect_err("another object").status, 403);
        assign(&mut w, vault.to_owned(), "21090545-7ca7-4776-b22c-e363652d74d2");
        assert!(read(&w, ObjectKind::Key, "signing").is_ok(), "Reader reads a key at the vault");
        assert_eq!(read(&w, ObjectKind::Secret, "other").expect_err("Reader cannot get a secret").status, 403);
    }
}
