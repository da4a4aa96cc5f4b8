//! The webhook's metrics (the `slipway` binary's `metrics` module exports them).

use crate::Phase;
use std::time::Instant;

/// Reviews answered, by phase (`mutate`, `validate`), kind, operation and verdict (`allowed`,
/// `denied`, `malformed`).
pub const REQUESTS: &str = "slipway_admission_requests_total";
/// Time from a review's arrival to its answer, by phase, kind and operation, seconds.
pub const DURATION: &str = "slipway_admission_duration_seconds";
/// Reservation writes that lost an optimistic-concurrency race (409) and were judged again.
pub const RESERVATION_CONFLICTS: &str = "slipway_reservation_conflicts_total";
/// Reservations admitted from memory under this replica's lease of their tenant (no write).
pub const RESERVATIONS_HELD: &str = "slipway_reservations_held_total";
/// Reviews sent to the replica holding their tenant's lease, by outcome (`answered`, `failed`).
pub const FORWARDED: &str = "slipway_admission_forwarded_total";

/// Describes the webhook's metrics to the installed recorder.
pub fn describe() {
    metrics::describe_counter!(REQUESTS, "Admission reviews answered, by phase, kind, operation and verdict");
    metrics::describe_histogram!(
        DURATION,
        metrics::Unit::Seconds,
        "Admission review latency, by phase, kind and operation"
    );
    metrics::describe_counter!(
        RESERVATION_CONFLICTS,
        "Reservation ledger writes that lost a race (409) and were retried"
    );
    metrics::describe_counter!(
        RESERVATIONS_HELD,
        "Reservations admitted from memory under this replica's lease of their tenant"
    );
    metrics::describe_counter!(
        FORWARDED,
        "Admission reviews sent to the replica holding their tenant's lease, by outcome"
    );
}

/// Counts and times one answered review.
pub(crate) fn observe(phase: Phase, kind: &str, operation: &str, verdict: &'static str, started: Instant) {
    let phase = match phase {
        Phase::Mutate => "mutate",
        Phase::Validate => "validate",
    };
    let (kind, operation) = (kind.to_owned(), operation.to_owned());
    metrics::histogram!(DURATION, "phase" => phase, "kind" => kind.clone(), "operation" => operation.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(REQUESTS, "phase" => phase, "kind" => kind, "operation" => operation, "verdict" => verdict)
        .increment(1);
}
