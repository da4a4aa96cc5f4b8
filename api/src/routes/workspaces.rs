//! Creating and updating Workspaces as the caller (impersonated, with the tenant's group);
//! listing, reading and deleting are in `objects`. The API names the owner (the caller); the
//! preview of the webhook's rules answers first with per-key errors (422), and 403 outside the
//! platform's Workspace email domains or on another member's Workspace.

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

#[derive(Deserialize)]
pub struct CreateWorkspace {
    name: String,
    spec: WorkspaceRequest,
}

#[derive(Deserialize)]
pub struct UpdateWorkspace {
    spec: WorkspaceRequest,
}

/// `POST /api/v1/tenants/{tenant}/workspaces` `{"name","spec"}` → 201
/// `{"name","tenant","spec","status"}` with `spec.owner` the caller's email; 403 outside the
/// allowed email domains, 409 when the name is taken, 422 for bad keys or a plan denial.
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    TenantName(tenant): TenantName,
    StrictJson(req): StrictJson<CreateWorkspace>,
) -> Result<Created<Workspace>, ApiError> {
    let api = objects::member_api::<Workspace>(&state, &user, &tenant).await?;
    let spec = req.spec.into_spec(user.email.clone(), Quantity(DEFAULT_STORAGE.into()));
    preview(&state, &user, &api.clone().into(), &tenant, &req.name, &spec, None).await?;
    objects::create(&api, &tenant, Workspace::new(&req.name, spec)).await
}

/// `PUT /api/v1/tenants/{tenant}/workspaces/{ws}` `{"spec"}` → 200; replaces `cpu`, `memory`,
/// `sshKeys` and `image` (rotate keys this way), keeping the owner; only the owner may (403).
/// `storage` cannot change: omitted, it stays; a different one is refused by Kubernetes with 422.
pub async fn update(
    State(state): State<AppState>,
    user: AuthUser,
    ObjectName { tenant, name }: ObjectName,
    StrictJson(req): StrictJson<UpdateWorkspace>,
) -> Result<Json<View<Workspace>>, ApiError> {
    let api = objects::member_api::<Workspace>(&state, &user, &tenant).await?;
    let workspace = objects::fetch(&api, &tenant, &name).await?;
    let spec = req.spec.into_spec(workspace.spec.owner.clone(), workspace.spec.storage.clone());
    preview(&state, &user, &api.clone().into(), &tenant, &name, &spec, Some(&workspace.spec)).await?;
    objects::replace_spec(&api, &tenant, &name, &spec).await
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
