//! API settings.

use crate::auth::TokenConfig;

/// Settings of the API server.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// sqlx URL: `sqlite://PATH?mode=rwc` (created if missing) or `postgres://...`.
    pub database_url: String,
    /// Access-token settings.
    pub tokens: TokenConfig,
    /// Largest request body accepted, in bytes; larger bodies answer 413.
    pub max_body_bytes: usize,
    /// Base domain of tenants' Ingress hosts (`<tenant>.<domain>`), as the webhook enforces it.
    pub ingress_domain: String,
    /// Email domains (lowercase, e.g. `university.example`) whose accounts may create and
    /// update Workspaces; others get 403. Empty: every account may.
    pub workspace_email_domains: Vec<String>,
}
