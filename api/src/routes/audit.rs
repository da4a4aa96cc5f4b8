//! `/tenants/{tenant}/audit` and `/admin/audit` (see [`crate::audit`]).

use crate::{
    AppState,
    admin::Page,
    audit::{self, EventView, Filter},
    auth::{AuthUser, PlatformAdmin},
    error::ApiError,
    paths::TenantName,
};
use axum::{
    Json,
    extract::{Query, State, rejection::QueryRejection},
};
use chrono::{DateTime, Utc};
use serde::Deserialize;

/// `?since=&actor=&limit=&cursor=`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    since: Option<DateTime<Utc>>,
    actor: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

fn filter(query: Result<Query<AuditQuery>, QueryRejection>) -> Result<Filter, ApiError> {
    let Query(q) = query.map_err(|e| {
        ApiError::BadRequest(format!("{} (since: an RFC 3339 time like 2026-11-22T09:00:00Z)", e.body_text()))
    })?;
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
pub async fn tenant(
    State(state): State<AppState>,
    user: AuthUser,
    TenantName(tenant): TenantName,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<Page<EventView>>, ApiError> {
    Ok(Json(audit::of_tenant(&state, &user, &tenant, filter(query)?).await?))
}

/// `GET /api/v1/admin/audit?since=&actor=&limit=&cursor=` → every event; platform admins only.
pub async fn everything(
    State(state): State<AppState>,
    _: PlatformAdmin,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<Page<EventView>>, ApiError> {
    Ok(Json(audit::everything(&state, filter(query)?).await?))
}
