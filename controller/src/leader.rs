//! Leader election, so that of several controller replicas only one reconciles: two
//! reconcilers working from different cache states undo each other's writes (a replica whose
//! cache lags applies an App's old replica count). The replicas compete for a
//! `coordination.k8s.io/v1` Lease through `kube-lease-manager` (server-side apply, so two
//! replicas can never both take it), the way kube-controller-manager's replicas do
//! (<https://kubernetes.io/docs/concepts/architecture/leases/#leader-election>).
//!
//! A replica that loses the Lease (it could not renew it in time) stops reconciling at once
//! and [`lead`] returns [`Error::LostLeadership`]: the process exits and its pod restarts and
//! competes again, as controller-runtime's managers do. On shutdown the leader releases the
//! Lease, so a rolling update hands over at once instead of after the Lease's duration.

use crate::{Error, Result};
use futures::FutureExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use kube_lease_manager::LeaseManagerBuilder;
use std::future::Future;

/// Where and how replicas compete.
#[derive(Clone, Debug)]
pub struct LeaderElection {
    /// Namespace of the Lease (created if missing).
    pub namespace: String,
    /// Name of the Lease; every replica of one controller uses the same.
    pub lease: String,
    /// This replica's name in `spec.holderIdentity`: unique per replica (the pod's name).
    pub identity: String,
    /// Seconds a Lease holds without renewal: the longest a killed leader leaves the
    /// controllers without one (kube-controller-manager's default is 15).
    pub duration_seconds: u64,
    /// Seconds before expiry at which the leader renews, and the clock skew between replicas
    /// tolerated (kube-lease-manager's default is 5).
    pub grace_seconds: u64,
}

/// Resolves when the leader should stop reconciling (cheap to clone, `Sync`).
pub type Stop = futures::future::Shared<futures::future::BoxFuture<'static, ()>>;

/// Runs `work` while this replica holds the Lease: waits until it does (or `shutdown`
/// resolves first), then runs `work(stop)`, where `stop` resolves on `shutdown` or when the
/// Lease is lost, and releases the Lease after `work` returned.
///
/// # Errors
/// [`Error::LostLeadership`] when the Lease was lost while leading (after `work` stopped);
/// Kubernetes errors creating the namespace or reading the Lease.
pub async fn lead<W, F>(
    client: Client,
    election: &LeaderElection,
    shutdown: impl Future<Output = ()> + Send + 'static,
    work: W,
) -> Result<()>
where
    W: FnOnce(Stop) -> F,
    F: Future<Output = Result<()>>,
{
    ensure_namespace(&client, &election.namespace).await?;
    let manager = LeaseManagerBuilder::new(client, &election.lease)
        .with_namespace(&election.namespace)
        .with_identity(&election.identity)
        .with_duration(election.duration_seconds)
        .with_grace(election.grace_seconds)
        .build()
        .await
        .map_err(|e| Error::Leadership(e.to_string()))?;
    let (mut leading, manager) = manager.watch().await;
    let shutdown = shutdown.shared();
    tracing::info!(lease = %election.lease, identity = %election.identity, "waiting to lead");
    metrics::gauge!(crate::metrics::LEADER).set(0.0);
    let acquired = tokio::select! {
        acquired = leading.wait_for(|leader| *leader) => Some(acquired.is_ok()),
        () = shutdown.clone() => None,
    };
    match acquired {
        Some(true) => {}
        Some(false) => return Err(Error::Leadership("the lease manager stopped".into())),
        None => {
            drop(leading);
            let _ = manager.await;
            return Ok(());
        }
    }
    tracing::info!(lease = %election.lease, identity = %election.identity, "leading");
    metrics::gauge!(crate::metrics::LEADER).set(1.0);
    let mut watch = leading.clone();
    let lost = async move {
        // An error means the manager stopped: as good as lost.
        let _ = watch.wait_for(|leader| !*leader).await;
    }
    .shared();
    let stop = futures::future::select(Box::pin(shutdown), Box::pin(lost.clone())).map(drop).boxed().shared();
    let outcome = work(stop).await;
    let was_lost = lost.now_or_never().is_some();
    metrics::gauge!(crate::metrics::LEADER).set(0.0);
    // Closing the channel makes the manager release the Lease and end.
    drop(leading);
    let _ = manager.await;
    outcome?;
    if was_lost {
        tracing::error!(lease = %election.lease, identity = %election.identity, "lost the lease; stopped");
        return Err(Error::LostLeadership);
    }
    Ok(())
}

async fn ensure_namespace(client: &Client, name: &str) -> Result<()> {
    let namespace =
        Namespace { metadata: ObjectMeta { name: Some(name.into()), ..Default::default() }, ..Default::default() };
    match Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &namespace).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
