//! Users, tenants and memberships in SQL (SQLite by default, PostgreSQL by URL) via sqlx.

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
}

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

/// Whether an insert named a row that does not exist (a user deleted since their token was issued).
pub fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_foreign_key_violation())
}

/// The connection pool and the queries the API runs.
#[derive(Clone)]
pub struct Database {
    pool: AnyPool,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339()
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
        sqlx::query("INSERT INTO users (id, email, name, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&user.id)
            .bind(&user.email)
            .bind(&user.name)
            .bind(&user.password_hash)
            .bind(now())
            .execute(&self.pool)
            .await
            .map(drop)
    }

    /// Finds a user by (lowercased) email.
    pub async fn user_by_email(&self, email: &str) -> sqlx::Result<Option<User>> {
        self.user_where("SELECT id, email, name, password_hash FROM users WHERE email = $1", email).await
    }

    /// Finds a user by id.
    pub async fn user_by_id(&self, id: &str) -> sqlx::Result<Option<User>> {
        self.user_where("SELECT id, email, name, password_hash FROM users WHERE id = $1", id).await
    }

    async fn user_where(&self, sql: &'static str, value: &str) -> sqlx::Result<Option<User>> {
        let row = sqlx::query(sql).bind(value).fetch_optional(&self.pool).await?;
        row.map(|r| {
            Ok(User {
                id: r.try_get("id")?,
                email: r.try_get("email")?,
                name: r.try_get("name")?,
                password_hash: r.try_get("password_hash")?,
            })
        })
        .transpose()
    }

    /// Starts recording a new tenant owned by `owner`: returns the open transaction so the
    /// caller commits only once the Tenant exists in Kubernetes.
    pub async fn begin_tenant(
        &self,
        name: &str,
        plan: &str,
        owner: &str,
    ) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Any>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO tenants (name, plan, created_by, created_at) VALUES ($1, $2, $3, $4)")
            .bind(name)
            .bind(plan)
            .bind(owner)
            .bind(now())
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO memberships (tenant, user_id, role, created_at) VALUES ($1, $2, 'owner', $3)")
            .bind(name)
            .bind(owner)
            .bind(now())
            .execute(&mut *tx)
            .await?;
        Ok(tx)
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

    /// Removes a tenant and its memberships.
    pub async fn delete_tenant(&self, name: &str) -> sqlx::Result<()> {
        let mut tx = self.pool.begin().await?;
        // Explicit, rather than relying on ON DELETE CASCADE, which SQLite only honours when
        // foreign keys are enabled on the connection.
        sqlx::query("DELETE FROM memberships WHERE tenant = $1").bind(name).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM tenants WHERE name = $1").bind(name).execute(&mut *tx).await?;
        tx.commit().await
    }
}

fn membership_from(r: &sqlx::any::AnyRow) -> sqlx::Result<Membership> {
    Ok(Membership { tenant: r.try_get("name")?, plan: r.try_get("plan")?, role: r.try_get("role")? })
}
