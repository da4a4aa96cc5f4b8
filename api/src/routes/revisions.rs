//! An App's revision history and rollback (see `slipway_crds::revision`), read as the caller
//! from the ControllerRevisions the controller keeps, so the API shows exactly what kubectl
//! users see.

use super::openapi::Problem;
use super::{
    objects::{self, View},
    preview::preview,
};
use crate::{AppState, auth::AuthUser, error::ApiError, json::StrictJson, paths::ObjectName};
use axum::{Json, extract::State};
use k8s_openapi::api::apps::v1::ControllerRevision;
use kube::{Api, ResourceExt, api::ListParams};
use serde::{Deserialize, Serialize};
use slipway_crds::{
    APP_LABEL, App, AppSpec,
    revision::{self, Revision},
    tenant_namespace,
};
use utoipa::ToSchema;

/// One revision: `{"revision","spec","changed_by","created_at","outcome","restores","current"}`.
#[derive(Serialize, ToSchema)]
pub struct RevisionView {
    /// Its number, counting from 1; higher is newer.
    #[schema(example = 3)]
    revision: i64,
    /// What ran: the App's spec without `replicas` and `revisionHistoryLimit` (scaling is not a
    /// revision).
    #[schema(schema_with = super::openapi::crd::<AppSpec>)]
    spec: AppSpec,
    /// Who made the change: an API user's address, a kubectl user's name, or the controller's
    /// service account for an automatic rollback.
    #[schema(example = "you@example.com")]
    changed_by: Option<String>,
    /// When it was recorded, RFC 3339.
    #[schema(example = "2026-12-04T10:00:00Z")]
    created_at: Option<String>,
    /// How its rollout ended: `Healthy` (every replica became available), `Failed`, or
    /// `Pending` (under way, or replaced before it ended).
    #[schema(example = "Healthy")]
    outcome: &'static str,
    /// The earlier revision whose spec it brought back (a rollback), if any.
    restores: Option<i64>,
    /// Whether the App's spec asks for this revision now.
    current: bool,
}

/// An App's revisions, newest first: `{"items": [...]}`.
#[derive(Serialize, ToSchema)]
pub struct RevisionList {
    /// Newest first; the last `spec.revisionHistoryLimit` (default 10) are kept.
    items: Vec<RevisionView>,
}

/// Which revision to go back to: `{"revision": N}`, or `{}` for the newest healthy one before
/// the current (like `kubectl rollout undo`).
#[derive(Deserialize, ToSchema)]
pub struct RollbackRequest {
    /// The revision's number; unset: the previous healthy one.
    #[serde(default)]
    #[schema(example = 2)]
    revision: Option<i64>,
}

/// The App `name` and its revisions, newest first, as the caller reads them.
async fn app_and_history(
    state: &AppState,
    user: &AuthUser,
    tenant: &str,
    name: &str,
) -> Result<(Api<App>, App, Vec<Revision>), ApiError> {
    let client = objects::member_client(state, user, tenant).await?;
    let apps: Api<App> = Api::namespaced(client.clone(), &tenant_namespace(tenant));
    let app = objects::fetch(&apps, tenant, name).await?;
    let revisions: Api<ControllerRevision> = Api::namespaced(client, &tenant_namespace(tenant));
    let objects = revisions.list(&ListParams::default().labels(&format!("{APP_LABEL}={name}"))).await?.items;
    let history = revision::history(&objects, name, &app.uid().unwrap_or_default());
    Ok((apps, app, history))
}

fn view(revision: Revision, current: Option<i64>) -> RevisionView {
    RevisionView {
        current: Some(revision.number) == current,
        revision: revision.number,
        spec: revision.template,
        changed_by: revision.changed_by,
        created_at: revision.created.map(|t| t.0.to_string()),
        outcome: revision.outcome.as_str(),
        restores: revision.restores,
    }
}

/// `GET /api/v1/tenants/{tenant}/apps/{app}/revisions` → `{"items": [...]}`, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/apps/{app}/revisions",
    tag = "apps",
    operation_id = "list_app_revisions",
    params(("tenant" = String, Path, description = "The tenant's name", pattern = "^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 63), ("app" = String, Path, description = "The App's name", pattern = "^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 63)),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The App's revisions, newest first", body = RevisionList),
        (status = 404, description = "No such tenant or App, or the caller is not a member", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    ObjectName { tenant, name }: ObjectName,
) -> Result<Json<RevisionList>, ApiError> {
    let (_, app, history) = app_and_history(&state, &user, &tenant, &name).await?;
    let current = app.status.as_ref().and_then(|s| s.revision);
    Ok(Json(RevisionList { items: history.into_iter().map(|r| view(r, current)).collect() }))
}

/// `POST /api/v1/tenants/{tenant}/apps/{app}/rollback` `{"revision"?}` → 200 with the App:
/// sets the App's spec back to that revision's (keeping its replica count), which the
/// controller records as a new revision, so a rollback can itself be undone. Judged like any
/// change: a revision the plan no longer allows is refused with the plan's message.
#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/apps/{app}/rollback",
    tag = "apps",
    operation_id = "rollback_app",
    params(("tenant" = String, Path, description = "The tenant's name", pattern = "^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 63), ("app" = String, Path, description = "The App's name", pattern = "^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 63)),
    request_body = RollbackRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The App with the revision's spec", body = super::openapi::AppView),
        (status = 404, description = "No such tenant or App, or the caller is not a member", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "No healthy revision before the current one, or the tenant is not Ready", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A revision the App does not keep, or one the plan no longer allows; `errors` says which", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn rollback(
    State(state): State<AppState>,
    user: AuthUser,
    ObjectName { tenant, name }: ObjectName,
    StrictJson(req): StrictJson<RollbackRequest>,
) -> Result<Json<View<App>>, ApiError> {
    let (apps, app, history) = app_and_history(&state, &user, &tenant, &name).await?;
    let current = app.status.as_ref().and_then(|s| s.revision);
    let target = match req.revision {
        // The App exists; a number it does not keep is a wrong field of the body.
        Some(n) => history.iter().find(|r| r.number == n).ok_or_else(|| {
            ApiError::invalid(
                "revision",
                format!(
                    "app {name:?} keeps no revision {n}; GET /api/v1/tenants/{tenant}/apps/{name}/revisions lists the kept ones"
                ),
            )
        })?,
        None => revision::previous_healthy(&history, current).ok_or_else(|| {
            ApiError::Conflict(format!(
                "app {name:?} has no healthy revision before the current one to go back to; name one with {{\"revision\": N}}"
            ))
        })?,
    };
    let spec = app.spec.running(&target.template);
    let spec = preview(&state, &user, &apps.clone().into(), &tenant, &name, &spec, Some(&app.spec)).await?;
    objects::replace_spec(&state.reads, &apps, &tenant, &user, &app, &spec).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_crds::revision::Outcome;

    #[test]
    fn a_view_says_which_revision_runs() {
        let revision = Revision {
            number: 2,
            template: AppSpec {
                image: "nginx".into(),
                port: 8080,
                replicas: None,
                env: vec![],
                resources: None,
                expose: None,
                autoscaling: None,
                rollout: None,
                revision_history_limit: None,
            },
            changed_by: Some("you@example.com".into()),
            created: None,
            outcome: Outcome::Healthy,
            restores: Some(1),
        };
        let json = serde_json::to_value(view(revision, Some(2))).unwrap();
        assert_eq!(json["revision"], 2);
        assert_eq!(json["current"], true);
        assert_eq!(json["outcome"], "Healthy");
        assert_eq!(json["restores"], 1);
        assert_eq!(json["changed_by"], "you@example.com");
        assert_eq!(json["spec"]["image"], "nginx");
    }
}
