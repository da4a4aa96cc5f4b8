//! A failed rollout: the automatic rollback to the last healthy revision when the App (or its
//! plan) asks for it, and one email to the owners per failed revision saying what failed and
//! what was done.

use crate::{
    Context, MANAGER, Result,
    notify::{self, RolloutFailure, Undo},
    ready::{Marker, claim, send_or_unclaim},
};
use k8s_openapi::api::apps::v1::ControllerRevision;
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams},
    runtime::events::EventType,
};
use slipway_crds::{APP_LABEL, App, AppStatus, Tenant, revision};

/// A rollout that failed: App `app` (as last written) of `tenant`, whose revision `number`
/// did not become available; its `status` says why.
pub struct Failure<'a> {
    /// The App.
    pub app: &'a App,
    /// Its tenant (the owners to email).
    pub tenant: &'a Tenant,
    /// The revision that failed.
    pub number: i64,
    /// The App's status now (its Ready condition says why).
    pub status: &'a AppStatus,
    /// Whether to go back to the last healthy revision (the App's `spec.rollout.autoRollback`,
    /// else the plan's default).
    pub auto_rollback: bool,
}

/// Handles a [`Failure`]: rolls back when asked to, then emails the owners once for that
/// revision. Runs on every reconcile while the App stays failed at that revision, so a
/// rollback that could not be made (a transient error) is tried again; the email goes out
/// once whatever happens.
///
/// Returns `false` when the email's claim lost to a concurrent change: look again.
///
/// # Errors
/// Kubernetes and mail errors (retried with backoff).
pub async fn failed(
    ctx: &Context,
    apps: &Api<App>,
    revisions: &Api<ControllerRevision>,
    failure: &Failure<'_>,
) -> Result<bool> {
    let Failure { app, tenant, number, status, auto_rollback: auto } = *failure;
    let notified = app.status.as_ref().and_then(|s| s.failure_notified_revision) == Some(number);
    // Claim the email first, on the App as read (its resourceVersion is the precondition),
    // before the rollback changes the App.
    let marker = Marker { field: "failureNotifiedRevision", value: serde_json::json!(number) };
    let claimed = if notified {
        None
    } else {
        match claim(apps, app, &marker).await? {
            Some(written) => Some(written),
            None => return Ok(false),
        }
    };
    let undo = if auto { roll_back(revisions, apps, app, number).await } else { Ok(Undo::NotAsked) };
    // The phase change itself has its Event already (see the reconciler).
    let event = match &undo {
        Ok(Undo::RolledBack { .. }) => Some((EventType::Normal, "RolledBack")),
        Ok(Undo::NoHealthyRevision | Undo::Refused { .. }) => Some((EventType::Warning, "RollbackImpossible")),
        Ok(Undo::NotAsked | Undo::Superseded) | Err(_) => None,
    };
    if let (Some((kind, reason)), Ok(done)) = (event, &undo) {
        ctx.publish(app, kind, reason, done.describe(number)).await;
    }
    if let Some(written) = claimed {
        let recipients: Vec<&str> = tenant.spec.owners.iter().map(|o| o.email.as_str()).collect();
        let why = status.conditions.first().map(|c| format!("{}: {}", c.reason, c.message)).unwrap_or_default();
        let (app_name, tenant_name, uid) = (app.name_any(), tenant.name_any(), app.uid());
        let failure = RolloutFailure {
            app: &app_name,
            tenant: &tenant_name,
            revision: number,
            image: &app.spec.image,
            message: &why,
            undo: undo.as_ref().ok(),
            uid: uid.as_deref(),
        };
        send_or_unclaim(ctx, apps, &written, &marker, &recipients, &notify::rollout_failed(&failure)).await?;
    }
    undo.map(|_| true)
}

/// Goes back from the failed revision `number` to the newest healthy one before it: the App's
/// spec becomes that revision's (keeping its replica count), as a JSON patch that first tests
/// the App's `metadata.generation`, so a change made meanwhile by someone else is never undone.
/// The admission webhook judges it like any change.
async fn roll_back(revisions: &Api<ControllerRevision>, apps: &Api<App>, app: &App, number: i64) -> Result<Undo> {
    let (name, uid) = (app.name_any(), app.uid().unwrap_or_default());
    let objects = revisions.list(&ListParams::default().labels(&format!("{APP_LABEL}={name}"))).await?.items;
    let history = revision::history(&objects, &name, &uid);
    let Some(target) = revision::previous_healthy(&history, Some(number)) else {
        return Ok(Undo::NoHealthyRevision);
    };
    let spec = app.spec.running(&target.template);
    let patch: json_patch::Patch = serde_json::from_value(serde_json::json!([
        { "op": "test", "path": "/metadata/generation", "value": app.metadata.generation },
        { "op": "replace", "path": "/spec", "value": spec },
    ]))
    .map_err(kube::Error::SerdeError)?;
    let params = PatchParams { field_manager: Some(MANAGER.into()), ..Default::default() };
    match apps.patch(&name, &params, &Patch::<()>::Json(patch)).await {
        Ok(_) => Ok(Undo::RolledBack { to: target.number, image: target.template.image.clone() }),
        // The admission webhook's words: the plan no longer allows that revision.
        Err(kube::Error::Api(s)) if s.code == 422 && s.message.contains("denied the request") => {
            Ok(Undo::Refused { to: target.number, why: s.message })
        }
        // The generation test failed (or a conflict): the App changed meanwhile, and the
        // newer change is the one to roll out.
        Err(kube::Error::Api(s)) if s.code == 422 || s.code == 409 => Ok(Undo::Superseded),
        Err(e) => Err(e.into()),
    }
}
