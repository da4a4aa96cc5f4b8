//! `/tenants/{tenant}/audit` and `/admin/audit` (see [`crate::audit`]).

use super::openapi::Problem;
use crate::{
    AppState,
    audit::{self, EventView, Filter},
    auth::{AuthUser, PlatformAdmin},
    error::ApiError,
    pagination::Page,
    paths::TenantName,
};
use axum::{
    Json,
    extract::{Query, State, rejection::QueryRejection},
};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;

/// `?since=&actor=&limit=&cursor=`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only events at or after this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<DateTime<Utc>>,
    /// Only events of this actor (an address, or `anonymous`).
    actor: Option<String>,
    /// Items per page, 1 to 500 (50 unless given).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// The `next` of the previous page.
    cursor: Option<String>,
}

fn filter(query: Result<Query<AuditQuery>, QueryRejection>) -> Result<Filter, ApiError> {
    let Query(q) = query.map_err(|e| {
        ApiError::BadRequest(format!("{} (since: an RFC 3339 time like 2026-11-22T09:00:00Z)", e.body_text()))
    })?;
    if q.actor.as_deref().is_some_and(|a| a.chars().any(char::is_control)) {
        return Err(ApiError::BadRequest("actor: an address, or `anonymous`".into()));
    }
    Ok(Filter {
        since: q.since,
        actor: q.actor.map(|a| a.trim().to_ascii_lowercase()),
        limit: q.limit,
        cursor: q.cursor,
    })
}

/// `GET /api/v1/tenants/{tenant}/audit?since=&actor=&limit=&cursor=` →
/// `{"items":[{"time","actor","action","object","result",...}],"next"}`, newest first; owners
/// and admins only.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/audit", tag = "audit", params(("tenant" = String, Path, description = "The tenant's name", pattern = "^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 63), AuditQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of the tenant's events, newest first", body = Page<EventView>),
        (status = 400, description = "A bad time, cursor or limit", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller is a member, not an owner or admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant, or the caller is not in it", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn tenant(
    State(state): State<AppState>,
    user: AuthUser,
    TenantName(tenant): TenantName,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<Page<EventView>>, ApiError> {
    Ok(Json(audit::of_tenant(&state, &user, &tenant, filter(query)?).await?))
}

/// `GET /api/v1/admin/audit?since=&actor=&limit=&cursor=` → every event; platform admins only.
#[utoipa::path(get, path = "/api/v1/admin/audit", tag = "audit", params(AuditQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of every event, newest first", body = Page<EventView>),
        (status = 400, description = "A bad time, cursor or limit", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller is not a platform admin", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn everything(
    State(state): State<AppState>,
    _: PlatformAdmin,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<Page<EventView>>, ApiError> {
    Ok(Json(audit::everything(&state, filter(query)?).await?))
}
