//! Creating, updating and scaling Apps as the caller (impersonated, with the tenant's group),
//! after the preview of the webhook's rules; listing, reading and deleting are in `objects`.

use super::openapi::Problem;
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
    read_cache::Cached,
};
use axum::{Json, extract::State};
use kube::api::{Patch, PatchParams};
use serde::Deserialize;
use slipway_crds::{App, AppSpec};
use utoipa::ToSchema;

/// A new App: `{"name","spec"}`.
#[derive(Deserialize, ToSchema)]
pub struct CreateApp {
    /// A DNS label, unique among the tenant's Apps.
    #[schema(example = "web", pattern = "^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 63)]
    name: String,
    /// The App's spec (the custom resource's).
    #[schema(schema_with = super::openapi::crd::<AppSpec>)]
    spec: AppSpec,
}

/// An App's new spec: `{"spec"}`.
#[derive(Deserialize, ToSchema)]
pub struct UpdateApp {
    /// The whole spec, replacing the current one.
    #[schema(schema_with = super::openapi::crd::<AppSpec>)]
    spec: AppSpec,
}

/// An App's new replica count: `{"replicas"}`.
#[derive(Deserialize, ToSchema)]
pub struct ScaleApp {
    /// Pods wanted: 0 stops the App, at most the plan's `maxReplicas`.
    #[schema(example = 3)]
    replicas: u16,
}

/// `POST /api/v1/tenants/{tenant}/apps` `{"name","spec"}` → 201 `{"name","tenant","spec","status"}`.
#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/apps",
    tag = "apps",
    operation_id = "create_app",
    params(("tenant" = String, Path, description = "The tenant's name", pattern = "^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 63)),
    request_body = CreateApp,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The App, with the plan's defaults filled in", body = super::openapi::AppView,
         headers(("Location" = String, description = "`/api/v1/tenants/{tenant}/apps/{name}`"))),
        (status = 403, description = "The caller's address is not verified yet, or Kubernetes RBAC refuses", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant, or the caller is not a member", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken, or the tenant is not Ready yet", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A wrong field, or one over the plan's limits; `errors` lists each", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    TenantName(tenant): TenantName,
    StrictJson(req): StrictJson<CreateApp>,
) -> Result<Created<App>, ApiError> {
    let api = objects::member_api::<App>(&state, &user, &tenant).await?;
    let spec = preview(&state, &user, &api.clone().into(), &tenant, &req.name, &req.spec, None).await?;
    objects::create(&state.reads, &api, &tenant, &user, App::new(&req.name, spec)).await
}

/// `PUT /api/v1/tenants/{tenant}/apps/{app}` `{"spec"}` → 200; replaces the whole spec.
#[utoipa::path(
    put,
    path = "/api/v1/tenants/{tenant}/apps/{app}",
    tag = "apps",
    operation_id = "update_app",
    params(("tenant" = String, Path, description = "The tenant's name", pattern = "^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 63), ("app" = String, Path, description = "The App's name", pattern = "^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 63)),
    request_body = UpdateApp,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The App with its new spec", body = super::openapi::AppView),
        (status = 403, description = "The caller's address is not verified yet, or Kubernetes RBAC refuses", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant or App, or the caller is not a member", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The tenant is not Ready yet, or a concurrent change", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A wrong field, or one over the plan's limits; `errors` lists each", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    user: AuthUser,
    ObjectName { tenant, name }: ObjectName,
    StrictJson(req): StrictJson<UpdateApp>,
) -> Result<Json<View<App>>, ApiError> {
    let api = objects::member_api::<App>(&state, &user, &tenant).await?;
    let app = objects::fetch(&api, &tenant, &name).await?;
    let spec = preview(&state, &user, &api.clone().into(), &tenant, &name, &req.spec, Some(&app.spec)).await?;
    objects::replace_spec(&state.reads, &api, &tenant, &user, &app, &spec).await
}

/// `PUT /api/v1/tenants/{tenant}/apps/{app}/scale` `{"replicas"}` → 200 with the App: sets
/// `spec.replicas` alone through the App's scale subresource, as `kubectl scale app/NAME
/// --replicas=N` does, so a concurrent change of the rest of the spec is never undone.
/// Judged like any change: over the plan is a 422 that says by how much.
#[utoipa::path(
    put,
    path = "/api/v1/tenants/{tenant}/apps/{app}/scale",
    tag = "apps",
    operation_id = "scale_app",
    params(("tenant" = String, Path, description = "The tenant's name", pattern = "^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 63), ("app" = String, Path, description = "The App's name", pattern = "^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 63)),
    request_body = ScaleApp,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The App with its new replica count", body = super::openapi::AppView),
        (status = 403, description = "The caller's address is not verified yet, or Kubernetes RBAC refuses", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant or App, or the caller is not a member", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The tenant is not Ready yet", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A count over the plan's limits or totals; `errors` says by how much", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn scale(
    State(state): State<AppState>,
    user: AuthUser,
    ObjectName { tenant, name }: ObjectName,
    StrictJson(req): StrictJson<ScaleApp>,
) -> Result<Json<View<App>>, ApiError> {
    let api = objects::member_api::<App>(&state, &user, &tenant).await?;
    let app = objects::fetch(&api, &tenant, &name).await?;
    let scaled = AppSpec { replicas: Some(i32::from(req.replicas)), ..app.spec.clone() };
    preview(&state, &user, &api.clone().into(), &tenant, &name, &scaled, Some(&app.spec)).await?;
    let params = PatchParams { field_manager: Some(objects::MANAGER.into()), ..Default::default() };
    let patch = Patch::Merge(serde_json::json!({ "spec": { "replicas": req.replicas } }));
    api.patch_scale(&name, &params, &patch).await.map_err(|e| match e {
        kube::Error::Api(s) if s.code == 404 => objects::not_found::<App>(&name, &tenant),
        e => e.into(),
    })?;
    let scaled = objects::fetch(&api, &tenant, &name).await?;
    App::cache(&state.reads).wrote(&scaled);
    Ok(Json(View::new(scaled, &tenant)))
}
