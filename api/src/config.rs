//! API settings.

use crate::auth::TokenConfig;
use secrecy::SecretString;
use slipway_mail::MailerConfig;
use slipway_policies::Platform;

/// Settings of the API server.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// sqlx URL: `sqlite://PATH?mode=rwc` (created if missing) or `postgres://...`; secret,
    /// since it may hold the database password.
    pub database_url: SecretString,
    /// Access-token settings.
    pub tokens: TokenConfig,
    /// Largest request body accepted, in bytes; larger bodies answer 413.
    pub max_body_bytes: usize,
    /// The platform's settings the rules need (Ingress domain, Workspace email domains), as
    /// the webhook enforces them.
    pub platform: Platform,
    /// How account emails (verification links) are sent.
    pub mail: MailerConfig,
    /// Base URL at which people reach the API (a trailing `/` is dropped): links in account
    /// emails start with it.
    pub public_url: String,
    /// Rate limits of the account endpoints.
    pub limits: crate::LimitsConfig,
    /// What accounts may have by default, and who the platform admins are.
    pub entitlements: crate::EntitlementsConfig,
}
