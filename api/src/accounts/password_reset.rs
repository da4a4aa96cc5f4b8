//! Password reset (OWASP Forgot Password Cheat Sheet): a request names an address and always
//! gets the same answer; if the address has an account, it is mailed a single-use link that
//! works for [`emails::RESET_MINUTES`]. Choosing the new password through it ends every
//! session of the account and marks the address verified (the link proved it).

use crate::{
    AppState,
    accounts::{emails, one_time_token, password_policy},
    auth::hash_password,
    db::RESET_PASSWORD,
    error::ApiError,
    limits::AccountMail,
};
use chrono::{Duration, Utc};

/// Mails a reset link to `email` (already normalized) if it has an account, at most once a
/// [`crate::limits::MAIL_INTERVAL`]; otherwise does nothing, in about the same time.
///
/// # Errors
/// The database does not answer.
pub async fn request(state: &AppState, email: &str) -> Result<(), ApiError> {
    let Some(user) = state.db.user_by_email(email).await? else { return Ok(()) };
    if !state.limits.may_mail(AccountMail::Reset, &user.email) {
        return Ok(());
    }
    let (token, hash) = one_time_token::generate();
    let expires = Utc::now() + Duration::minutes(emails::RESET_MINUTES);
    state.db.insert_email_token(&hash, &user.id, RESET_PASSWORD, &user.email, expires).await?;
    let link = format!("{}/api/v1/auth/password-reset?token={token}", state.public_url);
    state.send_mail_later(&user.email, emails::reset_password(&user.name, &link));
    Ok(())
}

/// Sets the password of the account of `token` to `password`.
///
/// # Errors
/// 400, the same for every reason, when the token is unknown, used, expired or mailed to an
/// address the account no longer has; 422 when the password breaks the policy.
pub async fn confirm(state: &AppState, token: &str, password: String) -> Result<(), ApiError> {
    let refused = || {
        ApiError::BadRequest(
            "this reset link is invalid, used or expired: ask for a new one with POST /api/v1/auth/password-reset"
                .into(),
        )
    };
    let hash = one_time_token::hash(token.trim());
    let stored = state.db.email_token(&hash, RESET_PASSWORD).await?.ok_or_else(refused)?;
    if stored.used_at.is_some() || stored.expires_at <= Utc::now() {
        return Err(refused());
    }
    let user = state.db.user_by_id(&stored.user_id).await?.ok_or_else(refused)?;
    password_policy::check("password", &password, &user.email, &user.name).map_err(|e| ApiError::fields(vec![e]))?;
    let password_hash = hash_password(password).await?;
    let ended = state.db.reset_password(&hash, &stored, &password_hash).await?.ok_or_else(refused)?;
    for session in &ended {
        state.accounts.forget_session(session).await;
    }
    state.accounts.forget(&user.id).await;
    tracing::info!(user = %user.id, sessions_ended = ended.len(), "password reset");
    Ok(())
}
