//! Sending a review to the replica that holds its tenant's lease (see [`crate::reservations`]):
//! that replica alone admits the tenant's growing reviews, from memory.
//!
//! The replicas serve one certificate (one Secret), so a replica trusts a peer that presents
//! exactly the certificate it serves itself, whoever issued it (the chart's own CA or
//! cert-manager's): no CA to configure, and nothing else can pose as a peer. While a renewed
//! certificate reaches the replicas one by one (the kubelet updates mounted Secrets within
//! about a minute), a review sent between two that differ gets 503 "retry".
//!
//! One HTTP/2 connection per peer carries every forwarded review (streams, not connections).

use crate::{
    Phase, Webhook,
    answer::deny,
    metrics,
    tls::{ReloadingCert, same_certificate_client},
};
use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use kube::core::{
    DynamicObject,
    admission::{AdmissionRequest, AdmissionResponse, AdmissionReview},
};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

/// Marks a review one replica sent to another, with how many times it was sent (`1`, `2`).
pub const FORWARDED_HEADER: &str = "slipway-forwarded";

/// Most times a review is sent on. Two, because a lease can change hands twice before a
/// replica learns it: the holder it knew returned it (stopping) and another replica took it;
/// the stopping one, which still serves, sends the review to the new holder. A review sent
/// this often is judged where it arrives, or answered 503 "retry": no loops.
pub const MAX_HOPS: u8 = 2;

/// How many times the review with these headers was sent on already (0: it came from
/// kube-apiserver). A header that does not read as a count counts as [`MAX_HOPS`].
pub fn hops(headers: &hyper::HeaderMap) -> u8 {
    headers.get(FORWARDED_HEADER).map_or(0, |v| v.to_str().ok().and_then(|v| v.parse().ok()).unwrap_or(MAX_HOPS))
}

/// Longest wait for a peer's answer, connecting included. A review may be sent twice (see
/// [`MAX_HOPS`] and `review`), and both stay inside kube-apiserver's timeout for the webhook
/// (5 s, `TIMEOUT_SECONDS` in `register`), so the user gets our 503, not a timeout. A holder
/// judges from memory in well under a millisecond; a second means it is gone or stalled.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for a connection to a peer (TCP and TLS), within [`FORWARD_TIMEOUT`].
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Connections to the other replicas, by address.
pub struct Peers {
    tls: tokio_rustls::TlsConnector,
    connections: Mutex<HashMap<String, SendRequest<Full<Bytes>>>>,
}

impl Peers {
    /// Peers that must present `cert`, the certificate this replica serves.
    ///
    /// # Errors
    /// rustls refuses the client configuration (cannot happen with ring and TLS 1.2/1.3).
    pub fn new(cert: Arc<ReloadingCert>) -> anyhow::Result<Self> {
        let tls = tokio_rustls::TlsConnector::from(same_certificate_client(cert)?);
        Ok(Self { tls, connections: Mutex::default() })
    }

    /// Posts `body` (an AdmissionReview, sent on for the `hop`th time) to `path` of the
    /// replica at `address` and returns its answer.
    ///
    /// # Errors
    /// A message saying what failed: connecting, TLS (another certificate), the peer's status,
    /// an answer that is not a review.
    pub async fn post(&self, address: &str, path: &str, body: Bytes, hop: u8) -> Result<AdmissionResponse, String> {
        let answered = tokio::time::timeout(FORWARD_TIMEOUT, self.exchange(address, path, body, hop))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {FORWARD_TIMEOUT:?}")));
        if answered.is_err() {
            self.lock().remove(address);
        }
        answered
    }

    /// [`Peers::post`] without its deadline.
    async fn exchange(&self, address: &str, path: &str, body: Bytes, hop: u8) -> Result<AdmissionResponse, String> {
        let mut sender = self.connection(address).await?;
        let request = hyper::Request::post(format!("https://{address}{path}"))
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(FORWARDED_HEADER, hop.to_string())
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        if !status.is_success() {
            return Err(format!("it answered {status}: {}", String::from_utf8_lossy(&body)));
        }
        let review: AdmissionReview<DynamicObject> =
            serde_json::from_slice(&body).map_err(|e| format!("its answer is not an AdmissionReview: {e}"))?;
        let mut response = review.response.ok_or_else(|| "its AdmissionReview has no response".to_string())?;
        // Not deserialized (`serde(skip)`), but what `into_review` writes as the review's own.
        response.types = review.types;
        Ok(response)
    }

    /// The open connection to `address`, or a new one.
    async fn connection(&self, address: &str) -> Result<SendRequest<Full<Bytes>>, String> {
        if let Some(sender) = self.lock().get(address).filter(|s| !s.is_closed()) {
            return Ok(sender.clone());
        }
        let connect = async {
            let tcp = tokio::net::TcpStream::connect(address).await.map_err(|e| e.to_string())?;
            tcp.set_nodelay(true).map_err(|e| e.to_string())?;
            // Any name: the peer is recognised by its certificate, not by a name in it.
            let name = rustls::pki_types::ServerName::try_from("peer.slipway.invalid").expect("a valid DNS name");
            let tls = self.tls.connect(name, tcp).await.map_err(|e| format!("TLS with the peer failed: {e}"))?;
            let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                .handshake(TokioIo::new(tls))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "connection to a webhook peer ended");
                }
            });
            Ok::<_, String>(sender)
        };
        let sender = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .unwrap_or_else(|_| Err(format!("could not connect within {CONNECT_TIMEOUT:?}")))?;
        self.lock().insert(address.to_string(), sender.clone());
        Ok(sender)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SendRequest<Full<Bytes>>>> {
        self.connections.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The holder's answer to a review (`body`, sent on for the `hop`th time). The holder records
/// the decision in the audit trail; this replica does not.
///
/// # Errors
/// Why the holder did not answer (see [`Peers::post`]).
pub async fn to_holder(
    webhook: &Webhook,
    holder: &str,
    phase: Phase,
    body: Bytes,
    hop: u8,
) -> Result<AdmissionResponse, String> {
    let path = match phase {
        Phase::Mutate => "/mutate",
        Phase::Validate => "/validate",
    };
    let answered = match &webhook.peers {
        Some(peers) => peers.post(holder, path, body, hop).await,
        None => Err("this replica has no client for its peers".to_string()),
    };
    let outcome = if answered.is_ok() { "answered" } else { "failed" };
    ::metrics::counter!(metrics::FORWARDED, "outcome" => outcome).increment(1);
    if let Err(e) = &answered {
        tracing::info!(holder, error = %e, "the replica holding the tenant's lease did not answer: reading the ledger again");
    }
    answered
}

/// The answer to a review that must be judged by `holder` and cannot be: 503 "retry", saying
/// why (`reason`).
pub fn unreachable(request: &AdmissionRequest<DynamicObject>, holder: &str, reason: &str) -> AdmissionResponse {
    deny(
        AdmissionResponse::from(request),
        503,
        format!("the webhook replica judging this tenant's changes ({holder}) {reason}; retry"),
    )
}
