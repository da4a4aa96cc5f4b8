//! What the kinds in a tenant's namespace (Apps, Databases, Workspaces) share: the caller's
//! impersonated client, the view `{"name","tenant","spec","status"}`, Kubernetes' answers turned
//! into the API's errors, and the list, get and delete handlers, generic over the kind.

use crate::{
    AppState,
    auth::AuthUser,
    db::Membership,
    error::ApiError,
    paths::{ObjectName, TenantName},
    read_cache::{Cached, ReadCache},
};
use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
    core::{
        NamespaceResourceScope,
        object::{HasSpec, HasStatus},
    },
};
use serde::{Serialize, de::DeserializeOwned};
use slipway_crds::{
    DEFAULTS_FILLED, DEFAULTS_LABEL, Kind, TENANT_LABEL, revision::CHANGED_BY_ANNOTATION, tenant_namespace,
};
use slipway_policies::Spec;

pub use crate::cluster::FIELD_MANAGER as MANAGER;

/// A Slipway kind that lives in a tenant's namespace: `App`, `Database` or `Workspace`.
pub trait TenantObject:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + HasSpec<Spec: Spec + Serialize + Send>
    + HasStatus<Status: Default + Serialize + Send>
    + Clone
    + std::fmt::Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + Cached
    + 'static
{
}

impl<K> TenantObject for K where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + HasSpec<Spec: Spec + Serialize + Send>
        + HasStatus<Status: Default + Serialize + Send>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned
        + Serialize
        + Send
        + Sync
        + Cached
        + 'static
{
}

/// A tenant object as the API shows it: `{"name","tenant","spec","status"}`, the custom
/// resource's own spec and status (the status is empty until the controller writes one).
#[derive(Serialize)]
pub struct View<K: TenantObject> {
    name: String,
    tenant: String,
    spec: K::Spec,
    status: K::Status,
}

impl<K: TenantObject> View<K> {
    /// The view of `object`, which belongs to `tenant`.
    pub fn new(mut object: K, tenant: &str) -> Self {
        Self {
            name: object.name_any(),
            tenant: tenant.into(),
            spec: object.spec().clone(),
            status: object.status_mut().take().unwrap_or_default(),
        }
    }
}

/// The answer to a create: 201, `Location: /api/v1/tenants/{tenant}/{plural}/{name}`, the view.
pub type Created<K> = (StatusCode, [(header::HeaderName, String); 1], Json<View<K>>);

/// The caller's Kubernetes client for `tenant`, after the membership check: it impersonates
/// them with the tenant's groups (the tenant's and their role's), so Kubernetes RBAC decides
/// what each call may do.
///
/// # Errors
/// 404 for non-members; 502 if no client can be built (bad TLS material).
pub async fn member_client(state: &AppState, user: &AuthUser, tenant: &str) -> Result<Client, ApiError> {
    let m = crate::teams::membership(state, user, tenant).await?;
    impersonating(state, user, &m)
}

/// The client of [`member_client`] for a membership already checked.
///
/// # Errors
/// 502 if no client can be built.
fn impersonating(state: &AppState, user: &AuthUser, m: &Membership) -> Result<Client, ApiError> {
    Ok(state.cluster.as_member(&user.email, &m.tenant, &m.role)?)
}

/// Objects of kind `K` in the tenant's namespace through [`impersonating`].
fn api_as<K: TenantObject>(state: &AppState, user: &AuthUser, m: &Membership) -> Result<Api<K>, ApiError> {
    Ok(Api::namespaced(impersonating(state, user, m)?, &tenant_namespace(&m.tenant)))
}

/// Objects of kind `K` in `tenant`'s namespace, through [`member_client`].
///
/// # Errors
/// As [`member_client`].
pub async fn member_api<K: TenantObject>(state: &AppState, user: &AuthUser, tenant: &str) -> Result<Api<K>, ApiError> {
    api_as(state, user, &crate::teams::membership(state, user, tenant).await?)
}

/// The kind `K` as messages name it: `app`, `database`, `workspace`.
fn kind<K: TenantObject>() -> String {
    K::kind(&()).to_lowercase()
}

/// 404 for the object `name` of kind `K` in `tenant`.
pub fn not_found<K: TenantObject>(name: &str, tenant: &str) -> ApiError {
    ApiError::NotFound(format!("{} {name:?} not found in tenant {tenant:?}", kind::<K>()))
}

/// 409 for a `name` of `kind` that `tenant` already has.
pub fn already_exists(kind: Kind, name: &str, tenant: &str) -> ApiError {
    ApiError::Conflict(format!(
        "{} {name:?} already exists in tenant {tenant:?}; choose another name",
        kind.name().to_lowercase()
    ))
}

/// Creates `object` in `tenant` as [`MANAGER`], labelled `slipway.dev/tenant: <tenant>` and
/// annotated with `user` as its author ([`CHANGED_BY_ANNOTATION`]): what the mutating webhook
/// would add. With the spec's defaults filled in (see [`super::preview::preview`]), it is
/// labelled [`DEFAULTS_LABEL`] too, so kube-apiserver does not call that webhook.
///
/// # Errors
/// 409 when the name is taken; 422 for schema, CEL and admission webhook (plan) denials; the
/// rest as `From<kube::Error>`.
pub async fn create<K: TenantObject>(
    reads: &ReadCache,
    api: &Api<K>,
    tenant: &str,
    user: &AuthUser,
    mut object: K,
) -> Result<Created<K>, ApiError> {
    let name = object.name_any();
    object.labels_mut().insert(TENANT_LABEL.to_string(), tenant.to_string());
    object.labels_mut().insert(DEFAULTS_LABEL.to_string(), DEFAULTS_FILLED.to_string());
    // The requester as kube-apiserver knows them: the API impersonates users by their email.
    object.annotations_mut().insert(CHANGED_BY_ANNOTATION.to_string(), user.email.clone());
    let params = PostParams { field_manager: Some(MANAGER.into()), ..Default::default() };
    let created = api.create(&params, &object).await.map_err(|e| match e {
        kube::Error::Api(s) if s.code == 409 => already_exists(K::Spec::KIND, &name, tenant),
        e => e.into(),
    })?;
    K::cache(reads).wrote(&created);
    let location = format!("/api/v1/tenants/{tenant}/{}/{name}", K::plural(&()));
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(View::new(created, tenant))))
}

/// The object `name`.
///
/// # Errors
/// 404 when it does not exist; the rest as `From<kube::Error>`.
pub async fn fetch<K: TenantObject>(api: &Api<K>, tenant: &str, name: &str) -> Result<K, ApiError> {
    api.get_opt(name).await?.ok_or_else(|| not_found::<K>(name, tenant))
}

/// Replaces the whole spec of `current` (the object as just read) with `spec` as [`MANAGER`],
/// in one JSON patch (`replace /spec`): a PUT means "this is the spec now", so the controller's
/// concurrent status writes never make it fail with a conflict. When `spec` changes what runs,
/// the same patch names `user` its author ([`CHANGED_BY_ANNOTATION`]), as the mutating webhook
/// would; with `spec` defaulted (see [`super::preview::preview`]) and `user` the author, the
/// webhook is not called.
///
/// # Errors
/// 404 when the object is gone; 403 and 422 for webhook, schema and CEL denials.
pub async fn replace_spec<K: TenantObject>(
    reads: &ReadCache,
    api: &Api<K>,
    tenant: &str,
    user: &AuthUser,
    current: &K,
    spec: &K::Spec,
) -> Result<Json<View<K>>, ApiError> {
    let name = &current.name_any();
    let params = PatchParams { field_manager: Some(MANAGER.into()), ..Default::default() };
    let mut ops = vec![serde_json::json!({ "op": "replace", "path": "/spec", "value": spec })];
    if spec.runs_differently(current.spec()) {
        // "add" sets a member that exists too (RFC 6902, 4.1); the map itself may be missing.
        let author = serde_json::Value::from(user.email.clone());
        ops.push(match current.meta().annotations {
            Some(_) => serde_json::json!({
                "op": "add",
                "path": format!("/metadata/annotations/{}", CHANGED_BY_ANNOTATION.replace('/', "~1")),
                "value": author,
            }),
            None => serde_json::json!({
                "op": "add", "path": "/metadata/annotations", "value": { CHANGED_BY_ANNOTATION: author },
            }),
        });
    }
    let patch: json_patch::Patch =
        serde_json::from_value(serde_json::Value::Array(ops)).map_err(|e| ApiError::Internal(e.into()))?;
    let updated = api.patch(name, &params, &Patch::<()>::Json(patch)).await.map_err(|e| match e {
        kube::Error::Api(s) if s.code == 404 => not_found::<K>(name, tenant),
        e => e.into(),
    })?;
    K::cache(reads).wrote(&updated);
    Ok(Json(View::new(updated, tenant)))
}

/// `GET /api/v1/tenants/{tenant}/{apps|databases|workspaces}` → `{"items": [...]}`.
pub async fn list<K: TenantObject>(
    State(state): State<AppState>,
    user: AuthUser,
    TenantName(tenant): TenantName,
) -> Result<Json<serde_json::Value>, ApiError> {
    // Members may list every kind (tenant RBAC): after the membership check the cache may
    // answer; the impersonating client is built only when it cannot.
    let m = crate::teams::membership(&state, &user, &tenant).await?;
    let items: Vec<_> = match K::cache(&state.reads).list(&tenant_namespace(&tenant)) {
        Some(cached) => cached.into_iter().map(|o| View::new(K::clone(&o), &tenant)).collect(),
        None => {
            let items = api_as::<K>(&state, &user, &m)?.list(&ListParams::default()).await?.items;
            items.into_iter().map(|o| View::new(o, &tenant)).collect()
        }
    };
    Ok(Json(serde_json::json!({ "items": items })))
}

/// `GET /api/v1/tenants/{tenant}/{apps|databases|workspaces}/{name}` →
/// `{"name","tenant","spec","status"}`.
pub async fn get<K: TenantObject>(
    State(state): State<AppState>,
    user: AuthUser,
    ObjectName { tenant, name }: ObjectName,
) -> Result<Json<View<K>>, ApiError> {
    // As in `list`: the membership check, then the cache, then the API server as the member.
    let m = crate::teams::membership(&state, &user, &tenant).await?;
    let object = match K::cache(&state.reads).get(&tenant_namespace(&tenant), &name) {
        Some(cached) => K::clone(&cached),
        None => fetch(&api_as::<K>(&state, &user, &m)?, &tenant, &name).await?,
    };
    Ok(Json(View::new(object, &tenant)))
}

/// `DELETE /api/v1/tenants/{tenant}/{apps|databases|workspaces}/{name}` → 204. Kubernetes
/// garbage-collects what the object owns (a Database's volume and Secret only with
/// `deletionPolicy: Delete`; the controller sees to that).
pub async fn delete<K: TenantObject>(
    State(state): State<AppState>,
    user: AuthUser,
    ObjectName { tenant, name }: ObjectName,
) -> Result<StatusCode, ApiError> {
    let api = member_api::<K>(&state, &user, &tenant).await?;
    match api.delete(&name, &DeleteParams::background()).await {
        Ok(_) => {
            K::cache(&state.reads).deleted(&tenant_namespace(&tenant), &name);
            Ok(StatusCode::NO_CONTENT)
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Err(not_found::<K>(&name, tenant.as_str())),
        Err(e) => Err(e.into()),
    }
}
