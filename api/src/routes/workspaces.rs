//! Creating and updating Workspaces as the caller (impersonated, with the tenant's group);
//! listing, reading and deleting are in `objects`. The API names the owner (the caller); the
//! preview of the webhook's rules answers first with per-key errors (422), and 403 outside the
//! platform's Workspace email domains or on another member's Workspace.

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
};
use axum::{Json, extract::State};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde::Deserialize;
use slipway_crds::{DEFAULT_STORAGE, Workspace, WorkspaceSpec};
use utoipa::ToSchema;

/// A Workspace spec as clients send it: `{"cpu"?,"memory"?,"storage"?,"sshKeys","image"?}`,
/// the CRD's fields without `owner`, which the API sets.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceRequest {
    cpu: Option<Quantity>,
    memory: Option<Quantity>,
    storage: Option<Quantity>,
    ssh_keys: Vec<String>,
    image: Option<String>,
}

impl WorkspaceRequest {
    /// The spec this request asks for, for `owner`; an omitted `storage` is `storage`.
    fn into_spec(self, owner: String, storage: Quantity) -> WorkspaceSpec {
        WorkspaceSpec {
            owner,
            cpu: self.cpu,
            memory: self.memory,
            storage: self.storage.unwrap_or(storage),
            ssh_keys: self.ssh_keys,
            image: self.image,
        }
    }
}

/// A new Workspace: `{"name","spec"}`.
#[derive(Deserialize, ToSchema)]
pub struct CreateWorkspace {
    /// A DNS label of at most 52 characters, unique among the tenant's Workspaces.
    #[schema(example = "box", pattern = "^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 52)]
    name: String,
    /// The Workspace's spec, without `owner` (the caller).
    #[schema(schema_with = super::openapi::workspace_request)]
    spec: WorkspaceRequest,
}

/// A Workspace's new spec: `{"spec"}`.
#[derive(Deserialize, ToSchema)]
pub struct UpdateWorkspace {
    /// The whole spec, replacing the current one (`storage` cannot change).
    #[schema(schema_with = super::openapi::workspace_request)]
    spec: WorkspaceRequest,
}

/// `POST /api/v1/tenants/{tenant}/workspaces` `{"name","spec"}` → 201
/// `{"name","tenant","spec","status"}` with `spec.owner` the caller's email; 403 outside the
/// allowed email domains, 409 when the name is taken, 422 for bad keys or a plan denial.
#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/workspaces",
    tag = "workspaces",
    operation_id = "create_workspace",
    params(("tenant" = String, Path, description = "The tenant's name", pattern = "^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 63)),
    request_body = CreateWorkspace,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The Workspace, owned by the caller", body = super::openapi::WorkspaceView,
         headers(("Location" = String, description = "`/api/v1/tenants/{tenant}/workspaces/{name}`"))),
        (status = 403, description = "The caller's address is not verified yet or outside the Workspace email domains, or Kubernetes RBAC refuses", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant, or the caller is not a member", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken, or the tenant is not Ready yet", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A wrong field or SSH key, or over the plan's limits; `errors` lists each", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    TenantName(tenant): TenantName,
    StrictJson(req): StrictJson<CreateWorkspace>,
) -> Result<Created<Workspace>, ApiError> {
    let api = objects::member_api::<Workspace>(&state, &user, &tenant).await?;
    let spec = req.spec.into_spec(user.email.clone(), Quantity(DEFAULT_STORAGE.into()));
    let spec = preview(&state, &user, &api.clone().into(), &tenant, &req.name, &spec, None).await?;
    objects::create(&state.reads, &api, &tenant, &user, Workspace::new(&req.name, spec)).await
}

/// `PUT /api/v1/tenants/{tenant}/workspaces/{ws}` `{"spec"}` → 200; replaces `cpu`, `memory`,
/// `sshKeys` and `image` (rotate keys this way), keeping the owner; only the owner may (403).
/// `storage` cannot change: omitted, it stays; a different one is refused by Kubernetes with 422.
#[utoipa::path(
    put,
    path = "/api/v1/tenants/{tenant}/workspaces/{ws}",
    tag = "workspaces",
    operation_id = "update_workspace",
    params(("tenant" = String, Path, description = "The tenant's name", pattern = "^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 63), ("ws" = String, Path, description = "The Workspace's name", pattern = "^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 63)),
    request_body = UpdateWorkspace,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The Workspace with its new spec", body = super::openapi::WorkspaceView),
        (status = 403, description = "The caller is not its owner, their address is not verified yet, or Kubernetes RBAC refuses", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant or Workspace, or the caller is not a member", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The tenant is not Ready yet, or a concurrent change", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A wrong field or SSH key, a changed `storage`, or over the plan's limits; `errors` lists each", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    user: AuthUser,
    ObjectName { tenant, name }: ObjectName,
    StrictJson(req): StrictJson<UpdateWorkspace>,
) -> Result<Json<View<Workspace>>, ApiError> {
    let api = objects::member_api::<Workspace>(&state, &user, &tenant).await?;
    let workspace = objects::fetch(&api, &tenant, &name).await?;
    let spec = req.spec.into_spec(workspace.spec.owner.clone(), workspace.spec.storage.clone());
    let spec = preview(&state, &user, &api.clone().into(), &tenant, &name, &spec, Some(&workspace.spec)).await?;
    objects::replace_spec(&state.reads, &api, &tenant, &user, &workspace, &spec).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_become_specs_with_the_owner_and_a_storage() {
        let req: WorkspaceRequest = crate::json::parse(br#"{"sshKeys":["k"],"cpu":"1"}"#).unwrap();
        let spec = req.into_spec("ada@university.example".into(), Quantity("5Gi".into()));
        assert_eq!(spec.owner, "ada@university.example");
        assert_eq!(spec.storage, Quantity("5Gi".into()));
        assert_eq!(spec.cpu, Some(Quantity("1".into())));
        let req: WorkspaceRequest = crate::json::parse(br#"{"sshKeys":["k"],"storage":"9Gi"}"#).unwrap();
        assert_eq!(req.into_spec(String::new(), Quantity(DEFAULT_STORAGE.into())).storage, Quantity("9Gi".into()));
        assert!(crate::json::parse::<WorkspaceRequest>(br#"{"sshKeys":["k"],"owner":"x@y"}"#).is_err());
    }
}
