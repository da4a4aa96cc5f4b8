//! Race-free admission of CREATEs: a per-tenant ledger of recently admitted objects, kept in
//! the API server and written with optimistic concurrency.
//!
//! Why: the watch-backed [`Index`](crate::index::Index) lags behind creates that were just
//! admitted, so concurrent creates would each see the same usage and all pass (the weak spot
//! of tenant-wide quotas in Capsule). Here every admitted CREATE is recorded in the ConfigMap
//! `slipway-reservations-<tenant>` with a `resourceVersion` precondition: of racing requests,
//! on any webhook replica, exactly one write wins per version; the others re-read and judge
//! again, now counting the winner. A reservation expires after the ledger's TTL (15 s by default): by then the
//! object is in every replica's cache (it persisted) or it never will be (a later admission
//! step refused it, or the request failed), which releases its room.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use serde::{Deserialize, Serialize};
use slipway_crds::{AppSpec, DatabaseSpec, WorkspaceSpec};
use slipway_policies::{Inventory, Kind};
use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// Most attempts at one reservation before giving up (each lost attempt means another request
/// won; 20 concurrent creates need at most 20).
const MAX_ATTEMPTS: usize = 64;

/// The admitted spec of a reserved object, tagged with its kind.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", content = "spec")]
pub enum Reserved {
    /// An App.
    App(AppSpec),
    /// A Database.
    Database(DatabaseSpec),
    /// A Workspace.
    Workspace(WorkspaceSpec),
}

impl Reserved {
    fn kind(&self) -> Kind {
        match self {
            Reserved::App(_) => Kind::App,
            Reserved::Database(_) => Kind::Database,
            Reserved::Workspace(_) => Kind::Workspace,
        }
    }
}

/// One reserved object: its spec and when the reservation lapses (Unix seconds).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Reservation {
    /// The admitted object.
    #[serde(flatten)]
    pub object: Reserved,
    /// Expiry, seconds since the Unix epoch.
    pub expires: u64,
}

/// The ledger key of an object: `apps.<name>`, `databases.<name>`, `workspaces.<name>`.
fn key(kind: Kind, name: &str) -> String {
    let plural = match kind {
        Kind::App => "apps",
        Kind::Database => "databases",
        Kind::Workspace => "workspaces",
    };
    format!("{plural}.{name}")
}

/// The live reservations as an inventory, leaving out `except` (the object being judged).
fn inventory(entries: &BTreeMap<String, Reservation>, except: Option<&str>) -> Inventory {
    let mut out = Inventory::default();
    for (k, r) in entries.iter().filter(|(k, _)| Some(k.as_str()) != except) {
        let Some((_, name)) = k.split_once('.') else { continue };
        let name = name.to_string();
        match &r.object {
            Reserved::App(s) => drop(out.apps.insert(name, s.clone())),
            Reserved::Database(s) => drop(out.databases.insert(name, s.clone())),
            Reserved::Workspace(s) => drop(out.workspaces.insert(name, s.clone())),
        }
    }
    out
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

/// Live reservations from a ConfigMap's data (`<plural>.<name>` → JSON), skipping expired or
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

    /// Live reservations of `tenant`, leaving out `kind`/`name` (the object being judged).
    ///
    /// # Errors
    /// Kubernetes API errors other than a missing ledger.
    pub async fn reserved(&self, tenant: &str, kind: Kind, name: &str) -> Result<Inventory, kube::Error> {
        let cm = self.api.get_opt(&ledger_name(tenant)).await?;
        Ok(inventory(&live(cm.as_ref().and_then(|c| c.data.as_ref()), now()), Some(&key(kind, name))))
    }

    /// Judges a CREATE of `object` called `name` against the tenant's reservations and, when
    /// `judge` admits it (returns `true`), reserves its room, all under one
    /// optimistic-concurrency write. `judge` receives the live reservations of every kind and
    /// may be called several times: once per lost race. With `dry_run`, nothing is written
    /// (`sideEffects: NoneOnDryRun`).
    ///
    /// # Errors
    /// Kubernetes API errors, or [`MAX_ATTEMPTS`] lost races in a row.
    pub async fn reserve<T>(
        &self,
        tenant: &str,
        name: &str,
        object: &Reserved,
        dry_run: bool,
        mut judge: impl FnMut(&Inventory) -> (bool, T),
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
            let own_key = key(object.kind(), name);
            let (admit, verdict) = judge(&inventory(&entries, Some(&own_key)));
            if !admit || dry_run {
                return Ok(verdict);
            }
            let reservation = Reservation { object: object.clone(), expires: at + self.ttl.as_secs() };
            entries.insert(own_key, reservation);
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
        let keep = serde_json::to_string(&Reservation { object: Reserved::App(spec.clone()), expires: 200 }).unwrap();
        let gone = serde_json::to_string(&Reservation { object: Reserved::App(spec), expires: 100 }).unwrap();
        let data = BTreeMap::from([
            ("apps.a".to_string(), keep),
            ("apps.b".to_string(), gone),
            ("apps.c".to_string(), "not json".to_string()),
        ]);
        let live = live(Some(&data), 150);
        assert_eq!(live.keys().collect::<Vec<_>>(), ["apps.a"]);
        assert_eq!(inventory(&live, None).apps.keys().collect::<Vec<_>>(), ["a"]);
        assert!(inventory(&live, Some("apps.a")).apps.is_empty());
    }
}
