//! The people of a tenant: listing them, changing a role, removing someone, leaving.

use super::{Role, manager, membership, publish};
use crate::{
    AppState,
    auth::AuthUser,
    db::{Member, MemberChange},
    error::ApiError,
};
use serde::Serialize;

/// Someone of a tenant, as the API shows them: `{"id","email","name","role"}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MemberView {
    /// Their account's id.
    pub id: String,
    /// Their address.
    pub email: String,
    /// Their name.
    pub name: String,
    /// Their role.
    pub role: Role,
}

impl From<Member> for MemberView {
    fn from(m: Member) -> Self {
        Self { role: Role::parse(&m.role), id: m.user_id, email: m.email, name: m.name }
    }
}

/// The tenant's people, owners first; anyone in the tenant may see them.
///
/// # Errors
/// 404 for non-members.
pub async fn list(state: &AppState, user: &AuthUser, tenant: &str) -> Result<Vec<MemberView>, ApiError> {
    membership(state, user, tenant).await?;
    Ok(state.db.members(tenant).await?.into_iter().map(MemberView::from).collect())
}

/// The person `who` (an account id or an address) of `tenant`.
async fn find(state: &AppState, tenant: &str, who: &str) -> Result<Member, ApiError> {
    let people = state.db.members(tenant).await?;
    people
        .into_iter()
        .find(|m| m.user_id == who || m.email.eq_ignore_ascii_case(who))
        .ok_or_else(|| ApiError::NotFound(format!("{who:?} is not in tenant {tenant:?}")))
}

fn last_owner(tenant: &str, who: &str) -> ApiError {
    ApiError::Conflict(format!("{who} is the last owner of tenant {tenant:?}: make someone else an owner first"))
}

/// Gives `who` the `role`. Owners change anyone's role; admins move people between admin
/// and member.
///
/// # Errors
/// 404 for non-members (the caller or `who`); 403 when the caller may not; 409 when it would
/// leave the tenant without an owner.
pub async fn change_role(
    state: &AppState,
    user: &AuthUser,
    tenant: &str,
    who: &str,
    role: Role,
) -> Result<MemberView, ApiError> {
    let target = find(state, tenant, who).await?;
    let actor = manager(state, user, tenant, Role::parse(&target.role)).await?;
    if !actor.manages(role) {
        return Err(ApiError::Forbidden(format!("only owners of tenant {tenant:?} may make someone an owner")));
    }
    match state.db.change_member(tenant, &target.user_id, Some(role.as_str())).await? {
        MemberChange::Done { previous } => {
            tracing::info!(%tenant, member = %target.user_id, %previous, %role, by = %user.id, "role changed");
        }
        MemberChange::NotMember => return Err(ApiError::NotFound(format!("{who:?} is not in tenant {tenant:?}"))),
        MemberChange::LastOwner => return Err(last_owner(tenant, &target.email)),
    }
    publish(state, tenant).await?;
    Ok(MemberView { role, ..target.into() })
}

/// Removes `who` from the tenant; anyone may remove themself (leave). Their Workspaces stay
/// until someone deletes them; Kubernetes refuses them the namespace at once.
///
/// # Errors
/// 404 for non-members (the caller or `who`); 403 when the caller may not; 409 for the last
/// owner.
pub async fn remove(state: &AppState, user: &AuthUser, tenant: &str, who: &str) -> Result<(), ApiError> {
    membership(state, user, tenant).await?;
    let target = find(state, tenant, who).await?;
    if target.user_id != user.id {
        manager(state, user, tenant, Role::parse(&target.role)).await?;
    }
    match state.db.change_member(tenant, &target.user_id, None).await? {
        MemberChange::Done { previous } => {
            tracing::info!(%tenant, member = %target.user_id, %previous, by = %user.id, "member removed");
        }
        MemberChange::NotMember => return Err(ApiError::NotFound(format!("{who:?} is not in tenant {tenant:?}"))),
        MemberChange::LastOwner => return Err(last_owner(tenant, &target.email)),
    }
    publish(state, tenant).await
}
