//! Creating and updating Workspaces as the caller (impersonated, with the tenant's group), for
//! accounts at the allowed email domains; listing, reading and deleting are in `objects`. The
//! API names the owner (the caller) and checks SSH keys first for per-key errors; the
//! admission webhook checks the plan, and its denials come back as 422.

use super::objects::{self, Created, View};
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
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde::Deserialize;
use slipway_crds::{DEFAULT_STORAGE, Workspace, WorkspaceSpec};
use slipway_policies::check_ssh_public_key;

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

/// Whether `email` may have Workspaces: its domain (after the last `@`, compared
/// case-insensitively) is one of `domains`, or `domains` is empty (everyone may).
///
/// # Errors
/// 403 naming the allowed domains and the caller's email.
pub fn check_email_domain(domains: &[String], email: &str) -> Result<(), ApiError> {
    let domain = email.rsplit_once('@').map(|(_, d)| d);
    if domains.is_empty() || domain.is_some_and(|d| domains.iter().any(|a| a.eq_ignore_ascii_case(d))) {
        return Ok(());
    }
    let allowed = match domains {
        [one] => one.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
        [] => unreachable!("an empty list allows everyone"),
    };
    Err(ApiError::Forbidden(format!(
        "workspaces are available to accounts at {allowed} only; you are signed in as {email}"
    )))
}

/// Checks the SSH keys: at least one, each an OpenSSH public key Slipway accepts.
///
/// # Errors
/// 422 with one error per refused key, at `spec.sshKeys[i]`.
fn check_ssh_keys(keys: &[String]) -> Result<(), ApiError> {
    if keys.is_empty() {
        return Err(ApiError::invalid(
            "spec.sshKeys",
            "add at least one public key, e.g. the content of ~/.ssh/id_ed25519.pub",
        ));
    }
    let errors: Vec<_> = keys
        .iter()
        .enumerate()
        .filter_map(|(i, key)| {
            check_ssh_public_key(key).err().map(|message| FieldError { field: format!("spec.sshKeys[{i}]"), message })
        })
        .collect();
    if errors.is_empty() {
        return Ok(());
    }
    let detail = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ");
    Err(ApiError::Unprocessable { detail, errors })
}

/// `POST /api/v1/tenants/{tenant}/workspaces` `{"name","spec"}` → 201
/// `{"name","tenant","spec","status"}` with `spec.owner` the caller's email; 403 outside the
/// allowed email domains, 409 when the name is taken, 422 for bad keys or a plan denial.
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    Path(tenant): Path<String>,
    StrictJson(req): StrictJson<CreateWorkspace>,
) -> Result<Created<Workspace>, ApiError> {
    let api = objects::member_api::<Workspace>(&state, &user, &tenant).await?;
    check_email_domain(&state.workspace_email_domains, &user.email)?;
    names::dns_label("name", &req.name, names::MAX_WORKSPACE_NAME)?;
    check_ssh_keys(&req.spec.ssh_keys)?;
    let spec = req.spec.into_spec(user.email.clone(), Quantity(DEFAULT_STORAGE.into()));
    objects::create(&api, &tenant, Workspace::new(&req.name, spec)).await
}

/// `PUT /api/v1/tenants/{tenant}/workspaces/{ws}` `{"spec"}` → 200; replaces `cpu`, `memory`,
/// `sshKeys` and `image` (rotate keys this way), keeping the owner; only the owner may (403). `storage` cannot change:
/// omitted, it stays; a different one is refused by Kubernetes with 422. A concurrent change
/// answers 409: read and retry.
pub async fn update(
    State(state): State<AppState>,
    user: AuthUser,
    Path((tenant, name)): Path<(String, String)>,
    StrictJson(req): StrictJson<UpdateWorkspace>,
) -> Result<Json<View<Workspace>>, ApiError> {
    let api = objects::member_api::<Workspace>(&state, &user, &tenant).await?;
    check_email_domain(&state.workspace_email_domains, &user.email)?;
    check_ssh_keys(&req.spec.ssh_keys)?;
    let mut workspace = objects::fetch(&api, &tenant, &name).await?;
    // Keys open the owner's home directory: another member replacing them would take it over.
    if !workspace.spec.owner.eq_ignore_ascii_case(&user.email) {
        return Err(ApiError::Forbidden(format!(
            "workspace {name:?} belongs to {}; only its owner may change its keys or size (members may delete it)",
            workspace.spec.owner
        )));
    }
    workspace.spec = req.spec.into_spec(workspace.spec.owner.clone(), workspace.spec.storage.clone());
    objects::replace(&api, &tenant, &workspace).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPaYet/zaJr9p8yMFvS6IkGx6uuJzRG2/6QEzmm4zzMT ada@example.com";

    fn domains(list: &[&str]) -> Vec<String> {
        list.iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn everyone_may_when_no_domain_is_listed() {
        assert!(check_email_domain(&[], "bob@gmail.com").is_ok());
    }

    #[test]
    fn listed_domains_match_case_insensitively_after_the_last_at() {
        let uni = domains(&["university.example"]);
        assert!(check_email_domain(&uni, "ada@university.example").is_ok());
        assert!(check_email_domain(&uni, "Ada@University.EXAMPLE").is_ok());
        assert!(check_email_domain(&uni, "\"a@b\"@university.example").is_ok());
        for refused in ["bob@gmail.com", "eve@university.example.evil", "eve@cs.university.example", "no-at-sign"] {
            assert!(check_email_domain(&uni, refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn the_refusal_is_403_and_says_who_may() {
        let e = check_email_domain(&domains(&["university.example"]), "bob@gmail.com").unwrap_err();
        assert_eq!(e.status().as_u16(), 403);
        assert_eq!(
            e.to_string(),
            "workspaces are available to accounts at university.example only; you are signed in as bob@gmail.com"
        );
        let e = check_email_domain(&domains(&["a.example", "b.example", "c.example"]), "bob@gmail.com").unwrap_err();
        assert!(e.to_string().contains("at a.example, b.example or c.example only"), "{e}");
    }

    #[test]
    fn ssh_keys_are_checked_one_by_one() {
        assert!(check_ssh_keys(&[ED25519.into()]).is_ok());
        let Err(ApiError::Unprocessable { errors, .. }) = check_ssh_keys(&[]) else { panic!("empty list accepted") };
        assert_eq!(errors[0].field, "spec.sshKeys");
        let Err(ApiError::Unprocessable { errors, .. }) = check_ssh_keys(&[ED25519.into(), "ssh-dss AAAA".into()])
        else {
            panic!("bad key accepted")
        };
        assert_eq!(errors.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(), ["spec.sshKeys[1]"]);
    }

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
