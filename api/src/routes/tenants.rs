//! `/tenants` and `/tenants/{tenant}` (see [`crate::tenancy`]).

use super::openapi::Problem;
use crate::{AppState, auth::AuthUser, error::ApiError, json::StrictJson, paths::TenantName, teams::Role, tenancy};
use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
};
use serde::{Deserialize, Serialize};
use slipway_crds::{Tenant, TenantMember, TenantStatus, tenant_namespace};
use utoipa::ToSchema;

/// A new tenant: `{"name","plan"}`.
#[derive(Deserialize, ToSchema)]
pub struct CreateTenant {
    /// A DNS label of at most 56 characters (its namespace is `tenant-<name>`), unique across
    /// Slipway.
    #[schema(example = "acme", pattern = "^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 56)]
    name: String,
    /// A plan of the catalogue (`policies/plans.yaml`), e.g. `free`; the account must be
    /// entitled to it.
    #[schema(example = "free")]
    plan: String,
}

/// A tenant as the API shows it.
#[derive(Serialize, ToSchema)]
#[schema(as = Tenant)]
pub struct TenantView {
    /// The tenant's name.
    name: String,
    /// Its plan.
    plan: String,
    /// Its namespace, `tenant-<name>`.
    namespace: String,
    /// Its owners' addresses.
    owners: Vec<String>,
    /// Its other people (admins and members) with their role.
    #[schema(schema_with = super::openapi::tenant_members)]
    members: Vec<TenantMember>,
    /// The caller's role in it.
    role: Role,
    /// The Tenant resource's status (empty until the controller writes one).
    #[schema(schema_with = super::openapi::crd::<TenantStatus>)]
    status: TenantStatus,
}

/// The caller's tenants: `{"items": [...]}`.
#[derive(Serialize, ToSchema)]
pub struct TenantList {
    /// Each tenant the caller belongs to.
    items: Vec<TenantView>,
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
#[utoipa::path(
    post,
    path = "/api/v1/tenants",
    tag = "tenants",
    operation_id = "create_tenant",
    request_body = CreateTenant,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The tenant, Ready unless that took over 20 s", body = TenantView,
         headers(("Location" = String, description = "`/api/v1/tenants/{name}`"))),
        (status = 403, description = "The caller's address is not verified yet, the plan is not one the account may choose, or it owns as many tenants as it may", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken, or still being released after a deletion", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a valid tenant name, an unknown plan, or a wrong field", body = Problem, content_type = "application/problem+json"),
    )
)]
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
#[utoipa::path(
    get,
    path = "/api/v1/tenants",
    tag = "tenants",
    operation_id = "list_tenants",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's tenants", body = TenantList),
        (status = 403, description = "The caller's address is not verified yet", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(State(state): State<AppState>, user: AuthUser) -> Result<Json<TenantList>, ApiError> {
    let items = tenancy::list(&state, &user).await?.into_iter().map(|(t, role)| TenantView::new(t, role)).collect();
    Ok(Json(TenantList { items }))
}

/// `GET /api/v1/tenants/{tenant}` → the tenant, or 404 for non-members.
#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}",
    tag = "tenants",
    operation_id = "get_tenant",
    params(("tenant" = String, Path, description = "The tenant's name", pattern = "^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 63)),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tenant", body = TenantView),
        (status = 403, description = "The caller's address is not verified yet", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant, or the caller is not a member", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    user: AuthUser,
    TenantName(name): TenantName,
) -> Result<Json<TenantView>, ApiError> {
    let (tenant, role) = tenancy::get(&state, &user, &name).await?;
    Ok(Json(TenantView::new(tenant, role)))
}

/// `DELETE /api/v1/tenants/{tenant}` → 204; owners only (see [`tenancy::delete`]).
#[utoipa::path(
    delete,
    path = "/api/v1/tenants/{tenant}",
    tag = "tenants",
    operation_id = "delete_tenant",
    params(("tenant" = String, Path, description = "The tenant's name", pattern = "^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 63)),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The tenant is being deleted with everything in it"),
        (status = 403, description = "The caller is not an owner, or their address is not verified yet", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant, or the caller is not a member", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    TenantName(name): TenantName,
) -> Result<StatusCode, ApiError> {
    tenancy::delete(&state, &user, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
