//! `/api/v1/admin/...`: platform admins' endpoints (see [`crate::admin`]).

use crate::{
    AppState,
    admin::{self, AccountView, Page, TenantAdminView},
    auth::PlatformAdmin,
    error::ApiError,
    json::StrictJson,
    paths::TenantName,
};
use axum::{
    Json,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::StatusCode,
};
use serde::Deserialize;

/// `?limit=&cursor=` of a listing.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

/// The query of a listing, or 400 saying what is wrong with it.
fn page_query(query: Result<Query<PageQuery>, QueryRejection>) -> Result<PageQuery, ApiError> {
    query.map(|Query(q)| q).map_err(|e| ApiError::BadRequest(e.body_text()))
}

/// The account of `/admin/users/{user}`: a UUID.
pub struct UserId(String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for UserId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, ApiError> {
        let Path(id) =
            Path::<String>::from_request_parts(parts, state).await.map_err(|e| ApiError::BadRequest(e.body_text()))?;
        uuid::Uuid::parse_str(&id).map(|_| Self(id.clone())).map_err(|_| {
            ApiError::BadRequest(format!("{id:?} is not an account id (a UUID, as GET /admin/users shows)"))
        })
    }
}

#[derive(Deserialize)]
pub struct EntitlementsRequest {
    max_tenants: Option<u32>,
    plans: Vec<String>,
}

#[derive(Deserialize)]
pub struct PlanRequest {
    plan: String,
}

/// `GET /api/v1/admin/users?limit=&cursor=` → `{"items":[account...],"next"}`, by email.
pub async fn list_users(
    State(state): State<AppState>,
    _: PlatformAdmin,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Page<AccountView>>, ApiError> {
    let q = page_query(q)?;
    Ok(Json(admin::accounts(&state, q.cursor.as_deref(), q.limit).await?))
}

/// `GET /api/v1/admin/users/{user}` → the account.
pub async fn get_user(
    State(state): State<AppState>,
    _: PlatformAdmin,
    UserId(id): UserId,
) -> Result<Json<AccountView>, ApiError> {
    Ok(Json(admin::account(&state, &id).await?))
}

/// `PUT /api/v1/admin/users/{user}/entitlements` `{"max_tenants": N|null, "plans": [...]}` →
/// the account: what it may have from now on (`null`: the platform's default count).
pub async fn set_entitlements(
    State(state): State<AppState>,
    PlatformAdmin(caller): PlatformAdmin,
    UserId(id): UserId,
    StrictJson(req): StrictJson<EntitlementsRequest>,
) -> Result<Json<AccountView>, ApiError> {
    Ok(Json(admin::grant(&state, &caller, &id, req.max_tenants, req.plans).await?))
}

/// `POST /api/v1/admin/users/{user}/suspend` → the account, suspended: its tokens stop
/// working, its tenants keep running.
pub async fn suspend(
    State(state): State<AppState>,
    PlatformAdmin(caller): PlatformAdmin,
    UserId(id): UserId,
) -> Result<Json<AccountView>, ApiError> {
    Ok(Json(admin::set_suspended(&state, &caller, &id, true).await?))
}

/// `POST /api/v1/admin/users/{user}/reactivate` → the account, able to log in again.
pub async fn reactivate(
    State(state): State<AppState>,
    PlatformAdmin(caller): PlatformAdmin,
    UserId(id): UserId,
) -> Result<Json<AccountView>, ApiError> {
    Ok(Json(admin::set_suspended(&state, &caller, &id, false).await?))
}

/// `GET /api/v1/admin/tenants?limit=&cursor=` → `{"items":[{"name","plan","created_at","owners"}],"next"}`.
pub async fn list_tenants(
    State(state): State<AppState>,
    _: PlatformAdmin,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Page<TenantAdminView>>, ApiError> {
    let q = page_query(q)?;
    Ok(Json(admin::tenants(&state, q.cursor.as_deref(), q.limit).await?))
}

/// `PUT /api/v1/admin/tenants/{tenant}/plan` `{"plan"}` → 204: the tenant moves to the plan.
pub async fn change_plan(
    State(state): State<AppState>,
    PlatformAdmin(caller): PlatformAdmin,
    TenantName(tenant): TenantName,
    StrictJson(req): StrictJson<PlanRequest>,
) -> Result<StatusCode, ApiError> {
    admin::change_plan(&state, &caller, &tenant, &req.plan).await?;
    Ok(StatusCode::NO_CONTENT)
}
