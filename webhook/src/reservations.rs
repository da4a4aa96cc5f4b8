//! Race-free admission of CREATEs: a per-tenant ledger of recently admitted objects, kept in
//! the API server and written with optimistic concurrency.
//!
//! Why: the watch-backed [`Index`](crate::index::Index) lags behind creates that were just
//! admitted, so concurrent creates would each see the same usage and all pass (the weak spot
//! of tenant-wide quotas in Capsule). Here every admitted CREATE is recorded in the ConfigMap
//! `slipway-reservations-<tenant>` with a `resourceVersion` precondition: of racing requests,
//! on any webhook replica, exactly one write wins per version; the others re-read and judge
//! again, now counting the winner. A reservation expires after [`Ledger::ttl`]: by then the
//! object is in every replica's cache (it persisted) or it never will be (a later admission
//! step refused it, or the request failed), which releases its room.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use serde::{Deserialize, Serialize};
use slipway_crds::AppSpec;
use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// Most attempts at one reservation before giving up (each lost attempt means another request
/// won; 20 concurrent creates need at most 20).
const MAX_ATTEMPTS: usize = 64;

/// One reserved object: its spec and when the reservation lapses (Unix seconds).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Reservation {
    /// The admitted spec.
    pub spec: AppSpec,
    /// Expiry, seconds since the Unix epoch.
    pub expires: u64,
}

/// The reservation ledgers of all tenants.
#[derive(Clone)]
pub struct Ledger {
    api: Api<ConfigMap>,
    ttl: Duration,
    /// One lock per tenant: this replica's reservations for a tenant take turns, so only
    /// requests on other replicas can make a write lose its race (409).
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn ledger_name(tenant: &str) -> String {
    format!("slipway-reservations-{tenant}")
}

/// Live reservations from a ConfigMap's data (`apps.<name>` → JSON), skipping expired or
/// unreadable entries.
fn live(data: Option<&BTreeMap<String, String>>, at: u64) -> BTreeMap<String, Reservation> {
    data.into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), serde_json::from_str::<Reservation>(v).ok()?)))
        .filter(|(_, r)| r.expires > at)
        .collect()
}

impl Ledger {
    /// Ledgers kept as ConfigMaps in `namespace` (the webhook's own, never a tenant's).
    pub fn new(client: Client, namespace: &str, ttl: Duration) -> Self {
        Self { api: Api::namespaced(client, namespace), ttl, locks: Arc::default() }
    }

    /// Live reserved Apps of `tenant`, by name.
    ///
    /// # Errors
    /// Kubernetes API errors other than a missing ledger.
    pub async fn reserved_apps(&self, tenant: &str) -> Result<BTreeMap<String, AppSpec>, kube::Error> {
        let cm = self.api.get_opt(&ledger_name(tenant)).await?;
        Ok(live(cm.as_ref().and_then(|c| c.data.as_ref()), now())
            .into_iter()
            .filter_map(|(k, r)| Some((k.strip_prefix("apps.")?.to_string(), r.spec)))
            .collect())
    }

    /// Judges a CREATE of App `name` against the tenant's reservations and, when `judge`
    /// admits it (returns `true`), reserves its room, all under one optimistic-concurrency
    /// write. `judge` receives the live reservations (by App name) and may be called several
    /// times: once per lost race. With `dry_run`, nothing is written (`sideEffects: NoneOnDryRun`).
    ///
    /// # Errors
    /// Kubernetes API errors, or [`MAX_ATTEMPTS`] lost races in a row.
    pub async fn reserve<T>(
        &self,
        tenant: &str,
        name: &str,
        spec: &AppSpec,
        dry_run: bool,
        mut judge: impl FnMut(&BTreeMap<String, AppSpec>) -> (bool, T),
    ) -> Result<T, kube::Error> {
        let ledger = ledger_name(tenant);
        let lock =
            self.locks.lock().unwrap_or_else(PoisonError::into_inner).entry(tenant.to_string()).or_default().clone();
        // A dry run writes nothing, so it need not wait for its turn.
        let _turn = if dry_run { None } else { Some(lock.lock().await) };
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                // Lost a race to another replica: back off with jitter so the next try is
                // unlikely to collide again (5-25 ms, growing with the attempt, at most 200 ms).
                let step = u64::try_from(attempt.min(8)).unwrap_or(8);
                tokio::time::sleep(Duration::from_millis(rand::random_range(5..=25) * step)).await;
            }
            let current = self.api.get_opt(&ledger).await?;
            let at = now();
            let mut entries = live(current.as_ref().and_then(|c| c.data.as_ref()), at);
            let reserved = entries
                .iter()
                .filter_map(|(k, r)| Some((k.strip_prefix("apps.")?.to_string(), r.spec.clone())))
                .filter(|(n, _)| n != name)
                .collect();
            let (admit, verdict) = judge(&reserved);
            if !admit || dry_run {
                return Ok(verdict);
            }
            let reservation = Reservation { spec: spec.clone(), expires: at + self.ttl.as_secs() };
            entries.insert(format!("apps.{name}"), reservation);
            let data = entries
                .into_iter()
                .map(|(k, r)| (k, serde_json::to_string(&r).expect("a reservation serializes")))
                .collect();
            let written = match current {
                Some(mut cm) => {
                    cm.data = Some(data);
                    self.api.replace(&ledger, &PostParams::default(), &cm).await.map(drop)
                }
                None => {
                    let cm = ConfigMap {
                        metadata: ObjectMeta {
                            name: Some(ledger.clone()),
                            labels: Some([(slipway_crds::TENANT_LABEL.to_string(), tenant.to_string())].into()),
                            ..Default::default()
                        },
                        data: Some(data),
                        ..Default::default()
                    };
                    self.api.create(&PostParams::default(), &cm).await.map(drop)
                }
            };
            match written {
                Ok(()) => return Ok(verdict),
                // 409: another request (here or on another replica) wrote first; judge again.
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(e) => return Err(e),
            }
        }
        Err(kube::Error::Service(format!("lost {MAX_ATTEMPTS} races reserving room in {ledger}").into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_and_unreadable_entries_are_not_live() {
        let spec =
            AppSpec { image: "nginx".into(), port: 80, replicas: None, env: vec![], resources: None, expose: None };
        let keep = serde_json::to_string(&Reservation { spec: spec.clone(), expires: 200 }).unwrap();
        let gone = serde_json::to_string(&Reservation { spec, expires: 100 }).unwrap();
        let data = BTreeMap::from([
            ("apps.a".to_string(), keep),
            ("apps.b".to_string(), gone),
            ("apps.c".to_string(), "not json".to_string()),
        ]);
        let live = live(Some(&data), 150);
        assert_eq!(live.keys().collect::<Vec<_>>(), ["apps.a"]);
    }
}
