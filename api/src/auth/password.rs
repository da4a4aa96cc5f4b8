//! Password hashing with argon2id, off the async runtime, a bounded number at a time.

use crate::error::ApiError;
use anyhow::Context;
use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version,
    password_hash::{SaltString, rand_core::OsRng},
};
use std::sync::LazyLock;
use tokio::sync::Semaphore;

/// argon2id with m = 19 MiB, t = 2, p = 1: OWASP's Password Storage Cheat Sheet minimum
/// (<https://cheatsheetseries.owasp.org/cheatsheets/Password_Storage_Cheat_Sheet.html#argon2id>).
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("constant parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A hash of a password nobody has, verified when the email is unknown so that a login for a
/// missing account takes as long as one with a wrong password (no user enumeration by timing).
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_blocking("slipway-dummy-password-for-timing").expect("hashing a constant works"));

/// Hashes running at once: one per core. Each holds 19 MiB and a core for tens of
/// milliseconds, so more at once only queue on the CPU while multiplying memory (a burst of
/// logins would otherwise take one blocking thread and 19 MiB each, up to tokio's 512
/// blocking threads), and they would starve the runtime's other blocking work.
static HASHING: LazyLock<Semaphore> =
    LazyLock::new(|| Semaphore::new(std::thread::available_parallelism().map_or(2, std::num::NonZero::get)));

/// Runs `work` on the blocking pool once a [`HASHING`] permit is free.
async fn bounded<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
    let _permit = HASHING.acquire().await.context("the hashing semaphore is never closed")?;
    tokio::task::spawn_blocking(work).await.context("hashing task")
}

fn hash_blocking(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(argon2().hash_password(password.as_bytes(), &salt).map_err(|e| anyhow::anyhow!("argon2: {e}"))?.to_string())
}

/// Hashes `password` into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`).
///
/// # Errors
/// 500 if the blocking task fails (a bug).
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    Ok(bounded(move || hash_blocking(&password)).await??)
}

/// Checks `password` against a stored PHC hash, or against a dummy hash when there is none.
/// Returns `false` for a wrong password, an unknown user or an unreadable hash.
///
/// # Errors
/// 500 if the blocking task fails (a bug).
pub async fn verify_password(password: String, stored: Option<String>) -> Result<bool, ApiError> {
    let known = stored.is_some();
    let ok = bounded(move || {
        let stored = stored.unwrap_or_else(|| DUMMY_HASH.clone());
        PasswordHash::new(&stored).is_ok_and(|hash| argon2().verify_password(password.as_bytes(), &hash).is_ok())
    })
    .await?;
    Ok(ok && known)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_differ_per_salt() {
        let a = hash_password("correct horse battery".into()).await.unwrap();
        let b = hash_password("correct horse battery".into()).await.unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b);
        assert!(verify_password("correct horse battery".into(), Some(a.clone())).await.unwrap());
        assert!(!verify_password("wrong".into(), Some(a)).await.unwrap());
        assert!(!verify_password("slipway-dummy-password-for-timing".into(), None).await.unwrap());
        assert!(!verify_password("x".into(), Some("not a hash".into())).await.unwrap());
    }
}
