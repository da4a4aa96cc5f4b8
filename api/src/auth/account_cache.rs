//! What every authenticated request checks beyond the token's signature: that its account
//! still exists, under which address, whether that address is verified, whether it is
//! suspended, and that its session has not ended. Answers are cached for [`TTL`], so most requests cost no database round
//! trip, and the tokens of a deleted account or an ended session stop working within [`TTL`]
//! on every replica (at once on the one that made the change).

use crate::db::Database;
use moka::future::Cache;
use std::time::Duration;

/// How long an account's state is reused before it is read again.
pub const TTL: Duration = Duration::from_secs(5);
/// Accounts kept in the cache at most (about 100 bytes each).
const CAPACITY: u64 = 100_000;

/// An account as requests see it.
#[derive(Clone, Debug)]
pub struct AccountState {
    /// Current (lowercased) address: the Kubernetes user name the API impersonates.
    pub email: String,
    /// Whether someone followed a verification link mailed to `email`.
    pub verified: bool,
    /// Whether a platform admin suspended it.
    pub suspended: bool,
}

/// The cache of [`AccountState`]s by user id (`None` records a deleted account), and of
/// whether each session is still active.
#[derive(Clone)]
pub struct AccountCache {
    cache: Cache<String, Option<AccountState>>,
    sessions: Cache<String, bool>,
}

impl Default for AccountCache {
    fn default() -> Self {
        Self {
            cache: Cache::builder().time_to_live(TTL).max_capacity(CAPACITY).build(),
            sessions: Cache::builder().time_to_live(TTL).max_capacity(CAPACITY).build(),
        }
    }
}

impl AccountCache {
    /// The account's state, from the cache or the database; `None` when it no longer exists.
    ///
    /// # Errors
    /// The database does not answer.
    pub async fn get(&self, db: &Database, user_id: &str) -> Result<Option<AccountState>, sqlx::Error> {
        if let Some(state) = self.cache.get(user_id).await {
            return Ok(state);
        }
        let state = db.user_by_id(user_id).await?.map(|u| AccountState {
            email: u.email,
            verified: u.verified,
            suspended: u.suspended,
        });
        self.cache.insert(user_id.to_string(), state.clone()).await;
        Ok(state)
    }

    /// Drops what is known of an account that just changed (verified, suspended, deleted), so this
    /// replica sees the change at once.
    pub async fn forget(&self, user_id: &str) {
        self.cache.invalidate(user_id).await;
    }

    /// Whether the session has not ended, from the cache or the database.
    ///
    /// # Errors
    /// The database does not answer.
    pub async fn session_active(&self, db: &Database, session: &str) -> Result<bool, sqlx::Error> {
        if let Some(active) = self.sessions.get(session).await {
            return Ok(active);
        }
        let active = db.session_active(session).await?;
        self.sessions.insert(session.to_string(), active).await;
        Ok(active)
    }

    /// Drops what is known of a session that just ended, so this replica refuses its access
    /// tokens at once (others within [`TTL`]).
    pub async fn forget_session(&self, session: &str) {
        self.sessions.invalidate(session).await;
    }
}
