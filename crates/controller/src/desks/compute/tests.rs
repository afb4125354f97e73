//! The compute desk's specification: what one window collects, what reaches Compute, and
//! what is read, in paused time.

use std::time::Duration;

use kvbind_azure::ResourceKind;

use super::*;
use crate::desks::handoff::Handoffs;
use crate::fake_compute::FakeCompute;

const WINDOW: Duration = Duration::from_secs(2);

fn pool() -> ComputeId {
    ComputeId::new(ResourceKind::VirtualMachineScaleSet, "sub", "nodes", "pool-a").expect("id")
}

fn identity(i: usize) -> IdentityId {
    IdentityId::new(ResourceKind::UserAssignedIdentity, "sub", "ids", &format!("id-{i}")).expect("id")
}

fn batcher_for(arm: &Arc<FakeCompute>) -> ComputeDesk {
    ComputeDesk::new(ComputeClerk::new(arm.clone()), Duration::from_secs(600), Some(WINDOW), Arc::new(Handoffs::new().0))
}

/// Attaches identity `i`, `after` from now.
fn attach_later(batcher: &ComputeDesk, i: usize, after: Duration) -> tokio::task::JoinHandle<Result<Written, AzureError>> {
    let batcher = batcher.clone();
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        batcher.write_in_place(&pool(), Attachment::Attach(Arc::new(identity(i)))).await
    })
}

#[tokio::test(start_paused = true)]
async fn changes_that_keep_arriving_past_the_window_join_one_write() {
    let arm = Arc::new(FakeCompute::new(Duration::from_secs(20)));
    let batcher = batcher_for(&arm);
    // A change every 300 ms for six seconds: three windows, never a quarter window apart.
    let changes: Vec<_> = (0..20).map(|i| attach_later(&batcher, i, Duration::from_millis(300) * i as u32)).collect();
    for change in changes {
        let after = change.await.expect("task").expect("attached");
        assert!(after.after.has(&identity(0)));
    }
    assert_eq!(arm.writes(), 1, "one PATCH for changes arriving in one burst");
    assert_eq!(*arm.added.lock().expect("lock"), vec![20]);
}

#[tokio::test(start_paused = true)]
async fn a_batch_closes_after_a_quiet_quarter_window_and_after_at_most_max_windows() {
    let arm = Arc::new(FakeCompute::new(Duration::from_secs(20)));
    let batcher = batcher_for(&arm);
    // Two changes a second apart, then one well after a quiet spell: two writes.
    let first = [attach_later(&batcher, 0, Duration::ZERO), attach_later(&batcher, 1, Duration::from_secs(1))];
    let late = attach_later(&batcher, 2, WINDOW * 2);
    for change in first {
        change.await.expect("task").expect("attached");
    }
    late.await.expect("task").expect("attached");
    assert_eq!(*arm.added.lock().expect("lock"), vec![2, 1], "the quiet quarter window closed the first batch");

    // A change every 400 ms without end still gets written after MAX_WINDOWS windows.
    let arm = Arc::new(FakeCompute::new(Duration::from_secs(20)));
    let batcher = batcher_for(&arm);
    let started = tokio::time::Instant::now();
    let endless: Vec<_> = (0..200).map(|i| attach_later(&batcher, i, Duration::from_millis(400) * i as u32)).collect();
    endless.into_iter().next().expect("first").await.expect("task").expect("attached");
    // The batch's fresh read and its PATCH take 20 s each.
    let waited = started.elapsed() - Duration::from_secs(40);
    assert!(waited <= WINDOW * MAX_WINDOWS + WINDOW / 4, "the first batch waited {waited:?}");
}

#[tokio::test(start_paused = true)]
async fn a_batch_waits_for_bindings_still_resolving_their_identities() {
    let arm = Arc::new(FakeCompute::new(Duration::from_secs(20)));
    let batcher = batcher_for(&arm);
    // One binding attaches at once; another is still creating its identity for almost
    // three windows (a long quiet spell) and attaches right after: one write for both.
    let creating = batcher.resolving_identity();
    let first = attach_later(&batcher, 0, Duration::ZERO);
    tokio::time::sleep(WINDOW * 3 - Duration::from_millis(200)).await;
    drop(creating);
    let second = attach_later(&batcher, 1, Duration::from_millis(100));
    first.await.expect("task").expect("attached");
    second.await.expect("task").expect("attached");
    assert_eq!(*arm.added.lock().expect("lock"), vec![2]);
}

#[tokio::test(start_paused = true)]
async fn handed_off_attachments_land_in_one_write_and_wake_their_bindings() {
    use kube::runtime::reflector::ObjectRef;

    let arm = Arc::new(FakeCompute::new(Duration::from_secs(20)));
    let (handoffs, mut woken) = Handoffs::new();
    let handoffs = Arc::new(handoffs);
    let batcher = ComputeDesk::new(ComputeClerk::new(arm.clone()), Duration::from_secs(600), Some(WINDOW), handoffs.clone());
    let bindings: Vec<_> = (0..3).map(|i| Arc::new(ObjectRef::new(&format!("b{i}")).within("apps"))).collect();
    for (i, binding) in bindings.iter().enumerate() {
        batcher.hand_off(&pool(), Attachment::Attach(Arc::new(identity(i))), binding.clone());
    }
    // Handing off returns at once; the bindings hear when the PATCH has landed.
    let mut heard = Vec::new();
    for _ in &bindings {
        heard.push(woken.recv().await.expect("woken"));
    }
    assert_eq!(heard, bindings.iter().map(|b| b.as_ref().clone()).collect::<Vec<_>>());
    assert_eq!(*arm.added.lock().expect("lock"), vec![3], "one PATCH for the three");
    for binding in &bindings {
        assert!(matches!(handoffs.take(binding).0.of(&pool()), Some(Ok(0))), "landed, on a pool that had no identity before");
    }
}

#[tokio::test(start_paused = true)]
async fn identities_past_azures_limit_are_refused_to_their_askers_and_the_rest_of_the_batch_lands() {
    let arm = Arc::new(FakeCompute::new(Duration::from_secs(20)));
    let batcher = batcher_for(&arm);
    // 152 new identities for an empty scale set in one window: Azure takes 150.
    let changes: Vec<_> = (0..152).map(|i| attach_later(&batcher, i, Duration::ZERO)).collect();
    let mut refused = Vec::new();
    for (i, change) in changes.into_iter().enumerate() {
        match change.await.expect("task") {
            Ok(written) => assert!(written.after.has(&identity(i))),
            Err(AzureError::LimitReached { limit, message, .. }) => {
                assert_eq!(limit, "PoolIdentityLimit");
                assert!(message.contains("pool-a would carry 152 user-assigned identities; Azure allows 150"), "{message}");
                refused.push(i);
            }
            Err(e) => panic!("identity {i}: {e}"),
        }
    }
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert_eq!(*arm.added.lock().expect("lock"), vec![150], "one PATCH with what fits, none past the limit");

    // A detach in the same batch makes room for one more.
    let detach = {
        let batcher = batcher.clone();
        tokio::spawn(async move { batcher.write_in_place(&pool(), Attachment::Detach(Arc::new(identity(0)))).await })
    };
    let more = [attach_later(&batcher, refused[0], Duration::ZERO), attach_later(&batcher, refused[1], Duration::ZERO)];
    detach.await.expect("task").expect("detached");
    let landed: Vec<bool> = futures::future::join_all(more).await.into_iter().map(|r| r.expect("task").is_ok()).collect();
    assert_eq!(landed.iter().filter(|ok| **ok).count(), 1, "{landed:?}");
}

#[tokio::test(start_paused = true)]
async fn an_identity_arm_refuses_by_name_is_refused_to_its_askers_and_the_others_are_written_without_it() {
    // `id-1` and `id-10` differ only by a suffix: only the named one is left out.
    let arm = Arc::new(FakeCompute::refusing_identity(Duration::from_secs(20), identity(1)));
    let batcher = batcher_for(&arm);
    let changes: Vec<_> = [0, 1, 10].into_iter().map(|i| attach_later(&batcher, i, Duration::ZERO)).collect();
    let results: Vec<Result<Written, AzureError>> = futures::future::join_all(changes).await.into_iter().map(|r| r.expect("task")).collect();
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    let refused = results[1].as_ref().expect_err("named by ARM");
    assert!(refused.to_string().contains("isolationScope"), "{refused}");
    assert_eq!(*arm.added.lock().expect("lock"), vec![3, 2], "the batch, then the batch without the refused identity");
}

#[tokio::test(start_paused = true)]
async fn asking_again_for_an_attachment_being_written_joins_that_write() {
    use kube::runtime::reflector::ObjectRef;

    let arm = Arc::new(FakeCompute::new(Duration::from_secs(20)));
    let (handoffs, mut woken) = Handoffs::new();
    let batcher = ComputeDesk::new(ComputeClerk::new(arm.clone()), Duration::from_secs(600), Some(WINDOW), Arc::new(handoffs));
    let binding = Arc::new(ObjectRef::new("b").within("apps"));
    batcher.hand_off(&pool(), Attachment::Attach(Arc::new(identity(0))), binding.clone());
    // The window has closed and the batch's read is under way: the binding, reconciled
    // again meanwhile, asks once more.
    tokio::time::sleep(WINDOW * 2).await;
    assert_eq!(arm.reads(), 1, "the write is in flight");
    batcher.hand_off(&pool(), Attachment::Attach(Arc::new(identity(0))), binding.clone());
    assert!(woken.recv().await.is_some());
    // Long enough for a second batch to have been read and written, had there been one.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!((arm.reads(), arm.writes()), (1, 1), "one read and one PATCH");
}

#[tokio::test(start_paused = true)]
async fn bindings_that_find_an_entry_stale_at_once_share_one_read() {
    let arm = Arc::new(FakeCompute::new(Duration::from_secs(1)));
    let desk = Arc::new(ComputeDesk::new(ComputeClerk::new(arm.clone()), Duration::from_secs(10), Some(WINDOW), Arc::new(Handoffs::new().0)));
    let read_all = || {
        let reads: Vec<_> = (0..50)
            .map(|_| {
                let desk = desk.clone();
                tokio::spawn(async move { desk.read(&pool()).await })
            })
            .collect();
        futures::future::join_all(reads)
    };
    for read in read_all().await {
        read.expect("task").expect("read");
    }
    assert_eq!(arm.reads(), 1, "fifty bindings, one read");
    tokio::time::sleep(Duration::from_secs(11)).await;
    for read in read_all().await {
        read.expect("task").expect("read");
    }
    assert_eq!(arm.reads(), 2, "expired: read again, once");
}
