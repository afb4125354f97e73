//! The small set of error classes the controller decides retries on.
//!
//! Every failed ARM call becomes an [`AzureError`] that names the operation and the resource
//! and says what the controller should do: requeue after the server's delay (throttled,
//! conflict), retry with backoff (principal not yet replicated, transient), or stop until
//! something changes (forbidden, invalid, not found).

use std::time::Duration;

/// How long to wait on a 409 when the server gives no `Retry-After` (Compute asks for
/// at least five seconds between conflicting writes).
pub const DEFAULT_CONFLICT_DELAY: Duration = Duration::from_secs(5);
/// How long to wait on a 429 when the server gives no `Retry-After`.
pub const DEFAULT_THROTTLE_DELAY: Duration = Duration::from_secs(10);

/// A failed ARM operation, classified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AzureError {
    /// The resource (or its resource group) does not exist.
    #[error("{operation} {resource}: not found ({code}: {message})")]
    NotFound {
        /// The operation that failed.
        operation: &'static str,
        /// The resource it was about.
        resource: String,
        /// ARM's error code.
        code: String,
        /// ARM's message.
        message: String,
    },
    /// Another operation on the resource is in progress; retry after `retry_after`.
    #[error("{operation} {resource}: conflict, retry in {retry_after:?} ({code}: {message})")]
    Conflict {
        /// The operation that failed.
        operation: &'static str,
        /// The resource it was about.
        resource: String,
        /// ARM's error code.
        code: String,
        /// ARM's message.
        message: String,
        /// The server's delay, or [`DEFAULT_CONFLICT_DELAY`].
        retry_after: Duration,
    },
    /// ARM throttled the call; no request may go out before `retry_after` has passed.
    #[error("{operation} {resource}: throttled, retry in {retry_after:?}")]
    Throttled {
        /// The operation that failed.
        operation: &'static str,
        /// The resource it was about.
        resource: String,
        /// The server's `Retry-After`, or [`DEFAULT_THROTTLE_DELAY`].
        retry_after: Duration,
    },
    /// The operator's identity lacks a permission.
    #[error("{operation} {resource}: forbidden{}: {message}", .action.as_ref().map(|a| format!(", missing {a}")).unwrap_or_default())]
    Forbidden {
        /// The operation that failed.
        operation: &'static str,
        /// The resource it was about.
        resource: String,
        /// The action ARM named as missing, when it did.
        action: Option<String>,
        /// ARM's message.
        message: String,
    },
    /// The credential was refused (401).
    #[error("{operation} {resource}: the credential was refused: {message}")]
    Unauthenticated {
        /// The operation that failed.
        operation: &'static str,
        /// The resource it was about.
        resource: String,
        /// What the server said.
        message: String,
    },
    /// ARM refused the request as invalid; retrying the same request will not help.
    #[error("{operation} {resource}: {code}: {message}")]
    Invalid {
        /// The operation that failed.
        operation: &'static str,
        /// The resource it was about.
        resource: String,
        /// ARM's error code.
        code: String,
        /// ARM's message.
        message: String,
    },
    /// One of Azure's hard limits: ARM refused the request for it, or kvbind did not send
    /// it because it would have passed it. Retrying the same request will not help.
    #[error("{operation} {resource}: {limit}: {message}")]
    LimitReached {
        /// The operation that failed.
        operation: &'static str,
        /// The resource it was about.
        resource: String,
        /// The limit, as a condition reason (`VaultAccessPolicyLimit`, `RoleAssignmentLimit`, `PoolIdentityLimit`).
        limit: &'static str,
        /// What passes it, and the way out.
        message: String,
    },
    /// A deny assignment refuses the write whatever roles kvbind holds. On AKS that is the
    /// node resource group lockdown (`nodeResourceGroupProfile.restrictionLevel: ReadOnly`,
    /// preset on AKS Automatic): nothing may attach identities to its scale sets.
    #[error(
        "{operation} {resource}: a deny assignment refuses writes here (on AKS, the node resource group lockdown, preset on AKS Automatic); mode WorkloadIdentity writes nothing in the node resource group: {message}"
    )]
    Denied {
        /// The operation that failed.
        operation: &'static str,
        /// The resource it was about.
        resource: String,
        /// ARM's message.
        message: String,
    },
    /// A fresh identity's principal has not reached the directory yet; retry shortly.
    #[error("{operation} {resource}: principal not yet replicated: {message}")]
    PrincipalNotReplicated {
        /// The operation that failed.
        operation: &'static str,
        /// The resource it was about.
        resource: String,
        /// ARM's message.
        message: String,
    },
    /// A server error, timeout or broken connection; retry with backoff.
    #[error("{operation} {resource}: transient failure: {message}")]
    Transient {
        /// The operation that failed.
        operation: &'static str,
        /// The resource it was about.
        resource: String,
        /// What went wrong.
        message: String,
    },
}

impl AzureError {
    /// The server's delay before the next try, for throttling and conflicts.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AzureError::Throttled { retry_after, .. } | AzureError::Conflict { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// True when the same call may succeed later without any change.
    pub fn is_retryable(&self) -> bool {
        matches!(self, AzureError::Conflict { .. } | AzureError::Throttled { .. } | AzureError::PrincipalNotReplicated { .. } | AzureError::Transient { .. })
    }

    /// A CamelCase word for condition reasons, Events and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            AzureError::NotFound { .. } => "AzureResourceNotFound",
            AzureError::Conflict { .. } => "AzureConflict",
            AzureError::Throttled { .. } => "AzureThrottled",
            AzureError::Forbidden { .. } => "AzurePermissionMissing",
            AzureError::Unauthenticated { .. } => "AzureCredentialRefused",
            AzureError::Invalid { .. } => "AzureRejectedRequest",
            AzureError::LimitReached { limit, .. } => limit,
            AzureError::Denied { .. } => "AzureDenyAssignment",
            AzureError::PrincipalNotReplicated { .. } => "PrincipalNotReplicated",
            AzureError::Transient { .. } => "AzureUnavailable",
        }
    }

    /// The operation that failed.
    pub fn operation(&self) -> &'static str {
        match self {
            AzureError::NotFound { operation, .. }
            | AzureError::Conflict { operation, .. }
            | AzureError::Throttled { operation, .. }
            | AzureError::Forbidden { operation, .. }
            | AzureError::Unauthenticated { operation, .. }
            | AzureError::Invalid { operation, .. }
            | AzureError::LimitReached { operation, .. }
            | AzureError::Denied { operation, .. }
            | AzureError::PrincipalNotReplicated { operation, .. }
            | AzureError::Transient { operation, .. } => operation,
        }
    }
}

/// What an ARM error response said, before classification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArmFailure {
    /// The HTTP status.
    pub status: u16,
    /// `error.code` (or a top-level `code`, or `x-ms-error-code`).
    pub code: String,
    /// `error.message`.
    pub message: String,
    /// `Retry-After` (seconds) or `retry-after-ms`/`x-ms-retry-after-ms`.
    pub retry_after: Option<Duration>,
}

impl ArmFailure {
    /// Classifies the failure of `operation` on `resource`.
    pub fn classify(self, operation: &'static str, resource: impl Into<String>) -> AzureError {
        let resource = resource.into();
        let ArmFailure { status, code, message, retry_after } = self;
        match (status, code.as_str()) {
            (429, _) => AzureError::Throttled { operation, resource, retry_after: retry_after.unwrap_or(DEFAULT_THROTTLE_DELAY) },
            (_, "PrincipalNotFound") => AzureError::PrincipalNotReplicated { operation, resource, message },
            (401, _) => AzureError::Unauthenticated { operation, resource, message },
            (403, _) if code == "DenyAssignmentAuthorizationFailed" || message.contains("because of the deny assignment") => {
                AzureError::Denied { operation, resource, message }
            }
            (403, _) => AzureError::Forbidden { operation, resource, action: missing_action(&message), message },
            (404, _) | (_, "ResourceNotFound" | "ResourceGroupNotFound" | "NotFound" | "ParentResourceNotFound" | "RoleAssignmentNotFound") => {
                AzureError::NotFound { operation, resource, code, message }
            }
            (409, _) | (_, "AnotherOperationInProgress" | "RetryableErrorDueToAnotherOperation" | "OperationPreempted") => {
                AzureError::Conflict { operation, resource, code, message, retry_after: retry_after.unwrap_or(DEFAULT_CONFLICT_DELAY) }
            }
            (408 | 500..=599, _) => AzureError::Transient { operation, resource, message: format!("HTTP {status} {code}: {message}") },
            (_, "RoleAssignmentLimitExceeded") => AzureError::LimitReached { operation, resource, limit: "RoleAssignmentLimit", message },
            (_, "AccessPolicyLimitExceeded") => AzureError::LimitReached { operation, resource, limit: "VaultAccessPolicyLimit", message },
            (400, _) if message.contains("Assign exceed limit") => AzureError::LimitReached { operation, resource, limit: "PoolIdentityLimit", message },
            _ => AzureError::Invalid { operation, resource, code, message },
        }
    }
}

/// ARM says `… does not have authorization to perform action 'X' over scope …`.
fn missing_action(message: &str) -> Option<String> {
    let start = message.find("perform action '")? + "perform action '".len();
    let len = message[start..].find('\'')?;
    Some(message[start..start + len].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(status: u16, code: &str, message: &str) -> ArmFailure {
        ArmFailure { status, code: code.into(), message: message.into(), retry_after: None }
    }

    #[test]
    fn azures_limits_and_deny_assignments_are_named_not_generic() {
        let pool =
            failure(400, "BadRequest", "User Assigned Identities Number '151' Assign exceed limit '150' in one request.").classify("PatchCompute", "pool");
        assert_eq!(pool.reason(), "PoolIdentityLimit");
        let roles = failure(400, "RoleAssignmentLimitExceeded", "No more role assignments can be created.").classify("CreateRoleAssignment", "s");
        assert_eq!(roles.reason(), "RoleAssignmentLimit");
        let denied = failure(403, "DenyAssignmentAuthorizationFailed", "… the access is denied because of the deny assignment with name 'x' …")
            .classify("PatchCompute", "pool");
        assert!(matches!(denied, AzureError::Denied { .. }), "{denied:?}");
        assert!(denied.to_string().contains("WorkloadIdentity"), "the way out: {denied}");
        assert!(!pool.is_retryable() && !roles.is_retryable() && !denied.is_retryable());
        let other = failure(400, "BadRequest", "The request is malformed.").classify("PatchCompute", "pool");
        assert_eq!(other.reason(), "AzureRejectedRequest");
    }

    #[test]
    fn forbidden_names_the_missing_action() {
        let e = failure(403, "AuthorizationFailed", "The client 'x' with object id 'y' does not have authorization to perform action 'Microsoft.Authorization/roleAssignments/write' over scope '/subscriptions/s' or the scope is invalid.")
            .classify("CreateRoleAssignment", "/subscriptions/s");
        assert!(matches!(&e, AzureError::Forbidden { action: Some(a), .. } if a == "Microsoft.Authorization/roleAssignments/write"), "{e:?}");
        assert!(!e.is_retryable());
    }

    #[test]
    fn throttling_keeps_the_server_delay() {
        let mut f = failure(429, "OperationNotAllowed", "too many");
        f.retry_after = Some(Duration::from_secs(17));
        let e = f.classify("PatchVmss", "vmss");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(17)));
        assert!(e.is_retryable());
    }

    #[test]
    fn principal_not_found_is_replication_not_invalid() {
        let e = failure(400, "PrincipalNotFound", "Principal p does not exist").classify("CreateRoleAssignment", "s");
        assert!(matches!(e, AzureError::PrincipalNotReplicated { .. }));
        assert!(e.is_retryable());
    }

    #[test]
    fn conflicts_default_to_five_seconds() {
        let e = failure(409, "Conflict", "concurrent request").classify("PatchVmss", "vmss");
        assert_eq!(e.retry_after(), Some(DEFAULT_CONFLICT_DELAY));
    }

    #[test]
    fn bad_requests_are_permanent() {
        let e = failure(400, "InvalidParameter", "bad").classify("PutIdentity", "id");
        assert!(!e.is_retryable());
        assert_eq!(e.reason(), "AzureRejectedRequest");
        let e = failure(503, "ServiceUnavailable", "busy").classify("GetVault", "kv");
        assert!(e.is_retryable());
    }
}
