//! Race-free admission of everything that grows a tenant: a per-tenant ledger of objects
//! admitted a moment ago, kept in the API server and written with optimistic concurrency.
//!
//! Why: the watch-backed [`Index`](crate::index::Index) lags behind what was just admitted, so
//! concurrent CREATEs, and UPDATEs that grow a footprint (a scale-up), would each see the same
//! usage and all pass (the weak spot of tenant-wide quotas in Capsule). Here every admitted
//! CREATE or growing UPDATE records its object's footprint in the ConfigMap
//! `slipway-reservations-<tenant UID>` under a `resourceVersion` precondition: of racing
//! requests, on any webhook replica, exactly one write wins per version; the others read
//! again and judge again, now counting the winner.
//!
//! A reservation stands for one version of one object (its UID and generation). It is
//! released as soon as this replica's watch has seen that version (from then on the cache
//! counts it, or it was deleted and rightly counts no more), and lapses after the TTL
//! regardless (an object a later admission step refused is never seen). A ledger keeps only
//! what counting needs (kind, name, footprint), never a spec, and is owned by its Tenant, so
//! the garbage collector deletes it with the tenant.
//!
//! Each replica remembers the last version of each ledger it wrote or read and writes on top
//! of it: with one replica (or one replica at a time per tenant) a reservation costs one
//! request, the write, instead of a read and a write; when another replica wrote meanwhile,
//! the write loses on its `resourceVersion` precondition and the next attempt reads again. A
//! dry run judges against the remembered version without waiting for its turn: it writes
//! nothing, so it may be a moment behind another replica's writes (issue 13).

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{ObjectMeta, PostParams},
};
use serde::{Deserialize, Serialize};
use slipway_crds::{Kind, TENANT_LABEL, Tenant};
use slipway_policies::{Footprint, Inventory};
use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// Most attempts at one reservation before giving up (each lost attempt means another request
/// won; 20 concurrent creates need at most 20).
const MAX_ATTEMPTS: usize = 64;

/// The version of an object a reservation is for, and the room it takes.
#[derive(Clone, Debug, PartialEq)]
pub struct Claim {
    /// The object's kind.
    pub kind: Kind,
    /// The object's name.
    pub name: String,
    /// Its UID (the API server sets it before validating webhooks run, also on CREATE).
    pub uid: Option<String>,
    /// Its `metadata.generation` after the change.
    pub generation: i64,
    /// What it may use of the tenant's totals.
    pub footprint: Footprint,
}

/// One ledger entry, stored as JSON under `<plural>.<name>`: what counting needs, which
/// version of the object it stands for, and when it lapses (Unix seconds).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Reservation {
    /// UID of the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Generation of the object the reservation stands for.
    pub generation: i64,
    /// Room taken.
    pub footprint: Footprint,
    /// Expiry, seconds since the Unix epoch.
    pub expires: u64,
}

/// The ledger key of an object: `apps.<name>`, `databases.<name>`, `workspaces.<name>`.
fn key(kind: Kind, name: &str) -> String {
    format!("{}.{name}", kind.plural())
}

/// The kind and name of a ledger key.
fn parse_key(key: &str) -> Option<(Kind, &str)> {
    let (plural, name) = key.split_once('.')?;
    Some((Kind::ALL.into_iter().find(|k| k.plural() == plural)?, name))
}

/// The ledger ConfigMap of a tenant, by its UID: a later tenant of the same name never reads
/// an earlier one's ledger.
fn ledger_name(tenant_uid: &str) -> String {
    format!("slipway-reservations-{tenant_uid}")
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Reservations still pending in a ConfigMap's data: readable, not lapsed at `at`, and not yet
/// `observed(kind, name, reservation)`.
fn pending(
    data: Option<&BTreeMap<String, String>>,
    at: u64,
    observed: impl Fn(Kind, &str, &Reservation) -> bool,
) -> BTreeMap<String, Reservation> {
    data.into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), serde_json::from_str::<Reservation>(v).ok()?)))
        .filter(|(k, r)| r.expires > at && parse_key(k).is_some_and(|(kind, name)| !observed(kind, name, r)))
        .collect()
}

/// Pending reservations as an inventory, leaving out `except` (the object being judged).
fn inventory(entries: &BTreeMap<String, Reservation>, except: &str) -> Inventory {
    entries
        .iter()
        .filter(|(k, _)| k.as_str() != except)
        .filter_map(|(k, r)| {
            let (kind, name) = parse_key(k)?;
            Some((kind, name.to_string(), r.footprint.clone()))
        })
        .collect()
}

/// The reservation ledgers of all tenants.
#[derive(Clone)]
pub struct Ledger {
    api: Api<ConfigMap>,
    ttl: Duration,
    /// Per ledger: this replica's turn and its last known version of it.
    tenants: Arc<Mutex<HashMap<String, Arc<TenantLedger>>>>,
}

/// What a replica keeps of one tenant's ledger.
#[derive(Default)]
struct TenantLedger {
    /// This replica's reservations for the tenant take turns, so only requests on other
    /// replicas can make a write lose its race (409).
    turn: tokio::sync::Mutex<()>,
    /// The ledger as this replica last wrote or read it (`None`: unknown, read it).
    known: Mutex<Option<ConfigMap>>,
}

impl TenantLedger {
    fn known(&self) -> Option<ConfigMap> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn remember(&self, ledger: Option<ConfigMap>) {
        *self.known.lock().unwrap_or_else(PoisonError::into_inner) = ledger;
    }

    fn remember_if_unknown(&self, ledger: Option<ConfigMap>) {
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        if known.is_none() {
            *known = ledger;
        }
    }
}

impl Ledger {
    /// Ledgers kept as ConfigMaps in `namespace` (the webhook's own, never a tenant's).
    pub fn new(client: Client, namespace: &str, ttl: Duration) -> Self {
        Self { api: Api::namespaced(client, namespace), ttl, tenants: Arc::default() }
    }

    /// Judges `claim` against the tenant's pending reservations and, when `judge` admits it
    /// (returns `true`), reserves its room, all under one optimistic-concurrency write.
    /// `judge` receives the pending reservations of the tenant's other objects and may be
    /// called several times: once per lost race. `observed` says which reservations this
    /// replica's caches already cover. With `dry_run`, nothing is written
    /// (`sideEffects: NoneOnDryRun`).
    ///
    /// # Errors
    /// Kubernetes API errors, or [`MAX_ATTEMPTS`] lost races in a row.
    pub async fn reserve<T>(
        &self,
        tenant: &Tenant,
        claim: &Claim,
        dry_run: bool,
        observed: impl Fn(Kind, &str, &Reservation) -> bool,
        mut judge: impl FnMut(Inventory) -> (bool, T),
    ) -> Result<T, kube::Error> {
        let tenant_name = tenant.name_any();
        let ledger = ledger_name(tenant.uid().as_deref().unwrap_or(&tenant_name));
        // Keyed by the ledger (the tenant's UID): a later tenant of the same name starts afresh.
        let state =
            self.tenants.lock().unwrap_or_else(PoisonError::into_inner).entry(ledger.clone()).or_default().clone();
        // A dry run writes nothing, so it need not wait for its turn.
        let _turn = if dry_run { None } else { Some(state.turn.lock().await) };
        let own_key = key(claim.kind, &claim.name);
        for attempt in 0..MAX_ATTEMPTS {
            // The remembered version on the first attempt; after a lost race, the current one.
            let remembered = state.known().filter(|_| attempt == 0);
            let from_memory = remembered.is_some();
            let current = match remembered {
                Some(known) => Some(known),
                None => {
                    let read = self.api.get_opt(&ledger).await?;
                    if dry_run {
                        // Without the turn, never replace what the turn's holder wrote.
                        state.remember_if_unknown(read.clone());
                    } else {
                        state.remember(read.clone());
                    }
                    read
                }
            };
            let at = now();
            let mut entries = pending(current.as_ref().and_then(|c| c.data.as_ref()), at, &observed);
            let (admit, verdict) = judge(inventory(&entries, &own_key));
            if !admit && from_memory && !dry_run {
                // Never refuse on a version that may be out of date: read the current one.
                state.remember(None);
                continue;
            }
            if !admit || dry_run {
                return Ok(verdict);
            }
            let reservation = Reservation {
                uid: claim.uid.clone(),
                generation: claim.generation,
                footprint: claim.footprint.clone(),
                expires: at + self.ttl.as_secs(),
            };
            // Released and lapsed entries are dropped with this write.
            entries.insert(own_key.clone(), reservation);
            let data = entries
                .into_iter()
                .map(|(k, r)| (k, serde_json::to_string(&r).expect("a reservation serializes")))
                .collect();
            let written = match current {
                Some(mut cm) => {
                    cm.data = Some(data);
                    self.api.replace(&ledger, &PostParams::default(), &cm).await
                }
                None => {
                    let cm = ConfigMap {
                        metadata: ObjectMeta {
                            name: Some(ledger.clone()),
                            labels: Some([(TENANT_LABEL.to_string(), tenant_name.clone())].into()),
                            // Deleted by the garbage collector with its tenant.
                            owner_references: tenant.owner_ref(&()).map(|o| vec![o]),
                            ..Default::default()
                        },
                        data: Some(data),
                        ..Default::default()
                    };
                    self.api.create(&PostParams::default(), &cm).await
                }
            };
            match written {
                Ok(written) => {
                    state.remember(Some(written));
                    return Ok(verdict);
                }
                // 409: another request (here or on another replica) wrote first; 404: the
                // remembered ledger was deleted (by the garbage collector with its Tenant, or
                // by hand). Read and judge again.
                Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {
                    metrics::counter!(crate::metrics::RESERVATION_CONFLICTS).increment(1);
                    state.remember(None);
                    // Back off with jitter so the next try is unlikely to collide again
                    // (5-25 ms, growing with the attempt, at most 200 ms).
                    let step = u64::try_from(attempt.min(7) + 1).unwrap_or(8);
                    tokio::time::sleep(Duration::from_millis(rand::random_range(5..=25) * step)).await;
                }
                Err(e) => {
                    state.remember(None);
                    return Err(e);
                }
            }
        }
        Err(kube::Error::Service(format!("lost {MAX_ATTEMPTS} races reserving room in {ledger}").into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_policies::Amount;

    fn entry(generation: i64, expires: u64) -> String {
        let footprint = Footprint {
            cpu: Amount::parse("500m").unwrap(),
            memory: Amount::parse("1Gi").unwrap(),
            storage: Amount::zero(),
        };
        serde_json::to_string(&Reservation { uid: Some("u".into()), generation, footprint, expires }).unwrap()
    }

    #[test]
    fn lapsed_released_and_unreadable_entries_are_not_pending() {
        let data = BTreeMap::from([
            ("apps.live".to_string(), entry(2, 200)),
            ("apps.lapsed".to_string(), entry(1, 100)),
            ("apps.seen".to_string(), entry(1, 200)),
            ("apps.garbled".to_string(), "not json".to_string()),
            ("gizmos.unknown".to_string(), entry(1, 200)),
        ]);
        let pending = pending(Some(&data), 150, |kind, name, _| kind == Kind::App && name == "seen");
        assert_eq!(pending.keys().collect::<Vec<_>>(), ["apps.live"]);
        assert_eq!(inventory(&pending, "apps.other").usage().cpu, Amount::parse("500m").unwrap());
        assert_eq!(inventory(&pending, "apps.live").count(Kind::App), 0, "the judged object is left out");
    }

    #[test]
    fn entries_hold_footprints_only() {
        let text = entry(3, 9);
        assert_eq!(
            text,
            r#"{"uid":"u","generation":3,"footprint":{"cpu":"500m","memory":"1Gi","storage":"0"},"expires":9}"#
        );
        assert_eq!(parse_key("databases.pg"), Some((Kind::Database, "pg")));
        assert_eq!(key(Kind::Workspace, "box"), "workspaces.box");
    }
}
