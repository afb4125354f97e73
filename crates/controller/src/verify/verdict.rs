//! From probe reports to the `AccessVerified` condition: pure, so the table below is the
//! specification of what each failure is called.

use kvbind_api::condition::ConditionStatus;

use super::probe::ProbeReport;

/// One place the path was proven from, and what was found there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probed {
    /// Where, as a reader names it: `pool pool-vmss`, `ServiceAccount app`.
    pub place: String,
    /// Whether the class pins the identity (`userAssignedIdentityID`, `clientID`).
    pub pinned: bool,
    /// The report.
    pub report: ProbeReport,
}

/// The condition's status, reason and message.
pub type Verdict = (ConditionStatus, &'static str, String);

/// How many problems a message names before it counts the rest.
const NAMED: usize = 5;

/// The verdict on `probed` for the identity `expected` (a client ID): True when every
/// place got a token for that identity and read every object; otherwise False, with the
/// gravest reason (no token, then the wrong identity, then a refusal, then a missing
/// object) and each problem named.
pub fn verdict(expected: &str, probed: &[Probed]) -> Verdict {
    if probed.is_empty() {
        return (ConditionStatus::Unknown, "NothingToProbe", "no node pool or ServiceAccount to prove the path from".to_owned());
    }
    let mut problems: Vec<(u8, &'static str, String)> = Vec::new();
    let mut readable = 0;
    for p in probed {
        if let Some(error) = &p.report.token_error {
            problems.push((0, "TokenNotIssued", format!("{}: no token: {error}", p.place)));
            continue;
        }
        let got = p.report.token_client_id.as_deref().unwrap_or_default();
        if !got.eq_ignore_ascii_case(expected) {
            let why = if p.pinned { "" } else { " because the class does not pin userAssignedIdentityID" };
            problems.push((1, "WrongIdentity", format!("{}: the token is for identity {got}, not {expected}{why}", p.place)));
        }
        readable += p.report.readable;
        for f in &p.report.failures {
            let (rank, reason) = match f.status {
                Some(403 | 401) => (2, "ObjectNotReadable"),
                Some(404) => (3, "ObjectNotFound"),
                _ => (2, "ObjectNotReadable"),
            };
            let status = f.status.map(|s| format!("{s} ")).unwrap_or_default();
            problems.push((rank, reason, format!("{}: {} {}/{}: {status}{}", p.place, f.object.kind, f.object.vault, f.object.name, f.error)));
        }
        if p.report.more_failures > 0 {
            problems.push((4, "ObjectNotReadable", format!("{}: {} more objects could not be read", p.place, p.report.more_failures)));
        }
    }
    if problems.is_empty() {
        let places: Vec<&str> = probed.iter().map(|p| p.place.as_str()).collect();
        return (ConditionStatus::True, "Verified", format!("{readable} reads of the classes' objects succeeded from {}", places.join(", ")));
    }
    let reason = problems.iter().min_by_key(|(rank, _, _)| *rank).map(|(_, reason, _)| *reason).unwrap_or("ObjectNotReadable");
    let mut named: Vec<String> = problems.iter().take(NAMED).map(|(_, _, m)| m.clone()).collect();
    if problems.len() > NAMED {
        named.push(format!("and {} more", problems.len() - NAMED));
    }
    (ConditionStatus::False, reason, named.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::probe::{ObjectFailure, ProbeObject};

    const BOUND: &str = "11111111-0000-0000-0000-000000000001";

    fn report(client: Option<&str>, readable: usize, failures: &[(&str, Option<u16>, &str)]) -> ProbeReport {
        ProbeReport {
            token_client_id: client.map(str::to_owned),
            token_error: client.is_none().then(|| "IMDS answered 400: Identity not found".to_owned()),
            readable,
            failures: failures
                .iter()
                .map(|(name, status, error)| ObjectFailure {
                    object: ProbeObject { vault: "kvname".into(), kind: "secret".into(), name: (*name).into() },
                    status: *status,
                    error: (*error).into(),
                })
                .collect(),
            more_failures: 0,
        }
    }

    fn at(place: &str, pinned: bool, report: ProbeReport) -> Probed {
        Probed { place: place.into(), pinned, report }
    }

    /// A case: its name, the probes, and the status, reason and phrases expected.
    type Case = (&'static str, Vec<Probed>, ConditionStatus, &'static str, &'static [&'static str]);

    #[test]
    fn each_failure_has_its_reason_and_names_the_object() {
        let table: Vec<Case> = vec![
            (
                "all read",
                vec![at("pool a", true, report(Some(BOUND), 2, &[])), at("pool b", true, report(Some(BOUND), 2, &[]))],
                ConditionStatus::True,
                "Verified",
                &["4 reads", "pool a, pool b"],
            ),
            (
                "outside the grant",
                vec![at("pool a", true, report(Some(BOUND), 1, &[("other", Some(403), "Forbidden (AccessDenied)")]))],
                ConditionStatus::False,
                "ObjectNotReadable",
                &["pool a: secret kvname/other: 403 Forbidden (AccessDenied)"],
            ),
            (
                "not in the vault",
                vec![at("pool a", true, report(Some(BOUND), 1, &[("typo", Some(404), "SecretNotFound")]))],
                ConditionStatus::False,
                "ObjectNotFound",
                &["kvname/typo: 404 SecretNotFound"],
            ),
            (
                "no token on one pool",
                vec![at("pool a", true, report(None, 0, &[])), at("pool b", true, report(Some(BOUND), 1, &[("x", Some(404), "SecretNotFound")]))],
                ConditionStatus::False,
                "TokenNotIssued",
                &["pool a: no token: IMDS answered 400", "pool b: secret kvname/x"],
            ),
            (
                "unpinned on a node with another identity",
                vec![at("pool a", false, report(Some("system"), 0, &[("db", Some(403), "Forbidden (AccessDenied)")]))],
                ConditionStatus::False,
                "WrongIdentity",
                &["token is for identity system, not 11111111", "does not pin userAssignedIdentityID", "kvname/db: 403"],
            ),
            ("nowhere to probe", vec![], ConditionStatus::Unknown, "NothingToProbe", &["no node pool"]),
        ];
        for (case, probed, status, reason, says) in table {
            let (s, r, message) = verdict(BOUND, &probed);
            assert_eq!((s, r), (status, reason), "{case}: {message}");
            for text in says {
                assert!(message.contains(text), "{case}: {message:?} lacks {text:?}");
            }
        }
    }

    #[test]
    fn a_long_list_of_problems_is_cut_and_counted() {
        let failures: Vec<(String, Option<u16>, &str)> = (0..8).map(|i| (format!("s{i}"), Some(403), "Forbidden")).collect();
        let failures: Vec<(&str, Option<u16>, &str)> = failures.iter().map(|(n, s, e)| (n.as_str(), *s, *e)).collect();
        let (_, _, message) = verdict(BOUND, &[at("pool a", true, report(Some(BOUND), 0, &failures))]);
        assert!(message.ends_with("and 3 more"), "{message}");
    }
}
