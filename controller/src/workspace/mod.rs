//! Workspace reconciler: authorized_keys Secret, SSH NodePort Service, StatefulSet with the
//! home volume, status with the ssh command, and one "ready" email to the Workspace's owner.

mod resources;

use crate::{
    Context, Result,
    apply::{apply, apply_status},
    identity::{Identity, expose_policy},
    instance, lookup, notify,
};
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::{
    Api, Resource, ResourceExt,
    runtime::{controller::Action, events::EventType},
};
use slipway_crds::{ResourcePhase, WORKSPACE_LABEL, Workspace, WorkspaceStatus};
use std::sync::Arc;

/// Brings the Workspace's objects and status to what its spec asks for.
pub async fn reconcile(ws: Arc<Workspace>, ctx: Arc<Context>) -> Result<Action> {
    ctx.track(ws.as_ref(), reconcile_inner(&ws, &ctx)).await
}

async fn reconcile_inner(ws: &Workspace, ctx: &Context) -> Result<Action> {
    if ws.meta().deletion_timestamp.is_some() {
        // Everything it owns, home volume included, is garbage-collected.
        return Ok(Action::await_change());
    }
    let name = ws.name_any();
    let ns = ws.namespace().expect("Workspace is namespaced");
    let client = &ctx.client;
    let workspaces: Api<Workspace> = Api::namespaced(client.clone(), &ns);
    let previous = ws.status.clone().unwrap_or_default();
    let generation = ws.meta().generation;

    let tenant = match lookup::tenant_or_condition(ctx, &ns, &previous.conditions, generation).await? {
        Ok(tenant) => tenant,
        Err(not_ready) => {
            let status =
                WorkspaceStatus { observed_generation: generation, conditions: vec![not_ready], ..Default::default() };
            apply_status(&workspaces, &name, &status).await?;
            return Ok(Action::await_change());
        }
    };
    let tenant_name = tenant.name_any();
    let id = Identity {
        name: &name,
        namespace: &ns,
        tenant: &tenant_name,
        owner: ws.controller_owner_ref(&()).expect("Workspace has a name and uid"),
        label: WORKSPACE_LABEL,
    };

    apply(&Api::<Secret>::namespaced(client.clone(), &ns), &resources::keys_secret(&id, &ws.spec)).await?;
    let service = apply(&Api::<Service>::namespaced(client.clone(), &ns), &resources::ssh_service(&id)).await?;
    apply(&Api::namespaced(client.clone(), &ns), &expose_policy(&id, resources::SSH_PORT)).await?;
    let sts =
        apply(&Api::namespaced(client.clone(), &ns), &resources::stateful_set(&id, &ws.spec, &ctx.workspace_image))
            .await?;

    let node_port = service.spec.as_ref().and_then(|s| s.ports.as_ref()?.first()?.node_port);
    let host = lookup::node_address(ctx).await?;
    let phase = instance::phase(&sts);
    let status = WorkspaceStatus {
        phase: phase.0,
        observed_generation: generation,
        ssh_command: host.as_deref().zip(node_port).map(|(h, p)| resources::ssh_command(h, p)),
        host,
        node_port,
        user: Some(resources::USER.into()),
        conditions: vec![instance::ready_condition(&previous.conditions, phase, generation)],
        ready_notified_at: None,
    };
    let unchanged = WorkspaceStatus { ready_notified_at: None, ..previous.clone() } == status;
    let written = if unchanged { ws.clone() } else { apply_status(&workspaces, &name, &status).await? };
    if status.phase != previous.phase {
        ctx.publish(ws, EventType::Normal, &format!("{:?}", status.phase), status.conditions[0].message.clone()).await;
    }
    if status.phase == ResourcePhase::Ready && previous.ready_notified_at.is_none() && status.ssh_command.is_some() {
        let email = notify::workspace_ready(&name, &tenant_name, &ws.spec, &status, ws.uid().as_deref());
        if !crate::ready::notify_once(ctx, &workspaces, &written, &[ws.spec.owner.as_str()], &email).await? {
            return Ok(Action::requeue(std::time::Duration::from_secs(1)));
        }
    }
    Ok(Action::await_change())
}
