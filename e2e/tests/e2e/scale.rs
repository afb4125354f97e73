//! Many bindings at once: batched VM scale set writes, and no writes once converged.

use std::time::Duration;

use kvbind_e2e::operator::{Scenario, seed};

use kvbind_e2e::world::{binding, class, cluster, identities_on};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_bindings_on_three_pools_batch_their_writes_and_then_write_nothing() {
    let pools = ["pool-a-vmss", "pool-b-vmss", "pool-c-vmss"];
    let s = Scenario::start_with("batch", seed(&cluster(&pools, &[], false)), |c| {
        c.resync = Duration::from_secs(2);
        c.batch_window = Duration::from_millis(500);
    })
    .await;
    for pool in pools {
        s.node(pool, &Scenario::vmss_node(pool, 0), &[]).await;
    }
    let mut all = String::new();
    for i in 0..20 {
        all.push_str(&class(&format!("app-{i:02}"), &[("db-password", "secret", 0)]));
        all.push_str("\n---\n");
        all.push_str(&binding(&format!("app-{i:02}"), &format!("app-{i:02}-reader"), &[&format!("app-{i:02}")], ""));
        all.push_str("\n---\n");
    }
    s.apply(&all);
    s.wait_all("Ready").await;

    for pool in pools {
        assert_eq!(identities_on(&s.sim, pool).len(), 21, "{pool}: 20 identities plus the foreign one");
    }
    let counters = s.sim.counters();
    let patches = counters.by_operation.get("VirtualMachineScaleSets_Update").copied().unwrap_or(0);
    println!("VMSS PATCHes for 20 bindings on 3 pools: {patches}; all ARM writes: {}", counters.writes);
    assert!(patches <= 6, "{patches} VMSS writes: changes were not batched ({counters:?})");
    assert_eq!(counters.by_operation.get("UserAssignedIdentities_CreateOrUpdate"), Some(&20));
    let vault_writes = counters.by_operation.get("Vaults_UpdateAccessPolicy").copied().unwrap_or(0);
    println!("access-policy writes for 20 new principals on one vault: {vault_writes}");
    assert!(vault_writes <= 4, "{vault_writes} vault writes: grants were not batched 16 to a request ({counters:?})");

    // Steady state: eight resync periods pass (every pool read eight times), more than the
    // six for which an identity read is trusted, and nothing is written; reads stay at one
    // per pool and per vault per period however many bindings resync, identities are not
    // read at all (the pools vouch for them), and the vault's name is not searched again.
    s.sim.reset_counters();
    s.eventually("eight resync periods", |s| s.sim.counters().by_operation.get("VirtualMachineScaleSets_Get").copied().unwrap_or(0) >= 24).await;
    let steady = s.sim.counters();
    assert_eq!(steady.writes, 0, "a converged binding wrote to ARM: {steady:?}");
    let per_pool = steady.by_operation.get("VirtualMachineScaleSets_Get").copied().unwrap_or(0);
    let per_vault = steady.by_operation.get("Vaults_Get").copied().unwrap_or(0);
    println!("steady state reads while 20 bindings resynced for eight periods: {per_pool} VMSS reads, {per_vault} vault reads");
    assert!(per_pool <= 27, "pool reads are shared across bindings: {per_pool} for 3 pools in 8 periods");
    assert!(per_vault <= 10, "vault reads are shared across bindings: {per_vault} for 1 vault in 8 periods");
    let searches = steady.by_operation.get("Vaults_ListBySubscription").copied().unwrap_or(0);
    assert_eq!(searches, 0, "the vault's name was found once and is kept: {steady:?}");
    let identity_reads = steady.by_operation.get("UserAssignedIdentities_Get").copied().unwrap_or(0);
    assert_eq!(identity_reads, 0, "identities were read although the pools list them: {steady:?}");
    s.stop().await;
}
