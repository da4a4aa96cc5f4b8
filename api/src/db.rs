//! Users, email tokens, tenants and memberships in SQL (SQLite by default, PostgreSQL by
//! URL) via sqlx. Timestamps are RFC 3339 UTC strings to the second (`2026-11-22T05:34:26Z`),
//! the same in both databases; comparisons of them happen in Rust.

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::{AnyPool, Row, any::AnyPoolOptions};

/// A stored user.
#[derive(Clone, Debug)]
pub struct User {
    /// UUID.
    pub id: String,
    /// Lowercased email, unique.
    pub email: String,
    /// Display name.
    pub name: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Whether someone followed a verification link mailed to `email`.
    pub verified: bool,
    /// How many tenants it may own, if a platform admin set it; `None`: the platform's default.
    pub max_tenants: Option<u32>,
    /// Whether a platform admin suspended it.
    pub suspended: bool,
}

/// A user as platform admins list them.
#[derive(Clone, Debug)]
pub struct UserSummary {
    /// The account.
    pub user: User,
    /// Plans a platform admin granted it, by name.
    pub granted_plans: Vec<String>,
    /// Tenants it owns, by name.
    pub owned_tenants: Vec<String>,
}

/// A tenant as platform admins list them.
#[derive(Clone, Debug)]
pub struct TenantRecord {
    /// Tenant name.
    pub name: String,
    /// Its plan.
    pub plan: String,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// Emails of its owners.
    pub owners: Vec<String>,
}

/// A person of a tenant.
#[derive(Clone, Debug)]
pub struct Member {
    /// Their account.
    pub user_id: String,
    /// Their address.
    pub email: String,
    /// Their name.
    pub name: String,
    /// `owner`, `admin` or `member`.
    pub role: String,
}

/// What a change to someone's membership did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberChange {
    /// Done; their role before it.
    Done {
        /// The role they had.
        previous: String,
    },
    /// They are not in the tenant.
    NotMember,
    /// They are its last owner, who cannot leave or stop being an owner.
    LastOwner,
}

/// A stored invitation (the token itself is never stored).
#[derive(Clone, Debug)]
pub struct Invitation {
    /// The tenant it invites to.
    pub tenant: String,
    /// The address it was mailed to.
    pub email: String,
    /// The role it gives.
    pub role: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// Whether it was accepted.
    pub accepted: bool,
}

/// Why an invitation could not be accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AcceptRefusal {
    /// Accepted before (by a concurrent request).
    Used,
    /// The account is in the tenant already.
    AlreadyMember,
}

/// One audit event, as stored (see `crate::audit`).
#[derive(Clone, Debug)]
pub struct AuditRecord {
    /// UUID.
    pub id: String,
    /// RFC 3339 UTC with microseconds.
    pub time: String,
    /// The caller's address, or `anonymous`.
    pub actor: String,
    /// The caller's account id, when authenticated.
    pub actor_id: Option<String>,
    /// `METHOD route`.
    pub action: String,
    /// The tenant the call named, if any.
    pub tenant: Option<String>,
    /// The path acted on.
    pub object: String,
    /// HTTP status of the answer.
    pub status: u16,
    /// The client's IP address.
    pub client: String,
}

/// Why a tenant could not be recorded (see [`Database::claim_tenant`]).
#[derive(Debug)]
pub enum TenantRefusal {
    /// The owner already owns as many tenants as it may: these.
    AtLimit(Vec<String>),
    /// The owner's account no longer exists.
    NoAccount,
    /// The name is taken.
    NameTaken,
}

/// A stored single-use email token (the token itself is never stored).
#[derive(Clone, Debug)]
pub struct EmailToken {
    /// Whose account it acts on.
    pub user_id: String,
    /// The address it was mailed to.
    pub email: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was used, if it was.
    pub used_at: Option<DateTime<Utc>>,
}

/// What spending a refresh token did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// No such token.
    Unknown,
    /// Past its expiry.
    Expired,
    /// Its session was ended (logout, or a reuse).
    Ended,
    /// It was spent before: its session is now ended.
    Reused {
        /// The ended session.
        session: String,
    },
    /// Spent; the next token of the session is stored.
    Rotated {
        /// The session.
        session: String,
        /// Its account.
        user_id: String,
    },
}

/// What a single-use token is for (the `purpose` column): verifying an address.
pub const VERIFY_EMAIL: &str = "verify-email";
/// What a single-use token is for (the `purpose` column): choosing a new password.
pub const RESET_PASSWORD: &str = "reset-password";
/// What a single-use token is for (the `purpose` column): moving the account to the address
/// the token was mailed to.
pub const CHANGE_EMAIL: &str = "change-email";

/// A tenant as the caller sees it in SQL: its plan and the caller's role.
#[derive(Clone, Debug)]
pub struct Membership {
    /// Tenant name.
    pub tenant: String,
    /// Plan at creation.
    pub plan: String,
    /// `owner` or `member`.
    pub role: String,
}

/// Whether an insert hit a unique constraint (a taken email or tenant name).
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// The connection pool and the queries the API runs.
#[derive(Clone)]
pub struct Database {
    pool: AnyPool,
}

fn now() -> String {
    timestamp(Utc::now())
}

/// The stored form of a time.
pub fn timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn parse_time(column: &str, text: &str) -> sqlx::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| sqlx::Error::ColumnDecode { index: column.into(), source: Box::new(e) })
}

impl Database {
    /// Connects and runs the migrations in `api/migrations`.
    ///
    /// # Errors
    /// Unreachable database, bad URL, failed migration.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new().max_connections(10).connect(url).await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self { pool })
    }

    /// Checks the database answers (readiness).
    ///
    /// # Errors
    /// The database does not answer.
    pub async fn ping(&self) -> sqlx::Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(drop)
    }

    /// Inserts a user; a taken email is a unique violation (see [`is_unique_violation`]).
    pub async fn insert_user(&self, user: &User) -> sqlx::Result<()> {
        insert_user(&self.pool, user).await
    }

    /// Finds a user by (lowercased) email.
    pub async fn user_by_email(&self, email: &str) -> sqlx::Result<Option<User>> {
        self.user_where("email", email).await
    }

    /// Finds a user by id.
    pub async fn user_by_id(&self, id: &str) -> sqlx::Result<Option<User>> {
        self.user_where("id", id).await
    }

    async fn user_where(&self, column: &'static str, value: &str) -> sqlx::Result<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE {column} = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(value).fetch_optional(&self.pool).await?;
        row.as_ref().map(user_from).transpose()
    }

    /// Up to `limit` users with emails after `after`, by email, with their grants and the
    /// tenants they own.
    pub async fn list_users(&self, after: &str, limit: u32) -> sqlx::Result<Vec<UserSummary>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email > $1 ORDER BY email LIMIT $2");
        let rows =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(after).bind(i64::from(limit)).fetch_all(&self.pool).await?;
        let mut users = Vec::with_capacity(rows.len());
        for row in &rows {
            let user = user_from(row)?;
            let owned_tenants = self.owned_tenants(&user.id).await?;
            users.push(UserSummary { granted_plans: self.granted_plans(&user.id).await?, owned_tenants, user });
        }
        Ok(users)
    }

    /// Plans a platform admin granted the user, by name.
    pub async fn granted_plans(&self, user_id: &str) -> sqlx::Result<Vec<String>> {
        sqlx::query_scalar("SELECT plan FROM plan_grants WHERE user_id = $1 ORDER BY plan")
            .bind(user_id)
            .fetch_all(&self.pool)
            .await
    }

    /// Tenants the user owns, by name.
    pub async fn owned_tenants(&self, user_id: &str) -> sqlx::Result<Vec<String>> {
        owned_tenants(&self.pool, user_id).await
    }

    /// Sets what the user may have: `max_tenants` (`None`: the platform's default) and the
    /// plans granted beyond the self-service ones, replacing earlier grants. Returns whether
    /// the user exists.
    pub async fn set_entitlements(
        &self,
        user_id: &str,
        max_tenants: Option<u32>,
        plans: &[String],
        granted_by: &str,
    ) -> sqlx::Result<bool> {
        let mut tx = self.pool.begin().await?;
        let found = sqlx::query("UPDATE users SET max_tenants = $1 WHERE id = $2")
            .bind(max_tenants.map(i64::from))
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if found != 1 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM plan_grants WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        for plan in plans {
            sqlx::query("INSERT INTO plan_grants (user_id, plan, granted_by, granted_at) VALUES ($1, $2, $3, $4)")
                .bind(user_id)
                .bind(plan)
                .bind(granted_by)
                .bind(now())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Suspends the user (ending every session, in the same transaction) or reactivates it.
    /// Returns the ended sessions, or `None` when there is no such user.
    pub async fn set_suspended(&self, user_id: &str, suspended: bool) -> sqlx::Result<Option<Vec<String>>> {
        let mut tx = self.pool.begin().await?;
        let suspended_at = suspended.then(now);
        let found = sqlx::query("UPDATE users SET suspended_at = $1 WHERE id = $2")
            .bind(suspended_at)
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if found != 1 {
            return Ok(None);
        }
        let ended = if suspended { end_sessions_in(&mut tx, user_id, None).await? } else { Vec::new() };
        tx.commit().await?;
        Ok(Some(ended))
    }

    /// Up to `limit` tenants with names after `after`, by name, with their owners' emails.
    pub async fn list_tenants(&self, after: &str, limit: u32) -> sqlx::Result<Vec<TenantRecord>> {
        let rows = sqlx::query("SELECT name, plan, created_at FROM tenants WHERE name > $1 ORDER BY name LIMIT $2")
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        let mut tenants = Vec::with_capacity(rows.len());
        for r in &rows {
            let name: String = r.try_get("name")?;
            let owners = sqlx::query_scalar(
                "SELECT u.email FROM memberships m JOIN users u ON u.id = m.user_id \
                 WHERE m.tenant = $1 AND m.role = 'owner' ORDER BY u.email",
            )
            .bind(&name)
            .fetch_all(&self.pool)
            .await?;
            tenants.push(TenantRecord { plan: r.try_get("plan")?, created_at: r.try_get("created_at")?, owners, name });
        }
        Ok(tenants)
    }

    /// Records the tenant's new plan; whether the tenant exists.
    pub async fn set_tenant_plan(&self, name: &str, plan: &str) -> sqlx::Result<bool> {
        let found = sqlx::query("UPDATE tenants SET plan = $1 WHERE name = $2")
            .bind(plan)
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(found == 1)
    }

    /// Replaces the unverified account `old_id`, if it is still unverified and in no tenant,
    /// by `user` (same address, a new id): its tokens and links die with it. Returns whether
    /// it was replaced.
    pub async fn replace_unverified_user(&self, old_id: &str, user: &User) -> sqlx::Result<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM email_tokens WHERE user_id = $1").bind(old_id).execute(&mut *tx).await?;
        let deleted = sqlx::query(
            "DELETE FROM users WHERE id = $1 AND email_verified_at IS NULL \
             AND NOT EXISTS (SELECT 1 FROM memberships WHERE user_id = $1)",
        )
        .bind(old_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if deleted != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_user(&mut *tx, user).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Starts session `id` of `user_id` with its first refresh token.
    pub async fn insert_session(
        &self,
        id: &str,
        user_id: &str,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> sqlx::Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO sessions (id, user_id, created_at) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(user_id)
            .bind(now())
            .execute(&mut *tx)
            .await?;
        insert_refresh_token(&mut tx, token_hash, id, expires_at).await?;
        tx.commit().await
    }

    /// Spends the refresh token `spent` and stores `next` in its place, or says why not. A
    /// token spent before ends its session (in the same transaction).
    pub async fn rotate_refresh_token(
        &self,
        spent: &str,
        next: &str,
        now: DateTime<Utc>,
        next_expires_at: DateTime<Utc>,
    ) -> sqlx::Result<RefreshOutcome> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "SELECT r.session_id, r.expires_at, r.spent_at, s.user_id, s.revoked_at FROM refresh_tokens r \
             JOIN sessions s ON s.id = r.session_id WHERE r.token_hash = $1",
        )
        .bind(spent)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(RefreshOutcome::Unknown) };
        let session: String = row.try_get("session_id")?;
        if row.try_get::<Option<String>, _>("revoked_at")?.is_some() {
            return Ok(RefreshOutcome::Ended);
        }
        let reused = row.try_get::<Option<String>, _>("spent_at")?.is_some()
            || sqlx::query("UPDATE refresh_tokens SET spent_at = $1 WHERE token_hash = $2 AND spent_at IS NULL")
                .bind(timestamp(now))
                .bind(spent)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 0;
        if reused {
            end_session(&mut tx, &session).await?;
            tx.commit().await?;
            return Ok(RefreshOutcome::Reused { session });
        }
        if parse_time("expires_at", &row.try_get::<String, _>("expires_at")?)? <= now {
            return Ok(RefreshOutcome::Expired);
        }
        insert_refresh_token(&mut tx, next, &session, next_expires_at).await?;
        tx.commit().await?;
        Ok(RefreshOutcome::Rotated { session, user_id: row.try_get("user_id")? })
    }

    /// Ends the session of the refresh token with this hash; its id, if the token exists.
    pub async fn end_session_of(&self, token_hash: &str) -> sqlx::Result<Option<String>> {
        let mut tx = self.pool.begin().await?;
        let session: Option<String> = sqlx::query_scalar("SELECT session_id FROM refresh_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(session) = &session {
            end_session(&mut tx, session).await?;
        }
        tx.commit().await?;
        Ok(session)
    }

    /// Ends every session of the account; their ids.
    pub async fn end_sessions_of_user(&self, user_id: &str) -> sqlx::Result<Vec<String>> {
        let mut tx = self.pool.begin().await?;
        let sessions = end_sessions_in(&mut tx, user_id, None).await?;
        tx.commit().await?;
        Ok(sessions)
    }

    /// Ends every session of the account but `keep`; their ids.
    pub async fn end_other_sessions(&self, user_id: &str, keep: &str) -> sqlx::Result<Vec<String>> {
        let mut tx = self.pool.begin().await?;
        let ended = end_sessions_in(&mut tx, user_id, Some(keep)).await?;
        tx.commit().await?;
        Ok(ended)
    }

    /// Sets the account's name and, when given, its password (argon2id PHC string).
    pub async fn update_profile(&self, user_id: &str, name: &str, password_hash: Option<&str>) -> sqlx::Result<()> {
        sqlx::query("UPDATE users SET name = $1, password_hash = COALESCE($2, password_hash) WHERE id = $3")
            .bind(name)
            .bind(password_hash)
            .bind(user_id)
            .execute(&self.pool)
            .await
            .map(drop)
    }

    /// Deletes the account with its tokens, sessions and memberships, unless it owns a tenant
    /// (checked in the same transaction). Returns whether it was deleted.
    pub async fn delete_user(&self, user_id: &str) -> sqlx::Result<bool> {
        let mut tx = self.pool.begin().await?;
        let owns: Option<String> =
            sqlx::query_scalar("SELECT tenant FROM memberships WHERE user_id = $1 AND role = 'owner' LIMIT 1")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
        if owns.is_some() {
            return Ok(false);
        }
        // Explicit, rather than ON DELETE CASCADE, which SQLite honours only with foreign keys on.
        for sql in [
            "DELETE FROM refresh_tokens WHERE session_id IN (SELECT id FROM sessions WHERE user_id = $1)",
            "DELETE FROM sessions WHERE user_id = $1",
            "DELETE FROM email_tokens WHERE user_id = $1",
            "DELETE FROM plan_grants WHERE user_id = $1",
            "DELETE FROM memberships WHERE user_id = $1",
            "DELETE FROM users WHERE id = $1",
        ] {
            sqlx::query(sql).bind(user_id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Whether the session exists and has not ended.
    pub async fn session_active(&self, id: &str) -> sqlx::Result<bool> {
        let revoked: Option<Option<String>> = sqlx::query_scalar("SELECT revoked_at FROM sessions WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(matches!(revoked, Some(None)))
    }

    /// Stores the hash of a token mailed to `email` for `purpose`, working until `expires_at`.
    pub async fn insert_email_token(
        &self,
        token_hash: &str,
        user_id: &str,
        purpose: &str,
        email: &str,
        expires_at: DateTime<Utc>,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO email_tokens (token_hash, user_id, purpose, email, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(purpose)
        .bind(email)
        .bind(now())
        .bind(timestamp(expires_at))
        .execute(&self.pool)
        .await
        .map(drop)
    }

    /// When the newest token for `purpose` was made for the user, if ever.
    pub async fn latest_email_token(&self, user_id: &str, purpose: &str) -> sqlx::Result<Option<DateTime<Utc>>> {
        let latest: Option<String> =
            sqlx::query_scalar("SELECT MAX(created_at) FROM email_tokens WHERE user_id = $1 AND purpose = $2")
                .bind(user_id)
                .bind(purpose)
                .fetch_one(&self.pool)
                .await?;
        latest.map(|t| parse_time("created_at", &t)).transpose()
    }

    /// The token with this hash and purpose, used or not.
    pub async fn email_token(&self, token_hash: &str, purpose: &str) -> sqlx::Result<Option<EmailToken>> {
        let row = sqlx::query(
            "SELECT user_id, email, expires_at, used_at FROM email_tokens WHERE token_hash = $1 AND purpose = $2",
        )
        .bind(token_hash)
        .bind(purpose)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(EmailToken {
                user_id: r.try_get("user_id")?,
                email: r.try_get("email")?,
                expires_at: parse_time("expires_at", &r.try_get::<String, _>("expires_at")?)?,
                used_at: r.try_get::<Option<String>, _>("used_at")?.map(|t| parse_time("used_at", &t)).transpose()?,
            })
        })
        .transpose()
    }

    /// Uses a verification token: marks it used and the account verified, if the token was
    /// still unused and the account still has the address it was mailed to. Returns whether
    /// both happened (false when a concurrent use won, or the address changed since).
    pub async fn verify_email(&self, token_hash: &str, token: &EmailToken) -> sqlx::Result<bool> {
        let mut tx = self.pool.begin().await?;
        if !use_email_token(&mut tx, token_hash, token).await? {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Uses an address-change token: marks it used and gives the account the address it was
    /// mailed to, verified. Returns `Ok(false)` when the token was used meanwhile, and a
    /// unique violation when another account has taken the address since.
    pub async fn change_email(&self, token_hash: &str, token: &EmailToken) -> sqlx::Result<bool> {
        let mut tx = self.pool.begin().await?;
        if !spend_email_token(&mut tx, token_hash).await? {
            return Ok(false);
        }
        sqlx::query("UPDATE users SET email = $1, email_verified_at = $2 WHERE id = $3")
            .bind(&token.email)
            .bind(now())
            .bind(&token.user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Uses a reset token: sets the password (argon2id PHC string `password_hash`), marks the
    /// address verified (the link proved it) and ends every session of the account, if the
    /// token was still unused and the account still has the address it was mailed to.
    /// Returns the ended sessions, or `None` when nothing happened.
    pub async fn reset_password(
        &self,
        token_hash: &str,
        token: &EmailToken,
        password_hash: &str,
    ) -> sqlx::Result<Option<Vec<String>>> {
        let mut tx = self.pool.begin().await?;
        if !use_email_token(&mut tx, token_hash, token).await? {
            return Ok(None);
        }
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(&token.user_id)
            .execute(&mut *tx)
            .await?;
        let sessions = end_sessions_in(&mut tx, &token.user_id, None).await?;
        tx.commit().await?;
        Ok(Some(sessions))
    }

    /// Records a new tenant owned by `owner`, who may own `max_tenants` in all, and commits:
    /// the claim of the name and of one of the owner's slots, which the caller releases with
    /// [`Database::release_tenant_claim`] if the Tenant cannot be created in Kubernetes. Or
    /// why not.
    ///
    /// The owner's row is written first, which locks it (a row lock in PostgreSQL, the write
    /// lock in SQLite) until the transaction ends: concurrent creates by one account take
    /// turns, so they cannot both count the same free slot. The transaction holds no lock
    /// across a Kubernetes call (issue 13: 100 creates 8 at a time waited up to 4.6 s on
    /// SQLite's write lock, and 2 answered "database is locked").
    pub async fn claim_tenant(
        &self,
        name: &str,
        plan: &str,
        owner: &str,
        max_tenants: u32,
    ) -> sqlx::Result<Result<(), TenantRefusal>> {
        let mut tx = self.pool.begin().await?;
        let found = sqlx::query("UPDATE users SET max_tenants = max_tenants WHERE id = $1")
            .bind(owner)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if found != 1 {
            return Ok(Err(TenantRefusal::NoAccount));
        }
        let owned = owned_tenants(&mut *tx, owner).await?;
        if owned.len() >= max_tenants as usize {
            return Ok(Err(TenantRefusal::AtLimit(owned)));
        }
        let inserted = sqlx::query("INSERT INTO tenants (name, plan, created_by, created_at) VALUES ($1, $2, $3, $4)")
            .bind(name)
            .bind(plan)
            .bind(owner)
            .bind(now())
            .execute(&mut *tx)
            .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => return Ok(Err(TenantRefusal::NameTaken)),
            other => other?,
        };
        sqlx::query("INSERT INTO memberships (tenant, user_id, role, created_at) VALUES ($1, $2, 'owner', $3)")
            .bind(name)
            .bind(owner)
            .bind(now())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// Takes back the claim [`Database::claim_tenant`] made for `owner` on `name` (the
    /// Tenant could not be created): its owner membership and the name. Someone else's tenant
    /// of that name is never touched.
    pub async fn release_tenant_claim(&self, name: &str, owner: &str) -> sqlx::Result<()> {
        // A write first, as in every transaction here: in SQLite a transaction that reads and
        // then writes can be refused at once ("database is locked") when another writer came
        // between, where one that writes first waits its turn.
        let mut tx = self.pool.begin().await?;
        let released = sqlx::query("DELETE FROM tenants WHERE name = $1 AND created_by = $2")
            .bind(name)
            .bind(owner)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if released == 1 {
            sqlx::query("DELETE FROM memberships WHERE tenant = $1").bind(name).execute(&mut *tx).await?;
        }
        tx.commit().await
    }

    /// The caller's membership of `tenant`, if any.
    pub async fn membership(&self, user_id: &str, tenant: &str) -> sqlx::Result<Option<Membership>> {
        let row = sqlx::query(
            "SELECT t.name, t.plan, m.role FROM memberships m JOIN tenants t ON t.name = m.tenant \
             WHERE m.user_id = $1 AND m.tenant = $2",
        )
        .bind(user_id)
        .bind(tenant)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| membership_from(&r)).transpose()
    }

    /// Every tenant the user belongs to, by name.
    pub async fn memberships(&self, user_id: &str) -> sqlx::Result<Vec<Membership>> {
        sqlx::query(
            "SELECT t.name, t.plan, m.role FROM memberships m JOIN tenants t ON t.name = m.tenant \
             WHERE m.user_id = $1 ORDER BY t.name",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(membership_from)
        .collect()
    }

    /// The tenant's people: owners first, then admins, then members, each by email.
    pub async fn members(&self, tenant: &str) -> sqlx::Result<Vec<Member>> {
        sqlx::query(
            "SELECT m.user_id, u.email, u.name, m.role FROM memberships m JOIN users u ON u.id = m.user_id \
             WHERE m.tenant = $1 \
             ORDER BY CASE m.role WHEN 'owner' THEN 0 WHEN 'admin' THEN 1 ELSE 2 END, u.email",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(Member {
                user_id: r.try_get("user_id")?,
                email: r.try_get("email")?,
                name: r.try_get("name")?,
                role: r.try_get("role")?,
            })
        })
        .collect()
    }

    /// Gives `user_id` the `role` in `tenant` (`None`: removes them), unless that leaves the
    /// tenant without an owner. The tenant's row is written first, which locks it until the
    /// transaction ends, so two owners demoting each other at once cannot both succeed.
    pub async fn change_member(&self, tenant: &str, user_id: &str, role: Option<&str>) -> sqlx::Result<MemberChange> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE tenants SET plan = plan WHERE name = $1").bind(tenant).execute(&mut *tx).await?;
        let previous: Option<String> =
            sqlx::query_scalar("SELECT role FROM memberships WHERE tenant = $1 AND user_id = $2")
                .bind(tenant)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(previous) = previous else { return Ok(MemberChange::NotMember) };
        if previous == "owner" && role != Some("owner") {
            let owners: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM memberships WHERE tenant = $1 AND role = 'owner'")
                    .bind(tenant)
                    .fetch_one(&mut *tx)
                    .await?;
            if owners <= 1 {
                return Ok(MemberChange::LastOwner);
            }
        }
        let query = match role {
            Some(role) => sqlx::query("UPDATE memberships SET role = $1 WHERE tenant = $2 AND user_id = $3").bind(role),
            None => sqlx::query("DELETE FROM memberships WHERE tenant = $1 AND user_id = $2"),
        };
        query.bind(tenant).bind(user_id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(MemberChange::Done { previous })
    }

    /// Stores an invitation to `tenant` with `role`, mailed to `email`.
    pub async fn insert_invitation(
        &self,
        token_hash: &str,
        tenant: &str,
        email: &str,
        role: &str,
        invited_by: &str,
        expires_at: DateTime<Utc>,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO invitations (token_hash, tenant, email, role, invited_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(token_hash)
        .bind(tenant)
        .bind(email)
        .bind(role)
        .bind(invited_by)
        .bind(now())
        .bind(timestamp(expires_at))
        .execute(&self.pool)
        .await
        .map(drop)
    }

    /// The invitation with this token hash, accepted or not.
    pub async fn invitation(&self, token_hash: &str) -> sqlx::Result<Option<Invitation>> {
        let row =
            sqlx::query("SELECT tenant, email, role, expires_at, accepted_at FROM invitations WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| {
            Ok(Invitation {
                tenant: r.try_get("tenant")?,
                email: r.try_get("email")?,
                role: r.try_get("role")?,
                expires_at: parse_time("expires_at", &r.try_get::<String, _>("expires_at")?)?,
                accepted: r.try_get::<Option<String>, _>("accepted_at")?.is_some(),
            })
        })
        .transpose()
    }

    /// Accepts the invitation for `user_id`: marks it used and adds them to its tenant with
    /// its role, in one transaction.
    pub async fn accept_invitation(
        &self,
        token_hash: &str,
        invitation: &Invitation,
        user_id: &str,
    ) -> sqlx::Result<Result<(), AcceptRefusal>> {
        let mut tx = self.pool.begin().await?;
        let used = sqlx::query("UPDATE invitations SET accepted_at = $1 WHERE token_hash = $2 AND accepted_at IS NULL")
            .bind(now())
            .bind(token_hash)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if used != 1 {
            return Ok(Err(AcceptRefusal::Used));
        }
        let inserted =
            sqlx::query("INSERT INTO memberships (tenant, user_id, role, created_at) VALUES ($1, $2, $3, $4)")
                .bind(&invitation.tenant)
                .bind(user_id)
                .bind(&invitation.role)
                .bind(now())
                .execute(&mut *tx)
                .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => return Ok(Err(AcceptRefusal::AlreadyMember)),
            other => other?,
        };
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// Appends an audit event, unless one with its id is on record (see `ClusterChange::id`).
    pub async fn append_audit(&self, r: &AuditRecord) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO audit_events (id, time, actor, actor_id, action, tenant, object, status, client) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&r.id)
        .bind(&r.time)
        .bind(&r.actor)
        .bind(&r.actor_id)
        .bind(&r.action)
        .bind(&r.tenant)
        .bind(&r.object)
        .bind(i64::from(r.status))
        .bind(&r.client)
        .execute(&self.pool)
        .await
        .map(drop)
    }

    /// Up to `limit` audit events, newest first: of `tenant` (all for `None`), at or after
    /// `since`, by `actor`, older than the `(time, id)` of `before`.
    pub async fn audit_events(
        &self,
        tenant: Option<&str>,
        since: Option<&str>,
        actor: Option<&str>,
        before: Option<&(String, String)>,
        limit: u32,
    ) -> sqlx::Result<Vec<AuditRecord>> {
        let mut sql = String::from(
            "SELECT id, time, actor, actor_id, action, tenant, object, status, client FROM audit_events WHERE 1 = 1",
        );
        let mut binds: Vec<String> = Vec::new();
        let mut condition = |sql: &mut String, template: &str, value: &str| {
            binds.push(value.to_string());
            sql.push_str(&template.replace('#', &format!("${}", binds.len())));
        };
        if let Some(tenant) = tenant {
            condition(&mut sql, " AND tenant = #", tenant);
        }
        if let Some(since) = since {
            condition(&mut sql, " AND time >= #", since);
        }
        if let Some(actor) = actor {
            condition(&mut sql, " AND actor = #", actor);
        }
        if let Some((time, id)) = before {
            condition(&mut sql, " AND (time < #", time);
            condition(&mut sql, " OR (time = #", time);
            condition(&mut sql, " AND id < #))", id);
        }
        sql.push_str(&format!(" ORDER BY time DESC, id DESC LIMIT {limit}"));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for value in binds {
            query = query.bind(value);
        }
        query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(AuditRecord {
                    id: r.try_get("id")?,
                    time: r.try_get("time")?,
                    actor: r.try_get("actor")?,
                    actor_id: r.try_get("actor_id")?,
                    action: r.try_get("action")?,
                    tenant: r.try_get("tenant")?,
                    object: r.try_get("object")?,
                    status: u16::try_from(r.try_get::<i64, _>("status")?).unwrap_or_default(),
                    client: r.try_get("client")?,
                })
            })
            .collect()
    }

    /// Removes a tenant, its memberships and its invitations.
    pub async fn delete_tenant(&self, name: &str) -> sqlx::Result<()> {
        let mut tx = self.pool.begin().await?;
        // Explicit, rather than relying on ON DELETE CASCADE, which SQLite only honours when
        // foreign keys are enabled on the connection.
        sqlx::query("DELETE FROM invitations WHERE tenant = $1").bind(name).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM memberships WHERE tenant = $1").bind(name).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM tenants WHERE name = $1").bind(name).execute(&mut *tx).await?;
        tx.commit().await
    }
}

/// The columns [`user_from`] reads.
const USER_COLUMNS: &str = "id, email, name, password_hash, email_verified_at, max_tenants, suspended_at";

fn user_from(r: &sqlx::any::AnyRow) -> sqlx::Result<User> {
    Ok(User {
        id: r.try_get("id")?,
        email: r.try_get("email")?,
        name: r.try_get("name")?,
        password_hash: r.try_get("password_hash")?,
        verified: r.try_get::<Option<String>, _>("email_verified_at")?.is_some(),
        max_tenants: r.try_get::<Option<i64>, _>("max_tenants")?.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        suspended: r.try_get::<Option<String>, _>("suspended_at")?.is_some(),
    })
}

async fn owned_tenants<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
    user_id: &str,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT tenant FROM memberships WHERE user_id = $1 AND role = 'owner' ORDER BY tenant")
        .bind(user_id)
        .fetch_all(executor)
        .await
}

async fn insert_user<'c>(executor: impl sqlx::Executor<'c, Database = sqlx::Any>, user: &User) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO users (id, email, name, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&user.id)
        .bind(&user.email)
        .bind(&user.name)
        .bind(&user.password_hash)
        .bind(now())
        .execute(executor)
        .await
        .map(drop)
}

/// Marks an email token used and its account's address verified, in `tx`: false (and
/// nothing to commit) when it was used already or the account's address changed since.
async fn use_email_token(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    token_hash: &str,
    token: &EmailToken,
) -> sqlx::Result<bool> {
    let used = spend_email_token(tx, token_hash).await?;
    let verified = sqlx::query(
        "UPDATE users SET email_verified_at = COALESCE(email_verified_at, $1) WHERE id = $2 AND email = $3",
    )
    .bind(now())
    .bind(&token.user_id)
    .bind(&token.email)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(used && verified == 1)
}

/// Marks the email token used, in `tx`: false when it was used already (a concurrent use won).
async fn spend_email_token(tx: &mut sqlx::Transaction<'static, sqlx::Any>, token_hash: &str) -> sqlx::Result<bool> {
    let used = sqlx::query("UPDATE email_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL")
        .bind(now())
        .bind(token_hash)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    Ok(used == 1)
}

async fn insert_refresh_token(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    token_hash: &str,
    session: &str,
    expires_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(token_hash)
        .bind(session)
        .bind(now())
        .bind(timestamp(expires_at))
        .execute(&mut **tx)
        .await
        .map(drop)
}

/// Ends every active session of the account but `except`, in `tx`; their ids.
async fn end_sessions_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    user_id: &str,
    except: Option<&str>,
) -> sqlx::Result<Vec<String>> {
    let sessions: Vec<String> = sqlx::query_scalar("SELECT id FROM sessions WHERE user_id = $1 AND revoked_at IS NULL")
        .bind(user_id)
        .fetch_all(&mut **tx)
        .await?;
    let sessions: Vec<String> = sessions.into_iter().filter(|s| Some(s.as_str()) != except).collect();
    for session in &sessions {
        end_session(tx, session).await?;
    }
    Ok(sessions)
}

async fn end_session(tx: &mut sqlx::Transaction<'static, sqlx::Any>, session: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE sessions SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2")
        .bind(now())
        .bind(session)
        .execute(&mut **tx)
        .await
        .map(drop)
}

fn membership_from(r: &sqlx::any::AnyRow) -> sqlx::Result<Membership> {
    Ok(Membership { tenant: r.try_get("name")?, plan: r.try_get("plan")?, role: r.try_get("role")? })
}
