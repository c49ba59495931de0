//! Per-IP rate limits (GCRA, via `governor`) for registration, authorization, token requests
//! and owner logins, plus an exponential lock-out after repeated wrong passphrases and a
//! global cap on login attempts. IPv6 clients are counted per /64, since one host usually
//! holds a whole /64 and could otherwise change address at every attempt. Time comes from the
//! crate's `Clock`, so tests move a clock to end a lock-out instead of sleeping.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::clock::SharedClock;
use crate::config::LimitsConfig;

/// The crate's clock as `governor` sees it: time since the epoch, to the nanosecond where the
/// clock has it.
#[derive(Clone)]
struct LimiterClock(SharedClock);

impl std::fmt::Debug for LimiterClock {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("LimiterClock")
    }
}

impl governor::clock::Clock for LimiterClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        Duration::from_nanos(self.0.now_nanos())
    }
}

type KeyedLimiter =
    RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, LimiterClock, NoOpMiddleware<Duration>>;
type GlobalLimiter = RateLimiter<NotKeyed, InMemoryState, LimiterClock, NoOpMiddleware<Duration>>;

/// Wrong passphrases tolerated before the lock-out starts.
const FREE_LOGIN_FAILURES: u32 = 3;
/// The longest lock-out after wrong passphrases.
const MAX_LOGIN_LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// Passphrase checks per minute from everyone together: a brute force spread over many
/// addresses still meets this. Only checks that run (argon2) spend it, and browsers the owner
/// logged in from before skip it, so a flood cannot lock the owner out.
const GLOBAL_LOGINS_PER_MINUTE: u32 = 30;
/// Telegram prompts per minute from everyone together: each one buzzes the owner's phone.
const GLOBAL_TELEGRAM_ASKS_PER_MINUTE: u32 = 6;

/// The gateway's rate limiters.
#[derive(Debug)]
pub struct RateLimits {
    clock: LimiterClock,
    register: KeyedLimiter,
    authorize: KeyedLimiter,
    token: KeyedLimiter,
    login: KeyedLimiter,
    telegram_ask: KeyedLimiter,
    all_logins: GlobalLimiter,
    all_telegram_asks: GlobalLimiter,
    login_failures: Mutex<HashMap<IpAddr, LoginFailures>>,
}

#[derive(Debug, Clone, Copy)]
struct LoginFailures {
    count: u32,
    /// On the limiter clock's time line (since the epoch), like `locked_until`.
    last_failure: Duration,
    locked_until: Option<Duration>,
}

/// Which limit to check.
#[derive(Debug, Clone, Copy)]
pub enum Limit {
    /// `/register`.
    Register,
    /// `/authorize` (each call parks a request in the store).
    Authorize,
    /// `/token` and `/revoke`.
    Token,
    /// The owner login form (the per-address budget and the lock-out; the global budget is
    /// `check_passphrase_budget`).
    Login,
    /// Asking the owner in Telegram (per address, and a global cap).
    TelegramAsk,
}

impl RateLimits {
    /// Builds the limiters from the configured per-minute quotas, on `clock`'s time.
    pub fn new(limits: &LimitsConfig, clock: SharedClock) -> Self {
        let clock = LimiterClock(clock);
        let quota =
            |count: u32| Quota::per_minute(NonZeroU32::new(count).unwrap_or(NonZeroU32::MIN));
        let per_minute = |count: u32| {
            RateLimiter::new(
                quota(count),
                DefaultKeyedStateStore::default(),
                clock.clone(),
            )
        };
        Self {
            register: per_minute(limits.register_per_minute),
            authorize: per_minute(limits.authorize_per_minute),
            token: per_minute(limits.token_per_minute),
            login: per_minute(limits.login_per_minute),
            telegram_ask: per_minute(limits.login_per_minute),
            all_logins: RateLimiter::direct_with_clock(
                quota(GLOBAL_LOGINS_PER_MINUTE),
                clock.clone(),
            ),
            all_telegram_asks: RateLimiter::direct_with_clock(
                quota(GLOBAL_TELEGRAM_ASKS_PER_MINUTE),
                clock.clone(),
            ),
            login_failures: Mutex::new(HashMap::new()),
            clock,
        }
    }

    fn now(&self) -> Duration {
        governor::clock::Clock::now(&self.clock)
    }

    /// Takes one request from `ip`'s budget; `Err(wait)` when it is spent. A locked-out
    /// address is refused before anything is spent.
    pub fn check(&self, limit: Limit, ip: IpAddr) -> Result<(), Duration> {
        let ip = bucket(ip);
        if matches!(limit, Limit::Login) {
            self.login_lockout(ip)?;
        }
        let limiter = match limit {
            Limit::Register => &self.register,
            Limit::Authorize => &self.authorize,
            Limit::Token => &self.token,
            Limit::Login => &self.login,
            Limit::TelegramAsk => &self.telegram_ask,
        };
        let now = self.now();
        limiter
            .check_key(&ip)
            .map_err(|not_until| not_until.wait_time_from(now))?;
        if matches!(limit, Limit::TelegramAsk) {
            self.all_telegram_asks
                .check()
                .map_err(|not_until| not_until.wait_time_from(now))?;
        }
        Ok(())
    }

    /// Takes one passphrase check from the global budget; call it only when the check (argon2)
    /// is about to run, and not for a browser the owner logged in from before.
    pub fn check_passphrase_budget(&self) -> Result<(), Duration> {
        let now = self.now();
        self.all_logins
            .check()
            .map_err(|not_until| not_until.wait_time_from(now))
    }

    /// Records a wrong passphrase from `ip`: after a few, each one doubles the lock-out.
    pub fn record_login_failure(&self, ip: IpAddr) {
        let ip = bucket(ip);
        let now = self.now();
        let mut failures = self.failures();
        let entry = failures.entry(ip).or_insert(LoginFailures {
            count: 0,
            last_failure: now,
            locked_until: None,
        });
        entry.count = entry.count.saturating_add(1);
        entry.last_failure = now;
        if entry.count >= FREE_LOGIN_FAILURES {
            let exponent = (entry.count - FREE_LOGIN_FAILURES).min(16);
            let lockout = Duration::from_secs(1u64 << exponent).min(MAX_LOGIN_LOCKOUT);
            entry.locked_until = Some(now + lockout);
        }
    }

    /// Forgets the failures of `ip` after a successful login.
    pub fn record_login_success(&self, ip: IpAddr) {
        self.failures().remove(&bucket(ip));
    }

    /// Drops idle limiter state; called by the maintenance task.
    pub fn shrink(&self) {
        self.register.retain_recent();
        self.authorize.retain_recent();
        self.token.retain_recent();
        self.login.retain_recent();
        self.telegram_ask.retain_recent();
        let now = self.now();
        // An address is forgotten a full lock-out after its last failure or lock-out, never
        // sooner: the sweep must not hand out fresh free guesses (an entry still under the
        // threshold was once dropped on every sweep).
        self.failures().retain(|_, entry| {
            let last = entry
                .locked_until
                .unwrap_or(entry.last_failure)
                .max(entry.last_failure);
            last + MAX_LOGIN_LOCKOUT > now
        });
    }

    fn login_lockout(&self, ip: IpAddr) -> Result<(), Duration> {
        let now = self.now();
        match self
            .failures()
            .get(&ip)
            .and_then(|entry| entry.locked_until)
        {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, LoginFailures>> {
        match self.login_failures.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// The rate-limit key of an address: itself for IPv4, its /64 for IPv6.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let segments = v6.segments();
            IpAddr::V6(Ipv6Addr::new(
                segments[0],
                segments[1],
                segments[2],
                segments[3],
                0,
                0,
                0,
                0,
            ))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;

    fn limits_with(config: LimitsConfig) -> (RateLimits, ManualClock) {
        let clock = ManualClock::starting_now();
        (RateLimits::new(&config, Arc::new(clock.clone())), clock)
    }

    #[test]
    fn budgets_are_per_address() {
        let (limits, _) = limits_with(LimitsConfig {
            register_per_minute: 2,
            ..LimitsConfig::default()
        });
        let first: IpAddr = "192.0.2.1".parse().expect("ip");
        let second: IpAddr = "192.0.2.2".parse().expect("ip");
        assert!(limits.check(Limit::Register, first).is_ok());
        assert!(limits.check(Limit::Register, first).is_ok());
        assert!(limits.check(Limit::Register, first).is_err());
        assert!(limits.check(Limit::Register, second).is_ok());
    }

    #[test]
    fn ipv6_addresses_share_their_64() {
        let (limits, _) = limits_with(LimitsConfig {
            register_per_minute: 1,
            ..LimitsConfig::default()
        });
        assert!(
            limits
                .check(Limit::Register, "2001:db8::1".parse().expect("ip"))
                .is_ok()
        );
        assert!(
            limits
                .check(Limit::Register, "2001:db8::2".parse().expect("ip"))
                .is_err()
        );
        assert!(
            limits
                .check(Limit::Register, "2001:db8:0:1::1".parse().expect("ip"))
                .is_ok()
        );
    }

    #[test]
    fn passphrase_checks_have_a_global_budget_across_addresses() {
        let (limits, clock) = limits_with(LimitsConfig::default());
        let refused = (0..100)
            .filter(|_| limits.check_passphrase_budget().is_err())
            .count();
        assert_eq!(refused, 100 - GLOBAL_LOGINS_PER_MINUTE as usize);
        clock.advance(60);
        assert!(limits.check_passphrase_budget().is_ok());
    }

    #[test]
    fn a_locked_out_address_spends_no_budget() {
        let (limits, _) = limits_with(LimitsConfig {
            login_per_minute: 4,
            ..LimitsConfig::default()
        });
        let ip: IpAddr = "192.0.2.6".parse().expect("ip");
        for _ in 0..FREE_LOGIN_FAILURES {
            limits.record_login_failure(ip);
        }
        for _ in 0..10 {
            assert!(limits.check(Limit::Login, ip).is_err(), "locked out");
        }
        limits.record_login_success(ip);
        // The refusals spent nothing: the per-address budget is whole.
        for _ in 0..4 {
            assert!(limits.check(Limit::Login, ip).is_ok());
        }
    }

    #[test]
    fn telegram_asks_have_their_own_budget_and_a_global_cap() {
        let (limits, _) = limits_with(LimitsConfig::default());
        let asked = (0..20u8)
            .filter(|host| {
                limits
                    .check(Limit::TelegramAsk, IpAddr::from([10, 0, 1, *host]))
                    .is_ok()
            })
            .count();
        assert_eq!(asked, GLOBAL_TELEGRAM_ASKS_PER_MINUTE as usize);
        // Asks spent nothing of the login budgets.
        assert!(
            limits
                .check(Limit::Login, IpAddr::from([10, 0, 1, 0]))
                .is_ok()
        );
        assert!(limits.check_passphrase_budget().is_ok());
    }

    #[test]
    fn repeated_login_failures_lock_out() {
        let (limits, _) = limits_with(LimitsConfig::default());
        let ip: IpAddr = "192.0.2.3".parse().expect("ip");
        for _ in 0..FREE_LOGIN_FAILURES - 1 {
            limits.record_login_failure(ip);
        }
        assert!(limits.check(Limit::Login, ip).is_ok());
        limits.record_login_failure(ip);
        assert!(limits.check(Limit::Login, ip).is_err());
        limits.record_login_success(ip);
        assert!(limits.check(Limit::Login, ip).is_ok());
    }

    #[test]
    fn the_sweep_keeps_failures_under_the_threshold_until_they_are_old() {
        let (limits, clock) = limits_with(LimitsConfig::default());
        let ip: IpAddr = "192.0.2.9".parse().expect("ip");
        for _ in 0..FREE_LOGIN_FAILURES - 1 {
            limits.record_login_failure(ip);
        }
        // The maintenance sweep runs every minute: it must not hand out fresh free guesses.
        limits.shrink();
        limits.record_login_failure(ip);
        assert!(
            limits.check(Limit::Login, ip).is_err(),
            "the third failure locks"
        );
        clock.advance(i64::try_from(2 * MAX_LOGIN_LOCKOUT.as_secs()).expect("seconds"));
        limits.shrink();
        limits.record_login_failure(ip);
        assert!(
            limits.check(Limit::Login, ip).is_ok(),
            "old failures are forgotten"
        );
    }

    #[test]
    fn a_lock_out_ends_when_the_clock_passes_it() {
        let (limits, clock) = limits_with(LimitsConfig::default());
        let ip: IpAddr = "192.0.2.4".parse().expect("ip");
        for _ in 0..FREE_LOGIN_FAILURES + 2 {
            limits.record_login_failure(ip);
        }
        // Five failures: the third starts a 1 s lock-out, each further one doubles it (4 s).
        let wait = limits.check(Limit::Login, ip).expect_err("locked out");
        assert_eq!(wait, Duration::from_secs(4));
        clock.advance(3);
        assert!(limits.check(Limit::Login, ip).is_err());
        clock.advance(1);
        assert!(limits.check(Limit::Login, ip).is_ok());
    }

    #[test]
    fn a_spent_budget_comes_back_as_the_clock_moves() {
        let (limits, clock) = limits_with(LimitsConfig {
            authorize_per_minute: 1,
            ..LimitsConfig::default()
        });
        let ip: IpAddr = "192.0.2.5".parse().expect("ip");
        assert!(limits.check(Limit::Authorize, ip).is_ok());
        assert_eq!(
            limits.check(Limit::Authorize, ip),
            Err(Duration::from_secs(60))
        );
        // `/authorize` has its own quota: registration is untouched.
        assert!(limits.check(Limit::Register, ip).is_ok());
        clock.advance(60);
        assert!(limits.check(Limit::Authorize, ip).is_ok());
    }
}
