//! Password hashing with argon2id on a pool of long-lived threads, one per core, each reusing
//! one block of argon2's working memory (issue 13: hashing on tokio's blocking threads
//! allocated 19 MiB per login on whichever thread ran it, and glibc kept those allocations:
//! a login storm left the process at half a gigabyte that it never gave back).

use crate::error::ApiError;
use anyhow::Context;
use argon2::{
    Algorithm, Argon2, Block, Params, PasswordHash, PasswordVerifier, Version,
    password_hash::{Output, SaltString, rand_core::OsRng},
};
use std::{cell::RefCell, sync::LazyLock};

/// argon2id with m = 19 MiB, t = 2, p = 1: OWASP's Password Storage Cheat Sheet minimum
/// (<https://cheatsheetseries.owasp.org/cheatsheets/Password_Storage_Cheat_Sheet.html#argon2id>).
fn params() -> Params {
    Params::new(19 * 1024, 2, 1, None).expect("constant parameters are valid")
}

fn argon2(params: Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A hash of a password nobody has, verified when the email is unknown so that a login for a
/// missing account takes as long as one with a wrong password (no user enumeration by timing).
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let mut memory = vec![Block::default(); params().block_count()];
    hash_with(&mut memory, "slipway-dummy-password-for-timing").expect("hashing a constant works")
});

/// The hashing threads: one per core. Each hash holds a core for tens of milliseconds, so more
/// at once would only queue on the CPU while multiplying memory; logins beyond them wait in the
/// pool's queue, off the async runtime, which goes on serving other requests. The kernel runs
/// them behind the runtime's threads (see [`behind_requests`]).
static POOL: LazyLock<rayon::ThreadPool> = LazyLock::new(|| {
    let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("argon2-{i}"))
        .start_handler(|_| behind_requests())
        .build()
        .expect("threads can be started")
});

/// Schedules the calling thread as batch work (Linux `SCHED_BATCH`: it never preempts a waking
/// thread) at niceness 5 (a third of a request thread's CPU share when both want a core), so a
/// login storm slows logins rather than every other request (issue 13: `/healthz` p99 within
/// 5 ms during 20 concurrent logins). Lowering one's own priority needs no privilege; should
/// it fail anyway, the thread keeps the default and says so.
fn behind_requests() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy, set_thread_priority_and_policy,
        thread_native_id,
    };
    // Crossplatform(35) is niceness 5 on Linux (thread-priority maps 0..=99 onto 19..=-20).
    let priority = ThreadPriority::Crossplatform(35u8.try_into().expect("35 is a valid priority"));
    let policy = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch);
    if let Err(e) = set_thread_priority_and_policy(thread_native_id(), priority, policy) {
        tracing::warn!(error = ?e, "password hashing runs at normal priority");
    }
}

thread_local! {
    /// The working memory of the hashes of this pool thread (19 MiB), allocated once.
    static MEMORY: RefCell<Vec<Block>> = RefCell::new(vec![Block::default(); params().block_count()]);
}

/// Runs `work` on a [`POOL`] thread with that thread's argon2 memory, and awaits its result.
async fn on_pool<T: Send + 'static>(work: impl FnOnce(&mut [Block]) -> T + Send + 'static) -> anyhow::Result<T> {
    let (answer, result) = tokio::sync::oneshot::channel();
    POOL.spawn(move || {
        let _ = answer.send(MEMORY.with_borrow_mut(|memory| work(memory)));
    });
    result.await.context("the hashing thread dropped its task")
}

/// `password` hashed with a new salt into a PHC string, in `memory`.
fn hash_with(memory: &mut [Block], password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    let mut raw = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    argon2(params())
        .hash_password_into_with_memory(password.as_bytes(), salt_bytes, &mut raw, &mut *memory)
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    let hash = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: params().try_into().map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&raw).map_err(|e| anyhow::anyhow!("argon2 output: {e}"))?),
    };
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `stored`, computed in `memory` when `stored` has
/// this module's parameters (every hash Slipway made), else by argon2's own (allocating) check.
fn verify_with(memory: &mut [Block], password: &str, stored: &str) -> bool {
    let Ok(hash) = PasswordHash::new(stored) else { return false };
    // Argon2id v19 whose memory is exactly `memory`: any time cost runs in it.
    let fits = Params::try_from(&hash).ok().filter(|p| {
        hash.algorithm == argon2::ARGON2ID_IDENT
            && hash.version == Some(Version::V0x13.into())
            && p.block_count() == memory.len()
    });
    let (Some(params), Some(salt), Some(expected)) = (fits, hash.salt, hash.hash) else {
        return argon2(params()).verify_password(password.as_bytes(), &hash).is_ok();
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_bytes) else { return false };
    let mut raw = vec![0u8; expected.len()];
    argon2(params).hash_password_into_with_memory(password.as_bytes(), salt_bytes, &mut raw, memory).is_ok()
        // Output's equality is constant-time (password-hash's `Output`).
        && Output::new(&raw).is_ok_and(|computed| computed == expected)
}

/// Hashes `password` into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`).
///
/// # Errors
/// 500 if hashing fails (a bug).
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    Ok(on_pool(move |memory| hash_with(memory, &password)).await??)
}

/// Checks `password` against a stored PHC hash, or against a dummy hash when there is none.
/// Returns `false` for a wrong password, an unknown user or an unreadable hash.
///
/// # Errors
/// 500 if the hashing thread fails (a bug).
pub async fn verify_password(password: String, stored: Option<String>) -> Result<bool, ApiError> {
    let known = stored.is_some();
    let ok = on_pool(move |memory| {
        let stored = stored.unwrap_or_else(|| DUMMY_HASH.clone());
        verify_with(memory, &password, &stored)
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

    /// Linux: the calling thread's niceness and scheduling policy, from /proc (proc(5): the
    /// fields 19 and 41 of `stat`).
    fn niceness_and_policy() -> (i32, u32) {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
        (fields[19 - 3].parse().unwrap(), fields[41 - 3].parse().unwrap())
    }

    #[tokio::test]
    async fn hashing_threads_run_behind_request_threads() {
        const SCHED_BATCH: u32 = 3;
        let (hashing, policy) = on_pool(|_| niceness_and_policy()).await.unwrap();
        assert_eq!(policy, SCHED_BATCH);
        assert!(hashing > niceness_and_policy().0, "niceness {hashing}: not behind the runtime's threads");
    }

    #[tokio::test]
    async fn hashes_made_by_argon2s_own_api_verify_and_ours_verify_there() {
        use argon2::PasswordHasher;
        let salt = SaltString::generate(&mut OsRng);
        let theirs = argon2(params()).hash_password(b"correct horse battery", &salt).unwrap().to_string();
        assert!(verify_password("correct horse battery".into(), Some(theirs.clone())).await.unwrap());
        assert!(!verify_password("wrong".into(), Some(theirs)).await.unwrap());
        let ours = hash_password("correct horse battery".into()).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(argon2(params()).verify_password(b"correct horse battery", &parsed).is_ok());
        // Other parameters (a cheaper, older hash) still verify, by argon2's own check.
        let cheap = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(1024, 1, 1, None).unwrap());
        let old = cheap.hash_password(b"correct horse battery", &salt).unwrap().to_string();
        assert!(verify_password("correct horse battery".into(), Some(old)).await.unwrap());
    }
}
