//! Creating Databases as the caller (impersonated, with the tenant's group), after the preview
//! of the webhook's rules (engines, versions, sizes, counts); listing, reading and deleting are
//! in `objects`, the credentials in `credentials`.

use super::{
    objects::{self, Created},
    preview::preview,
};
use crate::{AppState, auth::AuthUser, error::ApiError, json::StrictJson, paths::TenantName};
use axum::extract::State;
use serde::Deserialize;
use slipway_crds::{Database, DatabaseSpec};

#[derive(Deserialize)]
pub struct CreateDatabase {
    name: String,
    spec: DatabaseSpec,
}

/// `POST /api/v1/tenants/{tenant}/databases` `{"name","spec"}` → 201
/// `{"name","tenant","spec","status"}`; 409 when the name is taken, 422 when the plan refuses.
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    TenantName(tenant): TenantName,
    StrictJson(req): StrictJson<CreateDatabase>,
) -> Result<Created<Database>, ApiError> {
    let api = objects::member_api::<Database>(&state, &user, &tenant).await?;
    preview(&state, &user, &api.clone().into(), &tenant, &req.name, &req.spec, None).await?;
    objects::create(&api, &tenant, Database::new(&req.name, req.spec)).await
}
