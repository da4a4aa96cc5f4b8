//! Slipway's controllers: level-triggered reconcilers built on kube-runtime.
//!
//! ```text
//!   Tenant ──▶ Namespace tenant-<name> (PSA restricted) + ResourceQuota + LimitRange
//!              + RoleBinding(group slipway:tenant:<name> → ClusterRole slipway:tenant-member)
//!              + NetworkPolicy default-deny (DNS and same-namespace traffic allowed)
//!   App    ──▶ Deployment + Service (ClusterIP | NodePort) + Ingress (when a host is asked for)
//!              + status (phase, conditions, nodePort, url) + one "ready" email to the owners
//! ```
//!
//! Every object is written with server-side apply under the field manager [`MANAGER`], so a
//! reconcile is idempotent; failures are requeued with per-object exponential backoff.
#![forbid(unsafe_code)]

mod app;
mod apply;
mod backoff;
mod conditions;
mod error;
mod notify;
mod outcome;
mod tenant;

pub use error::{Error, Result};
pub use notify::{Mailer, MailerConfig};

use backoff::Backoff;
use futures::StreamExt;
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Namespace, Service},
    networking::v1::Ingress,
};
use kube::{
    Api, Client,
    runtime::{
        Controller,
        events::{Recorder, Reporter},
        watcher,
    },
};
use slipway_crds::{App, Tenant};
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
    /// How owners are emailed.
    pub mail: MailerConfig,
}

/// What every reconcile shares.
pub struct Context {
    client: Client,
    plans: Arc<PlanCatalog>,
    mailer: Mailer,
    recorder: Recorder,
    node_address: Option<String>,
    backoff: Backoff,
}

/// Runs the Tenant and App controllers until `shutdown` resolves.
///
/// Applies the shared ClusterRole `slipway:tenant-member` first. The CRDs must be installed
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
    tenant::apply_member_role(&client).await?;
    let reporter = Reporter { controller: MANAGER.into(), instance: std::env::var("HOSTNAME").ok() };
    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        mailer: Mailer::new(&config.mail)?,
        node_address: config.node_address,
        plans,
        client: client.clone(),
        backoff: Backoff::default(),
    });
    // Both controllers stop when either shutdown fires: share one signal.
    let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
    let tenants = Controller::new(Api::<Tenant>::all(client.clone()), watcher::Config::default())
        .owns(Api::<Namespace>::all(client.clone()), watcher::Config::default().labels(slipway_crds::TENANT_LABEL))
        .graceful_shutdown_on(shutdown.clone())
        .run(tenant::reconcile, outcome::requeue_with_backoff, ctx.clone())
        .for_each(|res| async move { log_outcome("tenant", res) });
    let managed = watcher::Config::default().labels(slipway_crds::APP_LABEL);
    let apps = Controller::new(Api::<App>::all(client.clone()), watcher::Config::default())
        .owns(Api::<Deployment>::all(client.clone()), managed.clone())
        .owns(Api::<Service>::all(client.clone()), managed.clone())
        .owns(Api::<Ingress>::all(client.clone()), managed)
        .graceful_shutdown_on(shutdown)
        .run(app::reconcile, outcome::requeue_with_backoff, ctx)
        .for_each(|res| async move { log_outcome("app", res) });
    tracing::info!("controllers started");
    futures::join!(tenants, apps);
    tracing::info!("controllers stopped");
    Ok(())
}

fn log_outcome<K: kube::Resource, E: std::fmt::Display>(
    kind: &str,
    res: std::result::Result<(kube::runtime::reflector::ObjectRef<K>, kube::runtime::controller::Action), E>,
) {
    match res {
        Ok((obj, _)) => tracing::debug!(kind, object = %obj, "reconciled"),
        Err(e) => tracing::warn!(kind, error = %e, "reconcile failed"),
    }
}
