//! Authentication: argon2id password hashes and short-lived JWT access tokens.

mod password;
mod token;

pub use password::{hash_password, verify_password};
pub use token::{TokenConfig, Tokens};

use crate::{AppState, error::ApiError};
use axum::{extract::FromRequestParts, http::request::Parts};

/// The caller, as proven by a valid bearer access token.
#[derive(Clone, Debug)]
pub struct AuthUser {
    /// User id (the token's `sub`).
    pub id: String,
    /// Email, also the Kubernetes user name the API impersonates.
    pub email: String,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| ApiError::Unauthorized("send an access token: Authorization: Bearer <token>".into()))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| ApiError::Unauthorized("the Authorization header must be: Bearer <token>".into()))?;
        let claims = state.tokens.verify(token.trim())?;
        Ok(AuthUser { id: claims.sub, email: claims.email })
    }
}
