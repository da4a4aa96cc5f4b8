//! Tenant reconciler: one namespace per tenant, with its guard rails, bound to the Tenant
//! object that created it; and, when the Tenant is deleted, the namespace deleted with
//! everything in it before the Tenant (and so its name) goes.

mod finalizer;
mod resources;

use crate::{
    Context, MANAGER, Result,
    apply::{apply, apply_status},
    conditions::{condition, is_true},
};
use k8s_openapi::{
    api::{
        core::v1::{LimitRange, Namespace, ResourceQuota},
        networking::v1::NetworkPolicy,
        rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding},
    },
    apimachinery::pkg::apis::meta::v1::OwnerReference,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, PostParams, Preconditions},
    runtime::{controller::Action, events::EventType},
};
use slipway_crds::{Tenant, TenantStatus, namespace_belongs_to, tenant_namespace};
use slipway_policies::TenantPolicy;
use std::{sync::Arc, time::Duration};

/// Re-check period of a healthy tenant, so drift (a deleted quota, an edited policy) heals
/// even when no watch event arrives for it.
const RESYNC: Duration = Duration::from_secs(300);

/// Re-check period while the quota controller has not yet observed the tenant's quota (it
/// usually does within a second). The quota is not watched through its owner reference
/// because that owner, the Tenant, is cluster-scoped.
const QUOTA_POLL: Duration = Duration::from_secs(1);

/// Re-check period while a namespace is being deleted (the namespace controller removes its
/// content first, which takes seconds); its owner reference also wakes us when it goes.
const TERMINATING_POLL: Duration = Duration::from_secs(2);

/// Re-check period while another tenant's (or nobody's) namespace is in the way: an operator
/// has to act, and a namespace without our owner reference sends us no events.
const CONFLICT_POLL: Duration = Duration::from_secs(30);

/// Everything Slipway makes for a tenant, each object owned by its Tenant: the namespace
/// `tenant-<name>` and the guard rails in and around it.
pub struct GuardRails {
    /// The namespace (Pod Security `restricted`).
    pub namespace: Namespace,
    /// The plan's totals as a ResourceQuota (the tenant is Ready once the quota controller has
    /// observed it).
    pub quota: ResourceQuota,
    /// The plan's per-container defaults.
    pub limit_range: LimitRange,
    /// The members' and the admins' RoleBindings to the shared ClusterRoles.
    pub bindings: [RoleBinding; 2],
    /// The owners' ClusterRole over the Tenant object itself, and its binding.
    pub owner_role: ClusterRole,
    /// Binds [`GuardRails::owner_role`] to the tenant's owners.
    pub owner_binding: ClusterRoleBinding,
    /// Deny-by-default NetworkPolicy with the tenant's own exceptions.
    pub default_deny: NetworkPolicy,
}

/// The objects of tenant `name` under `policy`, owned by `owner` (see [`GuardRails`]). Public
/// so the tenant benchmark can create the same objects directly, as its floor.
pub fn guard_rails(name: &str, policy: &TenantPolicy, owner: OwnerReference) -> GuardRails {
    GuardRails {
        namespace: resources::namespace(name, owner.clone()),
        quota: resources::quota(name, policy, owner.clone()),
        limit_range: resources::limit_range(name, policy, owner.clone()),
        bindings: [resources::member_binding(name, owner.clone()), resources::admin_binding(name, owner.clone())],
        owner_role: resources::owner_role(name, owner.clone()),
        owner_binding: resources::owner_binding(name, owner.clone()),
        default_deny: resources::default_deny(name, owner),
    }
}

/// Applies the ClusterRoles that every tenant's RoleBindings refer to.
pub async fn apply_shared_roles(client: &Client) -> Result<()> {
    apply(&Api::<ClusterRole>::all(client.clone()), &resources::member_role()).await?;
    apply(&Api::<ClusterRole>::all(client.clone()), &resources::admin_role()).await?;
    Ok(())
}

/// Brings the tenant's namespace and guard rails to the state its spec and plan describe, or,
/// once it is deleted, removes them.
pub async fn reconcile(tenant: Arc<Tenant>, ctx: Arc<Context>) -> Result<Action> {
    ctx.track(tenant.as_ref(), reconcile_inner(&tenant, &ctx)).await
}

/// Writes a `Ready=False` status with `reason` when it differs from the one the tenant has.
async fn not_ready(ctx: &Context, tenant: &Tenant, reason: &str, message: String) -> Result<()> {
    let previous = tenant.status.clone().unwrap_or_default();
    let generation = tenant.meta().generation;
    let status = TenantStatus {
        namespace: previous.namespace.clone(),
        observed_generation: generation,
        conditions: vec![condition(&previous.conditions, "Ready", false, reason, message.clone(), generation)],
    };
    if status != previous {
        apply_status(&Api::<Tenant>::all(ctx.client.clone()), &tenant.name_any(), &status).await?;
        let type_ = if reason == "Deleting" { EventType::Normal } else { EventType::Warning };
        ctx.publish(tenant, type_, reason, message).await;
    }
    Ok(())
}

/// What stands where the tenant's namespace should be.
enum Site {
    /// Its own namespace, created just now as the tenant's guard rails describe it.
    Created,
    /// Its own namespace, created earlier for this very Tenant object.
    Own,
    /// A namespace being deleted: one of an earlier tenant of this name, or its own.
    Terminating,
    /// A namespace that is not this Tenant's: never adopted, it may hold someone else's data.
    Foreign,
}

/// Finds or creates the tenant's namespace. A new namespace is created (never applied over
/// an existing one) with the Tenant's controller owner reference, which binds it to this
/// Tenant's UID for good.
async fn claim_namespace(ctx: &Context, tenant: &Tenant, ns: &str) -> Result<Site> {
    let namespaces = Api::<Namespace>::all(ctx.client.clone());
    // The store holds tenant namespaces only: one it lacks may still exist unlabelled (the
    // create below then answers 409 and the GET judges it).
    let found = match crate::cache::cached(&ctx.caches.namespaces, None, ns) {
        Ok(cached) => cached.map(|n| Namespace::clone(&n)),
        Err(()) => namespaces.get_opt(ns).await?,
    };
    let existing = match found {
        Some(existing) => existing,
        None => {
            let owner = tenant.controller_owner_ref(&()).expect("Tenant has a name and uid");
            let params = PostParams { field_manager: Some(MANAGER.into()), ..Default::default() };
            let desired = resources::namespace(&tenant.name_any(), owner);
            match namespaces.create(&params, &crate::applied::stamped(&desired)?).await {
                Ok(created) => {
                    // What an apply would write: the next reconciles need not apply it.
                    ctx.applied.record(&desired, &created)?;
                    return Ok(Site::Created);
                }
                // Someone made it between our read and our create: judge that one.
                Err(kube::Error::Api(s)) if s.code == 409 => namespaces.get(ns).await?,
                Err(e) => return Err(e.into()),
            }
        }
    };
    Ok(if existing.metadata.deletion_timestamp.is_some() {
        Site::Terminating
    } else if namespace_belongs_to(&existing, tenant) {
        Site::Own
    } else {
        Site::Foreign
    })
}

async fn reconcile_inner(tenant: &Tenant, ctx: &Context) -> Result<Action> {
    let name = tenant.name_any();
    let ns = tenant_namespace(&name);
    let api: Api<Tenant> = Api::all(ctx.client.clone());
    if tenant.meta().deletion_timestamp.is_some() {
        return release(tenant, ctx, &api, &ns).await;
    }
    finalizer::add(&api, tenant).await?;
    let previous = tenant.status.clone().unwrap_or_default();
    let generation = tenant.meta().generation;

    let policy = match ctx.plans.effective(&tenant.spec.plan, tenant.spec.limits.as_ref()) {
        Ok(policy) => policy,
        Err(e) => {
            // Not retriable until the spec changes: report it on the status and wait.
            not_ready(ctx, tenant, "InvalidPlan", e.to_string()).await?;
            return Ok(Action::await_change());
        }
    };

    let created = match claim_namespace(ctx, tenant, &ns).await? {
        Site::Created => true,
        Site::Own => false,
        Site::Terminating => {
            let message = format!("namespace {ns} is still being deleted; the tenant gets a new one once it is gone");
            not_ready(ctx, tenant, "NamespaceTerminating", message).await?;
            return Ok(Action::requeue(TERMINATING_POLL));
        }
        Site::Foreign => {
            let message = format!(
                "namespace {ns} exists and does not belong to this Tenant (uid {}); Slipway never adopts it: an operator must delete it, or the tenant must take another name",
                tenant.uid().unwrap_or_default()
            );
            not_ready(ctx, tenant, "NamespaceConflict", message).await?;
            return Ok(Action::requeue(CONFLICT_POLL));
        }
    };

    let owner = tenant.controller_owner_ref(&()).expect("Tenant has a name and uid");
    let rails = guard_rails(&name, &policy, owner);
    // Each guard rail is applied unless the last apply of it still stands (src/applied.rs).
    let (client, caches, applied) = (&ctx.client, &ctx.caches, &ctx.applied);
    if !created {
        applied.apply(&caches.namespaces, &Api::all(client.clone()), &rails.namespace).await?;
    }
    let quota = applied.apply(&caches.tenant_quotas, &Api::namespaced(client.clone(), &ns), &rails.quota).await?;
    applied.apply(&caches.tenant_limits, &Api::namespaced(client.clone(), &ns), &rails.limit_range).await?;
    for binding in &rails.bindings {
        applied.apply(&caches.tenant_bindings, &Api::namespaced(client.clone(), &ns), binding).await?;
    }
    applied.apply(&caches.tenant_roles, &Api::all(client.clone()), &rails.owner_role).await?;
    applied.apply(&caches.tenant_role_bindings, &Api::all(client.clone()), &rails.owner_binding).await?;
    applied.apply(&caches.tenant_policies, &Api::namespaced(client.clone(), &ns), &rails.default_deny).await?;

    let quota_observed = resources::quota_observed(&quota);
    let ready = if quota_observed {
        let message = format!("namespace {ns} is ready with the limits of plan \"{}\"", policy.plan);
        condition(&previous.conditions, "Ready", true, "Provisioned", message, generation)
    } else {
        let message = "waiting for the quota controller to observe the ResourceQuota";
        condition(&previous.conditions, "Ready", false, "QuotaPending", message, generation)
    };
    let status = TenantStatus { namespace: Some(ns.clone()), observed_generation: generation, conditions: vec![ready] };
    // A new tenant's quota is usually observed a moment after this reconcile, whose event
    // wakes the next one: report it pending only when it still is then (one status write
    // fewer per tenant: issue 13).
    let fresh = !previous.conditions.iter().any(|c| c.type_ == "Ready");
    let report = quota_observed || !fresh || !created;
    if report && status != previous {
        apply_status(&api, &name, &status).await?;
        // Once, when the tenant becomes Ready: not when it is reported QuotaPending.
        if quota_observed && !is_true(&previous.conditions, "Ready") {
            ctx.publish(tenant, EventType::Normal, "Provisioned", format!("namespace {ns} is ready")).await;
        }
    }
    tracing::info!(tenant = %name, namespace = %ns, plan = %policy.plan, quota_observed, manager = MANAGER, "tenant reconciled");
    Ok(Action::requeue(if quota_observed { RESYNC } else { QUOTA_POLL }))
}

/// A deleted tenant: deletes its own namespace (and with it every App, Database, volume and
/// Secret in it, retained ones included), waits until the namespace is gone, then lets the
/// Tenant go. Until then the Tenant keeps its name, so no one else can claim it and inherit
/// the namespace. A namespace that is not the Tenant's is left alone.
async fn release(tenant: &Tenant, ctx: &Context, api: &Api<Tenant>, ns: &str) -> Result<Action> {
    if !finalizer::present(tenant) {
        return Ok(Action::await_change());
    }
    let namespaces = Api::<Namespace>::all(ctx.client.clone());
    if let Some(namespace) = namespaces.get_opt(ns).await?.filter(|n| namespace_belongs_to(n, tenant)) {
        if namespace.metadata.deletion_timestamp.is_none() {
            // Exactly the namespace we checked, not one created in its place since.
            let preconditions = Preconditions { uid: namespace.uid(), resource_version: None };
            let params = DeleteParams { preconditions: Some(preconditions), ..DeleteParams::background() };
            match namespaces.delete(ns, &params).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        let message = format!("deleting namespace {ns} and everything in it; the name is released once it is gone");
        not_ready(ctx, tenant, "Deleting", message).await?;
        return Ok(Action::requeue(TERMINATING_POLL));
    }
    finalizer::remove(api, tenant).await?;
    tracing::info!(tenant = %tenant.name_any(), namespace = %ns, "tenant deleted with its namespace");
    Ok(Action::await_change())
}
