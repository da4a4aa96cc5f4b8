//! Authentication: argon2id password hashes, short-lived JWT access tokens, and the account
//! state every request checks.

mod account_cache;
mod password;
mod token;

pub use account_cache::AccountCache;
pub use password::{hash_password, verify_password};
pub use token::{TokenConfig, Tokens};

use crate::{AppState, error::ApiError};
use axum::{extract::FromRequestParts, http::request::Parts};

/// The caller, as proven by a valid bearer access token for an account that still exists,
/// verified or not: what the few endpoints an unverified account may use take (`/me`,
/// verification). Everything else takes [`AuthUser`].
#[derive(Clone, Debug)]
pub struct Caller {
    /// User id (the token's `sub`).
    pub id: String,
    /// Current email, also the Kubernetes user name the API impersonates.
    pub email: String,
    /// Whether the address is verified.
    pub verified: bool,
    /// The session of the access token (`sid`).
    pub session: String,
}

/// A [`Caller`] whose address is verified: 403 otherwise, saying how to verify.
#[derive(Clone, Debug)]
pub struct AuthUser {
    /// User id (the token's `sub`).
    pub id: String,
    /// Current email, also the Kubernetes user name the API impersonates.
    pub email: String,
}

impl FromRequestParts<AppState> for Caller {
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
        // The account first: deleting it deletes its sessions too, and the caller should hear
        // that the account is gone, not merely that the session ended.
        let account = state
            .accounts
            .get(&state.db, &claims.sub)
            .await?
            .ok_or_else(|| ApiError::Unauthorized("the account of this access token no longer exists".into()))?;
        if account.suspended {
            return Err(suspended());
        }
        if !state.accounts.session_active(&state.db, &claims.sid).await? {
            return Err(ApiError::Unauthorized("this session has ended (logged out); log in again".into()));
        }
        if let Some(slot) = parts.extensions.get::<crate::audit::ActorSlot>() {
            slot.set(&claims.sub, &account.email);
        }
        Ok(Caller { id: claims.sub, email: account.email, verified: account.verified, session: claims.sid })
    }
}

/// 403 for a suspended account: what its tokens and its password get.
pub fn suspended() -> ApiError {
    ApiError::Forbidden("this account is suspended; contact the platform's operators".into())
}

/// An [`AuthUser`] who is a platform admin (see [`crate::entitlements::EntitlementsConfig`]):
/// 403 otherwise.
#[derive(Clone, Debug)]
pub struct PlatformAdmin(pub AuthUser);

impl FromRequestParts<AppState> for PlatformAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        if !state.entitlements.is_admin(&user.email, true) {
            return Err(ApiError::Forbidden("only platform admins may do this".into()));
        }
        Ok(Self(user))
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if !caller.verified {
            return Err(ApiError::Forbidden(format!(
                "confirm your email address first: follow the link mailed to {} (POST its token to \
                 /api/v1/auth/verify), or ask for a new one with POST /api/v1/auth/verify/resend",
                caller.email
            )));
        }
        Ok(AuthUser { id: caller.id, email: caller.email })
    }
}
