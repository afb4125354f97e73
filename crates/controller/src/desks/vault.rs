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
//! A reconcile hands its grant over and ends ([`VaultDesk::hand_off`]); the
//! writer wakes it when the write lands (see [`crate::desks::handoff`]). Revoking is awaited in
//! place.

use std::sync::Arc;
use std::time::Duration;

use kvbind_azure::model::{AccessPolicy, AccessPolicyOp, MAX_ACCESS_POLICIES_PER_REQUEST, Vault};
use kvbind_azure::{Arm, AzureError, VaultId};
use tokio::sync::oneshot;

use crate::caches::shelf::Shelf;
use crate::desks::handoff::{Answer, Handoffs, Landing, Waiter};
use crate::desks::queue::{WriteQueues, enqueue, next_batch, take_all};
use crate::turns::Turns;

/// Access-policy entries a vault may hold: the REST spec types `accessPolicies` as 0 to
/// 1,024 entries.
pub const MAX_ACCESS_POLICIES_PER_VAULT: usize = 1024;

struct Request {
    op: AccessPolicyOp,
    entry: AccessPolicy,
    answer: Answer<()>,
}

/// Vaults, what their names stand for, and their access-policy writers.
#[derive(Clone)]
pub struct VaultDesk {
    arm: Arc<dyn Arm>,
    /// How long a read is trusted: the resync period.
    ttl: Duration,
    reads: Arc<Shelf<VaultId, Arc<Vault>>>,
    /// Vaults found by name (lowercase), kept until the vault answers 404.
    names: Arc<Shelf<String, VaultId>>,
    window: Option<Duration>,
    queues: Arc<WriteQueues<VaultId, Vec<Request>>>,
    handoffs: Arc<Handoffs>,
    /// Without batching: one lock per vault, so a change asked for twice is written once.
    single: Arc<Turns<VaultId>>,
}

impl VaultDesk {
    /// A desk whose reads live for `ttl` and whose writer collects changes for `window`
    /// before writing; `None` writes each change on its own (the naive strategy, for
    /// comparison).
    pub fn new(arm: Arc<dyn Arm>, ttl: Duration, window: Option<Duration>, handoffs: Arc<Handoffs>) -> Self {
        VaultDesk { arm, ttl, reads: Arc::default(), names: Arc::default(), window, queues: Arc::default(), handoffs, single: Arc::default() }
    }

    /// A vault, read at most once a resync however many ask at once.
    pub async fn read(&self, id: &VaultId) -> Result<Arc<Vault>, AzureError> {
        self.reads.read_through(id, self.ttl, async { self.arm.get_vault(id).await.map(Arc::new) }).await
    }

    /// The vault `name` stands for, as `find` answers it once however many ask; kept until
    /// [`forget_name`](Self::forget_name). A name nothing answers to is asked about again.
    pub async fn named<E>(&self, name: &str, find: impl std::future::Future<Output = Result<Option<VaultId>, E>>) -> Result<Option<VaultId>, E> {
        self.names.read_found(&name.to_ascii_lowercase(), Duration::MAX, find).await
    }

    /// Forgets what vault `name` stands for: the vault found by it answered 404 (deleted,
    /// or made again elsewhere).
    pub fn forget_name(&self, name: &str) {
        self.names.forget(&name.to_ascii_lowercase());
    }

    /// True when `op` with `entry` adds nothing the vault (as kvbind last saw it) has not
    /// taken already: a binding that reconciles again while its grant is being written asks
    /// for it again.
    fn taken_already(&self, vault: &VaultId, op: AccessPolicyOp, entry: &AccessPolicy) -> bool {
        op == AccessPolicyOp::Add && self.reads.peek(vault, |v| v.grants(entry)).unwrap_or(false)
    }

    /// Answers the entries that would take the vault (as kvbind last read it) past
    /// [`MAX_ACCESS_POLICIES_PER_VAULT`] with the limit, in the order they were asked for,
    /// and leaves the others to be written: the vault's last free entries go to the first.
    fn refuse_past_the_limit(&self, vault: &VaultId, entries: &mut Vec<AccessPolicy>, replies: &mut Vec<Vec<Answer<()>>>) {
        let Some((held, principals)) = self.reads.peek(vault, |v| {
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
            let woken = Answer::answer_all(replies.remove(i), &refused);
            self.handoffs.land(Landing::Vault { vault: vault.clone(), result: refused }, woken);
        }
    }

    /// One request, and the vault as kept brought up to date when it succeeds: the next
    /// reconcile sees the change without reading the vault again (with a thousand
    /// principals it is hundreds of kilobytes). The read keeps its age: drift is still read
    /// at expiry.
    async fn send(&self, vault: &VaultId, op: AccessPolicyOp, entries: &[AccessPolicy]) -> Result<(), AzureError> {
        self.arm.update_access_policy(vault, op, entries).await?;
        self.reads.change(vault, |kept| {
            let kept = Arc::make_mut(kept);
            for entry in entries {
                kept.apply(op, entry);
            }
        });
        Ok(())
    }

    /// Applies `op` with `entry` on `vault`, together with whatever else is asked for the
    /// same vault in the same window, and waits for the write.
    pub async fn change(&self, vault: &VaultId, op: AccessPolicyOp, entry: AccessPolicy) -> Result<(), AzureError> {
        let Some(_) = self.window else {
            return self.send(vault, op, std::slice::from_ref(&entry)).await;
        };
        let (reply, answer) = oneshot::channel();
        self.enqueue(vault, Request { op, entry, answer: Answer::Reply(reply) });
        answer.await.unwrap_or_else(|_| {
            Err(AzureError::Transient { operation: "UpdateAccessPolicy", resource: vault.to_string(), message: "the writer for this vault stopped".to_owned() })
        })
    }

    /// Applies `op` with `entry` on `vault` with the next batch, and wakes `binding` when
    /// that lands instead of waiting for it.
    pub fn hand_off(&self, vault: &VaultId, op: AccessPolicyOp, entry: AccessPolicy, binding: Waiter) {
        self.handoffs.expect(&binding, vault);
        if self.window.is_some() {
            self.enqueue(vault, Request { op, entry, answer: Answer::Wake(binding) });
            return;
        }
        let (this, vault) = (self.clone(), vault.clone());
        tokio::spawn(async move {
            // As in a batch: what the vault took since the binding asked is not sent again.
            let turn = this.single.turn(&vault);
            let _turn = turn.lock().await;
            let result = if this.taken_already(&vault, op, &entry) { Ok(()) } else { this.send(&vault, op, std::slice::from_ref(&entry)).await };
            this.handoffs.land(Landing::Vault { vault, result }, vec![binding]);
        });
    }

    fn enqueue(&self, vault: &VaultId, request: Request) {
        if enqueue(&self.queues, vault, |pending: &mut Vec<Request>| pending.push(request)) {
            tokio::spawn(self.clone().write_loop(vault.clone()));
        }
    }

    /// Writes batches for one vault until no more changes arrive. Only the first batch
    /// waits a window: a vault takes its writes one at a time, so what arrives while one is
    /// written goes out right after it.
    async fn write_loop(self, vault: VaultId) {
        let mut wait = self.window.unwrap_or_default();
        loop {
            tokio::time::sleep(wait).await;
            let Some(requests) = next_batch(&self.queues, &vault, take_all) else {
                return;
            };
            self.write(&vault, requests).await;
            wait = Duration::ZERO;
        }
    }

    /// Sends the requests grouped by operation, 16 entries a request, and answers each with
    /// the result of the request that carried it. Adds and removes for one principal merge
    /// into one entry (a union either way); replaces stay apart.
    async fn write(&self, vault: &VaultId, requests: Vec<Request>) {
        // Per operation: the entries, and who hears of each.
        type Group = (AccessPolicyOp, Vec<AccessPolicy>, Vec<Vec<Answer<()>>>);
        let mut by_op: Vec<Group> = Vec::new();
        for Request { op, entry, answer } in requests {
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
                    if self.taken_already(vault, op, &entries[i]) {
                        entries.swap_remove(i);
                        let woken = Answer::answer_all(replies.swap_remove(i), &Ok(()));
                        self.handoffs.land(Landing::Vault { vault: vault.clone(), result: Ok(()) }, woken);
                    } else {
                        i += 1;
                    }
                }
            }
            if op == AccessPolicyOp::Add {
                self.refuse_past_the_limit(vault, &mut entries, &mut replies);
            }
            for (chunk, chunk_replies) in entries.chunks(MAX_ACCESS_POLICIES_PER_REQUEST).zip(replies.chunks_mut(MAX_ACCESS_POLICIES_PER_REQUEST)) {
                tracing::info!(vault = %vault, op = op.as_str(), entries = chunk.len(), "updating access policies");
                let result = self.send(vault, op, chunk).await;
                if chunk.len() > 1 && result.as_ref().is_err_and(|e| !e.is_retryable()) {
                    // ARM refuses a request for any one of its entries: each goes again on
                    // its own, so one bad entry fails only the bindings that asked for it.
                    for (entry, replies) in chunk.iter().zip(chunk_replies.iter_mut()) {
                        let result = self.send(vault, op, std::slice::from_ref(entry)).await;
                        let woken = Answer::answer_all(std::mem::take(replies), &result);
                        self.handoffs.land(Landing::Vault { vault: vault.clone(), result }, woken);
                    }
                    continue;
                }
                let woken = Answer::answer_all(chunk_replies.iter_mut().flat_map(std::mem::take), &result);
                self.handoffs.land(Landing::Vault { vault: vault.clone(), result }, woken);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use kvbind_azure::model::Permissions;

    use super::*;
    use crate::fake_compute::FakeCompute;

    fn entry(object_id: &str) -> AccessPolicy {
        AccessPolicy { tenant_id: "t".into(), object_id: object_id.into(), permissions: Permissions::default() }
    }

    #[tokio::test]
    async fn one_entry_azure_refuses_fails_only_its_own_binding() {
        let arm = Arc::new(FakeCompute::refusing_principal("bad"));
        let (handoffs, _woken) = Handoffs::new();
        let desk = VaultDesk::new(arm.clone(), Duration::from_secs(60), Some(Duration::from_millis(50)), Arc::new(handoffs));
        let vault = VaultId::new(kvbind_azure::ResourceKind::Vault, "s", "rg", "kv").expect("id");
        let (good, bad, other) = tokio::join!(
            desk.change(&vault, AccessPolicyOp::Add, entry("good")),
            desk.change(&vault, AccessPolicyOp::Add, entry("bad")),
            desk.change(&vault, AccessPolicyOp::Add, entry("other")),
        );
        assert!(good.is_ok() && other.is_ok(), "{good:?} {other:?}");
        assert!(matches!(bad, Err(AzureError::Invalid { .. })), "{bad:?}");
        let writes = arm.vault_writes.lock().expect("lock").clone();
        assert_eq!(writes.len(), 4, "the batch, then each entry on its own: {writes:?}");
        assert_eq!(writes[0].len(), 3, "{writes:?}");
        assert!(writes[1..].iter().all(|w| w.len() == 1), "{writes:?}");
    }
}
