//! Azure clouds: the endpoints kvbind talks to, by the names the Azure provider's
//! `cloudName` parameter uses, or from a custom environment file as Azure Stack uses.

use serde::Deserialize;
use url::Url;

/// The endpoints of one Azure cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cloud {
    /// The cloud's name (`AzurePublicCloud`, …, or the custom file's `name`).
    pub name: String,
    /// The Resource Manager endpoint, also the token audience unless `audience` is set.
    pub resource_manager: Url,
    /// The Azure AD authority host.
    pub authority_host: Url,
    /// The Key Vault DNS suffix (`vault.azure.net`).
    pub key_vault_suffix: String,
    /// The token audience, when it differs from the Resource Manager endpoint.
    pub audience: Option<String>,
}

/// Why a cloud could not be found or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloudError {
    /// The name is not a known cloud.
    #[error("cloudName {0:?} is not one of AzurePublicCloud, AzureChinaCloud, AzureUSGovernmentCloud, AzureStackCloud")]
    UnknownName(String),
    /// The custom cloud file could not be parsed.
    #[error("custom cloud file: {0}")]
    BadFile(String),
    /// An endpoint in the custom cloud file is not an absolute https URL.
    #[error("custom cloud file: {field} {value:?} is not an absolute https URL")]
    BadEndpoint {
        /// The JSON field.
        field: &'static str,
        /// Its value.
        value: String,
    },
}

impl Cloud {
    fn known(name: &str, arm: &str, aad: &str, kv: &str) -> Cloud {
        Cloud {
            name: name.to_owned(),
            resource_manager: Url::parse(arm).unwrap_or_else(|_| unreachable!("constant URL")),
            authority_host: Url::parse(aad).unwrap_or_else(|_| unreachable!("constant URL")),
            key_vault_suffix: kv.to_owned(),
            audience: None,
        }
    }

    /// The public cloud.
    pub fn public() -> Cloud {
        Cloud::known("AzurePublicCloud", "https://management.azure.com/", "https://login.microsoftonline.com/", "vault.azure.net")
    }

    /// A cloud by the name a SecretProviderClass's `cloudName` uses (case-insensitive; empty
    /// means the public cloud). `AzureStackCloud` needs the custom file, passed as `custom`.
    pub fn by_name(name: &str, custom: Option<&Cloud>) -> Result<Cloud, CloudError> {
        match name.trim().to_ascii_lowercase().as_str() {
            "" | "azurepubliccloud" | "azurecloud" => Ok(Cloud::public()),
            "azurechinacloud" => {
                Ok(Cloud::known("AzureChinaCloud", "https://management.chinacloudapi.cn/", "https://login.chinacloudapi.cn/", "vault.azure.cn"))
            }
            "azureusgovernmentcloud" | "azureusgovernment" => Ok(Cloud::known(
                "AzureUSGovernmentCloud",
                "https://management.usgovcloudapi.net/",
                "https://login.microsoftonline.us/",
                "vault.usgovcloudapi.net",
            )),
            "azurestackcloud" => custom.cloned().ok_or_else(|| CloudError::UnknownName(name.to_owned())),
            _ => match custom {
                Some(c) if c.name.eq_ignore_ascii_case(name.trim()) => Ok(c.clone()),
                _ => Err(CloudError::UnknownName(name.to_owned())),
            },
        }
    }

    /// Reads a custom cloud from the JSON environment file format that Azure Stack and
    /// `AZURE_ENVIRONMENT_FILEPATH` use. `allow_http` admits `http://` endpoints (local use only).
    pub fn from_json(text: &str, allow_http: bool) -> Result<Cloud, CloudError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct File {
            name: String,
            resource_manager_endpoint: String,
            active_directory_endpoint: String,
            #[serde(rename = "keyVaultDNSSuffix")]
            key_vault_dns_suffix: String,
            #[serde(default)]
            token_audience: Option<String>,
        }
        let file: File = serde_json::from_str(text).map_err(|e| CloudError::BadFile(e.to_string()))?;
        let endpoint = |field: &'static str, value: &str| {
            Url::parse(value)
                .ok()
                .filter(|u| u.scheme() == "https" || (allow_http && u.scheme() == "http"))
                .filter(|u| u.host().is_some())
                .ok_or_else(|| CloudError::BadEndpoint { field, value: value.to_owned() })
        };
        if file.name.trim().is_empty() {
            return Err(CloudError::BadFile("name is empty".to_owned()));
        }
        if file.key_vault_dns_suffix.trim().is_empty() || file.key_vault_dns_suffix.contains('/') {
            return Err(CloudError::BadFile(format!("keyVaultDNSSuffix {:?} is not a DNS suffix", file.key_vault_dns_suffix)));
        }
        Ok(Cloud {
            name: file.name,
            resource_manager: endpoint("resourceManagerEndpoint", &file.resource_manager_endpoint)?,
            authority_host: endpoint("activeDirectoryEndpoint", &file.active_directory_endpoint)?,
            key_vault_suffix: file.key_vault_dns_suffix.trim_start_matches('.').to_owned(),
            audience: file.token_audience,
        })
    }

    /// The scope to ask tokens for.
    pub fn token_scope(&self) -> String {
        let audience = self.audience.clone().unwrap_or_else(|| self.resource_manager.to_string());
        format!("{}/.default", audience.trim_end_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_case_blind_and_empty_is_public() {
        assert_eq!(Cloud::by_name("", None).expect("public").name, "AzurePublicCloud");
        assert_eq!(Cloud::by_name("azurechinacloud", None).expect("china").key_vault_suffix, "vault.azure.cn");
        assert!(Cloud::by_name("AzureGermanCloud", None).is_err());
        assert!(Cloud::by_name("AzureStackCloud", None).is_err());
    }

    #[test]
    fn custom_cloud_file() {
        let text = r#"{"name":"AzureStackCloud","resourceManagerEndpoint":"https://management.local.azurestack.external/","activeDirectoryEndpoint":"https://adfs.local.azurestack.external/adfs/","keyVaultDNSSuffix":".vault.local.azurestack.external","tokenAudience":"https://management.adfs.azurestack.local/abc"}"#;
        let cloud = Cloud::from_json(text, false).expect("valid");
        assert_eq!(cloud.key_vault_suffix, "vault.local.azurestack.external");
        assert_eq!(cloud.token_scope(), "https://management.adfs.azurestack.local/abc/.default");
        assert_eq!(Cloud::by_name("AzureStackCloud", Some(&cloud)).expect("custom"), cloud);
    }

    #[test]
    fn custom_cloud_rejects_plain_http_and_missing_fields() {
        let http = r#"{"name":"x","resourceManagerEndpoint":"http://arm","activeDirectoryEndpoint":"https://aad/","keyVaultDNSSuffix":"v"}"#;
        assert!(matches!(Cloud::from_json(http, false), Err(CloudError::BadEndpoint { field: "resourceManagerEndpoint", .. })));
        assert!(Cloud::from_json(http, true).is_ok());
        assert!(matches!(Cloud::from_json("{}", false), Err(CloudError::BadFile(_))));
        assert!(matches!(Cloud::from_json("not json", false), Err(CloudError::BadFile(_))));
    }
}
