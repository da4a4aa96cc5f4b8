//! App reconciler: Deployment, Service, Ingress and status; one "ready" email.

mod resources;
mod status;

use crate::{
    Context, Result,
    apply::{apply, apply_status, delete_if_exists},
    notify,
};
use k8s_openapi::{
    api::{
        core::v1::{Namespace, Node, Service},
        networking::v1::{Ingress, NetworkPolicy},
    },
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::Timestamp,
};
use kube::{
    Api, Resource, ResourceExt,
    api::{ListParams, Patch, PatchParams},
    runtime::{controller::Action, events::EventType},
};
use resources::AppIdentity;
use slipway_crds::{App, AppPhase, AppStatus, TENANT_LABEL, Tenant};
use std::sync::Arc;

/// Field manager that owns `status.readyNotifiedAt`, apart from the status the controller
/// recomputes on every reconcile, so applying that status never clears the marker.
const NOTIFIER: &str = "slipway-notifier";

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

    let Some(tenant) = tenant_of(ctx, &ns).await? else {
        let status = AppStatus {
            observed_generation: app.meta().generation,
            conditions: vec![crate::conditions::condition(
                &previous.conditions,
                "Ready",
                false,
                "NotInTenantNamespace",
                format!("namespace {ns} does not belong to a Slipway tenant"),
                app.meta().generation,
            )],
            ..Default::default()
        };
        apply_status(&apps, &name, &status).await?;
        return Ok(Action::await_change());
    };
    let policy = ctx.plans.effective(&tenant.spec.plan, tenant.spec.limits.as_ref())?;
    let replicas = policy.replicas_of(&app.spec);
    let tenant_name = tenant.name_any();
    let id = AppIdentity {
        name: &name,
        namespace: &ns,
        tenant: &tenant_name,
        owner: app.controller_owner_ref(&()).expect("App has a name and uid"),
    };

    let deployment =
        apply(&Api::namespaced(client.clone(), &ns), &resources::deployment(&id, &app.spec, replicas)).await?;
    let service = apply(&Api::<Service>::namespaced(client.clone(), &ns), &resources::service(&id, &app.spec)).await?;
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), &ns);
    match resources::ingress(&id, &app.spec) {
        Some(ingress) => drop(apply(&ingresses, &ingress).await?),
        None => delete_if_exists(&ingresses, &name).await?,
    }
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &ns);
    match resources::expose_policy(&id, &app.spec) {
        Some(policy) => drop(apply(&policies, &policy).await?),
        None => delete_if_exists(&policies, &resources::expose_policy_name(&name)).await?,
    }

    let node_address = match (&ctx.node_address, status::node_port(Some(&service))) {
        (Some(addr), _) => Some(addr.clone()),
        (None, Some(_)) => first_node_address(ctx).await?,
        (None, None) => None,
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

/// The tenant that owns namespace `ns`, by the namespace's tenant label; `None` when the
/// namespace is not a tenant's.
async fn tenant_of(ctx: &Context, ns: &str) -> Result<Option<Tenant>> {
    let namespace = Api::<Namespace>::all(ctx.client.clone()).get_opt(ns).await?;
    let Some(tenant) = namespace.and_then(|n| n.labels().get(TENANT_LABEL).cloned()) else {
        return Ok(None);
    };
    Ok(Api::<Tenant>::all(ctx.client.clone()).get_opt(&tenant).await?)
}

/// Address of the first node, preferring ExternalIP over InternalIP.
async fn first_node_address(ctx: &Context) -> Result<Option<String>> {
    let nodes = Api::<Node>::all(ctx.client.clone()).list(&ListParams::default().limit(1)).await?;
    let addresses = nodes.items.into_iter().next().and_then(|n| n.status?.addresses).unwrap_or_default();
    let pick = |kind: &str| addresses.iter().find(|a| a.type_ == kind).map(|a| a.address.clone());
    Ok(pick("ExternalIP").or_else(|| pick("InternalIP")))
}

/// Emails the owners once per App lifetime, even across controller restarts and replicas.
///
/// First claims the notification by writing `status.readyNotifiedAt` with the App's current
/// `resourceVersion` as a precondition: of two racing reconciles only one claim succeeds (the
/// other gets 409 Conflict and requeues, then sees the marker). Then sends; if sending fails the
/// claim is withdrawn so a retry sends again. A crash between claim and send loses that one
/// email (at most once), which we prefer over duplicates.
///
/// Returns `false` when the claim lost to a concurrent change (409): nothing was sent.
async fn notify_ready_once(
    ctx: &Context,
    apps: &Api<App>,
    app: &App,
    tenant: &Tenant,
    status: &AppStatus,
) -> Result<bool> {
    let name = app.name_any();
    let claim = serde_json::json!({
        "metadata": { "resourceVersion": app.resource_version() },
        "status": { "readyNotifiedAt": Time(Timestamp::now()) },
    });
    let params = PatchParams { field_manager: Some(NOTIFIER.into()), ..Default::default() };
    match apps.patch_status(&name, &params, &Patch::Merge(&claim)).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => return Ok(false),
        Err(e) => return Err(e.into()),
    }

    let message = notify::app_ready(&name, &tenant.name_any(), &app.spec, status, app.uid().as_deref());
    let recipients: Vec<&str> = tenant.spec.owners.iter().map(|o| o.email.as_str()).collect();
    if let Err(e) = ctx.mailer.send(&recipients, &message).await {
        let unclaim = serde_json::json!({ "status": { "readyNotifiedAt": null } });
        apps.patch_status(&name, &params, &Patch::Merge(&unclaim)).await?;
        return Err(e);
    }
    ctx.publish(
        app,
        EventType::Normal,
        "OwnersNotified",
        format!("emailed {} owner(s) that the App is ready", recipients.len()),
    )
    .await;
    Ok(true)
}
