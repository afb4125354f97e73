//! Built-in Key Vault data roles and deterministic role assignment names.

use uuid::Uuid;

/// Key Vault Secrets User: read secret values and metadata.
pub const KEY_VAULT_SECRETS_USER: &str = "4633458b-17de-408a-b874-0445c86b69e6";
/// Key Vault Crypto User: key operations (read, encrypt, decrypt, sign, wrap, …).
pub const KEY_VAULT_CRYPTO_USER: &str = "12338af0-0e69-4776-bea7-57ae8d297424";
/// Key Vault Certificate User: read certificates, and the secrets and keys behind them.
pub const KEY_VAULT_CERTIFICATE_USER: &str = "db79e9a7-68ee-4b58-9aeb-b90e7c24fcba";
/// Key Vault Reader: metadata only, no secret values.
pub const KEY_VAULT_READER: &str = "21090545-7ca7-4776-b22c-e363652d74d2";

/// The built-in roles kvbind assigns and removes; it never touches any other role.
pub const MANAGED_ROLES: [&str; 4] = [KEY_VAULT_SECRETS_USER, KEY_VAULT_CRYPTO_USER, KEY_VAULT_CERTIFICATE_USER, KEY_VAULT_READER];

/// kvbind's namespace for name-based (v5) UUIDs.
const ASSIGNMENT_NAMESPACE: Uuid = Uuid::from_u128(0x6b76_6269_6e64_4a5b_9c1d_726f_6c65_6173);

/// The role assignment name for `principal` holding `role` at `scope`: the same inputs give
/// the same GUID, so a retried create never makes a second assignment, and a re-created
/// identity (new principal) gets a new name instead of colliding with the stale one.
pub fn assignment_name(scope: &str, principal_id: &str, role_guid: &str) -> String {
    let input = format!("{}|{}|{}", scope.trim_start_matches('/').to_ascii_lowercase(), principal_id.to_ascii_lowercase(), role_guid.to_ascii_lowercase());
    Uuid::new_v5(&ASSIGNMENT_NAMESPACE, input.as_bytes()).to_string()
}

/// The full role definition ID for a built-in role in a subscription.
pub fn role_definition_id(subscription: &str, role_guid: &str) -> String {
    format!("/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{role_guid}")
}

/// The trailing GUID of a role definition ID, lowercase (ARM returns several forms).
pub fn role_guid(role_definition_id: &str) -> String {
    role_definition_id.rsplit('/').next().unwrap_or_default().to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_case_blind() {
        let a = assignment_name("/subscriptions/S/resourceGroups/G/providers/Microsoft.KeyVault/vaults/kv/secrets/db", "P", KEY_VAULT_SECRETS_USER);
        let b = assignment_name("subscriptions/s/resourcegroups/g/providers/microsoft.keyvault/vaults/kv/secrets/db", "p", KEY_VAULT_SECRETS_USER);
        assert_eq!(a, b);
        assert!(Uuid::parse_str(&a).is_ok());
        let other = assignment_name("subscriptions/s/resourcegroups/g/providers/microsoft.keyvault/vaults/kv/secrets/db", "p2", KEY_VAULT_SECRETS_USER);
        assert_ne!(a, other);
    }

    #[test]
    fn role_guid_from_either_form() {
        assert_eq!(role_guid("/providers/Microsoft.Authorization/roleDefinitions/4633458B-17de-408a-b874-0445c86b69e6"), KEY_VAULT_SECRETS_USER);
        assert_eq!(role_guid(&role_definition_id("s", KEY_VAULT_CRYPTO_USER)), KEY_VAULT_CRYPTO_USER);
    }
}
