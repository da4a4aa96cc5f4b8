//! Prometheus metrics of whatever this process runs, on `GET /metrics` of their own listener
//! (`--metrics-listen`, never the API's public port), in the Prometheus text format.
//!
//! The components record through the `metrics` facade (`metrics::counter!` and friends), so
//! the libraries carry no registry; this module installs the exporter's recorder once per
//! process. Latency histograms (every `*_seconds` metric) get buckets from 1 ms to 10 s.
//!
//! | Metric | Labels | From |
//! | --- | --- | --- |
//! | `slipway_api_requests_total`, `slipway_api_request_duration_seconds` | method, route, status | API |
//! | `slipway_admission_requests_total`, `slipway_admission_duration_seconds` | phase, kind, operation, verdict | webhook |
//! | `slipway_reservation_conflicts_total` | | webhook |
//! | `slipway_reconciles_total`, `slipway_reconcile_duration_seconds` | kind, result | controller |
//! | `slipway_controller_leader` (1 while this replica leads) | | controller |
//! | `slipway_emails_total` | result | API, controller |

use anyhow::Context as _;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::time::Duration;

/// Bucket bounds of the latency histograms, in seconds: 1 ms to 10 s, roughly ×2.5 apart,
/// the shape of Prometheus' client defaults (which start at 5 ms) shifted down for a webhook
/// that answers in a millisecond.
const LATENCY_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// How often histograms drop samples that left their window and idle series are pruned.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Installs the process-wide recorder and describes every metric.
///
/// # Errors
/// A recorder is already installed (a second call in one process).
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .context("histogram buckets")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    slipway_api::describe_metrics();
    slipway_webhook::describe_metrics();
    slipway_controller::describe_metrics();
    slipway_mail::describe_metrics();
    Ok(handle)
}

/// Serves `GET /metrics` (and `/healthz`) on `listener`, and runs the recorder's upkeep,
/// until the process ends.
///
/// # Errors
/// I/O errors of the listener.
pub async fn serve(listener: tokio::net::TcpListener, handle: PrometheusHandle) -> std::io::Result<()> {
    use axum::{Router, http::header, routing::get};
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    let metrics = move || {
        let handle = handle.clone();
        async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle.render()) }
    };
    let router = Router::new().route("/metrics", get(metrics)).route("/healthz", get(|| async { "ok" }));
    tracing::info!(addr = %listener.local_addr()?, "metrics listening");
    axum::serve(listener, router).await
}
