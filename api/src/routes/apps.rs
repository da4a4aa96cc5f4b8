//! Apps, read and written as the caller (impersonated, with the tenant's group).

use super::tenants::{membership, policy};
use crate::{
    AppState,
    auth::AuthUser,
    error::{ApiError, FieldError},
    json::StrictJson,
    names,
};
use axum::{
    Json,
    extract::{Path, State},
    http::{StatusCode, header},
};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams, PostParams},
};
use serde::{Deserialize, Serialize};
use slipway_crds::{App, AppSpec, AppStatus, TENANT_LABEL, tenant_namespace};
use slipway_policies::{AppReview, Inventory};

/// Field manager of the API's writes.
const MANAGER: &str = "slipway-api";

#[derive(Deserialize)]
pub struct CreateApp {
    name: String,
    spec: AppSpec,
}

#[derive(Deserialize)]
pub struct UpdateApp {
    spec: AppSpec,
}

/// An App as the API shows it: the custom resource's own spec and status.
#[derive(Serialize)]
pub struct AppView {
    name: String,
    tenant: String,
    spec: AppSpec,
    status: AppStatus,
}

impl AppView {
    fn new(app: App, tenant: &str) -> Self {
        Self { name: app.name_any(), tenant: tenant.into(), spec: app.spec, status: app.status.unwrap_or_default() }
    }
}

/// Apps of `tenant` as seen by the caller (after the membership check).
async fn apps_api(state: &AppState, user: &AuthUser, tenant: &str) -> Result<Api<App>, ApiError> {
    membership(state, user, tenant).await?;
    let client = state.cluster.as_member(&user.email, tenant)?;
    Ok(Api::namespaced(client, &tenant_namespace(tenant)))
}

fn not_found(app: &str, tenant: &str) -> ApiError {
    ApiError::NotFound(format!("app {app:?} not found in tenant {tenant:?}"))
}

/// Checks the spec against the tenant's plan before Kubernetes sees it, for a precise 422.
///
/// The same rules as the admission webhook (`slipway_policies::TenantPolicy::review_app`) on
/// the spec as the webhook will see it (the plan's defaults filled in), with the tenant's
/// other Apps (`existing`, as this user lists them). Host collisions across tenants are left to
/// the webhook, which alone sees every tenant's Apps; it stays the enforcement point for all.
async fn check_plan(
    state: &AppState,
    existing: &[App],
    tenant: &str,
    name: &str,
    spec: &AppSpec,
    previous: Option<&AppSpec>,
) -> Result<(), ApiError> {
    let policy = policy(state, tenant).await?;
    let apps = existing.iter().filter(|a| a.name_any() != name).map(|a| (a.name_any(), a.spec.clone())).collect();
    let others = Inventory { apps, ..Default::default() };
    let spec = policy.default_app(spec);
    let review = AppReview {
        tenant,
        name,
        spec: &spec,
        others: &others,
        previous,
        hosts: &[],
        ingress_domain: &state.ingress_domain,
    };
    let violations = policy.review_app(&review).violations;
    if violations.is_empty() {
        return Ok(());
    }
    let detail = violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
    let errors = violations.into_iter().map(|v| FieldError { field: v.field, message: v.message }).collect();
    Err(ApiError::Unprocessable { detail, errors })
}

/// `POST /api/v1/tenants/{tenant}/apps` `{"name","spec"}` → 201 `{"name","spec","status"}`.
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    Path(tenant): Path<String>,
    StrictJson(req): StrictJson<CreateApp>,
) -> Result<(StatusCode, [(header::HeaderName, String); 1], Json<AppView>), ApiError> {
    let api = apps_api(&state, &user, &tenant).await?;
    names::dns_label("name", &req.name, names::MAX_APP_NAME)?;
    let existing = api.list(&ListParams::default()).await?.items;
    // Checked first: on a full tenant, the plan check would answer before the name clash.
    if existing.iter().any(|a| a.name_any() == req.name) {
        return Err(ApiError::Conflict(format!("an app named {:?} already exists", req.name)));
    }
    check_plan(&state, &existing, &tenant, &req.name, &req.spec, None).await?;
    let mut app = App::new(&req.name, req.spec);
    app.metadata.labels = Some([(TENANT_LABEL.to_string(), tenant.clone())].into());
    let params = PostParams { field_manager: Some(MANAGER.into()), ..Default::default() };
    let created = api.create(&params, &app).await.map_err(|e| match e {
        kube::Error::Api(s) if s.code == 409 => {
            ApiError::Conflict(format!("an app named {:?} already exists", req.name))
        }
        e => e.into(),
    })?;
    let location = format!("/api/v1/tenants/{tenant}/apps/{}", req.name);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(AppView::new(created, &tenant))))
}

/// `GET /api/v1/tenants/{tenant}/apps` → `{"items": [...]}`.
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Path(tenant): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let api = apps_api(&state, &user, &tenant).await?;
    let items: Vec<_> =
        api.list(&ListParams::default()).await?.items.into_iter().map(|a| AppView::new(a, &tenant)).collect();
    Ok(Json(serde_json::json!({ "items": items })))
}

/// `GET /api/v1/tenants/{tenant}/apps/{app}` → `{"name","spec","status"}`.
pub async fn get(
    State(state): State<AppState>,
    user: AuthUser,
    Path((tenant, name)): Path<(String, String)>,
) -> Result<Json<AppView>, ApiError> {
    let api = apps_api(&state, &user, &tenant).await?;
    let app = api.get_opt(&name).await?.ok_or_else(|| not_found(&name, &tenant))?;
    Ok(Json(AppView::new(app, &tenant)))
}

/// `PUT /api/v1/tenants/{tenant}/apps/{app}` `{"spec"}` → 200; replaces the whole spec
/// (scale by changing `replicas`). A concurrent change answers 409: read and retry.
pub async fn update(
    State(state): State<AppState>,
    user: AuthUser,
    Path((tenant, name)): Path<(String, String)>,
    StrictJson(req): StrictJson<UpdateApp>,
) -> Result<Json<AppView>, ApiError> {
    let api = apps_api(&state, &user, &tenant).await?;
    let mut app = api.get_opt(&name).await?.ok_or_else(|| not_found(&name, &tenant))?;
    let existing = api.list(&ListParams::default()).await?.items;
    check_plan(&state, &existing, &tenant, &name, &req.spec, Some(&app.spec)).await?;
    app.spec = req.spec;
    let params = PostParams { field_manager: Some(MANAGER.into()), ..Default::default() };
    let updated = api.replace(&name, &params, &app).await?;
    Ok(Json(AppView::new(updated, &tenant)))
}

/// `DELETE /api/v1/tenants/{tenant}/apps/{app}` → 204; Kubernetes garbage-collects the
/// Deployment, Service and Ingress.
pub async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    Path((tenant, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let api = apps_api(&state, &user, &tenant).await?;
    match api.delete(&name, &DeleteParams::background()).await {
        Ok(_) => Ok(StatusCode::NO_CONTENT),
        Err(kube::Error::Api(s)) if s.code == 404 => Err(not_found(&name, &tenant)),
        Err(e) => Err(e.into()),
    }
}
