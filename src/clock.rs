//! Time as the rest of the crate sees it: a `Clock` seam, so that expiry rules are tested by
//! moving a manual clock instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, the unit of every stored time.
pub type UnixSeconds = i64;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current time in Unix seconds.
    fn now(&self) -> UnixSeconds;

    /// The current time in nanoseconds since the epoch, for rules finer than a second (rate
    /// limits). A clock that only knows seconds answers whole seconds.
    fn now_nanos(&self) -> u64 {
        u64::try_from(self.now())
            .unwrap_or(0)
            .saturating_mul(1_000_000_000)
    }
}

/// The wait before retry number `failures` (from 1): one second, doubling, at most `cap`, then
/// scaled by a jitter factor in [0.5, 1) from `jitter` (random), so retries from many workers
/// spread out. Telegram delivery and upstream reconnects share it, each with its own cap.
pub fn jittered_backoff(failures: u32, jitter: u16, cap: Duration) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    let base = Duration::from_secs(1u64 << exponent).min(cap);
    let factor = 0.5 + f64::from(jitter) / f64::from(u16::MAX) / 2.0;
    base.mul_f64(factor.min(0.9999))
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixSeconds {
        // A clock before 1970 is a broken host; treating it as the epoch keeps us running.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs() as UnixSeconds)
            .unwrap_or(0)
    }

    fn now_nanos(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to; for tests and simulations.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<AtomicI64>,
}

impl ManualClock {
    /// A manual clock starting at the current wall-clock time.
    pub fn starting_now() -> Self {
        Self {
            now: Arc::new(AtomicI64::new(SystemClock.now())),
        }
    }

    /// Moves the clock forward by `seconds`.
    pub fn advance(&self, seconds: i64) {
        self.now.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixSeconds {
        self.now.load(Ordering::SeqCst)
    }
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;
