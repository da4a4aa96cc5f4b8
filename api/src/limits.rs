//! Rate limits on the account endpoints, against guessing and against using Slipway to mail
//! people (OWASP Authentication Cheat Sheet, "Login Throttling"; ASVS 4.0 V2.2.1).
//!
//! - Each client address may make [`LimitsConfig::per_client_per_minute`] requests a minute
//!   to each of register, login, verification, refresh/logout and password reset; more
//!   answer 429 with `Retry-After`.
//! - Login attempts on one account from one client address are capped at
//!   [`LimitsConfig::login_per_account_per_minute`]. The cap is per (account, address), so an
//!   attacker who exhausts it locks out only themselves, never the account's holder.
//! - Each failed login on an account delays the next attempts on it, from any address, by
//!   [`delay_after`] the failures so far: at most [`MAX_LOGIN_DELAY`], a delay and never a
//!   lock, forgotten [`FAILURE_MEMORY`] after the last failure or at once on a success.
//! - An address gets at most one verification link, one "someone tried to sign up" notice
//!   and one reset link a [`MAIL_INTERVAL`] from requests anyone can make; further requests
//!   answer the same 202 and mail nothing, so nobody can flood an inbox through Slipway.
//!
//! The state is in memory, per replica: with N API replicas an address gets N times the
//! limits, which still bounds guessing and mailing by a constant.

use crate::error::ApiError;
use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::request::Parts,
};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};
use moka::future::Cache;
use std::{
    hash::Hash,
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    time::Duration,
};

/// Longest delay failed logins put before the next attempt.
pub const MAX_LOGIN_DELAY: Duration = Duration::from_secs(8);
/// Failures cost nothing until there are this many in a row: typos are free.
const FREE_FAILURES: u32 = 3;
/// How long an account's failed logins are remembered after the last one.
pub const FAILURE_MEMORY: Duration = Duration::from_secs(15 * 60);
/// Shortest interval between two registration emails to one address.
pub const MAIL_INTERVAL: Duration = Duration::from_secs(60);

/// The configurable limits.
#[derive(Clone, Copy, Debug)]
pub struct LimitsConfig {
    /// Requests a minute one client address may make to each of register, login and verify.
    pub per_client_per_minute: NonZeroU32,
    /// Login attempts a minute on one account from one client address.
    pub login_per_account_per_minute: NonZeroU32,
}

impl Default for LimitsConfig {
    /// 30 requests a minute per client and endpoint; 10 logins a minute per account and client.
    fn default() -> Self {
        Self {
            per_client_per_minute: NonZeroU32::new(30).expect("non-zero"),
            login_per_account_per_minute: NonZeroU32::new(10).expect("non-zero"),
        }
    }
}

/// The emails anyone can make Slipway send by naming an address, each with its own budget
/// per address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccountMail {
    /// The verification link of a new account.
    Link,
    /// "Someone tried to sign up with your address".
    Notice,
    /// A password reset link.
    Reset,
    /// An invitation to a tenant.
    Invitation,
}

/// An endpoint family with its own per-client budget.
#[derive(Clone, Copy, Debug)]
pub enum Endpoint {
    /// `POST /auth/register`.
    Register,
    /// `POST /auth/login`.
    Login,
    /// `POST /auth/verify` and `/auth/verify/resend`.
    Verify,
    /// `POST /auth/refresh` and `/auth/logout`.
    Refresh,
    /// `POST /auth/password-reset` and its confirmation.
    Reset,
}

/// The address of the client's connection, which the limits key on. Behind a reverse proxy
/// that is the proxy's: give each replica its own clients' connections, or limits apply to
/// the proxy as a whole (forwarded-for headers are not trusted: clients can write them).
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let ConnectInfo(peer) = parts.extensions.get::<ConnectInfo<SocketAddr>>().copied().ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!("served without connection info (Application::serve adds it)"))
        })?;
        Ok(Self(peer.ip()))
    }
}

/// The limiters of one API replica.
pub struct Limits {
    register: DefaultKeyedRateLimiter<IpAddr>,
    login: DefaultKeyedRateLimiter<IpAddr>,
    verify: DefaultKeyedRateLimiter<IpAddr>,
    refresh: DefaultKeyedRateLimiter<IpAddr>,
    reset: DefaultKeyedRateLimiter<IpAddr>,
    login_account: DefaultKeyedRateLimiter<(String, IpAddr)>,
    mail: DefaultKeyedRateLimiter<(AccountMail, String)>,
    failures: Cache<String, u32>,
}

/// The delay before a login attempt on an account with `failures` failed logins in a row:
/// nothing for the first [`FREE_FAILURES`], then 250 ms doubling with each failure, up to
/// [`MAX_LOGIN_DELAY`].
pub fn delay_after(failures: u32) -> Duration {
    match failures.checked_sub(FREE_FAILURES) {
        None => Duration::ZERO,
        Some(over) => Duration::from_millis(250).saturating_mul(1 << over.min(16)).min(MAX_LOGIN_DELAY),
    }
}

impl Limits {
    /// Limiters with `config`'s quotas.
    pub fn new(config: LimitsConfig) -> Self {
        let per_client = Quota::per_minute(config.per_client_per_minute);
        let once = Quota::with_period(MAIL_INTERVAL).expect("a non-zero period");
        Self {
            register: RateLimiter::keyed(per_client),
            login: RateLimiter::keyed(per_client),
            verify: RateLimiter::keyed(per_client),
            refresh: RateLimiter::keyed(per_client),
            reset: RateLimiter::keyed(per_client),
            login_account: RateLimiter::keyed(Quota::per_minute(config.login_per_account_per_minute)),
            mail: RateLimiter::keyed(once),
            failures: Cache::builder().time_to_idle(FAILURE_MEMORY).max_capacity(1_000_000).build(),
        }
    }

    /// Counts a request of `client` to `endpoint`.
    ///
    /// # Errors
    /// 429 with `Retry-After` when the client is over its budget for the endpoint.
    pub fn check_client(&self, endpoint: Endpoint, client: IpAddr) -> Result<(), ApiError> {
        let (limiter, what) = match endpoint {
            Endpoint::Register => (&self.register, "registrations"),
            Endpoint::Login => (&self.login, "login attempts"),
            Endpoint::Verify => (&self.verify, "verification requests"),
            Endpoint::Refresh => (&self.refresh, "token refreshes"),
            Endpoint::Reset => (&self.reset, "password reset requests"),
        };
        check(limiter, &client, &format!("too many {what} from your address"))
    }

    /// Counts a login attempt on `email` from `client`, and waits the delay its failed logins
    /// call for.
    ///
    /// # Errors
    /// 429 with `Retry-After` when `client` is over its attempts on this account.
    pub async fn before_login(&self, email: &str, client: IpAddr) -> Result<(), ApiError> {
        check(&self.login_account, &(email.to_string(), client), "too many login attempts on this account")?;
        let delay = delay_after(self.failures.get(email).await.unwrap_or(0));
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Ok(())
    }

    /// Records the outcome of a login on `email`: a failure lengthens the next delay, a
    /// success forgets the failures.
    pub async fn after_login(&self, email: &str, succeeded: bool) {
        if succeeded {
            self.failures.invalidate(email).await;
        } else {
            self.failures
                .entry(email.to_string())
                .and_upsert_with(|n| async move { n.map_or(1, |n| n.into_value().saturating_add(1)) })
                .await;
        }
    }

    /// Whether Slipway may mail `address` an email of this kind now (at most once a
    /// [`MAIL_INTERVAL`]).
    pub fn may_mail(&self, kind: AccountMail, address: &str) -> bool {
        self.mail.check_key(&(kind, address.to_string())).is_ok()
    }

    /// Forgets limiter entries that are back to a full budget (call every minute or so).
    pub fn shrink(&self) {
        self.register.retain_recent();
        self.login.retain_recent();
        self.verify.retain_recent();
        self.refresh.retain_recent();
        self.reset.retain_recent();
        self.login_account.retain_recent();
        self.mail.retain_recent();
    }
}

fn check<K: Hash + Eq + Clone>(limiter: &DefaultKeyedRateLimiter<K>, key: &K, what: &str) -> Result<(), ApiError> {
    limiter.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        ApiError::RateLimited { detail: format!("{what}; try again in {seconds} s"), retry_after_seconds: seconds }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_client: u32, per_account: u32) -> Limits {
        Limits::new(LimitsConfig {
            per_client_per_minute: NonZeroU32::new(per_client).unwrap(),
            login_per_account_per_minute: NonZeroU32::new(per_account).unwrap(),
        })
    }

    #[test]
    fn delays_grow_from_the_fourth_failure_and_stop_at_the_maximum() {
        let delays: Vec<u64> = (0..10).map(|n| delay_after(n).as_millis() as u64).collect();
        assert_eq!(delays, [0, 0, 0, 250, 500, 1000, 2000, 4000, 8000, 8000]);
        assert_eq!(delay_after(u32::MAX), MAX_LOGIN_DELAY);
    }

    #[test]
    fn each_client_has_its_own_budget_per_endpoint() {
        let limits = limits(2, 10);
        let (a, b): (IpAddr, IpAddr) = ("198.18.0.1".parse().unwrap(), "198.18.0.2".parse().unwrap());
        limits.check_client(Endpoint::Register, a).unwrap();
        limits.check_client(Endpoint::Register, a).unwrap();
        let ApiError::RateLimited { detail, retry_after_seconds } =
            limits.check_client(Endpoint::Register, a).unwrap_err()
        else {
            panic!("a 429")
        };
        assert!(detail.starts_with("too many registrations from your address"), "{detail}");
        assert!((1..=30).contains(&retry_after_seconds), "{retry_after_seconds}");
        limits.check_client(Endpoint::Register, b).unwrap();
        limits.check_client(Endpoint::Login, a).unwrap();
    }

    #[tokio::test]
    async fn an_attacker_exhausts_only_their_own_attempts_on_an_account() {
        let limits = limits(100, 2);
        let (attacker, holder): (IpAddr, IpAddr) = ("198.18.0.66".parse().unwrap(), "198.18.0.7".parse().unwrap());
        for _ in 0..2 {
            limits.before_login("ada@example.com", attacker).await.unwrap();
            limits.after_login("ada@example.com", false).await;
        }
        assert!(limits.before_login("ada@example.com", attacker).await.is_err());
        limits.before_login("ada@example.com", holder).await.unwrap();
    }

    #[tokio::test]
    async fn failures_count_up_and_a_success_forgets_them() {
        let limits = limits(100, 100);
        for _ in 0..4 {
            limits.after_login("ada@example.com", false).await;
        }
        assert_eq!(limits.failures.get("ada@example.com").await, Some(4));
        assert_eq!(limits.failures.get("bob@example.com").await, None);
        limits.after_login("ada@example.com", true).await;
        assert_eq!(limits.failures.get("ada@example.com").await, None);
    }

    #[test]
    fn an_address_gets_each_registration_email_once_a_minute() {
        let limits = limits(100, 100);
        assert!(limits.may_mail(AccountMail::Link, "ada@example.com"));
        assert!(!limits.may_mail(AccountMail::Link, "ada@example.com"));
        assert!(limits.may_mail(AccountMail::Notice, "ada@example.com"));
        assert!(!limits.may_mail(AccountMail::Notice, "ada@example.com"));
        assert!(limits.may_mail(AccountMail::Link, "bob@example.com"));
    }
}
