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
//! dry run judges against the remembered version and writes nothing, so it may be a moment
//! behind another replica's writes (issue 13).
//!
//! Writes are group commits: a replica has at most one write of a ledger in flight; the
//! reservations its judges admit meanwhile (each judged counting the ones before it) queue
//! and go out together in the next write, so eight concurrent creates of one tenant cost about
//! two writes, not eight in turn. A queued reservation is only written on the ledger version
//! it was judged against (or this replica's own write on top of it, which it counted): when
//! the replica learns of a newer version, the queue is judged again.

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
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
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
    observed: &(dyn Fn(Kind, &str, &Reservation) -> bool + Send + Sync),
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

/// Whether this replica's caches already cover a reservation (see [`Index::observed`]): its
/// object `(kind, name)` at the reservation's version or later, stored or deleted.
///
/// [`Index::observed`]: crate::Index::observed
pub type Observed = Arc<dyn Fn(Kind, &str, &Reservation) -> bool + Send + Sync>;

/// The reservation ledgers of all tenants.
#[derive(Clone)]
pub struct Ledger {
    api: Api<ConfigMap>,
    ttl: Duration,
    /// Per ledger: what this replica knows of it and what it is about to write to it.
    tenants: Arc<Mutex<HashMap<String, Arc<TenantLedger>>>>,
}

/// What a replica knows of one ledger's current version.
#[derive(Clone, Default)]
enum Known {
    /// Nothing it can trust: read it.
    #[default]
    Unknown,
    /// The ledger does not exist yet: the next write creates it.
    Absent,
    /// The version this replica last wrote or read.
    At(Arc<ConfigMap>),
}

impl From<Option<ConfigMap>> for Known {
    fn from(read: Option<ConfigMap>) -> Self {
        read.map_or(Known::Absent, |cm| Known::At(Arc::new(cm)))
    }
}

/// How the write carrying a reservation ended.
#[derive(Debug)]
enum Commit {
    /// Written: the room is reserved.
    Written,
    /// Not written: it was judged against a version of the ledger this replica no longer
    /// trusts (another request read a newer one, or found it out of date). Judge again.
    Stale,
    /// Not written: another replica wrote the ledger first (409), or it was deleted (404 on a
    /// replace). Judge again against the current version.
    Lost,
    /// Not written: the API server failed the write.
    Failed(String),
}

/// A reservation admitted by its judge and waiting for the write that carries it.
struct Queued {
    key: String,
    reservation: Reservation,
    /// The [`Shared::epoch`] it was judged in: it may only be written on that ledger version.
    epoch: u64,
    done: tokio::sync::oneshot::Sender<Commit>,
}

/// The state of one ledger on this replica, behind one lock.
#[derive(Default)]
struct Shared {
    known: Known,
    /// Bumped whenever `known` is replaced by anything but this replica's own write of
    /// reservations judged against it: queued reservations judged in an earlier epoch are
    /// judged again.
    epoch: u64,
    /// Admitted, waiting for the next write (in the order they were judged).
    queued: Vec<Queued>,
    /// In the write in flight, by ledger key: counted by every judge until it ends.
    writing: BTreeMap<String, Reservation>,
    /// Whether a write is in flight (at most one per ledger and replica).
    flushing: bool,
    /// Counts the versions this replica has learned (read or written): a version learned after
    /// a request stopped trusting the one before is fresh enough to refuse on.
    learned: u64,
    /// When a request last used this ledger (see [`forget_idle`]).
    used: Option<Instant>,
}

/// What a replica keeps of one tenant's ledger.
#[derive(Default)]
struct TenantLedger {
    shared: Mutex<Shared>,
}

impl TenantLedger {
    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Forgets what this replica keeps of the ledgers no request has used for `idle` (the
/// reservations' lifetime), so deleted tenants leave nothing behind: only those nothing holds
/// (no request, no write in flight) and with nothing queued or being written. A quiet tenant's
/// ledger is read again when next used. Called with the map locked, so no request can take one
/// of them meanwhile.
fn forget_idle(tenants: &mut HashMap<String, Arc<TenantLedger>>, idle: Duration) {
    tenants.retain(|_, ledger| {
        if Arc::strong_count(ledger) > 1 {
            return true;
        }
        let shared = ledger.lock();
        let busy = !shared.queued.is_empty() || !shared.writing.is_empty() || shared.flushing;
        busy || shared.used.is_some_and(|at| at.elapsed() < idle)
    });
}

/// Where a tenant's ledger lives and what a new one carries.
#[derive(Clone)]
struct Target {
    name: String,
    tenant: String,
    owner: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>,
}

impl Ledger {
    /// Ledgers kept as ConfigMaps in `namespace` (the webhook's own, never a tenant's).
    pub fn new(client: Client, namespace: &str, ttl: Duration) -> Self {
        Self { api: Api::namespaced(client, namespace), ttl, tenants: Arc::default() }
    }

    /// Judges `claim` against the tenant's pending reservations and, when `judge` admits it
    /// (returns `true`), reserves its room with an optimistic-concurrency write of the ledger.
    /// `judge` receives the pending reservations of the tenant's other objects (this replica's
    /// admitted but not yet written ones included) and may be called several times: once per
    /// lost race. `observed` says which reservations this replica's caches already cover. With
    /// `dry_run`, nothing is written (`sideEffects: NoneOnDryRun`).
    ///
    /// Reservations of one tenant admitted while a write of its ledger is in flight are written
    /// together by the next one (group commit), so concurrent creates of a tenant cost one
    /// write per round trip, not one each.
    ///
    /// # Errors
    /// Kubernetes API errors, or [`MAX_ATTEMPTS`] lost races in a row.
    pub async fn reserve<T>(
        &self,
        tenant: &Tenant,
        claim: &Claim,
        dry_run: bool,
        observed: Observed,
        mut judge: impl FnMut(Inventory) -> (bool, T),
    ) -> Result<T, kube::Error> {
        let tenant_name = tenant.name_any();
        let target = Target {
            name: ledger_name(tenant.uid().as_deref().unwrap_or(&tenant_name)),
            owner: tenant.owner_ref(&()),
            tenant: tenant_name,
        };
        // Keyed by the ledger (the tenant's UID): a later tenant of the same name starts afresh.
        let state = {
            let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
            if !tenants.contains_key(&target.name) {
                forget_idle(&mut tenants, self.ttl);
            }
            tenants.entry(target.name.clone()).or_default().clone()
        };
        state.lock().used = Some(Instant::now());
        let own_key = key(claim.kind, &claim.name);
        // What `learned` was when this request last found the known version too old to refuse on.
        let mut distrusted: Option<u64> = None;
        for attempt in 0..MAX_ATTEMPTS {
            let read = self.ensure_known(&state, &target.name).await?;
            let (verdict, done) = {
                let mut shared = state.lock();
                if matches!(shared.known, Known::Unknown) {
                    continue;
                }
                let fresh = read || distrusted.is_some_and(|n| shared.learned > n);
                let at = now();
                let mut entries = pending(known_data(&shared.known), at, observed.as_ref());
                // Admitted here a moment ago: counted before the ledger holds them.
                entries.extend(shared.writing.iter().map(|(k, r)| (k.clone(), r.clone())));
                entries.extend(shared.queued.iter().map(|q| (q.key.clone(), q.reservation.clone())));
                let (admit, verdict) = judge(inventory(&entries, &own_key));
                if dry_run {
                    return Ok(verdict);
                }
                if !admit {
                    if fresh {
                        return Ok(verdict);
                    }
                    // Never refuse on a version that may be out of date: read the current one.
                    forget(&mut shared);
                    distrusted = Some(shared.learned);
                    continue;
                }
                let reservation = Reservation {
                    uid: claim.uid.clone(),
                    generation: claim.generation,
                    footprint: claim.footprint.clone(),
                    expires: at + self.ttl.as_secs(),
                };
                let (done, written) = tokio::sync::oneshot::channel();
                let epoch = shared.epoch;
                shared.queued.push(Queued { key: own_key.clone(), reservation, epoch, done });
                if !shared.flushing {
                    shared.flushing = true;
                    tokio::spawn(self.clone().flush(state.clone(), target.clone(), observed.clone()));
                }
                (verdict, written)
            };
            match done.await.unwrap_or_else(|_| Commit::Failed("the ledger writer stopped".into())) {
                Commit::Written => return Ok(verdict),
                Commit::Stale => {}
                Commit::Lost => {
                    metrics::counter!(crate::metrics::RESERVATION_CONFLICTS).increment(1);
                    // Back off with jitter so the next try is unlikely to collide again
                    // (5-25 ms, growing with the attempt, at most 200 ms).
                    let step = u64::try_from(attempt.min(7) + 1).unwrap_or(8);
                    tokio::time::sleep(Duration::from_millis(rand::random_range(5..=25) * step)).await;
                }
                Commit::Failed(message) => return Err(kube::Error::Service(message.into())),
            }
        }
        Err(kube::Error::Service(format!("lost {MAX_ATTEMPTS} races reserving room in {}", target.name).into()))
    }

    /// Reads the ledger when this replica does not know its current version; `true` when it
    /// read (so a refusal may rest on what it read, or on what another request read meanwhile).
    async fn ensure_known(&self, state: &TenantLedger, ledger: &str) -> Result<bool, kube::Error> {
        let epoch = {
            let shared = state.lock();
            if !matches!(shared.known, Known::Unknown) {
                return Ok(false);
            }
            shared.epoch
        };
        let read = self.api.get_opt(ledger).await?;
        let mut shared = state.lock();
        // Unless another request installed a version meanwhile (it may be newer than this one).
        if shared.epoch == epoch && matches!(shared.known, Known::Unknown) {
            shared.known = read.into();
            shared.epoch += 1;
            shared.learned += 1;
        }
        Ok(true)
    }

    /// Writes the queued reservations of one ledger, a batch per write, until none is left.
    /// Runs in its own task, so a request given up by its caller never leaves a write half
    /// done.
    async fn flush(self, state: Arc<TenantLedger>, target: Target, observed: Observed) {
        // Should this task end early (a panic), its waiters fail and the next reservation
        // starts a writer, instead of waiting for ever.
        struct Abandoned<'a>(&'a TenantLedger);
        impl Drop for Abandoned<'_> {
            fn drop(&mut self) {
                let mut shared = self.0.lock();
                if shared.flushing {
                    shared.flushing = false;
                    shared.writing.clear();
                    shared.queued.clear();
                    forget(&mut shared);
                }
            }
        }
        let _abandoned = Abandoned(&state);
        loop {
            let (base, batch) = {
                let mut shared = state.lock();
                if shared.queued.is_empty() {
                    // In the same critical section that saw the queue empty: a reservation
                    // queued after it starts the next writer.
                    shared.flushing = false;
                    return;
                }
                let epoch = shared.epoch;
                let (batch, stale): (Vec<_>, Vec<_>) = shared.queued.drain(..).partition(|q| q.epoch == epoch);
                for q in stale {
                    let _ = q.done.send(Commit::Stale);
                }
                if batch.is_empty() {
                    continue;
                }
                shared.writing = batch.iter().map(|q| (q.key.clone(), q.reservation.clone())).collect();
                (shared.known.clone(), batch)
            };
            let mut entries = pending(known_data(&base), now(), observed.as_ref());
            // Released and lapsed entries are dropped with this write.
            entries.extend(batch.iter().map(|q| (q.key.clone(), q.reservation.clone())));
            let creating = !matches!(base, Known::At(_));
            let written = self.write(&target, base, entries).await;
            let mut shared = state.lock();
            shared.writing.clear();
            let commit = || match &written {
                Ok(_) => Commit::Written,
                // A create answered 404: the ledgers' namespace is missing. Reading again cannot
                // help; say so at once instead of retrying as if a race was lost.
                Err(kube::Error::Api(s)) if s.code == 404 && creating => Commit::Failed(format!(
                    "namespace {:?} of the reservation ledgers does not exist: {}",
                    self.api.namespace().unwrap_or_default(),
                    s.message
                )),
                // 409: another replica wrote first; 404: the remembered ledger was deleted (by
                // the garbage collector with its Tenant, or by hand). Read and judge again.
                Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => Commit::Lost,
                Err(e) => Commit::Failed(e.to_string()),
            };
            let outcomes: Vec<_> = batch.iter().map(|_| commit()).collect();
            match written {
                Ok(ledger) => {
                    shared.known = Known::At(Arc::new(ledger));
                    shared.learned += 1;
                }
                Err(_) => forget(&mut shared),
            }
            drop(shared);
            for (q, outcome) in batch.into_iter().zip(outcomes) {
                let _ = q.done.send(outcome);
            }
        }
    }

    /// Writes `entries` as the ledger's data on top of version `base` (creating the ledger when
    /// it is absent).
    async fn write(
        &self,
        target: &Target,
        base: Known,
        entries: BTreeMap<String, Reservation>,
    ) -> Result<ConfigMap, kube::Error> {
        let data = entries
            .into_iter()
            .map(|(k, r)| (k, serde_json::to_string(&r).expect("a reservation serializes")))
            .collect();
        match base {
            Known::At(base) => {
                let mut cm = Arc::unwrap_or_clone(base);
                cm.data = Some(data);
                self.api.replace(&target.name, &PostParams::default(), &cm).await
            }
            Known::Absent | Known::Unknown => {
                let cm = ConfigMap {
                    metadata: ObjectMeta {
                        name: Some(target.name.clone()),
                        labels: Some([(TENANT_LABEL.to_string(), target.tenant.clone())].into()),
                        // Deleted by the garbage collector with its tenant.
                        owner_references: target.owner.clone().map(|o| vec![o]),
                        ..Default::default()
                    },
                    data: Some(data),
                    ..Default::default()
                };
                self.api.create(&PostParams::default(), &cm).await
            }
        }
    }
}

/// The data of a known ledger version.
fn known_data(known: &Known) -> Option<&BTreeMap<String, String>> {
    match known {
        Known::At(cm) => cm.data.as_ref(),
        Known::Absent | Known::Unknown => None,
    }
}

/// Stops trusting the remembered version: the next judge reads the ledger, and reservations
/// judged against the old version are judged again.
fn forget(shared: &mut Shared) {
    shared.known = Known::Unknown;
    shared.epoch += 1;
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
        let pending = pending(Some(&data), 150, &|kind, name, _| kind == Kind::App && name == "seen");
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

    #[test]
    fn ledgers_idle_for_their_lifetime_are_forgotten_unless_held_or_busy() {
        let idle = Duration::from_secs(60);
        let ledger = |used: Option<Instant>, flushing: bool| {
            let ledger = Arc::new(TenantLedger::default());
            let mut shared = ledger.lock();
            (shared.used, shared.flushing) = (used, flushing);
            drop(shared);
            ledger
        };
        let long_ago = Instant::now().checked_sub(Duration::from_secs(120));
        let held = ledger(long_ago, false);
        let mut tenants: HashMap<String, Arc<TenantLedger>> = [
            ("gone".to_string(), ledger(long_ago, false)),
            ("never-used".to_string(), ledger(None, false)),
            ("recent".to_string(), ledger(Some(Instant::now()), false)),
            ("writing".to_string(), ledger(long_ago, true)),
            ("held".to_string(), held.clone()),
        ]
        .into();
        forget_idle(&mut tenants, idle);
        let mut kept: Vec<_> = tenants.keys().cloned().collect();
        kept.sort();
        assert_eq!(kept, ["held", "recent", "writing"]);
        drop(held);
        forget_idle(&mut tenants, idle);
        assert!(!tenants.contains_key("held"), "once nothing holds it, it goes too");
    }
}
