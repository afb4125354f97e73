//! ARM resource IDs and AKS node provider IDs as types.
//!
//! ARM compares IDs case-insensitively and real responses mix `resourceGroups` and
//! `resourcegroups`, so every ID keeps the casing it was given for display and compares
//! by a lowercase key.

use std::fmt;
use std::hash::{Hash, Hasher};

/// Why a string is not the ID it should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The ID does not start with `/subscriptions/`.
    #[error("{input:?} is not an ARM resource ID: it must start with /subscriptions/")]
    NoSubscription {
        /// The rejected input.
        input: String,
    },
    /// The ID has the wrong shape for what it should name.
    #[error("{input:?} is not a {expected} ID: expected {shape}")]
    Shape {
        /// The rejected input.
        input: String,
        /// What it should have named.
        expected: &'static str,
        /// The expected shape.
        shape: &'static str,
    },
    /// A name in the ID is empty or has characters ARM does not allow.
    #[error("{input:?}: {part} {value:?} is not a valid name")]
    BadName {
        /// The rejected input.
        input: String,
        /// Which segment.
        part: &'static str,
        /// The segment's value.
        value: String,
    },
    /// A node's `spec.providerID` is not one kvbind can use.
    #[error("providerID {input:?} is not an Azure VM or VM scale set instance ({reason})")]
    ProviderId {
        /// The rejected input.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// A resource in a resource group: `/subscriptions/S/resourceGroups/G/providers/NS/TYPE/NAME`.
#[derive(Debug, Clone, Eq)]
pub struct GroupResourceId {
    /// The subscription ID.
    pub subscription: String,
    /// The resource group name.
    pub resource_group: String,
    /// The resource name.
    pub name: String,
    kind: ResourceKind,
}

/// The resource types kvbind works with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceKind {
    /// `Microsoft.ManagedIdentity/userAssignedIdentities`.
    UserAssignedIdentity,
    /// `Microsoft.Compute/virtualMachineScaleSets`.
    VirtualMachineScaleSet,
    /// `Microsoft.Compute/virtualMachines`.
    VirtualMachine,
    /// `Microsoft.KeyVault/vaults`.
    Vault,
    /// `Microsoft.ContainerService/managedClusters`.
    ManagedCluster,
}

impl ResourceKind {
    /// The provider namespace and type, as ARM spells them.
    pub fn provider_type(self) -> &'static str {
        match self {
            ResourceKind::UserAssignedIdentity => "Microsoft.ManagedIdentity/userAssignedIdentities",
            ResourceKind::VirtualMachineScaleSet => "Microsoft.Compute/virtualMachineScaleSets",
            ResourceKind::VirtualMachine => "Microsoft.Compute/virtualMachines",
            ResourceKind::Vault => "Microsoft.KeyVault/vaults",
            ResourceKind::ManagedCluster => "Microsoft.ContainerService/managedClusters",
        }
    }

    /// What it is, in words.
    pub fn describe(self) -> &'static str {
        match self {
            ResourceKind::UserAssignedIdentity => "user-assigned identity",
            ResourceKind::VirtualMachineScaleSet => "VM scale set",
            ResourceKind::VirtualMachine => "virtual machine",
            ResourceKind::Vault => "Key Vault",
            ResourceKind::ManagedCluster => "AKS managed cluster",
        }
    }

    fn shape(self) -> &'static str {
        match self {
            ResourceKind::UserAssignedIdentity => "/subscriptions/S/resourceGroups/G/providers/Microsoft.ManagedIdentity/userAssignedIdentities/NAME",
            ResourceKind::VirtualMachineScaleSet => "/subscriptions/S/resourceGroups/G/providers/Microsoft.Compute/virtualMachineScaleSets/NAME",
            ResourceKind::VirtualMachine => "/subscriptions/S/resourceGroups/G/providers/Microsoft.Compute/virtualMachines/NAME",
            ResourceKind::Vault => "/subscriptions/S/resourceGroups/G/providers/Microsoft.KeyVault/vaults/NAME",
            ResourceKind::ManagedCluster => "/subscriptions/S/resourceGroups/G/providers/Microsoft.ContainerService/managedClusters/NAME",
        }
    }
}

impl GroupResourceId {
    /// Builds an ID from its parts, checking each name.
    pub fn new(kind: ResourceKind, subscription: &str, resource_group: &str, name: &str) -> Result<Self, IdError> {
        let input = || format!("{}/{}/{}", subscription, resource_group, name);
        check_segment(subscription).map_err(|()| IdError::BadName { input: input(), part: "subscription", value: subscription.to_owned() })?;
        check_segment(resource_group).map_err(|()| IdError::BadName { input: input(), part: "resource group", value: resource_group.to_owned() })?;
        check_segment(name).map_err(|()| IdError::BadName { input: input(), part: "name", value: name.to_owned() })?;
        Ok(GroupResourceId { subscription: subscription.to_owned(), resource_group: resource_group.to_owned(), name: name.to_owned(), kind })
    }

    /// Parses an ID that must name a resource of `kind`.
    pub fn parse(kind: ResourceKind, input: &str) -> Result<Self, IdError> {
        let shape_error = || IdError::Shape { input: input.to_owned(), expected: kind.describe(), shape: kind.shape() };
        let trimmed = input.trim_start_matches('/');
        if !trimmed.to_ascii_lowercase().starts_with("subscriptions/") {
            return Err(IdError::NoSubscription { input: input.to_owned() });
        }
        let parts: Vec<&str> = trimmed.split('/').collect();
        let [subs, sub, rgs, rg, providers, namespace, kind_type, name] = parts.as_slice() else {
            return Err(shape_error());
        };
        let (want_ns, want_type) = kind.provider_type().split_once('/').unwrap_or_default();
        let matches = subs.eq_ignore_ascii_case("subscriptions")
            && rgs.eq_ignore_ascii_case("resourceGroups")
            && providers.eq_ignore_ascii_case("providers")
            && namespace.eq_ignore_ascii_case(want_ns)
            && kind_type.eq_ignore_ascii_case(want_type);
        if !matches {
            return Err(shape_error());
        }
        GroupResourceId::new(kind, sub, rg, name).map_err(|e| match e {
            IdError::BadName { part, value, .. } => IdError::BadName { input: input.to_owned(), part, value },
            other => other,
        })
    }

    /// Parses an ID that names a resource of one of `kinds`, whichever its type segment says.
    pub fn parse_any(kinds: &[ResourceKind], input: &str) -> Result<Self, IdError> {
        let mut first_error = None;
        for kind in kinds {
            match GroupResourceId::parse(*kind, input) {
                Ok(id) => return Ok(id),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or_else(|| IdError::NoSubscription { input: input.to_owned() }))
    }

    /// The resource type.
    pub fn kind(&self) -> ResourceKind {
        self.kind
    }

    /// The lowercase form used as a map key and for comparison.
    pub fn key(&self) -> String {
        let mut key = String::with_capacity(self.key_bytes().count());
        key.extend(self.key_bytes().map(char::from));
        key
    }

    /// The bytes of [`key`](Self::key), made on the fly: sets and maps of thousands of IDs
    /// compare them constantly, and a string per comparison was most of that cost.
    fn key_bytes(&self) -> impl Iterator<Item = u8> + '_ {
        let (namespace, kind) = self.kind.provider_type().split_once('/').unwrap_or_default();
        [
            "/subscriptions/",
            self.subscription.as_str(),
            "/resourcegroups/",
            self.resource_group.as_str(),
            "/providers/",
            namespace,
            "/",
            kind,
            "/",
            self.name.as_str(),
        ]
        .into_iter()
        .flat_map(str::bytes)
        .map(|b| b.to_ascii_lowercase())
    }
}

impl fmt::Display for GroupResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/subscriptions/{}/resourceGroups/{}/providers/{}/{}", self.subscription, self.resource_group, self.kind.provider_type(), self.name)
    }
}

impl PartialEq for GroupResourceId {
    fn eq(&self, other: &Self) -> bool {
        self.key_bytes().eq(other.key_bytes())
    }
}

impl Hash for GroupResourceId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut chunk = [0u8; 64];
        let mut len = 0;
        for b in self.key_bytes() {
            chunk[len] = b;
            len += 1;
            if len == chunk.len() {
                state.write(&chunk);
                len = 0;
            }
        }
        state.write(&chunk[..len]);
    }
}

impl PartialOrd for GroupResourceId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for GroupResourceId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key_bytes().cmp(other.key_bytes())
    }
}

/// ARM names: not empty, at most 260 characters, none of the characters that break a URL path.
fn check_segment(value: &str) -> Result<(), ()> {
    // `.` and `..` are no Azure name, and an HTTP client resolves them as path steps: an ID
    // a policy allowed would reach another resource on the wire.
    let dots = value == "." || value == "..";
    let bad = dots || value.is_empty() || value.len() > 260 || value.chars().any(|c| c.is_control() || matches!(c, '/' | '\\' | '?' | '#' | '%' | '&' | ' '));
    if bad { Err(()) } else { Ok(()) }
}

/// An ID of one kind of resource, as its own type: an identity's ID cannot be passed where
/// a vault's is wanted. Each derefs to the [`GroupResourceId`] it wraps for its parts and
/// key, and is made only by parsing or building one of its kinds.
macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident: $($kind:ident)|+) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(GroupResourceId);

        impl $name {
            /// The kinds of resource it names.
            pub const KINDS: &'static [ResourceKind] = &[$(ResourceKind::$kind),+];

            /// Parses an ID of one of [`Self::KINDS`].
            pub fn parse(input: &str) -> Result<Self, IdError> {
                GroupResourceId::parse_any(Self::KINDS, input).map($name)
            }

            /// Builds one from its parts; `kind` must be one of [`Self::KINDS`].
            pub fn new(kind: ResourceKind, subscription: &str, resource_group: &str, name: &str) -> Result<Self, IdError> {
                if !Self::KINDS.contains(&kind) {
                    return Err(IdError::Shape { input: format!("{subscription}/{resource_group}/{name}"), expected: Self::KINDS[0].describe(), shape: Self::KINDS[0].shape() });
                }
                GroupResourceId::new(kind, subscription, resource_group, name).map($name)
            }
        }

        impl TryFrom<GroupResourceId> for $name {
            type Error = IdError;

            fn try_from(id: GroupResourceId) -> Result<Self, IdError> {
                if Self::KINDS.contains(&id.kind()) {
                    Ok($name(id))
                } else {
                    Err(IdError::Shape { input: id.to_string(), expected: Self::KINDS[0].describe(), shape: Self::KINDS[0].shape() })
                }
            }
        }

        impl std::ops::Deref for $name {
            type Target = GroupResourceId;

            fn deref(&self) -> &GroupResourceId {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

typed_id!(
    /// A user-assigned managed identity.
    IdentityId: UserAssignedIdentity
);
typed_id!(
    /// A Key Vault.
    VaultId: Vault
);
typed_id!(
    /// What an identity can be attached to: a VM scale set, or a single VM (availability
    /// sets, standalone VMs and VMSS Flex instances).
    ComputeId: VirtualMachineScaleSet | VirtualMachine
);

/// Where a node runs, from its `spec.providerID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeLocation {
    /// An instance of a VM scale set (Uniform orchestration).
    ScaleSetInstance {
        /// The scale set.
        scale_set: ComputeId,
        /// The instance ID.
        instance: String,
    },
    /// A VM of its own (availability set, standalone, or a VMSS Flex instance).
    VirtualMachine(ComputeId),
}

impl NodeLocation {
    /// Parses `azure:///subscriptions/S/resourceGroups/G/providers/Microsoft.Compute/…`.
    pub fn from_provider_id(input: &str) -> Result<Self, IdError> {
        let err = |reason| IdError::ProviderId { input: input.to_owned(), reason };
        let rest = input.strip_prefix("azure://").ok_or_else(|| err("it must start with azure://"))?;
        if !rest.starts_with('/') {
            return Err(err("the resource ID after azure:// must start with /"));
        }
        let parts: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
        match parts.as_slice() {
            [_, sub, _, rg, _, ns, t, name, vms, instance]
                if ns.eq_ignore_ascii_case("Microsoft.Compute")
                    && t.eq_ignore_ascii_case("virtualMachineScaleSets")
                    && vms.eq_ignore_ascii_case("virtualMachines") =>
            {
                if instance.is_empty() || !instance.chars().all(|c| c.is_ascii_digit()) {
                    return Err(err("the scale set instance ID must be a number"));
                }
                let id = format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachineScaleSets/{name}");
                let scale_set = GroupResourceId::parse(ResourceKind::VirtualMachineScaleSet, &id)
                    .map(ComputeId)
                    .map_err(|_| err("its subscription, resource group or scale set name is invalid"))?;
                check_prefix(&parts).map_err(err)?;
                Ok(NodeLocation::ScaleSetInstance { scale_set, instance: (*instance).to_owned() })
            }
            [_, _, _, _, _, _, _, _] => {
                check_prefix(&parts).map_err(err)?;
                let vm = GroupResourceId::parse(ResourceKind::VirtualMachine, rest)
                    .map(ComputeId)
                    .map_err(|_| err("it is neither a VM scale set instance nor a virtual machine"))?;
                Ok(NodeLocation::VirtualMachine(vm))
            }
            _ => Err(err("it is neither a VM scale set instance nor a virtual machine")),
        }
    }

    /// The resource an identity is attached to for this node.
    pub fn attach_target(&self) -> &ComputeId {
        match self {
            NodeLocation::ScaleSetInstance { scale_set, .. } => scale_set,
            NodeLocation::VirtualMachine(vm) => vm,
        }
    }
}

fn check_prefix(parts: &[&str]) -> Result<(), &'static str> {
    let ok = parts.len() >= 5
        && parts[0].eq_ignore_ascii_case("subscriptions")
        && parts[2].eq_ignore_ascii_case("resourceGroups")
        && parts[4].eq_ignore_ascii_case("providers");
    if ok { Ok(()) } else { Err("expected /subscriptions/S/resourceGroups/G/providers/…") }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod comparison_tests {
    use std::collections::hash_map::DefaultHasher;

    use super::*;

    fn id(sub: &str, rg: &str, name: &str) -> GroupResourceId {
        GroupResourceId::new(ResourceKind::VirtualMachineScaleSet, sub, rg, name).expect("valid")
    }

    fn hash(id: &GroupResourceId) -> u64 {
        let mut h = DefaultHasher::new();
        id.hash(&mut h);
        h.finish()
    }

    #[test]
    fn equality_hash_and_order_follow_the_lowercase_key() {
        let a = id("Sub", "MC_Nodes", "aks-Pool-12345678-vmss");
        let b = id("sub", "mc_nodes", "AKS-POOL-12345678-VMSS");
        assert_eq!(a.key(), a.to_string().to_ascii_lowercase());
        assert_eq!(a, b);
        assert_eq!(hash(&a), hash(&b));
        let long = id("sub", &"g".repeat(90), &"n".repeat(70));
        assert_eq!(hash(&long), hash(&id("SUB", &"G".repeat(90), &"N".repeat(70))));
        // Segments with characters that sort before '/' order as the whole key does.
        let ids = [id("a", "g", "x"), id("a-x", "g", "x"), id("a.b", "g", "x"), id("A", "g", "x-1"), id("b", "G", "x"), id("a", "g-2", "x")];
        for x in &ids {
            for y in &ids {
                assert_eq!(x.cmp(y), x.key().cmp(&y.key()), "{x} vs {y}");
                assert_eq!(x == y, x.key() == y.key(), "{x} vs {y}");
            }
        }
        assert_ne!(id("a", "g", "x"), GroupResourceId::new(ResourceKind::VirtualMachine, "a", "g", "x").expect("valid"));
    }

    #[test]
    fn dot_segments_are_refused_because_the_wire_would_resolve_them() {
        for bad in [
            "/subscriptions/S/resourceGroups/../providers/Microsoft.KeyVault/vaults/kv",
            "/subscriptions/S/resourceGroups/./providers/Microsoft.KeyVault/vaults/kv",
            "/subscriptions/S/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/..",
            "/subscriptions/../resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv",
        ] {
            assert!(matches!(GroupResourceId::parse(ResourceKind::Vault, bad), Err(IdError::BadName { .. })), "{bad}");
        }
        assert!(GroupResourceId::parse(ResourceKind::Vault, "/subscriptions/S/resourceGroups/rg.1/providers/Microsoft.KeyVault/vaults/kv").is_ok());
        let compute = [ResourceKind::VirtualMachineScaleSet, ResourceKind::VirtualMachine];
        let vm = GroupResourceId::parse_any(&compute, "/subscriptions/s/resourcegroups/mc/providers/microsoft.compute/virtualmachines/virtualmachinescalesets")
            .expect("a VM whatever its name");
        assert_eq!(vm.kind(), ResourceKind::VirtualMachine);
        let pool = GroupResourceId::parse_any(&compute, "/subscriptions/s/resourceGroups/mc/providers/Microsoft.Compute/virtualMachineScaleSets/pool")
            .expect("a scale set");
        assert_eq!(pool.kind(), ResourceKind::VirtualMachineScaleSet);
        assert!(GroupResourceId::parse_any(&compute, "/subscriptions/s/resourceGroups/mc/providers/Microsoft.KeyVault/vaults/kv").is_err());
    }
}
