//! Role assignments, through azure_mgmt_authorization as generated, except that the
//! delete is read with `.send()`: the generated `.await` parses every answer as a
//! `RoleAssignment` and so fails on ARM's 204 for an assignment that is already gone.

use azure_mgmt_authorization::package_2022_04_01::models;
use futures::StreamExt;

use super::ArmClient;
use super::transport::classify;
use crate::error::AzureError;
use crate::model::{PermissionScope, PermissionSet, RoleAssignment};
use crate::roles::{role_definition_id, role_guid};

/// The generated client builds `/{scope}/providers/…`: the scope goes without its slash.
fn bare(scope: &str) -> &str {
    scope.trim_start_matches('/')
}

fn subscription_of(scope: &str) -> &str {
    bare(scope).split('/').nth(1).unwrap_or_default()
}

impl ArmClient {
    pub(super) async fn put_role_assignment(&self, wanted: &RoleAssignment) -> Result<RoleAssignment, AzureError> {
        let mut properties =
            models::RoleAssignmentProperties::new(role_definition_id(subscription_of(&wanted.scope), &wanted.role_definition), wanted.principal_id.clone());
        // Lets ARM accept a principal that has not replicated everywhere yet.
        properties.principal_type = Some(models::role_assignment_properties::PrincipalType::ServicePrincipal);
        properties.description = Some("Managed by kvbind".to_owned());
        let result = self
            .authorization
            .role_assignments_client()
            .create(bare(&wanted.scope), &wanted.name, models::RoleAssignmentCreateParameters::new(properties))
            .await;
        match result {
            Ok(created) => Ok(from_model(created).unwrap_or_else(|| wanted.clone())),
            Err(e) => match classify(&e, "CreateRoleAssignment", &wanted.scope) {
                // The same principal, role and scope under another name: adopt that one.
                AzureError::Conflict { code, .. } if code == "RoleAssignmentExists" => {
                    let existing = self.find_role_assignments(&wanted.scope, &wanted.principal_id).await?;
                    Ok(existing.into_iter().find(|a| a.role_definition == wanted.role_definition).unwrap_or_else(|| wanted.clone()))
                }
                other => Err(other),
            },
        }
    }

    pub(super) async fn find_role_assignments(&self, scope: &str, principal_id: &str) -> Result<Vec<RoleAssignment>, AzureError> {
        let mut pages =
            self.authorization.role_assignments_client().list_for_scope(bare(scope)).filter(format!("principalId eq '{principal_id}'")).into_stream();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(&e, "ListRoleAssignments", scope))?;
            found.extend(page.value.into_iter().filter_map(from_model).filter(|a| {
                // The filter also returns assignments above the scope; keep those at or below it.
                let (found, wanted) = (bare(&a.scope).to_ascii_lowercase(), bare(scope).to_ascii_lowercase());
                (found == wanted || found.starts_with(&format!("{wanted}/"))) && a.principal_id.eq_ignore_ascii_case(principal_id)
            }));
        }
        Ok(found)
    }

    pub(super) async fn count_subscription_role_assignments(&self, subscription: &str) -> Result<usize, AzureError> {
        let mut pages = self.authorization.role_assignments_client().list_for_subscription(subscription).into_stream();
        let mut count = 0;
        while let Some(page) = pages.next().await {
            count += page.map_err(|e| classify(&e, "ListRoleAssignments", &format!("/subscriptions/{subscription}")))?.value.len();
        }
        Ok(count)
    }

    pub(super) async fn remove_role_assignment(&self, scope: &str, name: &str) -> Result<(), AzureError> {
        let result = self.authorization.role_assignments_client().delete(bare(scope), name).send().await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => match classify(&e, "DeleteRoleAssignment", scope) {
                AzureError::NotFound { .. } => Ok(()),
                other => Err(other),
            },
        }
    }
}

impl ArmClient {
    pub(super) async fn read_permissions(&self, scope: &PermissionScope) -> Result<Vec<PermissionSet>, AzureError> {
        let client = self.authorization.permissions_client();
        let mut pages = match scope {
            PermissionScope::ResourceGroup { subscription, resource_group } => client.list_for_resource_group(resource_group, subscription).into_stream(),
            PermissionScope::Vault(v) => {
                // A vault has no parent resource: the generated path then holds an empty
                // segment (`…/Microsoft.KeyVault//vaults/…`). The simulator ignores it; that
                // ARM does too is not confirmed (see the crate README).
                client.list_for_resource(&v.resource_group, "Microsoft.KeyVault", "", "vaults", &v.name, &v.subscription).into_stream()
            }
        };
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(&e, "ListPermissions", &scope.to_string()))?;
            out.extend(page.value.into_iter().map(|p| PermissionSet { actions: p.actions, not_actions: p.not_actions }));
        }
        Ok(out)
    }

    pub(super) async fn read_deny_assignments(&self, subscription: &str, resource_group: &str) -> Result<Vec<crate::model::DenyAssignment>, AzureError> {
        let mut pages = self.authorization.deny_assignments_client().list_for_resource_group(subscription, resource_group).into_stream();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(&e, "ListDenyAssignments", &format!("/subscriptions/{subscription}/resourceGroups/{resource_group}")))?;
            out.extend(page.value.into_iter().filter_map(|d| {
                let properties = d.properties?;
                Some(crate::model::DenyAssignment {
                    name: properties.deny_assignment_name.or(d.name).unwrap_or_default(),
                    scope: properties.scope.unwrap_or_default(),
                    denied: PermissionSet {
                        actions: properties.permissions.iter().flat_map(|p| p.actions.iter().cloned()).collect(),
                        not_actions: properties.permissions.iter().flat_map(|p| p.not_actions.iter().cloned()).collect(),
                    },
                })
            }));
        }
        Ok(out)
    }
}

fn from_model(assignment: models::RoleAssignment) -> Option<RoleAssignment> {
    let properties = assignment.properties?;
    Some(RoleAssignment {
        name: assignment.name?,
        scope: format!("/{}", bare(properties.scope.as_deref()?)),
        role_definition: role_guid(&properties.role_definition_id),
        principal_id: properties.principal_id,
    })
}
