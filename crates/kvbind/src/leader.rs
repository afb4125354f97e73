//! Leader election on a `coordination.k8s.io` Lease, so two replicas never write to Azure
//! at once. The controller starts only once this replica holds the lease; when it loses
//! the lease the process exits at once, abandoning in-flight work (every step is idempotent,
//! and the new leader redoes it) rather than risk a write after the loss.

use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;

/// A held (or awaited) lease.
pub struct Leadership {
    changes: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<Result<kube_lease_manager::LeaseManager, kube_lease_manager::LeaseManagerError>>,
}

impl Leadership {
    /// Starts competing for lease `name` in `namespace` as `identity`.
    pub async fn start(client: Client, name: &str, namespace: &str, identity: &str, duration_seconds: u64) -> anyhow::Result<Leadership> {
        let manager = LeaseManagerBuilder::new(client, name)
            .with_namespace(namespace)
            .with_identity(identity)
            .with_duration(duration_seconds)
            .with_grace(duration_seconds.div_ceil(3).max(1))
            .with_field_manager(kvbind_api::FIELD_MANAGER)
            .build()
            .await?;
        let (changes, task) = manager.watch().await;
        Ok(Leadership { changes, task })
    }

    /// Waits until this replica holds the lease.
    pub async fn acquired(&mut self) -> anyhow::Result<()> {
        while !*self.changes.borrow_and_update() {
            self.changes.changed().await.map_err(|_| anyhow::anyhow!("the lease manager stopped"))?;
        }
        Ok(())
    }

    /// Resolves when this replica no longer holds the lease.
    pub async fn lost(&mut self) {
        loop {
            if self.changes.changed().await.is_err() || !*self.changes.borrow() {
                return;
            }
        }
    }

    /// Gives the lease up, so another replica takes over without waiting for it to expire.
    pub async fn release(self) {
        drop(self.changes);
        let _ = self.task.await;
    }
}
