//! VM scale set and VM identity blocks.
//!
//! Reads use the generated request builders (`.send()`, raw body) because the generated
//! model drops `userAssignedIdentities` (an empty struct in 0.21). Writes are hand-built
//! PATCHes with only the `identity` block, followed to their end by [`super::lro`].

use azure_core::Method;

use super::ArmClient;
use super::transport::classify;
use crate::error::AzureError;
use crate::identity_patch::{identity_patch, read_identity};
use crate::ids::{ComputeId, ResourceKind};
use crate::model::{ComputeIdentity, IdentityChange};

/// The Compute api-version of azure_mgmt_compute 0.21's default package.
pub const COMPUTE_API_VERSION: &str = "2024-07-01";

impl ArmClient {
    pub(super) async fn read_compute_identity(&self, target: &ComputeId) -> Result<ComputeIdentity, AzureError> {
        let operation = "GetComputeIdentity";
        let resource = target.to_string();
        let _turn = self.identity_blocks.acquire().await;
        let response = match target.kind() {
            ResourceKind::VirtualMachineScaleSet => self
                .compute
                .virtual_machine_scale_sets_client()
                .get(&target.resource_group, &target.name, &target.subscription)
                .send()
                .await
                .map(|r| r.into_raw_response()),
            _ => self
                .compute
                .virtual_machines_client()
                .get(&target.resource_group, &target.name, &target.subscription)
                .send()
                .await
                .map(|r| r.into_raw_response()),
        }
        .map_err(|e| classify(&e, operation, &resource))?;
        let body = response.into_body().collect().await.map_err(|e| classify(&e, operation, &resource))?;
        read_identity(&body).map_err(|e| AzureError::Transient { operation, resource: resource.clone(), message: format!("unreadable body: {e}") })
    }

    pub(super) async fn patch_compute_identity(
        &self,
        target: &ComputeId,
        current: &ComputeIdentity,
        change: &IdentityChange,
    ) -> Result<ComputeIdentity, AzureError> {
        let operation = "UpdateComputeIdentity";
        let resource = target.to_string();
        let url = self.raw.url(&resource, COMPUTE_API_VERSION).map_err(|e| classify(&e, operation, &resource))?;
        let first = {
            let _turn = self.identity_blocks.acquire().await;
            let Some(body) = identity_patch(current, change) else {
                return Ok(current.clone());
            };
            self.raw.send(Method::Patch, url.clone(), Some(&body)).await.map_err(|e| classify(&e, operation, &resource))?
        };
        // The response names every identity the scale set carries; it is let go before the
        // tens of seconds the PATCH runs.
        super::lro::follow(&self.raw, first, url, self.lro, operation, &resource).await?;
        self.read_compute_identity(target).await
    }
}
