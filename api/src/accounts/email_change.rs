//! Changing an account's address: the new address must prove itself like a first one (a
//! single-use link, stored hashed, that the account confirms while logged in), and the old
//! address hears of it at once, so a stolen session cannot move the account away quietly.
//! Asking needs the current password. Once confirmed, the account is known by the new
//! address everywhere: to log in, in the tenants' people (`Tenant.spec`), and as the
//! Kubernetes user name the API impersonates.

use crate::{
    AppState,
    accounts::{emails, one_time_token, profile},
    auth::Caller,
    db::{CHANGE_EMAIL, is_unique_violation},
    error::ApiError,
    limits::AccountMail,
};
use chrono::{Duration, Utc};
use std::net::IpAddr;

/// Starts moving the caller's account to `new_email` (normalized): mails the new address a
/// link and the current one a notice. The answer is the same whether or not another account
/// has the new address (then nothing is mailed), so it reveals no account.
///
/// # Errors
/// 422 for a wrong or missing current password, or the address the account already has;
/// 429 from the login limits.
pub async fn request(
    state: &AppState,
    caller: &Caller,
    client: IpAddr,
    new_email: &str,
    current_password: Option<String>,
) -> Result<(), ApiError> {
    let user = profile::current_user(state, caller).await?;
    if new_email == user.email {
        return Err(ApiError::invalid("email", "this is the address the account has already"));
    }
    let password = current_password
        .ok_or_else(|| ApiError::invalid("current_password", "give your current password to change your address"))?;
    profile::reauthenticate(state, &user, client, "current_password", password).await?;
    if state.db.user_by_email(new_email).await?.is_some() || !state.limits.may_mail(AccountMail::Link, new_email) {
        tracing::info!(user = %user.id, "address change to a taken or recently mailed address: nothing sent");
        return Ok(());
    }
    let (token, hash) = one_time_token::generate();
    let expires = Utc::now() + Duration::hours(emails::VERIFY_HOURS);
    state.db.insert_email_token(&hash, &user.id, CHANGE_EMAIL, new_email, expires).await?;
    let link = format!("{}/api/v1/me/email/confirm?token={token}", state.public_url);
    state.send_mail_later(new_email, emails::verify_address(&link));
    state.send_mail_later(&user.email, emails::address_change_notice(&user.name, new_email));
    tracing::info!(user = %user.id, "address change requested");
    Ok(())
}

/// Moves the caller's account to the address `token` was mailed to.
///
/// # Errors
/// 400, the same for every reason, for a token that is unknown, another account's, used or
/// expired; 409 when another account took the address meanwhile.
pub async fn confirm(state: &AppState, caller: &Caller, token: &str) -> Result<(), ApiError> {
    let refused = || ApiError::BadRequest("this link is invalid, used or expired: ask for a new one".into());
    let hash = one_time_token::hash(token.trim());
    let stored = state.db.email_token(&hash, CHANGE_EMAIL).await?.ok_or_else(refused)?;
    if stored.user_id != caller.id || stored.used_at.is_some() || stored.expires_at <= Utc::now() {
        return Err(refused());
    }
    match state.db.change_email(&hash, &stored).await {
        Ok(true) => {}
        Ok(false) => return Err(refused()),
        Err(e) if is_unique_violation(&e) => {
            return Err(ApiError::Conflict(format!("{} belongs to another account now", stored.email)));
        }
        Err(e) => return Err(e.into()),
    }
    state.accounts.forget(&caller.id).await;
    for m in state.db.memberships(&caller.id).await? {
        crate::teams::publish(state, &m.tenant).await?;
    }
    tracing::info!(user = %caller.id, "address changed");
    Ok(())
}
