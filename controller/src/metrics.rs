//! The controllers' metrics (the `slipway` binary's `metrics` module exports them).

use crate::{Context, Result};
use futures::{FutureExt as _, future::BoxFuture};
use kube::{Resource, ResourceExt as _, runtime::controller::Action};
use std::{future::Future, sync::Arc, time::Instant};
use tracing::Instrument as _;

/// Reconciles run, by kind (`tenant`, `app`, `database`, `workspace`) and result (`ok`, `error`).
pub const RECONCILES: &str = "slipway_reconciles_total";
/// Time one reconcile takes, by kind, seconds.
pub const DURATION: &str = "slipway_reconcile_duration_seconds";
/// 1 while this replica holds the controllers' Lease, else 0 (see `crate::leader`).
pub const LEADER: &str = "slipway_controller_leader";

/// Describes the controllers' metrics to the installed recorder.
pub fn describe() {
    metrics::describe_counter!(RECONCILES, "Reconciles run, by kind and result");
    metrics::describe_histogram!(DURATION, metrics::Unit::Seconds, "Reconcile duration, by kind");
    metrics::describe_gauge!(LEADER, "1 while this replica holds the controllers' Lease");
}

/// `reconcile`, counted and timed under `kind`, inside a `reconcile` span whose fields name the
/// object: `kind`, `tenant` (the Tenant itself, or the one whose namespace holds the object)
/// and `name`; whatever the reconcile logs carries them.
pub(crate) fn timed<K, F, Fut>(
    kind: &'static str,
    reconcile: F,
) -> impl FnMut(Arc<K>, Arc<Context>) -> BoxFuture<'static, Result<Action>>
where
    K: Resource,
    F: Fn(Arc<K>, Arc<Context>) -> Fut,
    Fut: Future<Output = Result<Action>> + Send + 'static,
{
    move |object, ctx| {
        let started = Instant::now();
        let name = object.name_any();
        let tenant = match object.namespace() {
            Some(ns) => slipway_crds::tenant_named_by(&ns).unwrap_or_default().to_string(),
            None => name.clone(),
        };
        let span = tracing::info_span!("reconcile", %kind, %tenant, %name);
        let reconciled = reconcile(object, ctx);
        async move {
            let result = reconciled.await;
            let outcome = if result.is_ok() { "ok" } else { "error" };
            metrics::histogram!(DURATION, "kind" => kind).record(started.elapsed().as_secs_f64());
            metrics::counter!(RECONCILES, "kind" => kind, "result" => outcome).increment(1);
            result
        }
        .instrument(span)
        .boxed()
    }
}
