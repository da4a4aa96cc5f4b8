//! Tenants: created by the API's own identity (Tenants are cluster-scoped), visible only to
//! their members.

use super::openapi::Problem;
use crate::{
    AppState,
    auth::AuthUser,
    db::{Membership, is_foreign_key_violation, is_unique_violation},
    error::ApiError,
    json::StrictJson,
    paths::TenantName,
};
use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
};
use kube::{
    Api,
    api::{DeleteParams, PostParams},
};
use serde::{Deserialize, Serialize};
use slipway_crds::{Tenant, TenantOwner, TenantSpec, TenantStatus, tenant_namespace};
use slipway_policies::rules::names::check_tenant_name;
use utoipa::ToSchema;

/// A new tenant: `{"name","plan"}`.
#[derive(Deserialize, ToSchema)]
pub struct CreateTenant {
    /// A DNS label of at most 56 characters (its namespace is `tenant-<name>`), unique across
    /// Slipway.
    #[schema(example = "acme", pattern = "^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 56)]
    name: String,
    /// A plan of the catalogue (`policies/plans.yaml`), e.g. `free`.
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
    /// The caller's role in it.
    role: String,
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
    fn new(tenant: Tenant, role: &str) -> Self {
        let name = tenant.metadata.name.clone().unwrap_or_default();
        Self {
            namespace: tenant_namespace(&name),
            owners: tenant.spec.owners.into_iter().map(|o| o.email).collect(),
            plan: tenant.spec.plan,
            role: role.into(),
            status: tenant.status.unwrap_or_default(),
            name,
        }
    }
}

/// The caller's membership of `tenant`; 404 (never 403) for non-members, so the existence of
/// other people's tenants is not revealed.
pub async fn membership(state: &AppState, user: &AuthUser, tenant: &str) -> Result<Membership, ApiError> {
    state
        .db
        .membership(&user.id, tenant)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("tenant {tenant:?} not found")))
}

async fn fetch(state: &AppState, name: &str) -> Result<Tenant, ApiError> {
    Api::<Tenant>::all(state.cluster.service())
        .get_opt(name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("tenant {name:?} not found")))
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
        (status = 403, description = "The caller's address is not verified yet", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken, or still being released after a deletion", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a valid tenant name, an unknown plan, or a wrong field", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    StrictJson(req): StrictJson<CreateTenant>,
) -> Result<(StatusCode, [(header::HeaderName, String); 1], Json<TenantView>), ApiError> {
    check_tenant_name(&req.name).map_err(|e| ApiError::invalid("name", e))?;
    state.plans.plan(&req.plan).map_err(|e| ApiError::invalid("plan", e.to_string()))?;
    let taken = || ApiError::Conflict(format!("the tenant name {:?} is taken; choose another", req.name));
    // Record in SQL first (uncommitted) so a taken name fails before touching the cluster, and
    // commit only once the Tenant exists, so SQL never lists a tenant Kubernetes lacks.
    let tx = state.db.begin_tenant(&req.name, &req.plan, &user.id).await.map_err(|e| {
        if is_unique_violation(&e) {
            taken()
        } else if is_foreign_key_violation(&e) {
            // The token is valid but its account was deleted since it was issued.
            ApiError::Unauthorized("the account of this access token no longer exists".into())
        } else {
            e.into()
        }
    })?;
    let tenant = Tenant::new(
        &req.name,
        TenantSpec { owners: vec![TenantOwner { email: user.email.clone() }], plan: req.plan.clone(), limits: None },
    );
    let params = PostParams { field_manager: Some("slipway-api".into()), ..Default::default() };
    let tenants = Api::<Tenant>::all(state.cluster.service());
    let created = match tenants.create(&params, &tenant).await {
        Ok(t) => t,
        Err(kube::Error::Api(s)) if s.code == 409 => {
            // A deleted tenant keeps its name until its namespace, and all its data, are gone
            // (the controller's finalizer): never hand them to the next claimant.
            let releasing = tenants.get_opt(&req.name).await?.is_some_and(|t| t.metadata.deletion_timestamp.is_some());
            return Err(if releasing {
                ApiError::Conflict(format!(
                    "the tenant name {:?} is being released, try again in a few seconds",
                    req.name
                ))
            } else {
                taken()
            });
        }
        Err(e) => return Err(e.into()),
    };
    tx.commit().await?;
    tracing::info!(tenant = %req.name, plan = %req.plan, user = %user.id, "tenant created");
    let created = wait_until_ready(&state, created).await;
    let location = format!("/api/v1/tenants/{}", req.name);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(TenantView::new(created, "owner"))))
}

/// How long `POST /tenants` waits for the controller to make the tenant Ready, so that the
/// namespace is usable when the response arrives. A slower tenant is returned as it is.
const READY_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// Whether the tenant's `Ready` condition is `True`.
pub fn is_ready(tenant: &Tenant) -> bool {
    tenant.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn wait_until_ready(state: &AppState, created: Tenant) -> Tenant {
    let api = Api::<Tenant>::all(state.cluster.service());
    let name = created.metadata.name.clone().unwrap_or_default();
    let ready = |t: Option<&Tenant>| t.is_some_and(is_ready);
    match tokio::time::timeout(READY_WAIT, kube::runtime::wait::await_condition(api, &name, ready)).await {
        Ok(Ok(Some(t))) => t,
        _ => {
            tracing::warn!(tenant = %name, "tenant not Ready in time; returning it as it is");
            created
        }
    }
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
    let mut items = Vec::new();
    for m in state.db.memberships(&user.id).await? {
        if let Some(t) = Api::<Tenant>::all(state.cluster.service()).get_opt(&m.tenant).await? {
            items.push(TenantView::new(t, &m.role));
        }
    }
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
    let m = membership(&state, &user, &name).await?;
    Ok(Json(TenantView::new(fetch(&state, &name).await?, &m.role)))
}

/// `DELETE /api/v1/tenants/{tenant}` → 204; owners only. The controller deletes the namespace
/// and everything in it (volumes and Secrets of retained Databases included); the name stays
/// taken until they are gone.
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
    let m = membership(&state, &user, &name).await?;
    if m.role != "owner" {
        return Err(ApiError::Forbidden(format!("only owners of tenant {name:?} may delete it")));
    }
    match Api::<Tenant>::all(state.cluster.service()).delete(&name, &DeleteParams::background()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    state.db.delete_tenant(&name).await?;
    tracing::info!(tenant = %name, user = %user.id, "tenant deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// The tenant's owners and effective policy, for the checks the API runs before writing.
///
/// # Errors
/// 409 while the tenant is not Ready yet (its quota would refuse the write with a cryptic
/// "status unknown for quota"); 500 if its plan is invalid.
pub async fn policy(
    state: &AppState,
    tenant: &str,
) -> Result<(Vec<TenantOwner>, slipway_policies::TenantPolicy), ApiError> {
    let t = fetch(state, tenant).await?;
    if !is_ready(&t) {
        return Err(ApiError::Conflict(format!(
            "tenant {tenant:?} is still being provisioned; retry in a few seconds"
        )));
    }
    let policy = state
        .plans
        .effective(&t.spec.plan, t.spec.limits.as_ref())
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("tenant {tenant} has an invalid plan: {e}")))?;
    Ok((t.spec.owners, policy))
}
