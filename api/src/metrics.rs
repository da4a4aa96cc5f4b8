//! The API's request metrics (see the `slipway` binary's `metrics` module for the exporter).

use axum::{
    extract::{MatchedPath, Request},
    middleware::Next,
    response::Response,
};
use std::time::Instant;

/// Requests answered, by method, route template (`/api/v1/tenants/{tenant}`) and status.
pub const REQUESTS: &str = "slipway_api_requests_total";
/// Time from the request reaching the router to its response, by method and route, seconds.
pub const DURATION: &str = "slipway_api_request_duration_seconds";

/// Describes the API's metrics to the installed recorder.
pub fn describe() {
    metrics::describe_counter!(REQUESTS, "API requests answered, by method, route template and status");
    metrics::describe_histogram!(DURATION, metrics::Unit::Seconds, "API request latency, by method and route template");
}

/// Middleware (a route layer: it needs the matched route) that counts and times each request.
/// Labels hold the route template, never the path, so tenants' names do not make new series.
pub async fn record(route: MatchedPath, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = route.as_str().to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!(DURATION, "method" => method.clone(), "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(REQUESTS, "method" => method, "route" => route, "status" => status).increment(1);
    response
}
