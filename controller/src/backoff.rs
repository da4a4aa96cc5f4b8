//! Per-object exponential backoff for failed reconciles.

use std::{collections::HashMap, sync::Mutex, time::Duration};

/// First retry delay.
const BASE: Duration = Duration::from_secs(2);
/// Longest delay between retries.
const CAP: Duration = Duration::from_secs(300);

/// Counts consecutive failures per object: the n-th failure waits `BASE * 2^(n-1)`, at most `CAP`.
#[derive(Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// Records a failure of `key` and returns how long to wait before the retry.
    pub fn failed(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = failures.entry(key.to_string()).or_default();
        *n = n.saturating_add(1);
        BASE.saturating_mul(2u32.saturating_pow(*n - 1)).min(CAP)
    }

    /// Forgets the failures of `key` after a successful reconcile.
    pub fn succeeded(&self, key: &str) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let b = Backoff::default();
        let delays: Vec<_> = (0..10).map(|_| b.failed("a").as_secs()).collect();
        assert_eq!(delays, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(b.failed("other").as_secs(), 2);
        b.succeeded("a");
        assert_eq!(b.failed("a").as_secs(), 2);
    }
}
