//! Slipway's admission webhook: every tenant's plan enforced on its custom resources.
//!
//! ```text
//!  kube-apiserver ──HTTPS AdmissionReview──▶ /mutate   ──▶ defaults + tenant label (JSON patch)
//!                                            /validate ──▶ policies::Spec::review(Review)
//!                                                            others = watch caches (Index)
//!                                                                   + pending reservations (Ledger:
//!                                                                     CREATEs and growing UPDATEs;
//!                                                                     in memory on the replica
//!                                                                     holding the tenant's lease,
//!                                                                     the others forward to it)
//! ```
//!
//! The rules are pure functions in `slipway-policies`, shared with the API's preview; this
//! crate decodes reviews, gathers usage and answers.
#![forbid(unsafe_code)]

mod admit;
mod answer;
pub mod audit;
mod by_namespace;
pub mod certs;
mod forward;
mod index;
mod managed_certificate;
pub mod metrics;
mod register;
mod reservations;
mod review;
mod scale;

pub mod tls;

pub use answer::Phase;
pub use audit::{AdmissionEvent, AuditSink};
pub use index::Index;
pub use managed_certificate::ManagedCertificate;
pub use metrics::describe as describe_metrics;
pub use register::{WebhookTarget, configurations, register};
pub use reservations::{Claim, LEASE, Lease, Ledger, Observed, Reservation, Reserved};
pub use review::{DecodeError, REVIEW_API_VERSION, decode};

use axum::{Router, extract::DefaultBodyLimit, routing::post};
use kube::Client;
use slipway_policies::{PlanCatalog, Platform};
use std::{path::PathBuf, sync::Arc, time::Duration};

/// Largest AdmissionReview accepted, in bytes: the API server's own request limit is 3 MiB
/// (etcd's default object limit is 1.5 MiB), and a review holds the object twice on UPDATE.
pub const MAX_REVIEW_BYTES: usize = 7 * 1024 * 1024;

/// Settings of the webhook server.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// PEM certificate chain served, reloaded when the file changes.
    pub tls_cert: PathBuf,
    /// PEM private key, reloaded with the certificate.
    pub tls_key: PathBuf,
    /// Namespace of the reservation ledgers (the webhook's own).
    pub namespace: String,
    /// The platform's settings the rules need (Ingress domain, Workspace email domains).
    pub platform: Platform,
    /// How long a reservation holds room at most, when the object it stands for is never seen
    /// (a later admission step refused it).
    pub reservation_ttl: Duration,
    /// Where the other replicas reach this one (`ip:port` of its HTTPS listener, the pod's IP in
    /// a cluster): it then takes tenants' leases and admits their growing reviews from memory
    /// (see [`Ledger`]). `None`: it writes every reservation, and sends the reviews of tenants
    /// another replica holds to that replica.
    pub advertise: Option<std::net::SocketAddr>,
}

/// What the handlers share.
pub struct Webhook {
    client: Client,
    index: Index,
    ledger: Ledger,
    plans: Arc<PlanCatalog>,
    platform: Platform,
    audit: Option<Arc<dyn AuditSink>>,
    /// Connections to the replicas holding tenants' leases; `None` without a served certificate.
    peers: Option<forward::Peers>,
}

impl Webhook {
    /// Starts the caches (waiting for their first list) and ensures the ledger namespace.
    /// Changes made through Kubernetes go to `audit`, when given (see [`audit`]). Without the
    /// certificate it serves, it cannot reach other replicas, so it never holds a lease (and
    /// answers 503 for tenants another replica holds): see [`Server::start`].
    ///
    /// # Errors
    /// Kubernetes API errors.
    pub async fn start(
        client: Client,
        plans: Arc<PlanCatalog>,
        config: &WebhookConfig,
        audit: Option<Arc<dyn AuditSink>>,
    ) -> anyhow::Result<Arc<Self>> {
        Self::start_serving(client, plans, config, audit, None).await
    }

    async fn start_serving(
        client: Client,
        plans: Arc<PlanCatalog>,
        config: &WebhookConfig,
        audit: Option<Arc<dyn AuditSink>>,
        cert: Option<Arc<tls::ReloadingCert>>,
    ) -> anyhow::Result<Arc<Self>> {
        register::ensure_namespace(&client, &config.namespace).await?;
        let index = Index::start(client.clone(), config.reservation_ttl).await?;
        let mut ledger = Ledger::new(client.clone(), &config.namespace, config.reservation_ttl);
        let peers = cert.map(forward::Peers::new).transpose()?;
        if let (Some(address), Some(_)) = (config.advertise, &peers) {
            ledger = ledger.holding_leases_at(address.to_string());
        }
        let platform = config.platform.clone();
        Ok(Arc::new(Self { client, index, ledger, plans, platform, audit, peers }))
    }

    /// The webhook's routes: `POST /mutate`, `POST /validate`, `GET /healthz`.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/mutate", post(review::mutate))
            .route("/validate", post(review::validate))
            .route("/healthz", axum::routing::get(|| async { "ok" }))
            .layer(DefaultBodyLimit::max(MAX_REVIEW_BYTES))
            .with_state(self.clone())
    }
}

/// A webhook ready to serve: certificate loaded (and watched), caches filled.
pub struct Server {
    webhook: Arc<Webhook>,
    tls: Arc<rustls::ServerConfig>,
    _reload: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Loads the certificate and key, starts reloading them on change (every 2 s), fills the
    /// caches; with [`WebhookConfig::advertise`], takes tenants' leases. Register the webhook with the API server only after this returns, so it never
    /// points at a webhook that cannot answer (its failurePolicy is Fail). `audit`: as for
    /// [`Webhook::start`].
    ///
    /// # Errors
    /// Unreadable certificate or key, Kubernetes errors.
    pub async fn start(
        client: Client,
        plans: Arc<PlanCatalog>,
        config: &WebhookConfig,
        audit: Option<Arc<dyn AuditSink>>,
    ) -> anyhow::Result<Self> {
        let cert = tls::ReloadingCert::load(config.tls_cert.clone(), config.tls_key.clone())?;
        let reload = cert.watch(Duration::from_secs(2));
        let tls = tls::server_config(cert.clone())?;
        let webhook = Webhook::start_serving(client, plans, config, audit, Some(cert)).await?;
        Ok(Self { webhook, tls, _reload: reload })
    }

    /// Serves over TLS on `listener` until `shutdown` resolves. Then, still serving, it
    /// returns the tenants' leases it holds, so the other replicas take over at once (reviews
    /// they send it meanwhile are judged here, written to the ledger); only then does it stop.
    ///
    /// # Errors
    /// Listener I/O errors.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(addr = %listener.local_addr()?, "webhook listening (TLS)");
        let ledger = self.webhook.ledger.clone();
        let leases_returned = async move {
            shutdown.await;
            ledger.release_leases().await;
        };
        tls::serve(listener, self.tls, self.webhook.router(), leases_returned).await
    }
}
