//! Sessions: a login starts one; its short-lived access tokens name it (`sid`) and its
//! refresh token, used once, gets the next pair. A refresh token used twice has leaked (its
//! thief or its owner used it first), so the second use ends the whole session, the thief's
//! tokens with the owner's (OAuth 2.0 Security BCP, RFC 9700 §4.14.2, "refresh token
//! rotation"). Logging out ends one session, or every session of the account.

use crate::{
    AppState,
    accounts::one_time_token,
    db::{RefreshOutcome, User},
    error::ApiError,
};
use chrono::{Duration, Utc};

/// How long a refresh token works if it is not used: a session idle this long ends.
pub const REFRESH_TTL: Duration = Duration::days(30);

/// What login and refresh answer.
pub struct TokenPair {
    /// Bearer access token (a JWT naming the session).
    pub access_token: String,
    /// Its lifetime, in seconds.
    pub expires_in: u64,
    /// Single-use refresh token.
    pub refresh_token: String,
}

fn refused(why: &str) -> ApiError {
    ApiError::Unauthorized(format!("{why}; log in again"))
}

/// Starts a session for `user` (who just proved their password).
///
/// # Errors
/// 403 for a suspended account; the database does not answer.
pub async fn start(state: &AppState, user: &User) -> Result<TokenPair, ApiError> {
    let session = uuid::Uuid::new_v4().to_string();
    let (refresh_token, hash) = one_time_token::generate();
    state.db.insert_session(&session, &user.id, &hash, Utc::now() + REFRESH_TTL).await?;
    pair(state, user, &session, refresh_token)
}

/// Spends `refresh_token` for the next pair of its session.
///
/// # Errors
/// 401 when the token is unknown, expired, of an ended session, or already spent (which
/// ends its session).
pub async fn refresh(state: &AppState, refresh_token: &str) -> Result<TokenPair, ApiError> {
    let (next, next_hash) = one_time_token::generate();
    let spent = one_time_token::hash(refresh_token.trim());
    match state.db.rotate_refresh_token(&spent, &next_hash, Utc::now(), Utc::now() + REFRESH_TTL).await? {
        RefreshOutcome::Unknown => Err(refused("this refresh token is not valid")),
        RefreshOutcome::Expired => Err(refused("this refresh token has expired")),
        RefreshOutcome::Ended => Err(refused("this session has ended")),
        RefreshOutcome::Reused { session } => {
            state.accounts.forget_session(&session).await;
            tracing::warn!(%session, "a spent refresh token was presented again: session ended");
            Err(refused("this refresh token was already used, so the session is ended for safety"))
        }
        RefreshOutcome::Rotated { session, user_id } => {
            let user = state.db.user_by_id(&user_id).await?.ok_or_else(|| refused("this account no longer exists"))?;
            pair(state, &user, &session, next)
        }
    }
}

/// Ends the session of `refresh_token` (its access tokens stop working too).
///
/// # Errors
/// 401 when the token is unknown.
pub async fn end(state: &AppState, refresh_token: &str) -> Result<(), ApiError> {
    let hash = one_time_token::hash(refresh_token.trim());
    let session = state.db.end_session_of(&hash).await?.ok_or_else(|| refused("this refresh token is not valid"))?;
    state.accounts.forget_session(&session).await;
    Ok(())
}

/// Ends every session of the account.
///
/// # Errors
/// The database does not answer.
pub async fn end_all(state: &AppState, user_id: &str) -> Result<(), ApiError> {
    for session in state.db.end_sessions_of_user(user_id).await? {
        state.accounts.forget_session(&session).await;
    }
    Ok(())
}

/// The pair for `user`'s `session`; none for a suspended account (suspending it ended its
/// sessions; this closes the race with a login or refresh under way).
fn pair(state: &AppState, user: &User, session: &str, refresh_token: String) -> Result<TokenPair, ApiError> {
    if user.suspended {
        return Err(crate::auth::suspended());
    }
    Ok(TokenPair {
        access_token: state.tokens.issue(&user.id, &user.email, session)?,
        expires_in: state.tokens.ttl_seconds(),
        refresh_token,
    })
}
