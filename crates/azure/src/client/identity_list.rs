//! The user-assigned identities of a resource group, with the property that limits where
//! each may be attached. `isolationScope` exists from api-version 2024-11-30, which no
//! azure_mgmt_msi 0.21 package has (its newest is 2023-01-31), so the list is requested by
//! hand and read page by page through `nextLink`.

use azure_core::{Method, Url};
use serde_json::Value;

use super::ArmClient;
use super::transport::classify;
use crate::error::AzureError;
use crate::ids::IdentityId;
use crate::model::{IsolationScope, ListedIdentity};

/// The first api-version that returns `properties.isolationScope`.
pub const ISOLATION_API_VERSION: &str = "2024-11-30";

/// More pages than any resource group holds identities for (800 per group at 100 a page is
/// eight); a `nextLink` that never ends stops here rather than looping.
const MAX_PAGES: usize = 1000;

impl ArmClient {
    pub(super) async fn read_identity_list(&self, subscription: &str, resource_group: &str) -> Result<Vec<ListedIdentity>, AzureError> {
        let operation = "ListIdentities";
        let resource = format!("/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities");
        let mut url = self.raw.url(&resource, ISOLATION_API_VERSION).map_err(|e| classify(&e, operation, &resource))?;
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES {
            let page = self.raw.send(Method::Get, url, None).await.map_err(|e| classify(&e, operation, &resource))?.json();
            out.extend(page.get("value").and_then(Value::as_array).into_iter().flatten().filter_map(listed_identity));
            match page.get("nextLink").and_then(Value::as_str).filter(|l| !l.is_empty()) {
                Some(next) => {
                    url = Url::parse(next).map_err(|e| AzureError::Transient {
                        operation,
                        resource: resource.clone(),
                        message: format!("unreadable nextLink: {e}"),
                    })?
                }
                None => return Ok(out),
            }
        }
        Err(AzureError::Transient { operation, resource, message: format!("more than {MAX_PAGES} pages") })
    }
}

/// One identity of a list page; `None` when its ID is not an identity's.
pub fn listed_identity(item: &Value) -> Option<ListedIdentity> {
    let id = IdentityId::parse(item.get("id")?.as_str()?).ok()?;
    let location = item.get("location").and_then(Value::as_str).unwrap_or_default().to_owned();
    let isolation_scope = match item.pointer("/properties/isolationScope").and_then(Value::as_str) {
        Some(scope) if scope.eq_ignore_ascii_case("Regional") => IsolationScope::Regional,
        _ => IsolationScope::None,
    };
    Some(ListedIdentity { id, location, isolation_scope })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_regional_identity_is_read_as_regional_and_a_missing_scope_as_none() {
        let id = "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app";
        let regional = listed_identity(&json!({"id": id, "location": "westus", "properties": {"isolationScope": "Regional"}})).expect("an identity");
        assert_eq!((regional.id.name.as_str(), regional.location.as_str(), regional.isolation_scope), ("app", "westus", IsolationScope::Regional));
        let older = listed_identity(&json!({"id": id, "location": "westus", "properties": {}})).expect("an identity");
        assert_eq!(older.isolation_scope, IsolationScope::None);
        assert!(listed_identity(&json!({"id": "/subscriptions/s/resourceGroups/rg"})).is_none());
    }
}
