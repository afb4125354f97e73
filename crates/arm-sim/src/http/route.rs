//! ARM paths, matched case-insensitively as ARM does, to the operation they name.

use crate::world::ArmError;

/// The resource providers the simulator serves, for api-version checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// Microsoft.ManagedIdentity.
    ManagedIdentity,
    /// Microsoft.Compute.
    Compute,
    /// Microsoft.KeyVault.
    KeyVault,
    /// Microsoft.Authorization.
    Authorization,
    /// Microsoft.Resources: subscriptions, resource groups, the generic resource list.
    Resources,
    /// Microsoft.ContainerService: AKS managed clusters.
    ContainerService,
    /// Microsoft.ContainerService's identity bindings, served only by the previews.
    IdentityBindings,
}

impl Provider {
    /// The api-versions the simulator accepts, newest last: those of the published REST
    /// specs (`specification/{msi,compute,keyvault,authorization,resources}/resource-manager`)
    /// whose shapes it serves, including the ones current clients send by default
    /// (`shared/azure/LIMITS-AND-CLIENTS.md` §3).
    pub fn api_versions(self) -> &'static [&'static str] {
        match self {
            Provider::ManagedIdentity => &[
                "2018-11-30",
                "2021-09-30-preview",
                "2022-01-31-preview",
                "2023-01-31",
                "2023-07-31-preview",
                "2024-11-30",
                "2025-01-31-preview",
                "2025-05-31-preview",
                "2026-04-30",
                "2026-05-31",
            ],
            Provider::Compute => &["2023-09-01", "2024-03-01", "2024-07-01", "2024-11-01", "2025-04-01", "2025-11-01", "2026-04-01"],
            Provider::KeyVault => {
                &["2019-09-01", "2021-10-01", "2022-07-01", "2022-11-01", "2023-02-01", "2023-07-01", "2024-11-01", "2025-05-01", "2026-02-01", "2026-05-15"]
            }
            Provider::Authorization => &["2015-07-01", "2020-10-01-preview", "2022-04-01"],
            // `specification/containerservice/resource-manager/Microsoft.ContainerService/aks`:
            // the stable versions of the last three years and the identity bindings previews.
            Provider::ContainerService => &[
                "2023-01-01",
                "2023-02-01",
                "2023-03-01",
                "2023-04-01",
                "2023-05-01",
                "2023-06-01",
                "2023-07-01",
                "2023-08-01",
                "2023-09-01",
                "2023-10-01",
                "2023-11-01",
                "2024-01-01",
                "2024-02-01",
                "2024-05-01",
                "2024-07-01",
                "2024-08-01",
                "2024-09-01",
                "2024-10-01",
                "2025-01-01",
                "2025-02-01",
                "2025-03-01",
                "2025-04-01",
                "2025-05-01",
                "2025-06-01",
                "2025-06-02-preview",
                "2025-07-01",
                "2025-08-01",
                "2025-09-01",
                "2025-10-01",
                "2025-10-02-preview",
                "2026-01-01",
                "2026-02-01",
            ],
            // The previews whose spec folders define `identityBindings`.
            Provider::IdentityBindings => &["2025-06-02-preview", "2025-10-02-preview"],
            Provider::Resources => &[
                "2015-11-01",
                "2016-06-01",
                "2019-10-01",
                "2020-01-01",
                "2021-01-01",
                "2021-04-01",
                "2022-09-01",
                "2022-12-01",
                "2024-03-01",
                "2024-07-01",
                "2024-11-01",
                "2025-04-01",
            ],
        }
    }

    /// The resource type named in api-version errors.
    pub fn resource_type(self) -> &'static str {
        match self {
            Provider::ManagedIdentity => "Microsoft.ManagedIdentity/userAssignedIdentities",
            Provider::Compute => "Microsoft.Compute/virtualMachineScaleSets",
            Provider::KeyVault => "Microsoft.KeyVault/vaults",
            Provider::Authorization => "Microsoft.Authorization/roleAssignments",
            Provider::Resources => "Microsoft.Resources/resourceGroups",
            Provider::ContainerService => "Microsoft.ContainerService/managedClusters",
            Provider::IdentityBindings => "Microsoft.ContainerService/managedClusters/identityBindings",
        }
    }
}

/// What a request asks for. The fields are the path's own segments.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A user-assigned identity.
    Identity { sub: String, rg: String, name: String },
    /// One federated identity credential of an identity.
    FederatedCredential { sub: String, rg: String, identity: String, name: String },
    /// The federated identity credentials of an identity.
    FederatedCredentials { sub: String, rg: String, identity: String },
    /// A VM scale set or VM, by its path.
    Compute { path: String, sub: String, kind: &'static str },
    /// A Compute long-running operation.
    Operation { id: String },
    /// A vault.
    Vault { sub: String, rg: String, name: String },
    /// All vaults of a subscription.
    Vaults { sub: String },
    /// An access-policy update.
    AccessPolicy { sub: String, rg: String, name: String, kind: String },
    /// One role assignment.
    RoleAssignment { scope: String, name: String },
    /// Role assignments at a scope.
    RoleAssignments { scope: String },
    /// The deny assignments of a resource group.
    DenyAssignments { sub: String, rg: String },
    /// The caller's own permissions at a scope.
    Permissions { scope: String },
    /// The directory's subscriptions.
    Subscriptions,
    /// One resource group.
    ResourceGroup { sub: String, rg: String },
    /// The subscription's resources, as generic resources.
    Resources { sub: String },
    /// The identities of a resource group, or of the subscription.
    Identities { sub: String, rg: Option<String> },
    /// An AKS managed cluster.
    ManagedCluster { sub: String, rg: String, name: String },
    /// An AKS identity binding of a managed cluster.
    IdentityBinding { sub: String, rg: String, cluster: String, name: String },
}

/// A matched request: operation ID, provider, the ARM action it needs, and its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The REST spec's operation ID.
    pub operation: &'static str,
    /// The provider.
    pub provider: Provider,
    /// The RBAC action the caller needs.
    pub action: String,
    /// What it is about.
    pub target: Target,
}

/// Matches `method` and `path` to a route.
pub fn route(method: &str, path: &str) -> Result<Route, ArmError> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let lower: Vec<String> = parts.iter().map(|p| p.to_ascii_lowercase()).collect();
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    let method = method.to_ascii_uppercase();
    let m = method.as_str();
    let own = |i: usize| parts[i].to_owned();
    let unsupported = || ArmError::new(405, "MethodNotAllowed", format!("The requested method {m} is not allowed on {path}."));

    // The caller's permissions, at a resource group or a resource.
    if m == "GET"
        && l.len() >= 6
        && l[l.len() - 3..] == ["providers", "microsoft.authorization", "permissions"]
        && l.first() == Some(&"subscriptions")
        && l.get(2) == Some(&"resourcegroups")
    {
        let scope = format!("/{}", parts[..parts.len() - 3].join("/"));
        let operation = if l.len() == 7 { "Permissions_ListForResourceGroup" } else { "Permissions_ListForResource" };
        return Ok(Route {
            operation,
            provider: Provider::Authorization,
            // Every principal may read its own permissions.
            action: String::new(),
            target: Target::Permissions { scope },
        });
    }

    // The deny assignments that apply to a resource group.
    if m == "GET"
        && l.len() == 7
        && l.first() == Some(&"subscriptions")
        && l.get(2) == Some(&"resourcegroups")
        && l[4..] == ["providers", "microsoft.authorization", "denyassignments"]
    {
        return Ok(Route {
            operation: "DenyAssignments_ListForResourceGroup",
            provider: Provider::Authorization,
            action: "Microsoft.Authorization/denyAssignments/read".to_owned(),
            target: Target::DenyAssignments { sub: own(1), rg: own(3) },
        });
    }

    // Role assignments may sit under any scope: find the provider segment from the end.
    if let Some(p) = l.iter().rposition(|s| *s == "microsoft.authorization")
        && p >= 1
        && l[p - 1] == "providers"
        && l.get(p + 1) == Some(&"roleassignments")
        && l.first() == Some(&"subscriptions")
    {
        let scope = format!("/{}", parts[..p - 1].join("/"));
        let route = |operation, verb: &str, target| Route {
            operation,
            provider: Provider::Authorization,
            action: format!("Microsoft.Authorization/roleAssignments/{verb}"),
            target,
        };
        return match (m, parts.len() - p) {
            ("GET", 2) if p == 3 => Ok(route("RoleAssignments_ListForSubscription", "read", Target::RoleAssignments { scope })),
            ("GET", 2) => Ok(route("RoleAssignments_ListForScope", "read", Target::RoleAssignments { scope })),
            (_, 2) => Err(unsupported()),
            (verb, 3) => {
                let target = Target::RoleAssignment { scope, name: own(p + 2) };
                match verb {
                    "PUT" => Ok(route("RoleAssignments_Create", "write", target)),
                    "GET" => Ok(route("RoleAssignments_Get", "read", target)),
                    "DELETE" => Ok(route("RoleAssignments_Delete", "delete", target)),
                    _ => Err(unsupported()),
                }
            }
            _ => Err(unknown(path)),
        };
    }

    match l.as_slice() {
        ["subscriptions"] if m == "GET" => {
            Ok(Route { operation: "Subscriptions_List", provider: Provider::Resources, action: String::new(), target: Target::Subscriptions })
        }
        ["subscriptions", _, "resourcegroups", _] if m == "GET" => Ok(Route {
            operation: "ResourceGroups_Get",
            provider: Provider::Resources,
            action: "Microsoft.Resources/subscriptions/resourceGroups/read".to_owned(),
            target: Target::ResourceGroup { sub: own(1), rg: own(3) },
        }),
        ["subscriptions", _, "resources"] if m == "GET" => Ok(Route {
            operation: "Resources_List",
            provider: Provider::Resources,
            action: "Microsoft.Resources/subscriptions/resources/read".to_owned(),
            target: Target::Resources { sub: own(1) },
        }),
        ["subscriptions", _, "resourcegroups", _, "providers", "microsoft.managedidentity", "userassignedidentities"] if m == "GET" => Ok(Route {
            operation: "UserAssignedIdentities_ListByResourceGroup",
            provider: Provider::ManagedIdentity,
            action: "Microsoft.ManagedIdentity/userAssignedIdentities/read".to_owned(),
            target: Target::Identities { sub: own(1), rg: Some(own(3)) },
        }),
        ["subscriptions", _, "providers", "microsoft.managedidentity", "userassignedidentities"] if m == "GET" => Ok(Route {
            operation: "UserAssignedIdentities_ListBySubscription",
            provider: Provider::ManagedIdentity,
            action: "Microsoft.ManagedIdentity/userAssignedIdentities/read".to_owned(),
            target: Target::Identities { sub: own(1), rg: None },
        }),
        ["subscriptions", _, "resourcegroups", _, "providers", "microsoft.containerservice", "managedclusters", _, "identitybindings", _] => {
            let (operation, verb) = match m {
                "GET" => ("IdentityBindings_Get", "read"),
                "PUT" => ("IdentityBindings_CreateOrUpdate", "write"),
                "DELETE" => ("IdentityBindings_Delete", "delete"),
                _ => return Err(unsupported()),
            };
            Ok(Route {
                operation,
                provider: Provider::IdentityBindings,
                action: format!("Microsoft.ContainerService/managedClusters/identityBindings/{verb}"),
                target: Target::IdentityBinding { sub: own(1), rg: own(3), cluster: own(7), name: own(9) },
            })
        }
        ["subscriptions", _, "resourcegroups", _, "providers", "microsoft.containerservice", "managedclusters", _] if m == "GET" => Ok(Route {
            operation: "ManagedClusters_Get",
            provider: Provider::ContainerService,
            action: "Microsoft.ContainerService/managedClusters/read".to_owned(),
            target: Target::ManagedCluster { sub: own(1), rg: own(3), name: own(7) },
        }),
        ["subscriptions", _, "resourcegroups", _, "providers", "microsoft.keyvault", "vaults", _] if m == "PUT" => Ok(Route {
            operation: "Vaults_CreateOrUpdate",
            provider: Provider::KeyVault,
            action: "Microsoft.KeyVault/vaults/write".to_owned(),
            target: Target::Vault { sub: own(1), rg: own(3), name: own(7) },
        }),
        ["subscriptions", _, "resourcegroups", _, "providers", "microsoft.managedidentity", "userassignedidentities", _] => {
            let target = Target::Identity { sub: own(1), rg: own(3), name: own(7) };
            let (operation, verb) = match m {
                "GET" => ("UserAssignedIdentities_Get", "read"),
                "PUT" => ("UserAssignedIdentities_CreateOrUpdate", "write"),
                "PATCH" => ("UserAssignedIdentities_Update", "write"),
                "DELETE" => ("UserAssignedIdentities_Delete", "delete"),
                _ => return Err(unsupported()),
            };
            Ok(Route { operation, provider: Provider::ManagedIdentity, action: format!("Microsoft.ManagedIdentity/userAssignedIdentities/{verb}"), target })
        }
        [
            "subscriptions",
            _,
            "resourcegroups",
            _,
            "providers",
            "microsoft.managedidentity",
            "userassignedidentities",
            _,
            "federatedidentitycredentials",
            rest @ ..,
        ] if rest.len() <= 1 => {
            let (operation, verb, target) = match (m, rest.first()) {
                ("GET", None) => ("FederatedIdentityCredentials_List", "read", Target::FederatedCredentials { sub: own(1), rg: own(3), identity: own(7) }),
                (method, Some(_)) => {
                    let target = Target::FederatedCredential { sub: own(1), rg: own(3), identity: own(7), name: own(9) };
                    match method {
                        "GET" => ("FederatedIdentityCredentials_Get", "read", target),
                        "PUT" => ("FederatedIdentityCredentials_CreateOrUpdate", "write", target),
                        "DELETE" => ("FederatedIdentityCredentials_Delete", "delete", target),
                        _ => return Err(unsupported()),
                    }
                }
                _ => return Err(unsupported()),
            };
            Ok(Route {
                operation,
                provider: Provider::ManagedIdentity,
                action: format!("Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/{verb}"),
                target,
            })
        }
        ["subscriptions", _, "resourcegroups", _, "providers", "microsoft.compute", kind @ ("virtualmachinescalesets" | "virtualmachines"), _] => {
            let (kind, type_name, prefix) = if *kind == "virtualmachinescalesets" {
                ("virtualMachineScaleSets", "Microsoft.Compute/virtualMachineScaleSets", "VirtualMachineScaleSets")
            } else {
                ("virtualMachines", "Microsoft.Compute/virtualMachines", "VirtualMachines")
            };
            let (operation, verb) = match (m, prefix) {
                ("GET", "VirtualMachineScaleSets") => ("VirtualMachineScaleSets_Get", "read"),
                ("PATCH", "VirtualMachineScaleSets") => ("VirtualMachineScaleSets_Update", "write"),
                ("PUT", "VirtualMachineScaleSets") => ("VirtualMachineScaleSets_CreateOrUpdate", "write"),
                ("GET", _) => ("VirtualMachines_Get", "read"),
                ("PATCH", _) => ("VirtualMachines_Update", "write"),
                ("PUT", _) => ("VirtualMachines_CreateOrUpdate", "write"),
                _ => return Err(unsupported()),
            };
            Ok(Route {
                operation,
                provider: Provider::Compute,
                action: format!("{type_name}/{verb}"),
                target: Target::Compute { path: format!("/{}", parts.join("/")), sub: own(1), kind },
            })
        }
        // The long-running operations of Compute's and Container Service's writes.
        ["subscriptions", _, "providers", namespace @ ("microsoft.compute" | "microsoft.containerservice"), "locations", _, "operations", _] if m == "GET" => {
            let (operation, provider, canonical) = match *namespace {
                "microsoft.compute" => ("Operations_Get", Provider::Compute, "Microsoft.Compute"),
                _ => ("ContainerService_OperationStatus", Provider::ContainerService, "Microsoft.ContainerService"),
            };
            Ok(Route { operation, provider, action: format!("{canonical}/locations/operations/read"), target: Target::Operation { id: own(7) } })
        }
        ["subscriptions", _, "resourcegroups", _, "providers", "microsoft.keyvault", "vaults", _] if m == "GET" => Ok(Route {
            operation: "Vaults_Get",
            provider: Provider::KeyVault,
            action: "Microsoft.KeyVault/vaults/read".to_owned(),
            target: Target::Vault { sub: own(1), rg: own(3), name: own(7) },
        }),
        ["subscriptions", _, "providers", "microsoft.keyvault", "vaults"] if m == "GET" => Ok(Route {
            operation: "Vaults_ListBySubscription",
            provider: Provider::KeyVault,
            action: "Microsoft.KeyVault/vaults/read".to_owned(),
            target: Target::Vaults { sub: own(1) },
        }),
        ["subscriptions", _, "resourcegroups", _, "providers", "microsoft.keyvault", "vaults", _, "accesspolicies", _] if m == "PUT" => Ok(Route {
            operation: "Vaults_UpdateAccessPolicy",
            provider: Provider::KeyVault,
            action: "Microsoft.KeyVault/vaults/accessPolicies/write".to_owned(),
            target: Target::AccessPolicy { sub: own(1), rg: own(3), name: own(7), kind: lower[9].clone() },
        }),
        ["subscriptions", _, "resourcegroups", _, "providers", "microsoft.keyvault", "vaults", ..]
        | ["subscriptions", _, "providers", "microsoft.keyvault", "vaults"]
        | ["subscriptions", _, "resourcegroups", _, "providers", "microsoft.managedidentity", ..]
        | ["subscriptions", _, "resourcegroups", _, "providers", "microsoft.compute", ..] => Err(unsupported()),
        _ => Err(unknown(path)),
    }
}

fn unknown(path: &str) -> ArmError {
    ArmError::new(404, "InvalidResourceType", format!("The resource type of '{path}' could not be found in the namespaces this server serves."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_case_blind_and_tolerate_double_slashes() {
        let r = route("get", "//subscriptions/S/resourcegroups/RG/providers/microsoft.compute/VIRTUALMACHINESCALESETS/pool").expect("route");
        assert_eq!(r.operation, "VirtualMachineScaleSets_Get");
        let r = route(
            "PUT",
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/kv/secrets/db/providers/Microsoft.Authorization/roleAssignments/abc",
        )
        .expect("route");
        assert_eq!(
            r.target,
            Target::RoleAssignment {
                scope: "/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/kv/secrets/db".to_owned(),
                name: "abc".to_owned()
            }
        );
    }

    #[test]
    fn unknown_paths_and_methods_are_refused() {
        assert_eq!(route("GET", "/subscriptions/s/providers/Microsoft.Web/sites").expect_err("unknown").status, 404);
        assert_eq!(
            route("POST", "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/x").expect_err("method").status,
            405
        );
    }
}
