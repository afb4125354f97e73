//! A write fence from the Lease itself: this replica writes to Azure only while the Lease
//! names it as holder and its last renewal, plus the lease duration, is still ahead.
//!
//! The lease manager tells the process when leadership is lost, but only once it runs
//! again: a leader paused (stopped, starved, swapped out) past its lease resumes with
//! reconciles ready to write, racing the manager's next check. The fence closes by
//! itself when time passes without a fresh reading of the Lease, so a resumed replica
//! refuses its writes until it has read the Lease again, and by then it knows it lost.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use kvbind_azure::client::WriteFence;

/// Until when this replica may write, as last read from the Lease.
#[derive(Debug)]
pub struct LeaseFence {
    api: Api<Lease>,
    name: String,
    identity: String,
    /// Readings count as this much older than they are, for clock steps and request time.
    margin: Duration,
    open_until: Mutex<Option<Instant>>,
}

impl LeaseFence {
    /// A closed fence for lease `name` in `namespace`, held by `identity`.
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str, margin: Duration) -> Self {
        LeaseFence { api: Api::namespaced(client, namespace), name: name.to_owned(), identity: identity.to_owned(), margin, open_until: Mutex::new(None) }
    }

    /// Reads the Lease and moves the fence: open until the lease would expire (less the
    /// margin) when this replica holds it, closed otherwise.
    pub async fn refresh(&self) -> Result<(), kube::Error> {
        let asked_at = Instant::now();
        let lease = self.api.get(&self.name).await?;
        let remaining = lease.spec.as_ref().and_then(|spec| {
            if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
                return None;
            }
            let renewed_ms = spec.renew_time.as_ref()?.0.as_millisecond();
            let expires_ms = renewed_ms + i64::from(spec.lease_duration_seconds?) * 1000;
            let now_ms = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).ok()?.as_millis();
            let left = u64::try_from(i128::from(expires_ms) - i128::try_from(now_ms).ok()?).ok()?;
            Duration::from_millis(left).checked_sub(self.margin)
        });
        *self.open_until.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = remaining.map(|r| asked_at + r);
        Ok(())
    }

    /// Refreshes every `period` for ever; a failed read leaves the fence to close by itself.
    pub async fn keep_refreshing(&self, period: Duration) {
        loop {
            if let Err(error) = self.refresh().await {
                tracing::warn!(%error, "reading the leader lease");
            }
            tokio::time::sleep(period).await;
        }
    }

    /// True while writes are allowed.
    pub fn is_open(&self) -> bool {
        self.may_write().is_ok()
    }
}

impl WriteFence for LeaseFence {
    fn may_write(&self) -> Result<(), String> {
        match *self.open_until.lock().unwrap_or_else(std::sync::PoisonError::into_inner) {
            Some(until) if Instant::now() < until => Ok(()),
            _ => Err(format!("lease {} is not confirmed as held by {}", self.name, self.identity)),
        }
    }
}
