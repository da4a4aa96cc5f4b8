//! The `slipway` binary's wiring: command-line configuration and the four commands.
//!
//! ```text
//!   slipway api         REST API (SQL + Kubernetes)
//!   slipway controller  Tenant and App reconcilers (+ /healthz, /readyz)
//!   slipway all         both in one process, CRDs installed first (single machine, dev)
//!   slipway crds        print the CRD YAML
//! ```
#![forbid(unsafe_code)]

pub mod cli;
mod shutdown;

pub use shutdown::Shutdown;

use anyhow::Context;
use slipway_api::{Application, Cluster};
use slipway_controller::ControllerConfig;
use slipway_policies::PlanCatalog;
use std::sync::Arc;

/// Runs the API, the controllers, or both, until `shutdown` fires. The binary and the
/// end-to-end tests boot Slipway through this same function.
///
/// # Errors
/// Configuration, database or Kubernetes errors at start-up.
pub async fn serve(
    kube_config: kube::Config,
    plans: Arc<PlanCatalog>,
    api: Option<(slipway_api::ApiConfig, tokio::net::TcpListener)>,
    controller: Option<ControllerConfig>,
    install_crds: bool,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let client = kube::Client::try_from(kube_config.clone()).context("building the Kubernetes client")?;
    if install_crds {
        slipway_crds::install(&client).await.context("installing the CRDs")?;
        tracing::info!("CRDs installed");
    }
    let controllers = controller.map(|config| {
        let (client, plans, signal) = (client.clone(), plans.clone(), shutdown.clone());
        tokio::spawn(async move { slipway_controller::run(client, plans, config, signal.wait()).await })
    });
    if let Some((config, listener)) = api {
        let cluster = Cluster::new(kube_config).context("building the Kubernetes client")?;
        let app = Application::build(&config, cluster, plans).await?;
        app.serve(listener, shutdown.clone().wait()).await?;
    }
    if let Some(handle) = controllers {
        handle.await.context("controller task panicked")??;
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
