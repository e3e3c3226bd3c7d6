//! [`RetryPolicy`]: how often and how patiently to retry an operation that hit a conflict.

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use tracing::Instrument;

use crate::error::{Error, Result};
use crate::observe;

/// Bounded retries with exponential backoff and jitter.
///
/// Attempt `n` (from 1) that fails with a retryable error ([`Error::is_retryable`]) waits
/// `min(initial_backoff * 2^(n-1), max_backoff)` — a random part of it with `jitter` — and tries
/// again, up to `max_attempts` attempts in all. Then the last error comes back inside
/// [`Error::RetriesExhausted`] (Kii's "Server Busy"). Other errors return at once, unchanged.
///
/// ```
/// use std::time::Duration;
/// use versioned_core::RetryPolicy;
///
/// let kii = RetryPolicy::attempts(100); // Kii's getSequence gives up after 100 tries
/// let patient = RetryPolicy { max_backoff: Duration::from_secs(1), ..RetryPolicy::default() };
/// assert_eq!(kii.max_attempts, 100);
/// # let _ = patient;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; at least 1.
    pub max_attempts: u32,
    /// The wait after the first failed attempt.
    pub initial_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
    /// Wait a random duration up to the backoff ("full jitter"), so that writers that collided
    /// do not collide again in lockstep.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    /// 10 attempts, backoff from 1 ms doubling to at most 100 ms, with jitter.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(100),
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// The default policy with `max_attempts` attempts.
    pub fn attempts(max_attempts: u32) -> Self {
        RetryPolicy { max_attempts, ..RetryPolicy::default() }
    }

    /// One attempt: a conflict comes back as `RetriesExhausted { attempts: 1, .. }` at once.
    pub fn no_retry() -> Self {
        RetryPolicy::attempts(1)
    }

    /// The wait after failed attempt `attempt` (from 1).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let doubling = 1u32.checked_shl(attempt.saturating_sub(1)).unwrap_or(u32::MAX);
        let ceiling = self.initial_backoff.saturating_mul(doubling).min(self.max_backoff);
        if self.jitter { ceiling.mul_f64(random_unit()) } else { ceiling }
    }

    /// Runs `attempt` until it succeeds, fails with an error that is not retryable (returned
    /// unchanged), or runs out of attempts ([`Error::RetriesExhausted`] with the last error).
    ///
    /// For retry loops of your own, such as Kii's `getSequence` written out. Each attempt is a new
    /// future from `attempt`, which owns what it uses (clone the store into it), so the whole
    /// loop stays `Send` for `tokio::spawn`.
    ///
    /// ```
    /// # use versioned_core::{Error, RetryPolicy};
    /// # async fn demo() -> Result<(), Error> {
    /// let mut tries = 0;
    /// let result = RetryPolicy::attempts(3)
    ///     .retry(|| {
    ///         tries += 1;
    ///         async { Err::<(), _>(Error::NotFound { table: "t", key: versioned_core::Value::Int(1) }) }
    ///     })
    ///     .await;
    /// assert!(matches!(result, Err(Error::NotFound { .. }))); // not retryable: returned at once
    /// assert_eq!(tries, 1);
    /// # Ok(()) }
    /// ```
    pub async fn retry<T, F, Fut>(&self, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempts = self.start("retry");
        loop {
            match attempt().instrument(attempts.span()).await {
                Ok(value) => return Ok(value),
                Err(err) => attempts.failed(err).await?,
            }
        }
    }

    /// Starts counting the attempts of one operation under this policy.
    /// The attempts of `operation` (named in diagnostics) under this policy.
    pub(crate) fn start(&self, operation: &'static str) -> Attempts {
        Attempts { policy: *self, operation, failed: 0 }
    }
}

/// The attempts of one retried operation. A loop, not a closure-taking helper, so the retried
/// operation's future stays `Send` for `tokio::spawn`.
pub(crate) struct Attempts {
    policy: RetryPolicy,
    operation: &'static str,
    failed: u32,
}

impl Attempts {
    /// The span of the next attempt: the operations inside it carry its number.
    pub(crate) fn span(&self) -> tracing::Span {
        observe::attempt_span(self.operation, self.failed + 1)
    }

    /// Records a failed attempt: waits the backoff and returns `Ok` when another attempt should
    /// follow; otherwise returns the error to give back (unchanged, or in `RetriesExhausted`).
    pub(crate) async fn failed(&mut self, err: Error) -> Result<()> {
        self.failed += 1;
        if !err.is_retryable() {
            return Err(err);
        }
        if self.failed >= self.policy.max_attempts.max(1) {
            observe::exhausted(self.operation, self.failed, &err);
            return Err(Error::RetriesExhausted { attempts: self.failed, last: Box::new(err) });
        }
        observe::retrying(self.operation, self.failed, &err);
        tokio::time::sleep(self.policy.backoff(self.failed)).await;
        Ok(())
    }
}

/// A uniform random number in [0, 1), from std's randomly keyed hasher: enough for jitter, with
/// no dependency.
fn random_unit() -> f64 {
    let bits = RandomState::new().build_hasher().finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let p = RetryPolicy { jitter: false, ..RetryPolicy::default() };
        let waits: Vec<u128> = (1..=9).map(|n| p.backoff(n).as_millis()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 100, 100]);
        assert_eq!(p.backoff(200), p.max_backoff);
    }

    #[test]
    fn jitter_stays_within_the_ceiling() {
        let p = RetryPolicy::default();
        for n in 1..20 {
            assert!(p.backoff(n) <= p.backoff_ceiling(n));
        }
    }

    impl RetryPolicy {
        fn backoff_ceiling(&self, n: u32) -> Duration {
            RetryPolicy { jitter: false, ..*self }.backoff(n)
        }
    }
}
