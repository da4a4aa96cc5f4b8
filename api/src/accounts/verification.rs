//! Email verification: links mailed to an account's address, single-use and expiring, that
//! the account's holder confirms while logged in. Requiring the login means a verification
//! proves both the mailbox and the password: someone who registered another person's address
//! cannot get the account verified by that person clicking a link (a pre-account-takeover,
//! OWASP ASVS 4.0 V2.5), and nobody can verify an account by its link alone.

use crate::{
    AppState,
    accounts::{emails, one_time_token},
    db::VERIFY_EMAIL,
    error::ApiError,
};
use chrono::{Duration, Utc};

/// Shortest interval between two verification emails to one account (`resend` answers 429
/// with `Retry-After` before that).
pub const RESEND_INTERVAL: Duration = Duration::seconds(60);

/// Makes a verification token for the account's current address and mails its link, in the
/// background (the answer never waits on, or reveals, the SMTP server).
///
/// # Errors
/// The database does not answer.
pub async fn send_link(state: &AppState, user_id: &str, email: &str) -> Result<(), ApiError> {
    let (token, hash) = one_time_token::generate();
    let expires = Utc::now() + Duration::hours(emails::VERIFY_HOURS);
    state.db.insert_email_token(&hash, user_id, VERIFY_EMAIL, email, expires).await?;
    let link = format!("{}/api/v1/auth/verify?token={token}", state.public_url);
    state.send_mail_later(email, emails::verify_address(&link));
    Ok(())
}

/// Mails a new link, at most once per [`RESEND_INTERVAL`].
///
/// # Errors
/// 409 when the address is already verified; 429 with the seconds to wait when the last
/// link is younger than [`RESEND_INTERVAL`].
pub async fn resend(state: &AppState, user_id: &str, email: &str, verified: bool) -> Result<(), ApiError> {
    if verified {
        return Err(ApiError::Conflict(format!("{email} is already verified")));
    }
    if let Some(last) = state.db.latest_email_token(user_id, VERIFY_EMAIL).await? {
        let wait = (last + RESEND_INTERVAL - Utc::now()).num_seconds();
        if wait > 0 {
            return Err(ApiError::RateLimited {
                detail: format!("a verification link was mailed less than a minute ago; ask again in {wait} s"),
                retry_after_seconds: wait.unsigned_abs(),
            });
        }
    }
    send_link(state, user_id, email).await
}

/// Verifies the caller's address with `token`, from a link mailed to it.
///
/// # Errors
/// 400, the same for every reason, when the token is unknown, for another account, used,
/// expired, or mailed to an address the account no longer has.
pub async fn confirm(state: &AppState, user_id: &str, token: &str) -> Result<(), ApiError> {
    let refused = || {
        ApiError::BadRequest(
            "this verification link is invalid, used or expired: ask for a new one with POST \
             /api/v1/auth/verify/resend"
                .into(),
        )
    };
    let hash = one_time_token::hash(token.trim());
    let stored = state.db.email_token(&hash, VERIFY_EMAIL).await?.ok_or_else(refused)?;
    if stored.user_id != user_id || stored.used_at.is_some() || stored.expires_at <= Utc::now() {
        return Err(refused());
    }
    if !state.db.verify_email(&hash, &stored).await? {
        return Err(refused());
    }
    state.accounts.forget(user_id).await;
    tracing::info!(user = %user_id, "email address verified");
    Ok(())
}
