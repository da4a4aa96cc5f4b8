//! The HTTP side of admission: decoding AdmissionReviews, dispatching by kind, answering.
//!
//! Handlers only convert; the rules live in `slipway-policies` and the generic glue in
//! [`crate::admit`]. Every malformed input gets a clear answer (HTTP 400 with an
//! AdmissionReview whose response says what is wrong), never a panic.

use crate::{
    Webhook,
    admit::{self, admit},
    answer::{Phase, Verdict, deny},
    audit, forward, metrics, scale,
};
use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use kube::{
    ResourceExt,
    core::{
        DynamicObject,
        admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation},
    },
};
use slipway_crds::{App, Database, GROUP, Kind, Workspace};
use std::sync::Arc;
use tracing::Instrument as _;

/// The only AdmissionReview version Slipway speaks (Kubernetes 1.16+; v1beta1 is gone since 1.22).
pub const REVIEW_API_VERSION: &str = "admission.k8s.io/v1";

/// Why a body is not an AdmissionReview we can judge.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Not JSON of the AdmissionReview shape.
    #[error("the body is not an AdmissionReview: {0}")]
    Malformed(String),
    /// Another apiVersion or kind.
    #[error("unsupported review {0}; send kind AdmissionReview, apiVersion admission.k8s.io/v1")]
    Version(String),
    /// A review without its request.
    #[error("the AdmissionReview has no request")]
    NoRequest,
}

/// Decodes and checks an AdmissionReview body.
///
/// # Errors
/// [`DecodeError`] saying what is wrong with the body.
pub fn decode(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, DecodeError> {
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_slice(body).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if review.types.api_version != REVIEW_API_VERSION || review.types.kind != "AdmissionReview" {
        return Err(DecodeError::Version(format!("{}/{}", review.types.api_version, review.types.kind)));
    }
    review.try_into().map_err(|_| DecodeError::NoRequest)
}

/// `POST /mutate`.
pub async fn mutate(State(webhook): State<Arc<Webhook>>, headers: HeaderMap, body: Bytes) -> Response {
    handle(webhook, &headers, body, Phase::Mutate).await
}

/// `POST /validate`.
pub async fn validate(State(webhook): State<Arc<Webhook>>, headers: HeaderMap, body: Bytes) -> Response {
    handle(webhook, &headers, body, Phase::Validate).await
}

async fn handle(webhook: Arc<Webhook>, headers: &HeaderMap, body: Bytes, phase: Phase) -> Response {
    let started = std::time::Instant::now();
    let request = match decode(&body) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "malformed admission request");
            metrics::observe(phase, "unknown", "unknown", "malformed", started);
            return (StatusCode::BAD_REQUEST, axum::Json(AdmissionResponse::invalid(e).into_review())).into_response();
        }
    };
    let (namespace, kind) = (request.namespace.as_deref().unwrap_or_default(), &request.kind.kind);
    let operation = operation_name(&request.operation);
    // Whatever judging the review logs (ledger writes, lookups, the verdict) carries the object
    // it is about.
    let tenant = slipway_crds::tenant_named_by(namespace).unwrap_or_default();
    let span = tracing::info_span!("admission", ?phase, %kind, operation, tenant, namespace, name = %request.name);
    let hops = forward::hops(headers);
    let response = async {
        let response = match judge_or_forward(&webhook, &request, phase, &body, hops).await {
            Answered::Here(response) => response,
            // The holder judged it, recorded it and answered: its answer is passed on as it is.
            Answered::ByHolder(response) => return response,
        };
        record(&webhook, &request, &response, phase).await;
        if response.allowed {
            tracing::debug!("admitted");
        } else {
            tracing::info!(message = %response.result.message, "denied");
        }
        response
    }
    .instrument(span)
    .await;
    let verdict = if response.allowed { "allowed" } else { "denied" };
    metrics::observe(phase, kind, operation, verdict, started);
    axum::Json(response.into_review()).into_response()
}

/// Who answered a review.
enum Answered {
    /// This replica, which records its decision.
    Here(AdmissionResponse),
    /// The replica holding the review's tenant lease (see [`forward`]), which recorded it.
    ByHolder(AdmissionResponse),
}

/// This replica's answer to a review that reached it after `hops` sends from replica to
/// replica, or the answer of the replica that holds its tenant's lease. A holder that does not
/// answer may have returned its lease as it stops: this replica reads the ledger again and
/// judges, or sends the review to the holder it finds there; twice at most.
async fn judge_or_forward(
    webhook: &Webhook,
    request: &AdmissionRequest<DynamicObject>,
    phase: Phase,
    body: &Bytes,
    hops: u8,
) -> Answered {
    // The holder that did not answer, and why.
    let mut unanswered: Option<(String, String)> = None;
    let mut sent = 0;
    loop {
        let holder = match respond(webhook, request, phase).await {
            Verdict::Answer(response) => return Answered::Here(*response),
            Verdict::Forward(holder) => holder,
        };
        if hops >= forward::MAX_HOPS {
            return Answered::Here(forward::unreachable(
                request,
                &holder,
                "took over the tenant's admissions meanwhile",
            ));
        }
        if let Some((gone, e)) = &unanswered
            && (*gone == holder || sent >= 2)
        {
            return Answered::Here(forward::unreachable(request, gone, &format!("did not answer: {e}")));
        }
        sent += 1;
        match forward::to_holder(webhook, &holder, phase, body.clone(), hops + 1).await {
            Ok(response) => return Answered::ByHolder(response),
            Err(e) => {
                webhook.ledger.distrust_holder(&holder);
                unanswered = Some((holder, e));
            }
        }
    }
}

/// The operation as Kubernetes spells it (`CREATE`), for metric labels and audit actions.
pub(crate) fn operation_name(operation: &Operation) -> &'static str {
    match operation {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

/// Hands the decision to the audit sink, if there is one and the request is one to record.
async fn record(
    webhook: &Webhook,
    request: &AdmissionRequest<DynamicObject>,
    response: &AdmissionResponse,
    phase: Phase,
) {
    let Some(sink) = &webhook.audit else { return };
    if !audit::is_recorded(request, phase) {
        return;
    }
    let tenant = match request.namespace.as_deref() {
        Some(ns) => admit::tenant_of(webhook, ns).await.ok().flatten().map(|t| t.name_any()),
        None => None,
    };
    if let Some(event) = audit::event(request, response, tenant) {
        sink.record(event);
    }
}

/// The answer to one decoded request, or the replica that must judge it. DELETEs (validation
/// only, for the audit trail) and CONNECTs are always allowed; an App's scale subresource is
/// judged as the App's UPDATE (see [`scale`]).
pub async fn respond(webhook: &Webhook, request: &AdmissionRequest<DynamicObject>, phase: Phase) -> Verdict {
    let base = AdmissionResponse::from(request);
    if !matches!(request.operation, Operation::Create | Operation::Update) {
        return base.into();
    }
    if request.sub_resource.as_deref() == Some(scale::SUBRESOURCE)
        && request.resource.group == GROUP
        && request.resource.resource == Kind::App.plural()
    {
        return scale::admit_scale(webhook, request, phase, base).await;
    }
    if request.kind.group != GROUP {
        return deny(
            base,
            400,
            format!("Slipway's webhook does not handle {}/{}", request.kind.group, request.kind.kind),
        )
        .into();
    }
    match Kind::from_name(&request.kind.kind) {
        Some(Kind::App) => admit::<App>(webhook, request, phase, base).await,
        Some(Kind::Database) => admit::<Database>(webhook, request, phase, base).await,
        Some(Kind::Workspace) => admit::<Workspace>(webhook, request, phase, base).await,
        None => deny(base, 400, format!("Slipway's webhook does not handle kind {}", request.kind.kind)).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_bodies_that_are_not_v1_reviews() {
        assert!(matches!(decode(b"{"), Err(DecodeError::Malformed(_))));
        assert!(matches!(decode(b"[]"), Err(DecodeError::Malformed(_))));
        let v1beta1 = br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":null}"#;
        assert_eq!(
            decode(v1beta1).unwrap_err().to_string(),
            "unsupported review admission.k8s.io/v1beta1/AdmissionReview; send kind AdmissionReview, apiVersion admission.k8s.io/v1"
        );
        let empty = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#;
        assert_eq!(decode(empty).unwrap_err(), DecodeError::NoRequest);
    }
}
