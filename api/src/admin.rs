//! What platform admins do: list accounts and tenants, grant entitlements, suspend and
//! reactivate accounts, and move tenants between plans. Routes check that the caller is an
//! admin ([`crate::auth::PlatformAdmin`]); this module does the work.

use crate::{
    AppState,
    auth::AuthUser,
    cluster::FIELD_MANAGER,
    db::{TenantRecord, UserSummary},
    entitlements::{self, Entitlements},
    error::ApiError,
    pagination::{self, Page},
};
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde::Serialize;
use slipway_crds::Tenant;

/// The most tenants an admin may let one account own (a typo's guard: 10000 tenants are
/// 10000 namespaces).
pub const MAX_TENANTS_GRANT: u32 = 1000;

/// An account as platform admins see it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AccountView {
    id: String,
    email: String,
    name: String,
    email_verified: bool,
    suspended: bool,
    platform_admin: bool,
    entitlements: Entitlements,
    /// Plans granted beyond the self-service ones.
    granted_plans: Vec<String>,
    owned_tenants: Vec<String>,
}

fn account_view(state: &AppState, summary: UserSummary) -> AccountView {
    let UserSummary { user, granted_plans, owned_tenants } = summary;
    AccountView {
        entitlements: entitlements::resolve(&state.entitlements, &state.plans, &user, &granted_plans),
        platform_admin: state.entitlements.is_admin(&user.email, user.verified),
        id: user.id,
        email: user.email,
        name: user.name,
        email_verified: user.verified,
        suspended: user.suspended,
        granted_plans,
        owned_tenants,
    }
}

/// Accounts by email, a page at a time.
///
/// # Errors
/// 400 for a bad cursor or limit.
pub async fn accounts(
    state: &AppState,
    cursor: Option<&str>,
    limit: Option<u32>,
) -> Result<Page<AccountView>, ApiError> {
    let (after, limit) = (pagination::after(cursor)?.unwrap_or_default(), pagination::size(limit)?);
    let users = state.db.list_users(&after, limit).await?;
    let views = users.into_iter().map(|u| account_view(state, u)).collect();
    Ok(Page::new(views, limit, |v: &AccountView| v.email.clone()))
}

/// One account.
///
/// # Errors
/// 404 when there is no such account.
pub async fn account(state: &AppState, user_id: &str) -> Result<AccountView, ApiError> {
    let user = state.db.user_by_id(user_id).await?.ok_or_else(|| no_account(user_id))?;
    let summary = UserSummary {
        granted_plans: state.db.granted_plans(&user.id).await?,
        owned_tenants: state.db.owned_tenants(&user.id).await?,
        user,
    };
    Ok(account_view(state, summary))
}

fn no_account(user_id: &str) -> ApiError {
    ApiError::NotFound(format!("no account has the id {user_id:?}"))
}

/// Sets what the account may have: `max_tenants` (`None`: the platform's default) and the
/// plans granted beyond the self-service ones (replacing earlier grants). Tenants it owns
/// already stay, even beyond a lowered limit.
///
/// # Errors
/// 422 naming a plan the catalogue lacks or a count over [`MAX_TENANTS_GRANT`]; 404 when
/// there is no such account.
pub async fn grant(
    state: &AppState,
    admin: &AuthUser,
    user_id: &str,
    max_tenants: Option<u32>,
    mut plans: Vec<String>,
) -> Result<AccountView, ApiError> {
    if max_tenants.is_some_and(|n| n > MAX_TENANTS_GRANT) {
        return Err(ApiError::invalid("max_tenants", format!("grant at most {MAX_TENANTS_GRANT} tenants")));
    }
    for (i, plan) in plans.iter().enumerate() {
        state.plans.plan(plan).map_err(|e| ApiError::invalid(format!("plans[{i}]"), e.to_string()))?;
    }
    plans.sort();
    plans.dedup();
    if !state.db.set_entitlements(user_id, max_tenants, &plans, &admin.id).await? {
        return Err(no_account(user_id));
    }
    tracing::info!(user = %user_id, admin = %admin.id, ?max_tenants, ?plans, "entitlements granted");
    account(state, user_id).await
}

/// Suspends the account (its tokens stop working at once on this replica, within the
/// account cache's TTL on the others; its sessions end; its tenants keep running) or
/// reactivates it (its owner logs in again).
///
/// # Errors
/// 409 for an admin suspending themself (nobody could undo it through the API); 404 when
/// there is no such account.
pub async fn set_suspended(
    state: &AppState,
    admin: &AuthUser,
    user_id: &str,
    suspended: bool,
) -> Result<AccountView, ApiError> {
    if suspended && admin.id == user_id {
        return Err(ApiError::Conflict("you cannot suspend your own account".into()));
    }
    let ended = state.db.set_suspended(user_id, suspended).await?.ok_or_else(|| no_account(user_id))?;
    state.accounts.forget(user_id).await;
    for session in ended {
        state.accounts.forget_session(&session).await;
    }
    tracing::info!(user = %user_id, admin = %admin.id, suspended, "account suspension changed");
    account(state, user_id).await
}

/// A tenant as platform admins see it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TenantAdminView {
    name: String,
    plan: String,
    created_at: String,
    owners: Vec<String>,
}

impl From<TenantRecord> for TenantAdminView {
    fn from(t: TenantRecord) -> Self {
        Self { name: t.name, plan: t.plan, created_at: t.created_at, owners: t.owners }
    }
}

/// Tenants by name, a page at a time.
///
/// # Errors
/// 400 for a bad cursor or limit.
pub async fn tenants(
    state: &AppState,
    cursor: Option<&str>,
    limit: Option<u32>,
) -> Result<Page<TenantAdminView>, ApiError> {
    let (after, limit) = (pagination::after(cursor)?.unwrap_or_default(), pagination::size(limit)?);
    let views = state.db.list_tenants(&after, limit).await?.into_iter().map(TenantAdminView::from).collect();
    Ok(Page::new(views, limit, |v: &TenantAdminView| v.name.clone()))
}

/// Moves `tenant` to `plan`: the Tenant's `spec.plan` (the controller applies the plan's
/// quota and defaults; objects already admitted stay, and changes that would grow past a
/// smaller plan are refused by the webhook) and the SQL record.
///
/// # Errors
/// 422 for a plan the catalogue lacks; 404 when there is no such tenant.
pub async fn change_plan(state: &AppState, admin: &AuthUser, tenant: &str, plan: &str) -> Result<(), ApiError> {
    state.plans.plan(plan).map_err(|e| ApiError::invalid("plan", e.to_string()))?;
    let missing = || ApiError::NotFound(format!("tenant {tenant:?} not found"));
    let patch = serde_json::json!({ "spec": { "plan": plan } });
    let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    match Api::<Tenant>::all(state.cluster.service()).patch(tenant, &params, &Patch::Merge(&patch)).await {
        Ok(changed) => state.reads.tenants.wrote(&changed),
        Err(kube::Error::Api(s)) if s.code == 404 => return Err(missing()),
        Err(e) => return Err(e.into()),
    }
    if !state.db.set_tenant_plan(tenant, plan).await? {
        return Err(missing());
    }
    tracing::info!(%tenant, %plan, admin = %admin.id, "tenant plan changed");
    Ok(())
}
