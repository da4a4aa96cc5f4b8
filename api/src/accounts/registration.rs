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

use crate::{
    AppState,
    accounts::{emails, verification},
    auth::hash_password,
    db::{User, is_unique_violation},
    error::ApiError,
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
    };
    match state.db.user_by_email(&user.email).await? {
        None => match state.db.insert_user(&user).await {
            Ok(()) => {
                tracing::info!(user = %user.id, "user registered");
                verification::send_link(state, &user.id, &user.email).await
            }
            // Registered concurrently with the same address: that request mails the link.
            Err(e) if is_unique_violation(&e) => Ok(()),
            Err(e) => Err(e.into()),
        },
        Some(existing) if !existing.verified && state.db.replace_unverified_user(&existing.id, &user).await? => {
            state.accounts.forget(&existing.id).await;
            tracing::info!(user = %user.id, replaced = %existing.id, "unverified account replaced by a new registration");
            verification::send_link(state, &user.id, &user.email).await
        }
        Some(existing) => {
            let login = format!("{}/api/v1/auth/login", state.public_url);
            state.send_mail_later(&existing.email, emails::registration_attempt(&existing.name, &login));
            Ok(())
        }
    }
}
