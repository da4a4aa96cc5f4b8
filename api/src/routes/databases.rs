//! Creating Databases as the caller (impersonated, with the tenant's group), after the preview
//! of the webhook's rules (engines, versions, sizes, counts); listing, reading and deleting are
//! in `objects`, the credentials in `credentials`.

use super::openapi::Problem;
use super::{
    objects::{self, Created},
    preview::preview,
};
use crate::{AppState, auth::AuthUser, error::ApiError, json::StrictJson, paths::TenantName};
use axum::extract::State;
use serde::Deserialize;
use slipway_crds::{Database, DatabaseSpec};
use utoipa::ToSchema;

/// A new Database: `{"name","spec"}`.
#[derive(Deserialize, ToSchema)]
pub struct CreateDatabase {
    /// A DNS label of at most 52 characters, unique among the tenant's Databases.
    #[schema(example = "orders", pattern = "^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 52)]
    name: String,
    /// The Database's spec (the custom resource's).
    #[schema(schema_with = super::openapi::crd::<DatabaseSpec>)]
    spec: DatabaseSpec,
}

/// `POST /api/v1/tenants/{tenant}/databases` `{"name","spec"}` → 201
/// `{"name","tenant","spec","status"}`; 409 when the name is taken, 422 when the plan refuses.
#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/databases",
    tag = "databases",
    operation_id = "create_database",
    params(("tenant" = String, Path, description = "The tenant's name", pattern = "^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 63)),
    request_body = CreateDatabase,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The Database, with the plan's defaults filled in", body = super::openapi::DatabaseView,
         headers(("Location" = String, description = "`/api/v1/tenants/{tenant}/databases/{name}`"))),
        (status = 403, description = "The caller's address is not verified yet, or Kubernetes RBAC refuses", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant, or the caller is not a member", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken, or the tenant is not Ready yet", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A wrong field, an engine or version the plan does not offer, or over its limits; `errors` lists each", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    TenantName(tenant): TenantName,
    StrictJson(req): StrictJson<CreateDatabase>,
) -> Result<Created<Database>, ApiError> {
    let api = objects::member_api::<Database>(&state, &user, &tenant).await?;
    let spec = preview(&state, &user, &api.clone().into(), &tenant, &req.name, &req.spec, None).await?;
    objects::create(&state.reads, &api, &tenant, &user, Database::new(&req.name, spec)).await
}
