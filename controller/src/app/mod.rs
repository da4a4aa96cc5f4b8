//! App reconciler: Deployment, Service, Ingress and status; one "ready" email.

mod resources;
mod status;

use crate::{
    Context, Result,
    apply::{apply, apply_status, delete_if_exists},
    notify,
};
use k8s_openapi::api::{
    core::v1::Service,
    networking::v1::{Ingress, NetworkPolicy},
};
use kube::{
    Api, Resource, ResourceExt,
    runtime::{controller::Action, events::EventType},
};
use resources::AppIdentity;
use slipway_crds::{App, AppPhase, AppStatus, Tenant};
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

    let deployment =
        apply(&Api::namespaced(client.clone(), &ns), &resources::deployment(&id, &app.spec, replicas)).await?;
    let service = apply(&Api::<Service>::namespaced(client.clone(), &ns), &resources::service(&id, &app.spec)).await?;
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), &ns);
    match resources::ingress(&id, &app.spec, ctx.ingress_class.as_deref()) {
        Some(ingress) => drop(apply(&ingresses, &ingress).await?),
        None => delete_if_exists(&ingresses, &name).await?,
    }
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &ns);
    match resources::expose_policy(&id, &app.spec) {
        Some(policy) => drop(apply(&policies, &policy).await?),
        None => delete_if_exists(&policies, &crate::identity::expose_policy_name(&name)).await?,
    }

    let node_address = match status::node_port(Some(&service)) {
        Some(_) => crate::lookup::node_address(ctx).await?,
        None => None,
    };
    let status = status::compute(&status::Observed {
        generation: app.meta().generation,
        name: &name,
        namespace: &ns,
        spec: &app.spec,
        replicas,
        deployment: Some(&deployment),
        service: Some(&service),
        node_address: node_address.as_deref(),
        previous: &previous,
    });
    let unchanged = AppStatus { ready_notified_at: None, ..previous.clone() } == status;
    let written = if unchanged { app.clone() } else { apply_status(&apps, &name, &status).await? };
    if status.phase != previous.phase {
        let type_ = if status.phase == AppPhase::Failed { EventType::Warning } else { EventType::Normal };
        ctx.publish(app, type_, &format!("{:?}", status.phase), status.conditions[0].message.clone()).await;
    }
    if status.phase == AppPhase::Ready
        && previous.ready_notified_at.is_none()
        && !notify_ready_once(ctx, &apps, &written, &tenant, &status).await?
    {
        // Lost the claim to a newer version of the App: look again with fresh data.
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
