//! A lint of a SecretProviderClass's parameters, for the mistakes the Azure provider never
//! reports: its keys are case-sensitive and unknown keys are silently ignored (provider
//! issue #853: `userAssignedIdentityId` quietly fell back to another identity), an empty
//! identity ID is not the same as none (#2021), and a token mode switched on by hand
//! takes the place of the one kvbind writes.
//!
//! Findings that would make the mount fail or use another identity are errors, and stop the
//! binding before anything reaches Azure; the others are warnings, said on the binding.

use std::collections::BTreeMap;

use crate::identity_binding::IdentityMode;
use crate::secret_provider_class::keys;

/// Parameter keys the Azure provider reads besides the ones kvbind uses ([`keys::ALL`]), so
/// that they are never taken for typos.
const OTHER_PROVIDER_KEYS: [&str; 3] = ["cloudEnvFileName", "resourceGroup", "subscriptionId"];

/// One finding about a class's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// A key the provider does not read that is one slip away from one it does.
    NearMissKey {
        /// The key as written.
        found: String,
        /// The key the provider reads.
        meant: &'static str,
        /// The key meant is not set beside it.
        alone: bool,
    },
    /// An identity key present with an empty value, in a mode where kvbind does not write it.
    EmptyIdentity {
        /// The key.
        key: &'static str,
    },
    /// A token mode switched on by someone other than kvbind that is not the binding's.
    ForeignMode {
        /// The mode's key.
        key: &'static str,
        /// The binding's mode.
        mode: IdentityMode,
    },
    /// A boolean the provider reads only when spelled `true`, spelled otherwise.
    NotABoolean {
        /// The key.
        key: &'static str,
        /// Its value.
        value: String,
    },
    /// `tenantId` and `tenantID` both set, to different directories.
    DifferingTenants,
}

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The mount would fail or use another identity: the binding stops here.
    Error,
    /// Misleading, but the mount works: said on the binding.
    Warning,
}

impl Finding {
    /// Error or warning.
    pub fn severity(&self) -> Severity {
        match self {
            Finding::ForeignMode { .. } => Severity::Error,
            Finding::NearMissKey { meant, alone: true, .. } if REQUIRED.contains(meant) => Severity::Error,
            _ => Severity::Warning,
        }
    }

    /// A CamelCase word for the condition's reason and the Event.
    pub fn reason(&self) -> &'static str {
        match self {
            Finding::NearMissKey { .. } => "NearMissParameterKey",
            Finding::EmptyIdentity { .. } => "EmptyIdentityID",
            Finding::ForeignMode { .. } => "ConflictingTokenMode",
            Finding::NotABoolean { .. } => "NotABoolean",
            Finding::DifferingTenants => "DifferingTenantIDs",
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::NearMissKey { found, meant, .. } => {
                write!(f, "spec.parameters.{found} is not a key the Azure provider reads, which ignores it (keys are case-sensitive); did you mean {meant}?")
            }
            Finding::EmptyIdentity { key } => {
                write!(f, "spec.parameters.{key} is empty; remove it (the provider does not read an empty ID as no ID, provider issue #2021)")
            }
            Finding::ForeignMode { key, mode } => write!(
                f,
                "spec.parameters.{key} is \"true\", set by someone else, but the binding's mode is {}: the provider would take that path instead; remove it",
                mode_name(*mode)
            ),
            Finding::NotABoolean { key, value } => {
                write!(f, "spec.parameters.{key} is {value:?}; the provider reads only \"true\" as true, so it reads this as false")
            }
            Finding::DifferingTenants => {
                write!(f, "spec.parameters.tenantId and spec.parameters.tenantID name different directories; the provider uses tenantID, remove tenantId")
            }
        }
    }
}

/// Keys whose absence stops the class: a near miss of one of these is why it is missing.
const REQUIRED: [&str; 3] = [keys::KEYVAULT_NAME, keys::TENANT_ID, keys::OBJECTS];

fn mode_name(mode: IdentityMode) -> &'static str {
    match mode {
        IdentityMode::VmManagedIdentity => "VMManagedIdentity",
        IdentityMode::WorkloadIdentity => "WorkloadIdentity",
        IdentityMode::AksIdentityBinding => "AKSIdentityBinding",
    }
}

/// The token-mode keys a binding in `mode` must not find switched on by others, and the
/// identity key it does not write.
fn foreign(mode: IdentityMode) -> (&'static [&'static str], &'static str) {
    match mode {
        IdentityMode::VmManagedIdentity => (&[keys::USE_POD_IDENTITY, keys::USE_AZURE_TOKEN_PROXY], keys::CLIENT_ID),
        IdentityMode::WorkloadIdentity => {
            (&[keys::USE_POD_IDENTITY, keys::USE_VM_MANAGED_IDENTITY, keys::USE_AZURE_TOKEN_PROXY], keys::USER_ASSIGNED_IDENTITY_ID)
        }
        IdentityMode::AksIdentityBinding => (&[keys::USE_POD_IDENTITY, keys::USE_VM_MANAGED_IDENTITY], keys::USER_ASSIGNED_IDENTITY_ID),
    }
}

/// Lints `parameters` for a binding in `mode`; `kvbind_owns` says which keys kvbind wrote
/// (those are its own to change, never findings). In key order, errors and warnings mixed.
pub fn lint(parameters: &BTreeMap<String, String>, mode: IdentityMode, kvbind_owns: impl Fn(&str) -> bool) -> Vec<Finding> {
    let mut findings = Vec::new();
    for key in parameters.keys() {
        if let Some(meant) = near_miss(key) {
            // The old `tenantId` stands in for `tenantID`.
            let set = |k: &str| parameters.contains_key(k);
            let named = set(meant) || (meant == keys::TENANT_ID && set(keys::TENANT_ID_LEGACY));
            findings.push(Finding::NearMissKey { found: key.clone(), meant, alone: !named });
        }
    }
    let (foreign_modes, unwritten) = foreign(mode);
    for key in [keys::USE_POD_IDENTITY, keys::USE_VM_MANAGED_IDENTITY, keys::USE_AZURE_TOKEN_PROXY] {
        let Some(value) = parameters.get(key).map(|v| v.trim()) else { continue };
        if kvbind_owns(key) {
            continue;
        }
        if value.eq_ignore_ascii_case("true") {
            if foreign_modes.contains(&key) {
                findings.push(Finding::ForeignMode { key, mode });
            }
        } else if !value.is_empty() && !value.eq_ignore_ascii_case("false") {
            findings.push(Finding::NotABoolean { key, value: value.to_owned() });
        }
    }
    if parameters.get(unwritten).is_some_and(|v| v.trim().is_empty()) && !kvbind_owns(unwritten) {
        findings.push(Finding::EmptyIdentity { key: unwritten });
    }
    let tenant = |k: &str| parameters.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    if let (Some(new), Some(old)) = (tenant(keys::TENANT_ID), tenant(keys::TENANT_ID_LEGACY))
        && !new.eq_ignore_ascii_case(old)
    {
        findings.push(Finding::DifferingTenants);
    }
    findings
}

/// The key the provider reads that `key` misses by case alone, or by one edit; `None` for
/// the keys themselves, the provider's other keys and the driver's (`csi.storage.k8s.io/…`).
pub fn near_miss(key: &str) -> Option<&'static str> {
    if keys::ALL.contains(&key) || OTHER_PROVIDER_KEYS.contains(&key) || key.contains('/') {
        return None;
    }
    let lower = key.to_ascii_lowercase();
    let known = keys::ALL.iter().copied().filter(|k| *k != keys::TENANT_ID_LEGACY);
    let mut close = known.filter(|k| {
        let k = k.to_ascii_lowercase();
        k == lower || (lower.len() >= 5 && within_one_edit(&k, &lower))
    });
    close.next()
}

/// True when `a` becomes `b` by at most one insertion, deletion or substitution.
fn within_one_edit(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if long.len() - short.len() > 1 {
        return false;
    }
    let prefix = short.iter().zip(long).take_while(|(x, y)| x == y).count();
    if short.len() == long.len() {
        short[prefix + 1.min(short.len() - prefix)..] == long[prefix + 1.min(long.len() - prefix)..]
    } else {
        short[prefix..] == long[prefix + 1..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn nobody(_: &str) -> bool {
        false
    }

    #[test]
    fn a_key_that_differs_by_case_or_one_slip_is_named_with_the_one_meant() {
        let findings = lint(
            &params(&[("userAssignedIdentityId", "x"), ("keyVaultName", "kv"), ("objets", "o"), ("tenantId", "t"), ("unrelatedSetting", "y")]),
            IdentityMode::VmManagedIdentity,
            nobody,
        );
        assert_eq!(
            findings,
            vec![
                Finding::NearMissKey { found: "keyVaultName".into(), meant: keys::KEYVAULT_NAME, alone: true },
                Finding::NearMissKey { found: "objets".into(), meant: keys::OBJECTS, alone: true },
                Finding::NearMissKey { found: "userAssignedIdentityId".into(), meant: keys::USER_ASSIGNED_IDENTITY_ID, alone: true },
            ],
            "tenantId is the provider's old spelling, and an unrelated key is nobody's typo"
        );
        assert_eq!(findings[0].severity(), Severity::Error, "a missing vault name is why the class cannot work");
        assert_eq!(findings[2].severity(), Severity::Warning, "kvbind writes the right key beside it");
        let beside = lint(&params(&[("keyVaultName", "kv"), ("keyvaultName", "kv")]), IdentityMode::VmManagedIdentity, nobody);
        assert_eq!(beside[0].severity(), Severity::Warning, "the vault is named; the near miss only misleads");
        let legacy = lint(&params(&[("tenantid", "t"), ("tenantId", "t")]), IdentityMode::VmManagedIdentity, nobody);
        assert_eq!(legacy[0].severity(), Severity::Warning, "the old spelling names the tenant");
        assert_eq!(lint(&params(&[("tenantid", "t")]), IdentityMode::VmManagedIdentity, nobody)[0].severity(), Severity::Error);
        assert!(findings[2].to_string().contains("did you mean userAssignedIdentityID?"), "{}", findings[2]);
        assert!(lint(&params(&[("csi.storage.k8s.io/pod.name", "p"), ("cloudEnvFileName", "f")]), IdentityMode::WorkloadIdentity, nobody).is_empty());
    }

    #[test]
    fn a_token_mode_someone_else_switched_on_stops_the_binding_unless_kvbind_wrote_it() {
        let class = params(&[("useVMManagedIdentity", "true"), ("clientID", "c")]);
        let findings = lint(&class, IdentityMode::WorkloadIdentity, nobody);
        assert_eq!(findings, vec![Finding::ForeignMode { key: keys::USE_VM_MANAGED_IDENTITY, mode: IdentityMode::WorkloadIdentity }]);
        assert_eq!(findings[0].severity(), Severity::Error);
        assert!(lint(&class, IdentityMode::WorkloadIdentity, |k| k == keys::USE_VM_MANAGED_IDENTITY).is_empty(), "kvbind takes its own back");
        assert!(lint(&class, IdentityMode::VmManagedIdentity, nobody).is_empty(), "the binding's own mode");
        let proxy = params(&[("useAzureTokenProxy", "TRUE")]);
        assert_eq!(lint(&proxy, IdentityMode::VmManagedIdentity, nobody).len(), 1);
    }

    #[test]
    fn an_empty_identity_the_mode_does_not_write_and_a_boolean_misspelled_are_warnings() {
        let findings = lint(&params(&[("userAssignedIdentityID", " "), ("usePodIdentity", "yes")]), IdentityMode::WorkloadIdentity, nobody);
        assert_eq!(
            findings,
            vec![Finding::NotABoolean { key: keys::USE_POD_IDENTITY, value: "yes".into() }, Finding::EmptyIdentity { key: keys::USER_ASSIGNED_IDENTITY_ID }]
        );
        assert!(findings.iter().all(|f| f.severity() == Severity::Warning));
        assert!(lint(&params(&[("userAssignedIdentityID", "")]), IdentityMode::VmManagedIdentity, nobody).is_empty(), "kvbind fills it in VM mode");
        assert!(lint(&params(&[("usePodIdentity", "false")]), IdentityMode::VmManagedIdentity, nobody).is_empty());
    }

    #[test]
    fn two_tenant_spellings_that_disagree_are_named() {
        let findings = lint(&params(&[("tenantID", "a"), ("tenantId", "b")]), IdentityMode::VmManagedIdentity, nobody);
        assert_eq!(findings, vec![Finding::DifferingTenants]);
        assert!(lint(&params(&[("tenantID", "a"), ("tenantId", "A")]), IdentityMode::VmManagedIdentity, nobody).is_empty());
    }

    /// Levenshtein distance, the slow way, to hold [`within_one_edit`] to.
    fn distance(a: &[u8], b: &[u8]) -> usize {
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, x) in a.iter().enumerate() {
            let mut previous = row[0];
            row[0] = i + 1;
            for (j, y) in b.iter().enumerate() {
                let next = (previous + usize::from(x != y)).min(row[j] + 1).min(row[j + 1] + 1);
                previous = row[j + 1];
                row[j + 1] = next;
            }
        }
        row[b.len()]
    }

    proptest::proptest! {
        #[test]
        fn one_edit_agrees_with_the_distance(a in "[ab]{0,6}", b in "[ab]{0,6}") {
            proptest::prop_assert_eq!(within_one_edit(&a, &b), distance(a.as_bytes(), b.as_bytes()) <= 1);
        }

        #[test]
        fn any_parameters_lint_without_a_panic(parameters in proptest::collection::btree_map("\\PC{0,24}", "\\PC{0,8}", 0..12)) {
            for mode in [IdentityMode::VmManagedIdentity, IdentityMode::WorkloadIdentity, IdentityMode::AksIdentityBinding] {
                for finding in lint(&parameters, mode, nobody) {
                    proptest::prop_assert!(!finding.to_string().is_empty());
                }
            }
        }
    }

    #[test]
    fn one_edit_is_one_insertion_deletion_or_substitution() {
        assert!(within_one_edit("objects", "objets"));
        assert!(within_one_edit("objects", "objectss"));
        assert!(within_one_edit("objects", "obJects".to_ascii_lowercase().as_str()));
        assert!(within_one_edit("objects", "abjects"));
        assert!(within_one_edit("objects", "objectz"));
        assert!(!within_one_edit("objects", "obects_"));
        assert!(!within_one_edit("objects", "tcejbo"));
        assert!(within_one_edit("", "a") && !within_one_edit("", "ab"));
    }
}
