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
//!
//! **Leases (issue 13).** A replica that can be reached by the others (it has an address) takes
//! the tenant's *lease* with the write that carries its first reservation: the ledger's `lease`
//! entry names it, its address and an end ([`LEASE`] later). While it holds the lease, no other
//! replica writes the ledger (they send the tenant's growing reviews to the holder, see
//! [`Reserved::HeldBy`]), so the holder's view of the ledger is exact and it admits from memory:
//! its reservations are kept in this process, counted by its judges like the ledger's, released
//! the same way, and the common case costs no API request at all. The holder renews the lease
//! while the tenant is busy, and returns it after [`IDLE`] without reviews, and when it shuts
//! down, writing what it still holds as ordinary reservations. A holder that dies unannounced
//! leaves reservations nobody can read: the others wait until its lease has ended plus the
//! reservations' lifetime (by then every object it admitted is in their watch caches, the
//! same bound the ledger relies on) and answer the tenant's growing reviews 503 "retry" meanwhile.
//! One admitting replica per tenant also keeps rules across objects exact, such as a Service
//! name held by one kind only, which shares of the room on several replicas could not.

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
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

/// How long a lease lets its holder admit a tenant's growing reviews from memory.
pub const LEASE: Duration = Duration::from_secs(10);
/// The holder stops admitting from memory this long before its lease ends: the clock skew
/// between replicas it tolerates (the others take over only after the end plus the
/// reservations' lifetime).
const LEASE_MARGIN: Duration = Duration::from_secs(1);
/// A holder renews its lease when less than this is left and the tenant had a review within
/// [`IDLE`]: about one write per tenant every 5 s of activity, instead of one per review.
const RENEW_BELOW: Duration = Duration::from_secs(5);
/// A holder returns the lease of a tenant that had no review for this long.
pub const IDLE: Duration = Duration::from_secs(5);
/// How often a replica looks at the leases it holds (to renew or return them).
const LEASE_TICK: Duration = Duration::from_secs(1);
/// The ledger key of the lease. It has no `.`, so it never reads as a reservation.
const LEASE_KEY: &str = "lease";

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

/// The ledger's `lease` entry: which replica admits the tenant's growing reviews, where the
/// others reach it, and until when (Unix milliseconds).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Lease {
    /// The holder's replica ID (random, one per process).
    pub holder: String,
    /// Where the other replicas send the tenant's reviews: `ip:port` of its HTTPS listener.
    pub address: String,
    /// End of the lease, milliseconds since the Unix epoch.
    pub until: u64,
}

/// How [`Ledger::reserve`] ended.
#[derive(Debug, PartialEq)]
pub enum Reserved<T> {
    /// Judged on this replica: the judge's verdict (when it admitted, the room is reserved).
    Judged(T),
    /// Another replica holds the tenant's lease: the review must be judged there, at this
    /// address (`ip:port`).
    HeldBy(String),
}

/// This replica as a lease holder: its ID and the address the others reach it at.
#[derive(Clone, Debug)]
struct Holder {
    id: String,
    address: String,
    /// When this process started holding leases (Unix milliseconds).
    since: u64,
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

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The lease recorded in a ledger's data, if any is readable.
fn lease_in(data: Option<&BTreeMap<String, String>>) -> Option<Lease> {
    serde_json::from_str(data?.get(LEASE_KEY)?).ok()
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
    /// This replica as a lease holder; `None`: it never holds a lease (every reservation it
    /// admits is written), though it still defers to a replica that holds one.
    holder: Option<Holder>,
    /// Set by [`Ledger::release_leases`]: this replica is stopping and takes no lease again
    /// (it still judges what reaches it, writing every reservation).
    retired: Arc<AtomicBool>,
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
    /// Admitted from memory under this replica's lease and never written, by ledger key:
    /// counted by every judge until observed or lapsed, written when the lease is returned.
    held: BTreeMap<String, Reservation>,
    /// Whether a write is in flight (at most one per ledger and replica).
    flushing: bool,
    /// The next write, when nothing is queued, renews this replica's lease.
    renewing: bool,
    /// The next write returns this replica's lease; until it is written, nothing is admitted
    /// from memory.
    releasing: bool,
    /// Counts the versions this replica has learned (read or written): a version learned after
    /// a request stopped trusting the one before is fresh enough to refuse on.
    learned: u64,
    /// When a request last used this ledger (see [`forget_idle`]).
    used: Option<Instant>,
    /// Where the ledger lives, and what the last request knew of the caches (for the writes
    /// that renew or return a lease, which no request starts).
    target: Option<Target>,
    observed: Option<Observed>,
}

impl Shared {
    /// The lease this replica holds on the known version, if it holds one (ended or not).
    fn own_lease(&self, holder: Option<&Holder>) -> Option<Lease> {
        lease_in(known_data(&self.known)).filter(|l| holder.is_some_and(|h| h.id == l.holder))
    }

    /// Drops the held reservations the caches now cover, or that lapsed by `at` (Unix seconds).
    fn prune_held(&mut self, at: u64, observed: &Observed) {
        self.held.retain(|k, r| r.expires > at && parse_key(k).is_some_and(|(kind, name)| !observed(kind, name, r)));
    }

    /// Everything a judge counts, at `at` (Unix seconds): the known version's pending
    /// reservations, then this replica's written, queued and held ones (newer, so they win).
    /// Held reservations the caches now cover, or that lapsed, are dropped for good.
    fn entries(&mut self, at: u64, observed: &Observed) -> BTreeMap<String, Reservation> {
        self.prune_held(at, observed);
        let mut entries = pending(known_data(&self.known), at, observed.as_ref());
        entries.extend(self.writing.iter().map(|(k, r)| (k.clone(), r.clone())));
        entries.extend(self.queued.iter().map(|q| (q.key.clone(), q.reservation.clone())));
        entries.extend(self.held.iter().map(|(k, r)| (k.clone(), r.clone())));
        entries
    }
}

/// What a replica keeps of one tenant's ledger.
#[derive(Default)]
struct TenantLedger {
    shared: Mutex<Shared>,
    /// Woken when a writer ends (see [`Ledger::release_leases`]).
    settled: tokio::sync::Notify,
}

impl TenantLedger {
    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Forgets what this replica keeps of the ledgers no request has used for `idle` (the
/// reservations' lifetime), so deleted tenants leave nothing behind: only those nothing holds
/// (no request, no write in flight) and with nothing queued, being written or held, and whose
/// lease this replica does not hold. A quiet tenant's ledger is read again when next used.
/// Called with the map locked, so no request can take one of them meanwhile.
fn forget_idle(tenants: &mut HashMap<String, Arc<TenantLedger>>, idle: Duration, holder: Option<&Holder>) {
    tenants.retain(|_, ledger| {
        if Arc::strong_count(ledger) > 1 {
            return true;
        }
        let shared = ledger.lock();
        let busy = !shared.queued.is_empty()
            || !shared.writing.is_empty()
            || !shared.held.is_empty()
            || shared.flushing
            || shared.own_lease(holder).is_some();
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

/// Why a ledger is written. Every write carries the pending reservations and, when this
/// replica can hold a lease (it has an address and is not stopping), its lease, taken or
/// renewed; a write without the lease carries what it held in memory instead (the lease is
/// returned with it).
enum Write {
    /// Queued reservations.
    Batch(Vec<Queued>),
    /// Only a later end of this replica's lease.
    Renew,
    /// The lease is returned.
    Release,
}

impl Ledger {
    /// Ledgers kept as ConfigMaps in `namespace` (the webhook's own, never a tenant's). This
    /// replica never holds a lease: see [`Ledger::holding_leases_at`].
    pub fn new(client: Client, namespace: &str, ttl: Duration) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            ttl,
            holder: None,
            retired: Arc::default(),
            tenants: Arc::default(),
        }
    }

    /// The same ledgers, with this replica taking tenants' leases: the other replicas reach it
    /// at `address` (`ip:port` of its HTTPS listener). Starts the task that renews and returns
    /// its leases (every second, until the ledger is dropped); call it in a tokio runtime.
    #[must_use]
    pub fn holding_leases_at(mut self, address: String) -> Self {
        let id = format!("{:016x}", rand::random::<u64>());
        self.holder = Some(Holder { id, address, since: now_ms() });
        // The task holds the ledgers weakly: it ends when the last `Ledger` is dropped.
        let tenants = Arc::downgrade(&self.tenants);
        let template = Ledger { tenants: Arc::default(), ..self.clone() };
        tokio::spawn(tend_leases(tenants, template));
        self
    }

    /// Judges `claim` against the tenant's pending reservations and, when `judge` admits it
    /// (returns `true`), reserves its room: in memory while this replica holds the tenant's
    /// lease, else with an optimistic-concurrency write of the ledger (which takes the lease,
    /// when this replica can hold one). `judge` receives the pending reservations of the
    /// tenant's other objects (this replica's admitted but not yet written ones included) and
    /// may be called several times: once per lost race. `observed` says which reservations this
    /// replica's caches already cover. With `dry_run`, nothing is written
    /// (`sideEffects: NoneOnDryRun`), and the verdict is this replica's even when another holds
    /// the lease (a moment behind the holder's).
    ///
    /// Reservations of one tenant admitted while a write of its ledger is in flight are written
    /// together by the next one (group commit), so concurrent creates of a tenant cost one
    /// write per round trip, not one each.
    ///
    /// # Errors
    /// Kubernetes API errors; [`MAX_ATTEMPTS`] lost races in a row; a holder that stopped
    /// renewing its lease (retry once its reservations have lapsed).
    pub async fn reserve<T>(
        &self,
        tenant: &Tenant,
        claim: &Claim,
        dry_run: bool,
        observed: Observed,
        mut judge: impl FnMut(Inventory) -> (bool, T),
    ) -> Result<Reserved<T>, kube::Error> {
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
                forget_idle(&mut tenants, self.ttl, self.holder.as_ref());
            }
            tenants.entry(target.name.clone()).or_default().clone()
        };
        {
            let mut shared = state.lock();
            shared.used = Some(Instant::now());
            shared.target = Some(target.clone());
            shared.observed = Some(observed.clone());
        }
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
                let (at, at_ms) = (now(), now_ms());
                let lease = lease_in(known_data(&shared.known));
                let own = lease.as_ref().filter(|l| self.holder.as_ref().is_some_and(|h| h.id == l.holder));
                let in_memory = own.is_some_and(|l| at_ms + millis(LEASE_MARGIN) < l.until)
                    && !shared.releasing
                    && !self.retired.load(Ordering::Acquire);
                if let Some(other) = lease.as_ref().filter(|_| own.is_none() && !dry_run) {
                    // A holder at this replica's own address was an earlier process here, gone
                    // since this one started listening: nothing to send to it, and it admitted
                    // nothing after that.
                    let earlier_self = self.holder.as_ref().filter(|h| h.address == other.address);
                    if at_ms < other.until && earlier_self.is_none() {
                        return Ok(Reserved::HeldBy(other.address.clone()));
                    }
                    let last_admission = earlier_self.map_or(other.until, |h| other.until.min(h.since));
                    let lapses = last_admission.saturating_add(millis(self.ttl));
                    if at_ms < lapses {
                        if !fresh {
                            // It may have been returned or renewed since: read the current one.
                            forget(&mut shared);
                            distrusted = Some(shared.learned);
                            continue;
                        }
                        return Err(kube::Error::Service(
                            format!(
                                "the webhook replica at {} admitted tenant {:?}'s objects and stopped renewing its lease; \
                                 what it admitted counts until {} s from now: retry then",
                                other.address,
                                target.tenant,
                                (lapses - at_ms).div_ceil(1000)
                            )
                            .into(),
                        ));
                    }
                }
                let entries = shared.entries(at, &observed);
                let (admit, verdict) = judge(inventory(&entries, &own_key));
                if dry_run {
                    return Ok(Reserved::Judged(verdict));
                }
                if !admit {
                    // The holder's view is exact: nobody else writes while it holds the lease.
                    if fresh || in_memory {
                        return Ok(Reserved::Judged(verdict));
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
                if in_memory {
                    shared.held.insert(own_key, reservation);
                    metrics::counter!(crate::metrics::RESERVATIONS_HELD).increment(1);
                    return Ok(Reserved::Judged(verdict));
                }
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
                Commit::Written => return Ok(Reserved::Judged(verdict)),
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

    /// Returns every lease this replica holds, writing what it holds in memory as ordinary
    /// reservations, so the other replicas take over at once instead of waiting for the leases
    /// to end; from then on this replica takes no lease again, and writes every reservation it
    /// admits. Call it when the webhook is asked to stop, *before* it stops serving: the others
    /// may still send it reviews until they learn the lease was returned (and the ones they
    /// cannot deliver, they judge themselves once they read the ledger again; see
    /// [`Ledger::distrust_holder`]). Waits for the writes, 5 s at most.
    pub async fn release_leases(&self) {
        self.retired.store(true, Ordering::Release);
        let states: Vec<_> = self.tenants.lock().unwrap_or_else(PoisonError::into_inner).values().cloned().collect();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        for state in states {
            let start = {
                let mut shared = state.lock();
                if shared.own_lease(self.holder.as_ref()).is_none() && shared.held.is_empty() {
                    continue;
                }
                shared.releasing = true;
                !std::mem::replace(&mut shared.flushing, true)
            };
            if start {
                self.start_write(&state);
            }
            loop {
                // Registered before the check, so the writer's end cannot slip in between.
                let mut settled = std::pin::pin!(state.settled.notified());
                settled.as_mut().enable();
                if !state.lock().flushing {
                    break;
                }
                if tokio::time::timeout_at(deadline, settled).await.is_err() {
                    return;
                }
            }
        }
    }

    /// Stops trusting what this replica knows of the ledgers whose lease names `address`, so
    /// the next review of those tenants reads the ledger again: for a holder that did not
    /// answer a review sent to it, which may have returned its leases (it is stopping) or died.
    pub fn distrust_holder(&self, address: &str) {
        let states: Vec<_> = self.tenants.lock().unwrap_or_else(PoisonError::into_inner).values().cloned().collect();
        for state in states {
            let mut shared = state.lock();
            if lease_in(known_data(&shared.known)).is_some_and(|l| l.address == address) {
                forget(&mut shared);
            }
        }
    }

    /// Starts a writer for a ledger whose `flushing` the caller has just set, with what the
    /// last request left (a lease is only held after a request wrote).
    fn start_write(&self, state: &Arc<TenantLedger>) {
        let (target, observed) = {
            let shared = state.lock();
            (shared.target.clone(), shared.observed.clone())
        };
        if let (Some(target), Some(observed)) = (target, observed) {
            tokio::spawn(self.clone().flush(state.clone(), target, observed));
        } else {
            state.lock().flushing = false;
        }
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

    /// Writes the queued reservations of one ledger, a batch per write, until none is left;
    /// then, if asked, renews or returns this replica's lease. Runs in its own task, so a
    /// request given up by its caller never leaves a write half done.
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
                    (shared.renewing, shared.releasing) = (false, false);
                    forget(&mut shared);
                }
                drop(shared);
                self.0.settled.notify_waiters();
            }
        }
        let _abandoned = Abandoned(&state);
        loop {
            let (base, write, lease, held) = {
                let mut shared = state.lock();
                let epoch = shared.epoch;
                let (batch, stale): (Vec<_>, Vec<_>) = shared.queued.drain(..).partition(|q| q.epoch == epoch);
                for q in stale {
                    let _ = q.done.send(Commit::Stale);
                }
                let write = if !batch.is_empty() {
                    // Reviews keep coming: the lease is kept, taken with this write.
                    (shared.renewing, shared.releasing) = (false, false);
                    shared.writing = batch.iter().map(|q| (q.key.clone(), q.reservation.clone())).collect();
                    Write::Batch(batch)
                } else if shared.releasing {
                    Write::Release
                } else if shared.renewing {
                    Write::Renew
                } else {
                    // In the same critical section that saw the queue empty: a reservation
                    // queued after it starts the next writer.
                    shared.flushing = false;
                    return;
                };
                let lease = match write {
                    Write::Release => None,
                    Write::Batch(_) | Write::Renew => self.new_lease(),
                };
                let held = if lease.is_none() {
                    shared.prune_held(now(), &observed);
                    shared.held.clone()
                } else {
                    BTreeMap::new()
                };
                (shared.known.clone(), write, lease, held)
            };
            // Released and lapsed entries are dropped with this write.
            let mut entries = pending(known_data(&base), now(), observed.as_ref());
            entries.extend(held.iter().map(|(k, r)| (k.clone(), r.clone())));
            if let Write::Batch(batch) = &write {
                entries.extend(batch.iter().map(|q| (q.key.clone(), q.reservation.clone())));
            }
            let creating = !matches!(base, Known::At(_));
            let written = self.write(&target, base, entries, lease).await;
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
            let outcomes: Vec<_> = match &write {
                Write::Batch(batch) => batch.iter().map(|_| commit()).collect(),
                Write::Renew | Write::Release => Vec::new(),
            };
            if let Err(e) = &written {
                tracing::debug!(ledger = %target.name, error = %e, "ledger write failed");
            }
            match written {
                Ok(ledger) => {
                    shared.known = Known::At(Arc::new(ledger));
                    shared.learned += 1;
                    // Written: the ledger counts them now.
                    shared.held.retain(|k, r| held.get(k) != Some(r));
                }
                Err(_) => forget(&mut shared),
            }
            match &write {
                Write::Release => shared.releasing = false,
                Write::Renew => shared.renewing = false,
                Write::Batch(_) => {}
            }
            drop(shared);
            if let Write::Batch(batch) = write {
                for (q, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = q.done.send(outcome);
                }
            }
        }
    }

    /// A lease for this replica from now on, if it can hold one (it has an address and is not
    /// stopping).
    fn new_lease(&self) -> Option<Lease> {
        if self.retired.load(Ordering::Acquire) {
            return None;
        }
        let holder = self.holder.as_ref()?;
        Some(Lease { holder: holder.id.clone(), address: holder.address.clone(), until: now_ms() + millis(LEASE) })
    }

    /// Writes `entries` and `lease` as the ledger's data on top of version `base` (creating the
    /// ledger when it is absent).
    async fn write(
        &self,
        target: &Target,
        base: Known,
        entries: BTreeMap<String, Reservation>,
        lease: Option<Lease>,
    ) -> Result<ConfigMap, kube::Error> {
        let mut data: BTreeMap<String, String> = entries
            .into_iter()
            .map(|(k, r)| (k, serde_json::to_string(&r).expect("a reservation serializes")))
            .collect();
        if let Some(lease) = lease {
            data.insert(LEASE_KEY.into(), serde_json::to_string(&lease).expect("a lease serializes"));
        }
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

/// Every [`LEASE_TICK`], renews the leases of busy tenants that end within [`RENEW_BELOW`] and
/// returns those of tenants idle for [`IDLE`]; ends when the ledgers are dropped.
async fn tend_leases(tenants: std::sync::Weak<Mutex<HashMap<String, Arc<TenantLedger>>>>, template: Ledger) {
    let mut ticker = tokio::time::interval(LEASE_TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(tenants) = tenants.upgrade() else { return };
        if template.retired.load(Ordering::Acquire) {
            // Stopping: `release_leases` returns them.
            return;
        }
        let states: Vec<_> = tenants.lock().unwrap_or_else(PoisonError::into_inner).values().cloned().collect();
        let ledger = Ledger { tenants, ..template.clone() };
        for state in states {
            let start = {
                let mut shared = state.lock();
                let Some(lease) = shared.own_lease(ledger.holder.as_ref()) else { continue };
                if shared.flushing {
                    continue;
                }
                if shared.used.is_none_or(|at| at.elapsed() >= IDLE) {
                    shared.releasing = true;
                } else if lease.until < now_ms() + millis(RENEW_BELOW) {
                    shared.renewing = true;
                } else {
                    continue;
                }
                shared.flushing = true;
                true
            };
            if start {
                ledger.start_write(&state);
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
        forget_idle(&mut tenants, idle, None);
        let mut kept: Vec<_> = tenants.keys().cloned().collect();
        kept.sort();
        assert_eq!(kept, ["held", "recent", "writing"]);
        drop(held);
        forget_idle(&mut tenants, idle, None);
        assert!(!tenants.contains_key("held"), "once nothing holds it, it goes too");
    }
}
