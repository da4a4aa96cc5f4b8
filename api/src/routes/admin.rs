//! `/api/v1/admin/...`: platform admins' endpoints (see [`crate::admin`]).

use super::openapi::Problem;
use crate::{
    AppState,
    admin::{self, AccountView, TenantAdminView},
    auth::PlatformAdmin,
    error::ApiError,
    json::StrictJson,
    pagination::Page,
    paths::TenantName,
};
use axum::{
    Json,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::StatusCode,
};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

/// `?limit=&cursor=` of a listing.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1 to 500 (50 unless given).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// The `next` of the previous page.
    cursor: Option<String>,
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

/// What an account may have from now on.
#[derive(Deserialize, ToSchema)]
pub struct EntitlementsRequest {
    /// Tenants it may own; `null`: the platform's default.
    #[schema(minimum = 0, maximum = 1000)]
    max_tenants: Option<u32>,
    /// Plans granted beyond the self-service ones (replacing earlier grants).
    plans: Vec<String>,
}

/// A tenant's new plan.
#[derive(Deserialize, ToSchema)]
pub struct PlanRequest {
    /// A plan of the catalogue.
    plan: String,
}

/// `GET /api/v1/admin/users?limit=&cursor=` → `{"items":[account...],"next"}`, by email.
#[utoipa::path(get, path = "/api/v1/admin/users", tag = "admin", params(PageQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of accounts, by email", body = Page<AccountView>),
        (status = 400, description = "A bad cursor or limit", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller is not a platform admin", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_users(
    State(state): State<AppState>,
    _: PlatformAdmin,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Page<AccountView>>, ApiError> {
    let Query(q) = q?;
    Ok(Json(admin::accounts(&state, q.cursor.as_deref(), q.limit).await?))
}

/// `GET /api/v1/admin/users/{user}` → the account.
#[utoipa::path(get, path = "/api/v1/admin/users/{user}", tag = "admin", params(("user" = String, Path, description = "An account id (UUID)")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The account", body = AccountView),
        (status = 403, description = "The caller is not a platform admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such account", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_user(
    State(state): State<AppState>,
    _: PlatformAdmin,
    UserId(id): UserId,
) -> Result<Json<AccountView>, ApiError> {
    Ok(Json(admin::account(&state, &id).await?))
}

/// `PUT /api/v1/admin/users/{user}/entitlements` `{"max_tenants": N|null, "plans": [...]}` →
/// the account: what it may have from now on (`null`: the platform's default count).
#[utoipa::path(put, path = "/api/v1/admin/users/{user}/entitlements", tag = "admin", params(("user" = String, Path, description = "An account id (UUID)")),
    request_body = EntitlementsRequest, security(("bearer" = [])),
    responses(
        (status = 200, description = "The account with its new entitlements", body = AccountView),
        (status = 403, description = "The caller is not a platform admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such account", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A plan the catalogue lacks", body = Problem, content_type = "application/problem+json"),
    ))]
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
#[utoipa::path(post, path = "/api/v1/admin/users/{user}/suspend", tag = "admin", params(("user" = String, Path, description = "An account id (UUID)")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The account, suspended", body = AccountView),
        (status = 403, description = "The caller is not a platform admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such account", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The caller's own account", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn suspend(
    State(state): State<AppState>,
    PlatformAdmin(caller): PlatformAdmin,
    UserId(id): UserId,
) -> Result<Json<AccountView>, ApiError> {
    Ok(Json(admin::set_suspended(&state, &caller, &id, true).await?))
}

/// `POST /api/v1/admin/users/{user}/reactivate` → the account, able to log in again.
#[utoipa::path(post, path = "/api/v1/admin/users/{user}/reactivate", tag = "admin", params(("user" = String, Path, description = "An account id (UUID)")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The account, active", body = AccountView),
        (status = 403, description = "The caller is not a platform admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such account", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn reactivate(
    State(state): State<AppState>,
    PlatformAdmin(caller): PlatformAdmin,
    UserId(id): UserId,
) -> Result<Json<AccountView>, ApiError> {
    Ok(Json(admin::set_suspended(&state, &caller, &id, false).await?))
}

/// `GET /api/v1/admin/tenants?limit=&cursor=` → `{"items":[{"name","plan","created_at","owners"}],"next"}`.
#[utoipa::path(get, path = "/api/v1/admin/tenants", tag = "admin", params(PageQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of tenants, by name", body = Page<TenantAdminView>),
        (status = 400, description = "A bad cursor or limit", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller is not a platform admin", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_tenants(
    State(state): State<AppState>,
    _: PlatformAdmin,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Page<TenantAdminView>>, ApiError> {
    let Query(q) = q?;
    Ok(Json(admin::tenants(&state, q.cursor.as_deref(), q.limit).await?))
}

/// `PUT /api/v1/admin/tenants/{tenant}/plan` `{"plan"}` → 204: the tenant moves to the plan.
#[utoipa::path(put, path = "/api/v1/admin/tenants/{tenant}/plan", tag = "admin", params(("tenant" = String, Path, description = "The tenant's name", pattern = "^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 63)),
    request_body = PlanRequest, security(("bearer" = [])),
    responses(
        (status = 204, description = "The tenant is on the plan"),
        (status = 403, description = "The caller is not a platform admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A plan the catalogue lacks", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn change_plan(
    State(state): State<AppState>,
    PlatformAdmin(caller): PlatformAdmin,
    TenantName(tenant): TenantName,
    StrictJson(req): StrictJson<PlanRequest>,
) -> Result<StatusCode, ApiError> {
    admin::change_plan(&state, &caller, &tenant, &req.plan).await?;
    Ok(StatusCode::NO_CONTENT)
}
