//! The `slipway` binary's wiring: command-line configuration and the four commands.
//!
//! ```text
//!   slipway api         REST API (SQL + Kubernetes)
//!   slipway controller  Tenant and App reconcilers (+ /healthz, /readyz)
//!   slipway all         both in one process, CRDs installed first (single machine, dev)
//!   slipway crds        print the CRD YAML
//!   slipway chart-webhooks  print the chart's webhook configurations (charts/slipway)
//! ```
#![forbid(unsafe_code)]

mod audit;
pub mod chart;
pub mod cli;
pub mod metrics;
mod shutdown;

pub use audit::SqlAudit;
pub use shutdown::Shutdown;

use anyhow::Context;
use slipway_api::{Application, Cluster};
use slipway_controller::ControllerConfig;
use slipway_policies::PlanCatalog;
use std::sync::Arc;

/// What one process runs.
pub struct Components {
    /// The REST API and its listener.
    pub api: Option<(slipway_api::ApiConfig, tokio::net::TcpListener)>,
    /// The Tenant and App controllers, and their leader election (none: they reconcile at once).
    pub controller: Option<(ControllerConfig, Option<slipway_controller::LeaderElection>)>,
    /// The admission webhook.
    pub webhook: Option<WebhookRun>,
    /// Apply the CRDs first.
    pub install_crds: bool,
}

/// The admission webhook of a process, and whether to register it.
pub struct WebhookRun {
    /// Server settings.
    pub config: slipway_webhook::WebhookConfig,
    /// Where it listens.
    pub listener: tokio::net::TcpListener,
    /// Register the webhook configurations at this target, trusting this CA (PEM), once the
    /// server can answer.
    pub register: Option<(slipway_webhook::WebhookTarget, String)>,
    /// Where changes made through Kubernetes are audited (see [`SqlAudit`]).
    pub audit: Option<Arc<dyn slipway_webhook::AuditSink>>,
    /// Keep the served certificate in this Secret, issued and renewed by the webhook, with its
    /// CA patched into the installed webhook configurations (the Helm chart's way).
    pub certificate: Option<slipway_webhook::ManagedCertificate>,
}

/// Runs the components until `shutdown` fires. The binary and the end-to-end tests boot
/// Slipway through this same function.
///
/// Order matters: CRDs, then the webhook (registered only once it answers), then the
/// controllers and the API, so no App is ever admitted without the plan's checks.
///
/// # Errors
/// Configuration, database or Kubernetes errors at start-up.
pub async fn serve(
    kube_config: kube::Config,
    plans: Arc<PlanCatalog>,
    parts: Components,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let client = kube::Client::try_from(kube_config.clone()).context("building the Kubernetes client")?;
    if parts.install_crds {
        slipway_crds::install(&client).await.context("installing the CRDs")?;
        tracing::info!("CRDs installed");
    }
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(run) = parts.webhook {
        if let Some(certificate) = run.certificate {
            certificate.sync(&client).await.context("issuing the webhook certificate")?;
            // Dropped with the process: the loop only renews.
            drop(certificate.keep_synced(client.clone()));
        }
        let server = slipway_webhook::Server::start(client.clone(), plans.clone(), &run.config, run.audit).await?;
        let signal = shutdown.clone();
        tasks.spawn(async move { Ok(server.serve(run.listener, signal.wait()).await?) });
        if let Some((target, ca_pem)) = &run.register {
            slipway_webhook::register(&client, target, ca_pem).await.context("registering the webhook")?;
            tracing::info!(?target, "webhook registered");
        }
    }
    if let Some((config, election)) = parts.controller {
        let (client, plans, signal) = (client.clone(), plans.clone(), shutdown.clone());
        tasks.spawn(async move {
            match election {
                Some(election) => {
                    slipway_controller::run_as_leader(client, plans, config, &election, signal.wait()).await?;
                }
                None => slipway_controller::run(client, plans, config, signal.wait()).await?,
            }
            Ok(())
        });
    }
    if let Some((config, listener)) = parts.api {
        let cluster = Cluster::new(kube_config).context("building the Kubernetes client")?;
        let app = Application::build(&config, cluster, plans).await?;
        let signal = shutdown.clone();
        tasks.spawn(async move { Ok(app.serve(listener, signal.wait()).await?) });
    }
    while let Some(done) = tasks.join_next().await {
        done.context("a component panicked")?.map_err(|e: anyhow::Error| e)?;
    }
    Ok(())
}

/// Serves `/healthz` (the process is up) and `/readyz` (the Kubernetes API answers) for the
/// controller-only command, whose pod has no API router to carry them.
///
/// # Errors
/// I/O errors of the listener.
pub async fn serve_health(listener: tokio::net::TcpListener, client: kube::Client) -> std::io::Result<()> {
    use axum::{Router, http::StatusCode, routing::get};
    let readyz = move || {
        let client = client.clone();
        async move {
            match client.apiserver_version().await {
                Ok(_) => (StatusCode::OK, "ok".to_string()),
                Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("kubernetes: {e}")),
            }
        }
    };
    let router = Router::new().route("/healthz", get(|| async { "ok" })).route("/readyz", get(readyz));
    axum::serve(listener, router).await
}
