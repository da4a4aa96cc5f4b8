//! `/tenants` and `/tenants/{tenant}` (see [`crate::tenancy`]).

use crate::{AppState, auth::AuthUser, error::ApiError, json::StrictJson, paths::TenantName, teams::Role, tenancy};
use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
};
use serde::{Deserialize, Serialize};
use slipway_crds::{Tenant, TenantMember, TenantStatus, tenant_namespace};

#[derive(Deserialize)]
pub struct CreateTenant {
    name: String,
    plan: String,
}

/// A tenant as the API shows it.
#[derive(Serialize)]
pub struct TenantView {
    name: String,
    plan: String,
    namespace: String,
    owners: Vec<String>,
    members: Vec<TenantMember>,
    role: Role,
    status: TenantStatus,
}

impl TenantView {
    fn new(tenant: Tenant, role: Role) -> Self {
        let name = tenant.metadata.name.clone().unwrap_or_default();
        Self {
            namespace: tenant_namespace(&name),
            owners: tenant.spec.owners.into_iter().map(|o| o.email).collect(),
            members: tenant.spec.members,
            plan: tenant.spec.plan,
            role,
            status: tenant.status.unwrap_or_default(),
            name,
        }
    }
}

/// `POST /api/v1/tenants` `{"name","plan"}` → 201 with the tenant and its namespace.
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    StrictJson(req): StrictJson<CreateTenant>,
) -> Result<(StatusCode, [(header::HeaderName, String); 1], Json<TenantView>), ApiError> {
    let created = tenancy::create(&state, &user, &req.name, &req.plan).await?;
    let location = format!("/api/v1/tenants/{}", req.name);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(TenantView::new(created, Role::Owner))))
}

/// `GET /api/v1/tenants` → `{"items": [...]}`, the caller's tenants only.
pub async fn list(State(state): State<AppState>, user: AuthUser) -> Result<Json<serde_json::Value>, ApiError> {
    let items: Vec<TenantView> =
        tenancy::list(&state, &user).await?.into_iter().map(|(t, role)| TenantView::new(t, role)).collect();
    Ok(Json(serde_json::json!({ "items": items })))
}

/// `GET /api/v1/tenants/{tenant}` → the tenant, or 404 for non-members.
pub async fn get(
    State(state): State<AppState>,
    user: AuthUser,
    TenantName(name): TenantName,
) -> Result<Json<TenantView>, ApiError> {
    let (tenant, role) = tenancy::get(&state, &user, &name).await?;
    Ok(Json(TenantView::new(tenant, role)))
}

/// `DELETE /api/v1/tenants/{tenant}` → 204; owners only.
pub async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    TenantName(name): TenantName,
) -> Result<StatusCode, ApiError> {
    tenancy::delete(&state, &user, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
