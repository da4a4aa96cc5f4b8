//! Invitations: an admin or owner invites an address with a role; the link mailed there
//! carries a single-use token (stored only as its SHA-256), which the account holding that
//! address, verified and logged in, accepts. Proving the mailbox and the password together,
//! as verification does, means a forwarded or intercepted link alone lets nobody in.

use super::{Role, manager, publish};
use crate::{
    AppState,
    accounts::{emails, one_time_token},
    auth::AuthUser,
    db::AcceptRefusal,
    error::ApiError,
    limits::AccountMail,
};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

/// How long an invitation works, in days.
pub const INVITATION_DAYS: i64 = 7;

/// An invitation as the API shows it (never its token, which only the invited mailbox gets).
#[derive(Serialize, utoipa::ToSchema)]
pub struct InvitationView {
    /// The tenant.
    pub tenant: String,
    /// The invited address.
    pub email: String,
    /// The role it gives.
    pub role: Role,
    /// When it stops working (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: DateTime<Utc>,
}

/// Invites `email` (normalized) to `tenant` as `role`, mailing the link in the background.
///
/// # Errors
/// 404 for non-members; 403 when the caller may not give `role`; 409 when the address is in
/// the tenant already; 429 when that address got an invitation less than a minute ago.
pub async fn invite(
    state: &AppState,
    user: &AuthUser,
    tenant: &str,
    email: &str,
    role: Role,
) -> Result<InvitationView, ApiError> {
    manager(state, user, tenant, role).await?;
    if state.db.members(tenant).await?.iter().any(|m| m.email == email) {
        return Err(ApiError::Conflict(format!("{email} is in tenant {tenant:?} already")));
    }
    // Per address, across tenants: inviting cannot be used to flood someone's mailbox.
    if !state.limits.may_mail(AccountMail::Invitation, email) {
        return Err(ApiError::RateLimited {
            detail: format!("{email} was sent an invitation less than a minute ago; try again in a minute"),
            retry_after_seconds: 60,
        });
    }
    let (token, hash) = one_time_token::generate();
    let expires_at = Utc::now() + Duration::days(INVITATION_DAYS);
    state.db.insert_invitation(&hash, tenant, email, role.as_str(), &user.id, expires_at).await?;
    let link = format!("{}/api/v1/invitations/accept?token={token}", state.public_url);
    state.send_mail_later(email, emails::invitation(tenant, &user.email, role.as_str(), &link));
    tracing::info!(%tenant, %role, by = %user.id, "invitation sent");
    Ok(InvitationView { tenant: tenant.into(), email: email.into(), role, expires_at })
}

/// Accepts the invitation of `token` for the caller, whose address must be the invited one.
///
/// # Errors
/// 400, the same for each reason, for an unknown, used or expired token; 403 when it was sent
/// to another address; 409 when the caller is in the tenant already.
pub async fn accept(state: &AppState, user: &AuthUser, token: &str) -> Result<(String, Role), ApiError> {
    let refused = || ApiError::BadRequest("this invitation is invalid, used or expired: ask for a new one".into());
    let hash = one_time_token::hash(token.trim());
    let invitation = state.db.invitation(&hash).await?.ok_or_else(refused)?;
    if invitation.accepted || invitation.expires_at <= Utc::now() {
        return Err(refused());
    }
    if !invitation.email.eq_ignore_ascii_case(&user.email) {
        return Err(ApiError::Forbidden(format!(
            "this invitation was sent to another address; log in with the account of that address (you are {})",
            user.email
        )));
    }
    match state.db.accept_invitation(&hash, &invitation, &user.id).await? {
        Ok(()) => {}
        Err(AcceptRefusal::Used) => return Err(refused()),
        Err(AcceptRefusal::AlreadyMember) => {
            return Err(ApiError::Conflict(format!("you are in tenant {:?} already", invitation.tenant)));
        }
    }
    publish(state, &invitation.tenant).await?;
    tracing::info!(tenant = %invitation.tenant, role = %invitation.role, user = %user.id, "invitation accepted");
    Ok((invitation.tenant, Role::parse(&invitation.role)))
}
