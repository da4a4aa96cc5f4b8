//! Slipway's REST API under `/api/v1`.
//!
//! ```text
//!  client ──HTTP/JSON──▶ axum router ──▶ handlers ──┬─▶ SQL (users, tenants, memberships) via sqlx
//!         ◀─problem+json─┘   (JWT bearer auth)      └─▶ kube-apiserver: Tenants as Slipway,
//!                                                       Apps, Databases, Workspaces (and their
//!                                                       Secrets) impersonating the user + tenant group
//! ```
//!
//! Isolation is enforced twice: a user only sees tenants they are a member of (others answer
//! 404), and calls on a tenant's objects impersonate the user with the groups
//! `slipway:tenant:<name>` and `slipway:tenant:<name>:<role>`, so Kubernetes RBAC refuses
//! anything outside the tenant's namespace, or beyond the user's role, even if the API erred.
//!
//! Domain modules hold the rules and flows (`accounts`, `entitlements`, `admin`, `teams`,
//! `tenancy`, `audit`); `routes` only decode, call them and encode.
#![forbid(unsafe_code)]

mod accounts;
mod admin;
mod audit;
mod auth;
mod cluster;
mod config;
mod db;
mod entitlements;
mod error;
mod json;
mod limits;
mod metrics;
mod pagination;
mod paths;
mod read_cache;
mod routes;
mod teams;
mod tenancy;

pub use audit::{ClusterChange, append_cluster_change};
pub use auth::TokenConfig;
pub use cluster::Cluster;
pub use config::ApiConfig;
pub use db::Database;
pub use entitlements::EntitlementsConfig;
pub use error::{ApiError, FieldError};
pub use limits::LimitsConfig;
pub use metrics::describe as describe_metrics;

use axum::Router;
use slipway_policies::{PlanCatalog, Platform};
use std::sync::Arc;

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    db: Database,
    tokens: Arc<auth::Tokens>,
    accounts: auth::AccountCache,
    limits: Arc<limits::Limits>,
    mailer: Arc<slipway_mail::Mailer>,
    public_url: Arc<str>,
    cluster: Cluster,
    /// Watch caches of tenants' Apps, Databases and Workspaces, for reads.
    reads: Arc<read_cache::ReadCache>,
    plans: Arc<PlanCatalog>,
    platform: Arc<Platform>,
    entitlements: Arc<EntitlementsConfig>,
    /// Taken while publishing a tenant's people to Kubernetes (see `teams::publish`).
    people_publishing: Arc<tokio::sync::Mutex<()>>,
}

impl AppState {
    /// Sends `email` to `to` in the background: answers do not wait on the SMTP server, so
    /// their timing reveals nothing about which emails were sent. A failure is logged; the
    /// account holder asks again (for example POST /api/v1/auth/verify/resend).
    fn send_mail_later(&self, to: &str, email: slipway_mail::Email) {
        let (mailer, to) = (self.mailer.clone(), to.to_string());
        tokio::spawn(async move {
            if let Err(e) = mailer.send(&[&to], &email).await {
                tracing::warn!(error = %e, subject = %email.subject, "an account email could not be sent");
            }
        });
    }
}

/// The API, assembled: the same function builds the production server and the tests' server.
pub struct Application {
    router: Router,
}

impl Application {
    /// Connects to the database (running migrations) and builds the router.
    ///
    /// # Errors
    /// The database is unreachable, a migration fails, the token key is unusable, or the SMTP
    /// URL or From address does not parse.
    pub async fn build(config: &ApiConfig, cluster: Cluster, plans: Arc<PlanCatalog>) -> anyhow::Result<Self> {
        let db = Database::connect(secrecy::ExposeSecret::expose_secret(&config.database_url)).await?;
        let tokens = Arc::new(auth::Tokens::new(&config.tokens)?);
        let state = AppState {
            db,
            tokens,
            accounts: auth::AccountCache::default(),
            limits: Arc::new(limits::Limits::new(config.limits)),
            mailer: Arc::new(slipway_mail::Mailer::new(&config.mail)?),
            public_url: config.public_url.trim_end_matches('/').into(),
            reads: Arc::new(read_cache::ReadCache::start(&cluster.service())),
            cluster,
            plans,
            platform: Arc::new(config.platform.clone()),
            entitlements: Arc::new(config.entitlements.clone()),
            people_publishing: Arc::default(),
        };
        // Limiter entries back to a full budget are dropped every minute, until the API goes.
        let limits = Arc::downgrade(&state.limits);
        tokio::spawn(async move {
            let mut every_minute = tokio::time::interval(std::time::Duration::from_secs(60));
            every_minute.tick().await;
            loop {
                every_minute.tick().await;
                let Some(limits) = limits.upgrade() else { break };
                limits.shrink();
            }
        });
        Ok(Self { router: routes::router(state, config.max_body_bytes) })
    }

    /// The router, for serving or for driving in tests.
    pub fn router(self) -> Router {
        self.router
    }

    /// Serves on `listener` until `shutdown` resolves.
    ///
    /// # Errors
    /// I/O errors of the listener.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(addr = %listener.local_addr()?, "API listening");
        // With the peer's address, which the rate limits key on.
        let service = self.router.into_make_service_with_connect_info::<std::net::SocketAddr>();
        axum::serve(listener, service).with_graceful_shutdown(shutdown).await
    }
}
