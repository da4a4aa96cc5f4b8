//! Tenant reconciler: one namespace per tenant, with its guard rails.

mod resources;

use crate::{
    Context, MANAGER, Result,
    apply::{apply, apply_status},
    conditions::{condition, is_true},
};
use k8s_openapi::api::{
    core::v1::{LimitRange, Namespace, ResourceQuota},
    networking::v1::NetworkPolicy,
    rbac::v1::{ClusterRole, RoleBinding},
};
use kube::{
    Api, Client, Resource, ResourceExt,
    runtime::{controller::Action, events::EventType},
};
use slipway_crds::{Tenant, TenantStatus, tenant_namespace};
use std::{sync::Arc, time::Duration};

/// Re-check period of a healthy tenant, so drift (a deleted quota, an edited policy) heals
/// even when no watch event arrives for it.
const RESYNC: Duration = Duration::from_secs(300);

/// Re-check period while the quota controller has not yet observed the tenant's quota (it
/// usually does within a second). The quota is not watched through its owner reference
/// because that owner, the Tenant, is cluster-scoped.
const QUOTA_POLL: Duration = Duration::from_secs(1);

/// Applies the ClusterRole that every tenant's RoleBinding refers to.
pub async fn apply_member_role(client: &Client) -> Result<ClusterRole> {
    apply(&Api::all(client.clone()), &resources::member_role()).await
}

/// Brings the tenant's namespace and guard rails to the state its spec and plan describe.
pub async fn reconcile(tenant: Arc<Tenant>, ctx: Arc<Context>) -> Result<Action> {
    ctx.track(tenant.as_ref(), reconcile_inner(&tenant, &ctx)).await
}

async fn reconcile_inner(tenant: &Tenant, ctx: &Context) -> Result<Action> {
    if tenant.meta().deletion_timestamp.is_some() {
        // The namespace carries an owner reference: the garbage collector removes it.
        return Ok(Action::await_change());
    }
    let name = tenant.name_any();
    let ns = tenant_namespace(&name);
    let api: Api<Tenant> = Api::all(ctx.client.clone());
    let previous = tenant.status.clone().unwrap_or_default();
    let generation = tenant.meta().generation;

    let policy = match ctx.plans.effective(&tenant.spec.plan, tenant.spec.limits.as_ref()) {
        Ok(policy) => policy,
        Err(e) => {
            // Not retriable until the spec changes: report it on the status and wait.
            let status = TenantStatus {
                namespace: previous.namespace.clone(),
                observed_generation: generation,
                conditions: vec![condition(
                    &previous.conditions,
                    "Ready",
                    false,
                    "InvalidPlan",
                    e.to_string(),
                    generation,
                )],
            };
            apply_status(&api, &name, &status).await?;
            ctx.publish(tenant, EventType::Warning, "InvalidPlan", e.to_string()).await;
            return Ok(Action::await_change());
        }
    };

    let owner = tenant.controller_owner_ref(&()).expect("Tenant has a name and uid");
    apply(&Api::<Namespace>::all(ctx.client.clone()), &resources::namespace(&name, owner.clone())).await?;
    let client = &ctx.client;
    let quota_api = Api::<ResourceQuota>::namespaced(client.clone(), &ns);
    let quota = apply(&quota_api, &resources::quota(&name, &policy, owner.clone())).await?;
    apply(&Api::<LimitRange>::namespaced(client.clone(), &ns), &resources::limit_range(&name, &policy, owner.clone()))
        .await?;
    apply(&Api::<RoleBinding>::namespaced(client.clone(), &ns), &resources::member_binding(&name, owner.clone()))
        .await?;
    apply(&Api::<NetworkPolicy>::namespaced(client.clone(), &ns), &resources::default_deny(&name, owner)).await?;

    let quota_observed = resources::quota_observed(&quota);
    let ready = if quota_observed {
        let message = format!("namespace {ns} is ready with the limits of plan \"{}\"", policy.plan);
        condition(&previous.conditions, "Ready", true, "Provisioned", message, generation)
    } else {
        let message = "waiting for the quota controller to observe the ResourceQuota";
        condition(&previous.conditions, "Ready", false, "QuotaPending", message, generation)
    };
    let status = TenantStatus { namespace: Some(ns.clone()), observed_generation: generation, conditions: vec![ready] };
    if status != previous {
        apply_status(&api, &name, &status).await?;
        if !is_true(&previous.conditions, "Ready") {
            ctx.publish(tenant, EventType::Normal, "Provisioned", format!("namespace {ns} is ready")).await;
        }
    }
    tracing::info!(tenant = %name, namespace = %ns, plan = %policy.plan, quota_observed, manager = MANAGER, "tenant reconciled");
    Ok(Action::requeue(if quota_observed { RESYNC } else { QUOTA_POLL }))
}
