//! The admission webhook's audit events, appended to the API's audit trail in SQL, where
//! `GET /tenants/{t}/audit` shows them beside the API's own (see `slipway_webhook::audit`).

use slipway_api::{ClusterChange, Database, append_cluster_change};
use slipway_webhook::{AdmissionEvent, AuditSink};
use std::sync::Arc;

/// An [`AuditSink`] writing to the API's database.
pub struct SqlAudit {
    db: Database,
}

impl SqlAudit {
    /// Connects to the API's database (`sqlite://…` or `postgres://…`), running its
    /// migrations like the API does.
    ///
    /// # Errors
    /// Unreachable database, bad URL, failed migration.
    pub async fn connect(url: &str) -> anyhow::Result<Arc<dyn AuditSink>> {
        Ok(Arc::new(Self { db: Database::connect(url).await? }))
    }
}

impl AuditSink for SqlAudit {
    /// Appends in the background: admission does not wait on SQL. A failure is logged with the
    /// event, so the change stays on record in the logs.
    fn record(&self, event: AdmissionEvent) {
        let db = self.db.clone();
        let AdmissionEvent { id, actor, action, tenant, object, status } = event;
        // Timed here, so events keep the order of the decisions, whatever the writes' order.
        let change = ClusterChange { id, time: chrono::Utc::now(), actor, action, tenant, object, status };
        tokio::spawn(async move {
            if let Err(e) = append_cluster_change(&db, change.clone()).await {
                tracing::error!(error = %e, ?change, "a change made through Kubernetes could not be audited");
            }
        });
    }
}
