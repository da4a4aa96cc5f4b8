//! Creating and updating Apps as the caller (impersonated, with the tenant's group), with the
//! plan checked first for precise errors; listing, reading and deleting are in `objects`.

use super::{
    objects::{self, Created, View},
    tenants::policy,
};
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
};
use kube::{Api, ResourceExt, api::ListParams};
use serde::Deserialize;
use slipway_crds::{App, AppSpec, Database, Workspace, tenant_namespace};
use slipway_policies::{AppReview, Inventory};

#[derive(Deserialize)]
pub struct CreateApp {
    name: String,
    spec: AppSpec,
}

#[derive(Deserialize)]
pub struct UpdateApp {
    spec: AppSpec,
}

/// Checks the spec against the tenant's plan before Kubernetes sees it, for a precise 422.
///
/// The same rules as the admission webhook (`slipway_policies::TenantPolicy::review_app`) on
/// the spec as the webhook will see it (the plan's defaults filled in), next to the tenant's
/// other Apps (`existing`, as this user lists them) and its Databases and Workspaces, which
/// draw on the same CPU and memory totals. Host collisions across tenants are left to the
/// webhook, which alone sees every tenant's Apps; it stays the enforcement point for all.
async fn check_plan(
    state: &AppState,
    api: &Api<App>,
    existing: &[App],
    tenant: &str,
    name: &str,
    spec: &AppSpec,
    previous: Option<&AppSpec>,
) -> Result<(), ApiError> {
    let policy = policy(state, tenant).await?;
    let client: kube::Client = api.clone().into();
    let ns = tenant_namespace(tenant);
    let all = ListParams::default();
    let databases = Api::<Database>::namespaced(client.clone(), &ns).list(&all).await?.items;
    let workspaces = Api::<Workspace>::namespaced(client, &ns).list(&all).await?.items;
    let others = Inventory {
        apps: existing.iter().filter(|a| a.name_any() != name).map(|a| (a.name_any(), a.spec.clone())).collect(),
        databases: databases.into_iter().map(|d| (d.name_any(), d.spec)).collect(),
        workspaces: workspaces.into_iter().map(|w| (w.name_any(), w.spec)).collect(),
    };
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

/// `POST /api/v1/tenants/{tenant}/apps` `{"name","spec"}` → 201 `{"name","tenant","spec","status"}`.
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    Path(tenant): Path<String>,
    StrictJson(req): StrictJson<CreateApp>,
) -> Result<Created<App>, ApiError> {
    let api = objects::member_api::<App>(&state, &user, &tenant).await?;
    names::dns_label("name", &req.name, names::MAX_APP_NAME)?;
    let existing = api.list(&ListParams::default()).await?.items;
    // Checked first: on a full tenant, the plan check would answer before the name clash.
    if existing.iter().any(|a| a.name_any() == req.name) {
        return Err(objects::already_exists::<App>(&req.name, &tenant));
    }
    check_plan(&state, &api, &existing, &tenant, &req.name, &req.spec, None).await?;
    objects::create(&api, &tenant, App::new(&req.name, req.spec)).await
}

/// `PUT /api/v1/tenants/{tenant}/apps/{app}` `{"spec"}` → 200; replaces the whole spec
/// (scale by changing `replicas`). A concurrent change answers 409: read and retry.
pub async fn update(
    State(state): State<AppState>,
    user: AuthUser,
    Path((tenant, name)): Path<(String, String)>,
    StrictJson(req): StrictJson<UpdateApp>,
) -> Result<Json<View<App>>, ApiError> {
    let api = objects::member_api::<App>(&state, &user, &tenant).await?;
    let mut app = objects::fetch(&api, &tenant, &name).await?;
    let existing = api.list(&ListParams::default()).await?.items;
    check_plan(&state, &api, &existing, &tenant, &name, &req.spec, Some(&app.spec)).await?;
    app.spec = req.spec;
    objects::replace(&api, &tenant, &app).await
}
