//! Creating and updating Apps as the caller (impersonated, with the tenant's group), after the
//! preview of the webhook's rules; listing, reading and deleting are in `objects`.

use super::{
    objects::{self, Created, View},
    preview::preview,
};
use crate::{
    AppState,
    auth::AuthUser,
    error::ApiError,
    json::StrictJson,
    paths::{ObjectName, TenantName},
};
use axum::{Json, extract::State};
use serde::Deserialize;
use slipway_crds::{App, AppSpec};

#[derive(Deserialize)]
pub struct CreateApp {
    name: String,
    spec: AppSpec,
}

#[derive(Deserialize)]
pub struct UpdateApp {
    spec: AppSpec,
}

/// `POST /api/v1/tenants/{tenant}/apps` `{"name","spec"}` → 201 `{"name","tenant","spec","status"}`.
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    TenantName(tenant): TenantName,
    StrictJson(req): StrictJson<CreateApp>,
) -> Result<Created<App>, ApiError> {
    let api = objects::member_api::<App>(&state, &user, &tenant).await?;
    preview(&state, &user, &api.clone().into(), &tenant, &req.name, &req.spec, None).await?;
    objects::create(&api, &tenant, App::new(&req.name, req.spec)).await
}

/// `PUT /api/v1/tenants/{tenant}/apps/{app}` `{"spec"}` → 200; replaces the whole spec
/// (scale by changing `replicas`).
pub async fn update(
    State(state): State<AppState>,
    user: AuthUser,
    ObjectName { tenant, name }: ObjectName,
    StrictJson(req): StrictJson<UpdateApp>,
) -> Result<Json<View<App>>, ApiError> {
    let api = objects::member_api::<App>(&state, &user, &tenant).await?;
    let app = objects::fetch(&api, &tenant, &name).await?;
    preview(&state, &user, &api.clone().into(), &tenant, &name, &req.spec, Some(&app.spec)).await?;
    objects::replace_spec(&api, &tenant, &name, &req.spec).await
}
