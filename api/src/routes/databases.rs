//! Creating Databases as the caller (impersonated, with the tenant's group); listing, reading
//! and deleting are in `objects`, the credentials in `credentials`. The admission webhook
//! checks the plan (engines, versions, sizes, counts) and its denials come back as 422.

use super::objects::{self, Created};
use crate::{AppState, auth::AuthUser, error::ApiError, json::StrictJson, names};
use axum::extract::{Path, State};
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
    Path(tenant): Path<String>,
    StrictJson(req): StrictJson<CreateDatabase>,
) -> Result<Created<Database>, ApiError> {
    let api = objects::member_api::<Database>(&state, &user, &tenant).await?;
    names::dns_label("name", &req.name, names::MAX_DATABASE_NAME)?;
    objects::create(&api, &tenant, Database::new(&req.name, req.spec)).await
}
