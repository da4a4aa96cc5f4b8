//! App reconciler: Deployment, Service, Ingress, autoscaler, revisions and status; one "ready"
//! email, and for a failed rollout the automatic rollback (when asked for) and one email per
//! revision.

mod autoscaler;
mod resources;
mod revisions;
mod rollout;
mod status;

pub use revisions::Recorded;
pub use status::progress;

use crate::{Context, Result, apply::apply_status, cache::delete_if_cached, notify};
use k8s_openapi::api::{
    apps::v1::ControllerRevision,
    autoscaling::v2::HorizontalPodAutoscaler,
    core::v1::Pod,
    networking::v1::{Ingress, NetworkPolicy},
};
use kube::{
    Api, Resource, ResourceExt,
    api::ListParams,
    runtime::{controller::Action, events::EventType},
};
use resources::AppIdentity;
use slipway_crds::{
    App, AppPhase, AppStatus, Tenant,
    revision::{Outcome, revision_name, template_key},
};
use std::sync::Arc;

/// Brings the App's workload objects and status to what its spec asks for.
pub async fn reconcile(app: Arc<App>, ctx: Arc<Context>) -> Result<Action> {
    ctx.track(app.as_ref(), reconcile_inner(&app, &ctx)).await
}

async fn reconcile_inner(app: &App, ctx: &Context) -> Result<Action> {
    if app.meta().deletion_timestamp.is_some() {
        // Owned objects carry owner references: the garbage collector removes them.
        return Ok(Action::await_change());
    }
    let name = app.name_any();
    let ns = app.namespace().expect("App is namespaced");
    let client = &ctx.client;
    let apps: Api<App> = Api::namespaced(client.clone(), &ns);
    let previous = app.status.clone().unwrap_or_default();

    let generation = app.meta().generation;
    let tenant = match crate::lookup::tenant_or_condition(ctx, &ns, &previous.conditions, generation).await? {
        Ok(tenant) => tenant,
        Err(not_ready) => {
            let status =
                AppStatus { observed_generation: generation, conditions: vec![not_ready], ..Default::default() };
            apply_status(&apps, &name, &status).await?;
            return Ok(Action::await_change());
        }
    };
    let policy = ctx.plans.effective(&tenant.spec.plan, tenant.spec.limits.as_ref())?;
    let replicas = policy.replicas_of(&app.spec);
    let tenant_name = tenant.name_any();
    let id = AppIdentity {
        name: &name,
        namespace: &ns,
        tenant: &tenant_name,
        owner: app.controller_owner_ref(&()).expect("App has a name and uid"),
        label: slipway_crds::APP_LABEL,
    };

    // The revision the spec asks for: read and recorded only when the template changed.
    let revisions: Api<ControllerRevision> = Api::namespaced(client.clone(), &ns);
    let key = template_key(&app.spec);
    let revision = match (previous.revision, previous.template_key.as_deref()) {
        (Some(number), Some(k)) if k == key => number,
        _ => revisions::record(&revisions, &ctx.recorded, app, &tenant_name, &key).await?,
    };

    // Each owned object is applied unless the last apply of the same object still stands
    // (src/applied.rs): a reconcile that changes nothing writes nothing.
    let (caches, applied) = (&ctx.caches, &ctx.applied);
    let desired = resources::deployment(&id, &app.spec, replicas);
    let deployment = applied.apply(&caches.app_deployments, &Api::namespaced(client.clone(), &ns), &desired).await?;
    let desired = resources::service(&id, &app.spec);
    let service = applied.apply(&caches.app_services, &Api::namespaced(client.clone(), &ns), &desired).await?;
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), &ns);
    match resources::ingress(&id, &app.spec, ctx.ingress_class.as_deref()) {
        Some(ingress) => drop(applied.apply(&caches.app_ingresses, &ingresses, &ingress).await?),
        None => delete_if_cached(&caches.app_ingresses, &ingresses, &ns, &name).await?,
    }
    let autoscalers: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), &ns);
    match autoscaler::autoscaler(&id, &app.spec) {
        Some(hpa) => drop(applied.apply(&caches.app_autoscalers, &autoscalers, &hpa).await?),
        None => delete_if_cached(&caches.app_autoscalers, &autoscalers, &ns, &name).await?,
    }
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &ns);
    match resources::expose_policy(&id, &app.spec) {
        Some(policy) => drop(applied.apply(&caches.app_policies, &policies, &policy).await?),
        None => {
            let policy = crate::identity::expose_policy_name(&name);
            delete_if_cached(&caches.app_policies, &policies, &ns, &policy).await?;
        }
    }

    let node_address = match status::node_port(Some(&service)) {
        Some(_) => crate::lookup::node_address(ctx).await?,
        None => None,
    };
    let mut observed = status::Observed {
        generation: app.meta().generation,
        name: &name,
        namespace: &ns,
        spec: &app.spec,
        replicas,
        deployment: Some(&deployment),
        pods: &[],
        rollout_started: None,
        service: Some(&service),
        node_address: node_address.as_deref(),
        previous: &previous,
    };
    let mut status = status::compute(&observed);
    // While a rollout is under way (or failed), what the pods say goes into the message: read
    // them then only, and only once there are pods of the current template to read (see
    // `status::pods_worth_reading`); a failure counts only if reported after this revision
    // started.
    let (pods, started);
    if status.phase != AppPhase::Ready {
        if status::pods_worth_reading(&deployment) {
            let selector = format!("{}={name}", slipway_crds::APP_LABEL);
            pods =
                Api::<Pod>::namespaced(client.clone(), &ns).list(&ListParams::default().labels(&selector)).await?.items;
            observed.pods = &pods;
        }
        if status.phase == AppPhase::Failed {
            started =
                revisions.get_opt(&revision_name(&name, revision)).await?.and_then(|r| r.metadata.creation_timestamp);
            observed.rollout_started = started.as_ref();
        }
        status = status::compute(&observed);
    }
    status.revision = Some(revision);
    status.selector = Some(format!("{}={name}", slipway_crds::APP_LABEL));
    status.template_key = Some(key);
    // How this revision's rollout ended, once per revision and outcome; before the status
    // that says so, so a failed mark is retried.
    let ended = match status.phase {
        AppPhase::Ready => Some(Outcome::Healthy),
        AppPhase::Failed => Some(Outcome::Failed),
        _ => None,
    };
    if let Some(outcome) = ended
        && (previous.phase != status.phase || previous.revision != Some(revision))
    {
        revisions::mark(&revisions, &name, revision, outcome).await?;
    }
    let unchanged =
        AppStatus { ready_notified_at: None, failure_notified_revision: None, ..previous.clone() } == status;
    let written = if unchanged { app.clone() } else { apply_status(&apps, &name, &status).await? };
    if status.phase != previous.phase {
        let type_ = if status.phase == AppPhase::Failed { EventType::Warning } else { EventType::Normal };
        ctx.publish(app, type_, &format!("{:?}", status.phase), status.conditions[0].message.clone()).await;
    }
    let claimed = match status.phase {
        AppPhase::Ready if previous.ready_notified_at.is_none() => {
            notify_ready_once(ctx, &apps, &written, &tenant, &status).await?
        }
        AppPhase::Failed => {
            let auto_rollback =
                app.spec.rollout.as_ref().and_then(|r| r.auto_rollback).unwrap_or(policy.defaults.auto_rollback);
            let failure =
                rollout::Failure { app: &written, tenant: &tenant, number: revision, status: &status, auto_rollback };
            rollout::failed(ctx, &apps, &revisions, &failure).await?
        }
        _ => true,
    };
    if !claimed {
        // Lost an email's claim to a newer version of the App: look again with fresh data.
        return Ok(Action::requeue(std::time::Duration::from_secs(1)));
    }
    Ok(Action::await_change())
}

/// Emails the tenant's owners that the App is ready, once (see [`crate::ready::notify_once`]).
async fn notify_ready_once(
    ctx: &Context,
    apps: &Api<App>,
    app: &App,
    tenant: &Tenant,
    status: &AppStatus,
) -> Result<bool> {
    let message = notify::app_ready(&app.name_any(), &tenant.name_any(), &app.spec, status, app.uid().as_deref());
    let recipients: Vec<&str> = tenant.spec.owners.iter().map(|o| o.email.as_str()).collect();
    crate::ready::notify_once(ctx, apps, app, &recipients, &message).await
}
