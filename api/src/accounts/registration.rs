//! Registration that does not reveal which addresses have accounts: every valid request gets
//! the same answer after the same work (one argon2 hash, one email), and only the address's
//! mailbox learns what happened (OWASP Authentication Cheat Sheet, "Authentication and Error
//! Messages"; ASVS 4.0 V2.5).
//!
//! | the address has                          | what happens                                  |
//! |------------------------------------------|-----------------------------------------------|
//! | no account                               | a new, unverified account; a verification link |
//! | an unverified account in no tenant       | it is replaced by the new one (a squatter's    |
//! |                                          | password dies with it); a verification link    |
//! | a verified account, or one in a tenant   | nothing changes; a "someone tried to register  |
//! |                                          | with your address" notice                      |
//!
//! Whatever the case, an address gets at most one link and one notice a minute
//! ([`crate::limits::MAIL_INTERVAL`]); a lost link is resent on request once logged in.

use crate::{
    AppState,
    accounts::{emails, verification},
    auth::hash_password,
    db::{User, is_unique_violation},
    error::ApiError,
    limits::AccountMail,
};

/// Registers `email` (already normalized and checked) for `name` with `password` (already
/// checked against the password policy).
///
/// # Errors
/// The database does not answer.
pub async fn register(state: &AppState, email: String, name: String, password: String) -> Result<(), ApiError> {
    let user = User {
        id: uuid::Uuid::new_v4().to_string(),
        email,
        name,
        password_hash: hash_password(password).await?,
        verified: false,
        max_tenants: None,
        suspended: false,
    };
    match state.db.user_by_email(&user.email).await? {
        None => match state.db.insert_user(&user).await {
            Ok(()) => {
                tracing::info!(user = %user.id, "user registered");
                mail_link(state, &user).await
            }
            // Registered concurrently with the same address: that request mails the link.
            Err(e) if is_unique_violation(&e) => Ok(()),
            Err(e) => Err(e.into()),
        },
        Some(existing) if !existing.verified && state.db.replace_unverified_user(&existing.id, &user).await? => {
            state.accounts.forget(&existing.id).await;
            tracing::info!(user = %user.id, replaced = %existing.id, "unverified account replaced by a new registration");
            mail_link(state, &user).await
        }
        Some(existing) => {
            if state.limits.may_mail(AccountMail::Notice, &existing.email) {
                let login = format!("{}/api/v1/auth/login", state.public_url);
                state.send_mail_later(&existing.email, emails::registration_attempt(&existing.name, &login));
            }
            Ok(())
        }
    }
}

/// Mails the new account its verification link, unless its address was mailed within the
/// last [`crate::limits::MAIL_INTERVAL`].
async fn mail_link(state: &AppState, user: &User) -> Result<(), ApiError> {
    if !state.limits.may_mail(AccountMail::Link, &user.email) {
        return Ok(());
    }
    verification::send_link(state, &user.id, &user.email).await
}
