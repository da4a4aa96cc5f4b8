//! The caller's own account: name and password changes, and deleting it. Changing the
//! password or deleting the account asks for the current password (OWASP ASVS 4.0 V2.1.5,
//! "re-authentication"), counted by the login limits, so a stolen access token alone can
//! do neither, nor guess the password faster than a login could.

use crate::{
    AppState,
    accounts::password_policy,
    auth::{Caller, hash_password, verify_password},
    db::User,
    error::{ApiError, FieldError},
};
use std::net::IpAddr;

/// Checks a display name (already trimmed): 1 to 100 characters, none of them a control
/// character (a NUL cannot even be stored in PostgreSQL's text; schemathesis sent one).
///
/// # Errors
/// The field error that says what to fix.
pub fn check_name(name: &str) -> Result<(), FieldError> {
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(FieldError {
            field: "name".into(),
            message: "enter a name of 1 to 100 characters, without control characters".into(),
        });
    }
    Ok(())
}

/// A change to the caller's profile; absent fields stay as they are.
pub struct ProfileChange {
    /// New display name, 1 to 100 characters.
    pub name: Option<String>,
    /// New password (needs `current_password`).
    pub password: Option<String>,
    /// The password now, to change the password.
    pub current_password: Option<String>,
}

/// Checks `password` against the caller's, as a login from `client` would count it.
///
/// # Errors
/// 422 naming `field` when it is wrong; 429 from the login limits.
pub(crate) async fn reauthenticate(
    state: &AppState,
    user: &User,
    client: IpAddr,
    field: &str,
    password: String,
) -> Result<(), ApiError> {
    state.limits.before_login(&user.email, client).await?;
    let right = verify_password(password, Some(user.password_hash.clone())).await?;
    state.limits.after_login(&user.email, right).await;
    if right { Ok(()) } else { Err(ApiError::invalid(field, "this is not your current password")) }
}

/// The caller's stored account.
///
/// # Errors
/// 401 when it was deleted since the request was authenticated.
pub async fn current_user(state: &AppState, caller: &Caller) -> Result<User, ApiError> {
    state
        .db
        .user_by_id(&caller.id)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("the account of this access token no longer exists".into()))
}

/// Applies `change`; a new password ends the account's other sessions.
///
/// # Errors
/// 422 for an invalid name, a password that breaks the policy, or a missing or wrong
/// current password; 429 from the login limits.
pub async fn update(
    state: &AppState,
    caller: &Caller,
    client: IpAddr,
    change: ProfileChange,
) -> Result<User, ApiError> {
    let mut user = current_user(state, caller).await?;
    let mut errors = Vec::new();
    if let Some(name) = &change.name {
        let name = name.trim();
        if let Err(e) = check_name(name) {
            errors.push(e);
        }
        user.name = name.to_string();
    }
    if let Some(password) = &change.password
        && let Err(e) = password_policy::check("password", password, &user.email, &user.name)
    {
        errors.push(e);
    }
    if !errors.is_empty() {
        return Err(ApiError::fields(errors));
    }
    let password_hash = match change.password {
        None => None,
        Some(password) => {
            let current = change
                .current_password
                .ok_or_else(|| ApiError::invalid("current_password", "give your current password to change it"))?;
            reauthenticate(state, &user, client, "current_password", current).await?;
            Some(hash_password(password).await?)
        }
    };
    state.db.update_profile(&user.id, &user.name, password_hash.as_deref()).await?;
    if password_hash.is_some() {
        for session in state.db.end_other_sessions(&user.id, &caller.session).await? {
            state.accounts.forget_session(&session).await;
        }
        tracing::info!(user = %user.id, "password changed; other sessions ended");
    }
    Ok(user)
}

/// Deletes the caller's account, which must own no tenant.
///
/// # Errors
/// 422 for a wrong password; 409 naming the tenants it owns; 429 from the login limits.
pub async fn delete(state: &AppState, caller: &Caller, client: IpAddr, password: String) -> Result<(), ApiError> {
    let user = current_user(state, caller).await?;
    reauthenticate(state, &user, client, "password", password).await?;
    let memberships = state.db.memberships(&user.id).await?;
    let owned: Vec<&str> = memberships.iter().filter(|m| m.role == "owner").map(|m| m.tenant.as_str()).collect();
    if !owned.is_empty() || !state.db.delete_user(&user.id).await? {
        return Err(ApiError::Conflict(format!(
            "this account owns tenants ({}): delete them (DELETE /api/v1/tenants/NAME) first",
            owned.join(", ")
        )));
    }
    state.accounts.forget(&user.id).await;
    // The tenants it was in no longer list it (their Workspace owners, their RBAC subjects).
    for m in &memberships {
        crate::teams::publish(state, &m.tenant).await?;
    }
    tracing::info!(user = %user.id, "account deleted");
    Ok(())
}
