//! The desk for Key Vaults: each vault as last read or written, what vault a name stands
//! for, and one access-policy writer per vault.
//!
//! Every binding of a vault reads it, and its access policies grow with the bindings, so a
//! read is kept for the resync period and kvbind's own writes are applied to it. A vault
//! keeps its ID for life, so a name is searched for once and kept until its vault answers
//! 404: a converged cluster lists no vaults.
//!
//! A vault's access policies are one list that every change rewrites, and a request may
//! carry up to 16 entries. So grants and revocations from every binding for the same vault
//! are collected for a short window and sent 16 to a request, one request at a time per
//! vault: a thousand new identities cost 63 vault writes, not a thousand.
//!
//! A reconcile hands its grant over and ends ([`Desk::hand_off`]); the
//! writer wakes it when the write lands (see [`crate::desks::handoff`]). Revoking is awaited in
//! place.

use std::sync::Arc;
use std::time::Duration;

use kvbind_azure::model::{AccessPolicy, AccessPolicyOp, MAX_ACCESS_POLICIES_PER_REQUEST, Vault};
use kvbind_azure::{Arm, AzureError, VaultId};

use crate::caches::shelf::Shelf;
use crate::desks::desk::{Asker, Clerk, Desk};
use crate::desks::queue::take_all;

/// Access-policy entries a vault may hold: the REST spec types `accessPolicies` as 0 to
/// 1,024 entries.
pub const MAX_ACCESS_POLICIES_PER_VAULT: usize = 1024;

/// One binding's change to a vault's access policies.
pub struct EntryChange {
    /// Add to, remove from, or replace the principal's entry.
    pub op: AccessPolicyOp,
    /// The principal's entry.
    pub entry: AccessPolicy,
}

/// A change with who hears of it.
pub struct Request {
    change: EntryChange,
    asker: Asker<usize>,
}

/// Vaults, what their names stand for, and their access-policy writers.
pub type VaultDesk = Desk<VaultClerk>;

/// What the vault desk knows of vaults: how to read them and write their access policies,
/// and what vault a name stands for.
pub struct VaultClerk {
    arm: Arc<dyn Arm>,
    /// Vaults found by name (lowercase), kept until the vault answers 404.
    names: Shelf<String, VaultId>,
}

impl VaultClerk {
    /// The clerk for vaults behind `arm`.
    pub fn new(arm: Arc<dyn Arm>) -> Self {
        VaultClerk { arm, names: Shelf::default() }
    }
}

impl VaultDesk {
    /// The vault `name` stands for, as `find` answers it once however many ask; kept until
    /// [`forget_name`](Self::forget_name). A name nothing answers to is asked about again.
    pub async fn named<E>(&self, name: &str, find: impl std::future::Future<Output = Result<Option<VaultId>, E>>) -> Result<Option<VaultId>, E> {
        self.clerk.names.read_found(&name.to_ascii_lowercase(), Duration::MAX, find).await
    }

    /// Forgets what vault `name` stands for: the vault found by it answered 404 (deleted,
    /// or made again elsewhere).
    pub fn forget_name(&self, name: &str) {
        self.clerk.names.forget(&name.to_ascii_lowercase());
    }
}

impl Clerk for VaultClerk {
    type Id = VaultId;
    type Value = Arc<Vault>;
    type Request = EntryChange;
    type Queue = Vec<Request>;
    type Batch = Vec<Request>;
    type Done = usize;
    const OPERATION: &'static str = "UpdateAccessPolicy";

    async fn read(&self, id: &VaultId) -> Result<Arc<Vault>, AzureError> {
        self.arm.get_vault(id).await.map(Arc::new)
    }

    fn queue(queue: &mut Vec<Request>, change: EntryChange, asker: Asker<usize>) {
        queue.push(Request { change, asker });
    }

    fn take(queue: &mut Vec<Request>) -> Option<Vec<Request>> {
        take_all(queue)
    }

    /// Only the first batch waits a window: a vault takes its writes one at a time, so what
    /// arrives while one is written goes out right after it.
    async fn collect(&self, desk: &VaultDesk, _vault: &VaultId, first: bool) {
        if first {
            tokio::time::sleep(desk.window.unwrap_or_default()).await;
        }
    }

    async fn write(&self, desk: &VaultDesk, vault: &VaultId, requests: Vec<Request>) {
        self.write_batch(desk, vault, requests).await;
    }

    /// As in a batch: what the vault took since the binding asked is not sent again.
    async fn write_alone(&self, desk: &VaultDesk, vault: &VaultId, EntryChange { op, entry }: EntryChange) -> Result<usize, AzureError> {
        match taken_already(desk, vault, op, &entry) {
            Some(held) => Ok(held),
            None => self.send(desk, vault, op, std::slice::from_ref(&entry)).await,
        }
    }

    fn held_before(entries: &usize) -> usize {
        *entries
    }
}

/// When `op` with `entry` adds nothing the vault (as kvbind last saw it) has not taken
/// already, the entries it holds: a binding that reconciles again while its grant is being
/// written asks for it again.
fn taken_already(desk: &VaultDesk, vault: &VaultId, op: AccessPolicyOp, entry: &AccessPolicy) -> Option<usize> {
    if op != AccessPolicyOp::Add {
        return None;
    }
    desk.reads.peek(vault, |v| v.grants(entry).then_some(v.access_policies.len())).flatten()
}

impl VaultClerk {
    /// Answers the entries that would take the vault (as kvbind last read it) past
    /// [`MAX_ACCESS_POLICIES_PER_VAULT`] with the limit, in the order they were asked for,
    /// and leaves the others to be written: the vault's last free entries go to the first.
    fn refuse_past_the_limit(desk: &VaultDesk, vault: &VaultId, entries: &mut Vec<AccessPolicy>, replies: &mut Vec<Vec<Asker<usize>>>) {
        let Some((held, principals)) = desk.reads.peek(vault, |v| {
            let principals: std::collections::HashSet<String> = v.access_policies.iter().map(|p| p.object_id.to_ascii_lowercase()).collect();
            (v.access_policies.len(), principals)
        }) else {
            return;
        };
        let mut room = MAX_ACCESS_POLICIES_PER_VAULT.saturating_sub(held);
        let mut i = 0;
        while i < entries.len() {
            // An entry for a principal the vault names already takes no new entry.
            let new = !principals.contains(&entries[i].object_id.to_ascii_lowercase());
            if !new || room > 0 {
                room -= usize::from(new);
                i += 1;
                continue;
            }
            entries.remove(i);
            let refused = Err(AzureError::LimitReached {
                operation: "UpdateAccessPolicy",
                resource: vault.to_string(),
                limit: "VaultAccessPolicyLimit",
                message: format!(
                    "{} holds {held} access-policy entries, and a new one would take it past {MAX_ACCESS_POLICIES_PER_VAULT}, Azure's limit. Share an identity between bindings, use mode WorkloadIdentity with a shared identity, or move the objects to a vault with Azure RBAC",
                    vault.name
                ),
            });
            desk.settle(vault, replies.remove(i), &refused);
        }
    }

    /// One request, and the vault as kept brought up to date when it succeeds: the next
    /// reconcile sees the change without reading the vault again (with a thousand
    /// principals it is hundreds of kilobytes). The read keeps its age: drift is still read
    /// at expiry.
    async fn send(&self, desk: &VaultDesk, vault: &VaultId, op: AccessPolicyOp, entries: &[AccessPolicy]) -> Result<usize, AzureError> {
        let held = desk.reads.peek(vault, |v| v.access_policies.len()).unwrap_or_default();
        self.arm.update_access_policy(vault, op, entries).await?;
        desk.reads.change(vault, |kept| {
            let kept = Arc::make_mut(kept);
            for entry in entries {
                kept.apply(op, entry);
            }
        });
        Ok(held)
    }

    /// Sends the requests grouped by operation, 16 entries a request, and answers each with
    /// the result of the request that carried it. Adds and removes for one principal merge
    /// into one entry (a union either way); replaces stay apart.
    async fn write_batch(&self, desk: &VaultDesk, vault: &VaultId, requests: Vec<Request>) {
        // Per operation: the entries, and who hears of each.
        type Group = (AccessPolicyOp, Vec<AccessPolicy>, Vec<Vec<Asker<usize>>>);
        let mut by_op: Vec<Group> = Vec::new();
        for Request { change: EntryChange { op, entry }, asker: answer } in requests {
            let slot = match by_op.iter().position(|(o, _, _)| *o == op) {
                Some(i) => i,
                None => {
                    by_op.push((op, Vec::new(), Vec::new()));
                    by_op.len() - 1
                }
            };
            let (_, entries, replies) = &mut by_op[slot];
            let same = |e: &AccessPolicy| e.object_id.eq_ignore_ascii_case(&entry.object_id) && e.tenant_id == entry.tenant_id;
            match entries.iter().position(same).filter(|_| op != AccessPolicyOp::Replace) {
                Some(i) => {
                    entries[i].permissions.merge(&entry.permissions);
                    replies[i].push(answer);
                }
                None => {
                    entries.push(entry);
                    replies.push(vec![answer]);
                }
            }
        }
        for (op, mut entries, mut replies) in by_op {
            if op == AccessPolicyOp::Add {
                let mut i = 0;
                while i < entries.len() {
                    if let Some(held) = taken_already(desk, vault, op, &entries[i]) {
                        entries.swap_remove(i);
                        desk.settle(vault, replies.swap_remove(i), &Ok(held));
                    } else {
                        i += 1;
                    }
                }
            }
            if op == AccessPolicyOp::Add {
                Self::refuse_past_the_limit(desk, vault, &mut entries, &mut replies);
            }
            for (chunk, chunk_replies) in entries.chunks(MAX_ACCESS_POLICIES_PER_REQUEST).zip(replies.chunks_mut(MAX_ACCESS_POLICIES_PER_REQUEST)) {
                tracing::info!(vault = %vault, op = op.as_str(), entries = chunk.len(), "updating access policies");
                let result = self.send(desk, vault, op, chunk).await;
                if chunk.len() > 1 && result.as_ref().is_err_and(|e| !e.is_retryable()) {
                    // ARM refuses a request for any one of its entries: each goes again on
                    // its own, so one bad entry fails only the bindings that asked for it.
                    for (entry, replies) in chunk.iter().zip(chunk_replies.iter_mut()) {
                        let result = self.send(desk, vault, op, std::slice::from_ref(entry)).await;
                        desk.settle(vault, std::mem::take(replies), &result);
                    }
                    continue;
                }
                desk.settle(vault, chunk_replies.iter_mut().flat_map(std::mem::take), &result);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use kvbind_azure::model::Permissions;

    use super::*;
    use crate::desks::handoff::Handoffs;
    use crate::fake_compute::FakeCompute;

    fn add(entry: AccessPolicy) -> EntryChange {
        EntryChange { op: AccessPolicyOp::Add, entry }
    }

    fn entry(object_id: &str) -> AccessPolicy {
        AccessPolicy { tenant_id: "t".into(), object_id: object_id.into(), permissions: Permissions::default() }
    }

    #[tokio::test]
    async fn one_entry_azure_refuses_fails_only_its_own_binding() {
        let arm = Arc::new(FakeCompute::refusing_principal("bad"));
        let (handoffs, _woken) = Handoffs::new();
        let desk = VaultDesk::new(VaultClerk::new(arm.clone()), Duration::from_secs(60), Some(Duration::from_millis(50)), Arc::new(handoffs));
        let vault = VaultId::new(kvbind_azure::ResourceKind::Vault, "s", "rg", "kv").expect("id");
        let (good, bad, other) = tokio::join!(
            desk.write_in_place(&vault, add(entry("good"))),
            desk.write_in_place(&vault, add(entry("bad"))),
            desk.write_in_place(&vault, add(entry("other"))),
        );
        assert!(good.is_ok() && other.is_ok(), "{good:?} {other:?}");
        assert!(matches!(bad, Err(AzureError::Invalid { .. })), "{bad:?}");
        let writes = arm.vault_writes.lock().expect("lock").clone();
        assert_eq!(writes.len(), 4, "the batch, then each entry on its own: {writes:?}");
        assert_eq!(writes[0].len(), 3, "{writes:?}");
        assert!(writes[1..].iter().all(|w| w.len() == 1), "{writes:?}");
    }
}
