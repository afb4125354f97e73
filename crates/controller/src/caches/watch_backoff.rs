//! How soon the watches retry after the API server fails.
//!
//! kube-runtime's default follows client-go: up to 30 s between attempts, and the
//! controller applies one such backoff to all its trigger streams together, so the errors
//! of three watches during an API server restart add up to about a minute of blindness.
//! An identity operator should be back within seconds of the API server, so kvbind retries
//! from 200 ms, doubling to at most 5 s, and starts over after any successful event.

use std::time::Duration;

use kube::runtime::watcher::ExponentialBackoff;

/// The first delay after a watch error.
const FIRST: Duration = Duration::from_millis(200);
/// The longest delay between two attempts.
const LONGEST: Duration = Duration::from_secs(5);

/// A fresh backoff for one watch stream (or the controller's merged triggers).
pub fn watch_backoff() -> ExponentialBackoff {
    backon::ExponentialBuilder::default().with_min_delay(FIRST).with_max_delay(LONGEST).with_factor(2.0).with_jitter().without_max_times().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_never_end() {
        let delays: Vec<Duration> = watch_backoff().take(40).collect();
        assert_eq!(delays.len(), 40, "the watches never give up");
        assert!(delays[0] >= FIRST && delays[0] <= FIRST * 2, "{:?}", delays[0]);
        // Jitter adds up to one more delay, so the cap reads as at most twice LONGEST.
        assert!(delays.iter().all(|d| *d <= LONGEST * 2), "{delays:?}");
        assert!(delays[39] >= LONGEST, "{delays:?}");
    }
}
