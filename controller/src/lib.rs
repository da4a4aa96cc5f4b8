//! Slipway's controllers: level-triggered reconcilers built on kube-runtime.
//!
//! ```text
//!   Tenant ──▶ Namespace tenant-<name> (PSA restricted) + ResourceQuota + LimitRange
//!              + RoleBinding(group slipway:tenant:<name> → ClusterRole slipway:tenant-member)
//!              + RoleBinding(groups slipway:tenant:<name>:{owner,admin} → slipway:tenant-admin)
//!              + ClusterRole(Binding) slipway:tenant:<name>:owner (get/delete this Tenant)
//!              + NetworkPolicy default-deny (DNS and same-namespace traffic allowed)
//!   App    ──▶ Deployment + Service (ClusterIP | NodePort) + Ingress (when a host is asked for)
//!              + status (phase, conditions, nodePort, url) + one "ready" email to the owners
//!   Database ──▶ StatefulSet (1 pod, data PVC) + headless and client Services + credentials
//!              Secret + status (host, port, secretName) + one "ready" email (no password)
//!   Workspace ─▶ StatefulSet (1 pod, home PVC) + SSH NodePort Service + authorized_keys Secret
//!              + status (ssh command) + one "ready" email to its owner
//! ```
//!
//! Every object is written with server-side apply under the field manager [`MANAGER`], so a
//! reconcile is idempotent, and only when it differs from what the last apply wrote
//! (`applied`), so a reconcile that changes nothing writes nothing; reads come from reflector
//! stores (`cache`); a controller wakes on its kind's changes of intent, not on its own status
//! writes (`triggers`); failures are requeued with per-object exponential backoff.
#![forbid(unsafe_code)]

mod app;
mod applied;
mod apply;
mod backoff;
mod cache;
mod conditions;
mod database;
mod error;
mod identity;
mod instance;
mod leader;
mod lookup;
mod metrics;
mod notify;
mod outcome;
mod ready;
mod tenant;
mod triggers;
mod workspace;

pub use database::{DatabaseImages, RepositoryOverride};
pub use error::{Error, Result};
pub use leader::{LeaderElection, Stop, lead};
pub use metrics::describe as describe_metrics;
pub use notify::{Mailer, MailerConfig};
pub use tenant::{GuardRails, guard_rails};

use backoff::Backoff;
use futures::StreamExt;
use k8s_openapi::api::{
    apps::v1::StatefulSet,
    core::v1::{Secret, Service},
};
use kube::{
    Api, Client,
    runtime::{
        events::{Recorder, Reporter},
        watcher,
    },
};
use slipway_crds::{App, Database, Tenant, Workspace};
use slipway_policies::PlanCatalog;
use std::{future::Future, sync::Arc};

/// Field manager of every object and status the controller applies.
pub const MANAGER: &str = "slipway-controller";

/// Settings of the controllers.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// Address put in NodePort URLs (`http://ADDRESS:PORT`). `None`: the first node's
    /// ExternalIP, else its InternalIP.
    pub node_address: Option<String>,
    /// `spec.ingressClassName` of the Ingresses of Apps exposed by Ingress: the IngressClass
    /// whose controller serves them. `None`: the field stays unset, for the cluster's default
    /// class (which the API server fills in only when the Ingress is created).
    pub ingress_class: Option<String>,
    /// How owners are emailed.
    pub mail: MailerConfig,
    /// Image of Workspaces that name none: runs sshd on port 2222 as uid 1000 (`dev`),
    /// reading keys from `/etc/slipway/ssh/authorized_keys` (see controller/workspace-image).
    pub workspace_image: String,
    /// Image repository of each database engine (official images by default).
    pub database_images: DatabaseImages,
}

/// What every reconcile shares.
pub struct Context {
    client: Client,
    plans: Arc<PlanCatalog>,
    mailer: Mailer,
    recorder: Recorder,
    node_address: Option<String>,
    ingress_class: Option<String>,
    workspace_image: String,
    database_images: DatabaseImages,
    backoff: Backoff,
    caches: cache::Caches,
    applied: applied::Applied,
    recorded: app::Recorded,
}

/// How long [`run`] lets reconciles in flight finish after its shutdown signal before it drops
/// them: under the 30 s a Pod gets between SIGTERM and SIGKILL (Kubernetes' default
/// `terminationGracePeriodSeconds`), so the Lease is still released.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(20);

/// Runs the Tenant, App, Database and Workspace controllers until `shutdown` resolves, then
/// waits for the reconciles in flight for at most [`SHUTDOWN_GRACE`].
///
/// Applies the shared ClusterRoles `slipway:tenant-member` and `slipway:tenant-admin` first. The CRDs must be installed
/// (see [`slipway_crds::install`]).
///
/// # Errors
/// Kubernetes errors while applying the ClusterRole, or an invalid SMTP URL.
pub async fn run(
    client: Client,
    plans: Arc<PlanCatalog>,
    config: ControllerConfig,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<()> {
    tenant::apply_shared_roles(&client).await?;
    let reporter = Reporter { controller: MANAGER.into(), instance: std::env::var("HOSTNAME").ok() };
    let tenants = triggers::controller(Api::<Tenant>::all(client.clone()));
    let (caches, streams) = cache::watches(&client, tenants.store());
    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        mailer: Mailer::new(&config.mail)?,
        node_address: config.node_address,
        ingress_class: config.ingress_class,
        workspace_image: config.workspace_image,
        database_images: config.database_images,
        plans,
        client: client.clone(),
        backoff: Backoff::default(),
        caches,
        applied: applied::Applied::default(),
        recorded: app::Recorded::default(),
    });
    // Every controller stops when the shutdown fires: share one signal.
    let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
    let shutdown_copy = shutdown.clone();
    // Each guard rail wakes its Tenant when it changes (a quota observed, a policy deleted).
    let tenants = tenants
        .watches_stream(streams.namespaces, triggers::owning_tenant)
        .watches_stream(streams.tenant_quotas, triggers::owning_tenant)
        .watches_stream(streams.tenant_limits, triggers::owning_tenant)
        .watches_stream(streams.tenant_bindings, triggers::owning_tenant)
        .watches_stream(streams.tenant_roles, triggers::owning_tenant)
        .watches_stream(streams.tenant_role_bindings, triggers::owning_tenant)
        .watches_stream(streams.tenant_policies, triggers::owning_tenant)
        .graceful_shutdown_on(shutdown.clone())
        .run(metrics::timed("tenant", tenant::reconcile), outcome::requeue_with_backoff, ctx.clone())
        .for_each(|res| async move { log_outcome("tenant", res) });
    let apps = triggers::controller(Api::<App>::all(client.clone()))
        .owns_stream(streams.app_deployments)
        .owns_stream(streams.app_services)
        .owns_stream(streams.app_ingresses)
        .owns_stream(streams.app_autoscalers)
        .owns_stream(streams.app_policies)
        .graceful_shutdown_on(shutdown.clone())
        .run(metrics::timed("app", app::reconcile), outcome::requeue_with_backoff, ctx.clone())
        .for_each(|res| async move { log_outcome("app", res) });
    let managed = watcher::Config::default().labels(slipway_crds::DATABASE_LABEL);
    let databases = triggers::controller(Api::<Database>::all(client.clone()))
        .owns(Api::<StatefulSet>::all(client.clone()), managed.clone())
        .owns(Api::<Service>::all(client.clone()), managed)
        .owns_stream(streams.database_policies)
        .graceful_shutdown_on(shutdown.clone())
        .run(metrics::timed("database", database::reconcile), outcome::requeue_with_backoff, ctx.clone())
        .for_each(|res| async move { log_outcome("database", res) });
    let managed = watcher::Config::default().labels(slipway_crds::WORKSPACE_LABEL);
    let workspaces = triggers::controller(Api::<Workspace>::all(client.clone()))
        .owns(Api::<StatefulSet>::all(client.clone()), managed.clone())
        .owns(Api::<Service>::all(client.clone()), managed.clone())
        .owns(Api::<Secret>::all(client.clone()), managed)
        .graceful_shutdown_on(shutdown)
        .run(metrics::timed("workspace", workspace::reconcile), outcome::requeue_with_backoff, ctx)
        .for_each(|res| async move { log_outcome("workspace", res) });
    tracing::info!("controllers started");
    let controllers = async { futures::join!(tenants, apps, databases, workspaces) };
    // A graceful shutdown waits for the reconciles in flight, and kube-runtime's waits for a
    // store that never listed (the API server was unreachable) for ever: bound it.
    let grace_over = async {
        shutdown_copy.await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    match futures::future::select(std::pin::pin!(controllers), std::pin::pin!(grace_over)).await {
        futures::future::Either::Left(_) => tracing::info!("controllers stopped"),
        // Dropping the controllers aborts their reconciles; each is retried by the next leader.
        futures::future::Either::Right(_) => {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "controllers still busy after the shutdown grace period: abandoned");
        }
    }
    Ok(())
}

/// [`run`] on the replica that holds `election`'s Lease only (see [`lead`]).
///
/// # Errors
/// As [`run`] and [`lead`].
pub async fn run_as_leader(
    client: Client,
    plans: Arc<PlanCatalog>,
    config: ControllerConfig,
    election: &LeaderElection,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    lead(client.clone(), election, shutdown, |stop| run(client, plans, config, stop)).await
}

fn log_outcome<K, E1, E2>(
    kind: &str,
    res: std::result::Result<
        (kube::runtime::reflector::ObjectRef<K>, kube::runtime::controller::Action),
        kube::runtime::controller::Error<E1, E2>,
    >,
) where
    K: kube::Resource,
    E1: std::error::Error + 'static,
    E2: std::error::Error + 'static,
{
    match res {
        Ok((obj, _)) => tracing::debug!(kind, object = %obj, "reconciled"),
        // Woken for an object already gone (a guard rail deleted after its Tenant): no failure.
        Err(kube::runtime::controller::Error::ObjectNotFound(obj)) => {
            tracing::debug!(kind, object = %obj, "woken for an object that is gone");
        }
        Err(e) => tracing::warn!(kind, error = %e, "reconcile failed"),
    }
}
