//! One kind's objects (Apps, Databases or Workspaces) kept by a watch, indexed by namespace and,
//! for Apps, by Ingress host, so that a review reads only what its verdict depends on: the
//! objects of its own namespace and the holders of its own host, never the whole cluster.
//!
//! Why not kube-runtime's reflector `Store`: it has no secondary indexes (client-go's
//! `Indexer`), so a namespace's objects could only be found by filtering every object of the
//! cluster, in every review and inside the tenant's reservation lock: a cost per review that
//! grew with the whole cluster, not with the tenant. Everything here sits under one lock, so
//! the namespace view, the host view and [`ByNamespace::version`] (which decides when a
//! reservation is covered) always agree. Per namespace it also keeps the objects' footprints,
//! which reviews share instead of computing them each time (see [`ByNamespace::add_to`]).

use futures::StreamExt;
use kube::{
    Api, ResourceExt,
    core::object::HasSpec,
    runtime::{WatchStreamExt, watcher},
};
use slipway_policies::{Footprint, Footprints, Inventory, Spec, TenantPolicy};
use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{Arc, PoisonError, RwLock},
    time::Duration,
};
use tokio::sync::watch;

/// UIDs of objects the watches saw deleted, with the generation they had, for as long as a
/// reservation of theirs could still be live.
pub struct Deleted {
    // moka forgets each entry `keep` after it was recorded, a few at a time, so a deletion
    // costs O(1) amortised (issue 13: scanning them all on each one made deleting a
    // namespace's thousands of Apps quadratic, and `Instant::elapsed` the webhook's
    // second-hottest symbol).
    seen: moka::sync::Cache<String, i64>,
}

impl Deleted {
    /// Deletions remembered for `keep` each.
    pub fn new(keep: Duration) -> Self {
        Self { seen: moka::sync::Cache::builder().time_to_live(keep).build() }
    }

    fn record(&self, uid: String, generation: i64) {
        self.seen.insert(uid, generation);
    }

    /// Whether the object `uid` was seen deleted at `generation` or later.
    pub fn at_least(&self, uid: &str, generation: i64) -> bool {
        self.seen.get(uid).is_some_and(|g| g >= generation)
    }
}

/// A kind [`ByNamespace`] can keep.
pub trait Watched:
    kube::Resource<DynamicType = ()>
    + HasSpec<Spec: Spec + Clone + Send + Sync>
    + Clone
    + std::fmt::Debug
    + serde::de::DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// The Ingress host `spec` holds, lowercase, if it holds one (only Apps do).
    fn ingress_host(_spec: &Self::Spec) -> Option<String> {
        None
    }
}

impl Watched for slipway_crds::Database {}
impl Watched for slipway_crds::Workspace {}
impl Watched for slipway_crds::App {
    fn ingress_host(spec: &slipway_crds::AppSpec) -> Option<String> {
        let expose = spec.expose.as_ref().filter(|e| e.type_ == slipway_crds::ExposeType::Ingress)?;
        Some(expose.host.as_ref()?.to_ascii_lowercase())
    }
}

/// What a review needs of one stored object.
struct Entry<S> {
    uid: Option<String>,
    generation: i64,
    spec: S,
    /// The Ingress host it holds, lowercase.
    host: Option<String>,
}

/// Objects by namespace, then name.
type Objects<S> = HashMap<String, BTreeMap<String, Entry<S>>>;

/// A namespace's objects of one kind with their footprints under the policy they were counted
/// with, kept up to date by every change after that (see [`ByNamespace::add_to`]).
struct Counted {
    policy: TenantPolicy,
    footprints: Footprints,
}

struct State<S> {
    objects: Objects<S>,
    /// By namespace: counted for the last policy a review asked for.
    counted: HashMap<String, Counted>,
    /// Ingress host → the (namespace, name) of every object holding it.
    hosts: HashMap<String, BTreeSet<(String, String)>>,
    /// What a re-list has returned so far; it replaces `objects` when the list is complete.
    relisting: Option<Objects<S>>,
}

/// The objects of kind `K` in the cluster, kept current by a watch (see the module's docs).
pub struct ByNamespace<K: Watched> {
    state: RwLock<State<K::Spec>>,
    ready: watch::Sender<bool>,
}

fn entry<K: Watched>(object: &K) -> Option<(String, String, Entry<K::Spec>)> {
    let entry = Entry {
        uid: object.uid(),
        generation: object.meta().generation.unwrap_or(0),
        spec: object.spec().clone(),
        host: K::ingress_host(object.spec()),
    };
    Some((object.namespace()?, object.name_any(), entry))
}

impl<K: Watched> ByNamespace<K> {
    /// Holds nothing and is not ready until its first list.
    fn empty() -> Self {
        Self {
            state: RwLock::new(State {
                objects: HashMap::new(),
                counted: HashMap::new(),
                hosts: HashMap::new(),
                relisting: None,
            }),
            ready: watch::Sender::new(false),
        }
    }

    /// Starts watching `api` in a task. Deletions are recorded in `deleted`.
    pub fn start(api: Api<K>, deleted: Arc<Deleted>) -> Arc<Self> {
        let this = Arc::new(Self::empty());
        let cache = this.clone();
        tokio::spawn(async move {
            // The watcher retries with backoff; an error here is logged and the watch resumes.
            let mut stream = std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff());
            while let Some(event) = stream.next().await {
                match event {
                    Ok(event) => cache.apply(event, &deleted),
                    Err(e) => tracing::warn!(error = %e, "watch error; retrying"),
                }
            }
        });
        this
    }

    fn apply(&self, event: watcher::Event<K>, deleted: &Deleted) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        match event {
            watcher::Event::Init => state.relisting = Some(HashMap::new()),
            watcher::Event::InitApply(object) => {
                if let (Some(relisting), Some((ns, name, entry))) = (&mut state.relisting, entry(&object)) {
                    relisting.entry(ns).or_default().insert(name, entry);
                }
            }
            watcher::Event::InitDone => {
                let listed = state.relisting.take().unwrap_or_default();
                (state.objects, state.counted, state.hosts) = (HashMap::new(), HashMap::new(), HashMap::new());
                for (ns, objects) in listed {
                    for (name, entry) in objects {
                        state.insert(ns.clone(), name, entry);
                    }
                }
                self.ready.send_replace(true);
            }
            watcher::Event::Apply(object) => {
                if let Some((ns, name, entry)) = entry(&object) {
                    state.remove(&ns, &name);
                    state.insert(ns, name, entry);
                }
            }
            watcher::Event::Delete(object) => {
                if let Some(ns) = object.namespace() {
                    state.remove(&ns, &object.name_any());
                }
                if let Some(uid) = object.uid() {
                    deleted.record(uid, object.meta().generation.unwrap_or(0));
                }
            }
        }
    }

    /// Waits until the first full list has been read.
    ///
    /// # Errors
    /// The watch task ended before (the runtime is shutting down).
    pub async fn wait_until_ready(&self) -> anyhow::Result<()> {
        self.ready.subscribe().wait_for(|ready| *ready).await?;
        Ok(())
    }

    /// Adds every object of namespace `ns` to `inventory`, with its footprint under `policy`.
    ///
    /// Shares the namespace's footprints rather than copying them: they are counted once per
    /// policy (the first review after a plan change counts them all again) and then kept up to
    /// date by the watch, one object per event, with their sum. A review neither copies nor
    /// parses nor adds them up: its cost does not grow with the namespace.
    pub fn add_to(&self, inventory: &mut Inventory, ns: &str, policy: &TenantPolicy) {
        {
            let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
            match state.counted.get(ns) {
                Some(counted) if counted.policy == *policy => {
                    return inventory.share(K::Spec::KIND, counted.footprints.clone());
                }
                _ if !state.objects.contains_key(ns) => return,
                _ => {}
            }
        }
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let footprints: Footprints = state
            .objects
            .get(ns)
            .into_iter()
            .flatten()
            .map(|(name, entry)| (name.clone(), footprint(policy, &entry.spec)))
            .collect();
        state.counted.insert(ns.to_string(), Counted { policy: policy.clone(), footprints: footprints.clone() });
        inventory.share(K::Spec::KIND, footprints);
    }

    /// The UID and generation of the object `name` in `ns`, if it is stored.
    pub fn version(&self, ns: &str, name: &str) -> Option<(Option<String>, i64)> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        state.objects.get(ns)?.get(name).map(|e| (e.uid.clone(), e.generation))
    }

    /// The namespace and name of every object holding Ingress host `host` (lowercase).
    pub fn holders(&self, host: &str) -> Vec<(String, String)> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        state.hosts.get(host).into_iter().flatten().cloned().collect()
    }
}

/// What an object of spec `spec` may use of its tenant's totals under `policy` (zero when its
/// amounts do not parse: such a spec is refused at admission and cannot run).
fn footprint<S: Spec>(policy: &TenantPolicy, spec: &S) -> Footprint {
    spec.footprint(policy).unwrap_or_default()
}

impl<S: Spec> State<S> {
    /// Records `ns`/`name` (not held yet) and the host it holds.
    fn insert(&mut self, ns: String, name: String, entry: Entry<S>) {
        if let Some(host) = &entry.host {
            self.hosts.entry(host.clone()).or_default().insert((ns.clone(), name.clone()));
        }
        if let Some(counted) = self.counted.get_mut(&ns) {
            // O(log n) even while reviews hold the previous version: the map is persistent.
            counted.footprints.insert(name.clone(), footprint(&counted.policy, &entry.spec));
        }
        self.objects.entry(ns).or_default().insert(name, entry);
    }

    /// Forgets `ns`/`name` and the host it held.
    fn remove(&mut self, ns: &str, name: &str) {
        let Some(objects) = self.objects.get_mut(ns) else { return };
        let Some(removed) = objects.remove(name) else { return };
        if objects.is_empty() {
            self.objects.remove(ns);
            self.counted.remove(ns);
        } else if let Some(counted) = self.counted.get_mut(ns) {
            counted.footprints.remove(name);
        }
        let Some(host) = removed.host else { return };
        if let Some(holders) = self.hosts.get_mut(&host) {
            holders.remove(&(ns.to_string(), name.to_string()));
            if holders.is_empty() {
                self.hosts.remove(&host);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_crds::App;
    use slipway_policies::PlanCatalog;

    fn app(ns: &str, name: &str, generation: i64, host: Option<&str>) -> App {
        let expose = host.map(|h| serde_json::json!({"type": "Ingress", "host": h}));
        let spec = serde_json::json!({"image": "nginx", "expose": expose});
        let mut app = App::new(name, serde_json::from_value(spec).unwrap());
        app.metadata.namespace = Some(ns.into());
        app.metadata.uid = Some(format!("{ns}/{name}"));
        app.metadata.generation = Some(generation);
        app
    }

    fn names(cache: &ByNamespace<App>, ns: &str) -> Vec<String> {
        let policy = PlanCatalog::embedded().effective("free", None).unwrap();
        let mut inventory = Inventory::default();
        cache.add_to(&mut inventory, ns, &policy);
        inventory.names().map(|(_, n)| n.to_string()).collect()
    }

    #[test]
    fn reviews_read_their_namespace_and_their_host_only() {
        let (cache, deleted) = (ByNamespace::<App>::empty(), Deleted::new(Duration::from_secs(60)));
        for event in [
            watcher::Event::Init,
            watcher::Event::InitApply(app("t1", "web", 1, Some("Web.t1.example"))),
            watcher::Event::InitApply(app("t2", "api", 1, None)),
            watcher::Event::InitDone,
            watcher::Event::Apply(app("t1", "db-ui", 2, None)),
        ] {
            cache.apply(event, &deleted);
        }
        assert_eq!(names(&cache, "t1"), ["db-ui", "web"]);
        assert_eq!(names(&cache, "t2"), ["api"]);
        assert_eq!(cache.holders("web.t1.example"), [("t1".to_string(), "web".to_string())]);
        assert_eq!(cache.version("t1", "db-ui"), Some((Some("t1/db-ui".into()), 2)));

        // A new host replaces the old one; a deletion forgets the object and remembers its UID.
        cache.apply(watcher::Event::Apply(app("t1", "web", 2, Some("www.t1.example"))), &deleted);
        assert!(cache.holders("web.t1.example").is_empty());
        assert_eq!(cache.holders("www.t1.example").len(), 1);
        cache.apply(watcher::Event::Delete(app("t1", "web", 2, Some("www.t1.example"))), &deleted);
        assert!(cache.holders("www.t1.example").is_empty());
        assert_eq!(names(&cache, "t1"), ["db-ui"]);
        assert!(deleted.at_least("t1/web", 2) && !deleted.at_least("t1/web", 3));
    }

    #[test]
    fn counted_footprints_follow_the_watch_and_the_policy() {
        let (cache, deleted) = (ByNamespace::<App>::empty(), Deleted::new(Duration::from_secs(60)));
        let catalog = PlanCatalog::embedded();
        let (free, standard) = (catalog.effective("free", None).unwrap(), catalog.effective("standard", None).unwrap());
        let usage = |policy: &TenantPolicy| {
            let mut inventory = Inventory::default();
            cache.add_to(&mut inventory, "t1", policy);
            (inventory.count(slipway_crds::Kind::App), inventory.usage())
        };
        for event in
            [watcher::Event::Init, watcher::Event::InitApply(app("t1", "a", 1, None)), watcher::Event::InitDone]
        {
            cache.apply(event, &deleted);
        }
        // A spec silent on replicas and limits counts the plan's defaults: each plan its own.
        let one = |policy: &TenantPolicy| policy.default_app(&app("t1", "x", 1, None).spec).footprint(policy).unwrap();
        assert_eq!(usage(&free), (1, one(&free)));
        let held = {
            let mut inventory = Inventory::default();
            cache.add_to(&mut inventory, "t1", &free);
            inventory
        };
        cache.apply(watcher::Event::Apply(app("t1", "b", 1, None)), &deleted);
        assert_eq!(usage(&free), (2, one(&free).plus(&one(&free))), "a new object is counted as it arrives");
        assert_eq!(held.count(slipway_crds::Kind::App), 1, "a review's inventory does not change under it");
        assert_ne!(one(&free), one(&standard));
        assert_eq!(usage(&standard), (2, one(&standard).plus(&one(&standard))), "another policy counts again");
        cache.apply(watcher::Event::Delete(app("t1", "a", 1, None)), &deleted);
        assert_eq!(usage(&standard), (1, one(&standard)));
        cache.apply(watcher::Event::Delete(app("t1", "b", 1, None)), &deleted);
        assert_eq!(usage(&standard).0, 0);
    }

    #[test]
    fn a_relist_replaces_everything_only_when_complete() {
        let (cache, deleted) = (ByNamespace::<App>::empty(), Deleted::new(Duration::from_secs(60)));
        assert!(!*cache.ready.borrow());
        for event in [watcher::Event::Init, watcher::Event::InitApply(app("t1", "old", 1, Some("old.t1.example")))] {
            cache.apply(event, &deleted);
        }
        assert!(names(&cache, "t1").is_empty(), "nothing is served before the first list is complete");
        cache.apply(watcher::Event::InitDone, &deleted);
        assert!(*cache.ready.borrow());

        cache.apply(watcher::Event::Init, &deleted);
        cache.apply(watcher::Event::InitApply(app("t1", "new", 1, None)), &deleted);
        assert_eq!(names(&cache, "t1"), ["old"], "the previous list serves until the new one is complete");
        cache.apply(watcher::Event::InitDone, &deleted);
        assert_eq!(names(&cache, "t1"), ["new"]);
        assert!(cache.holders("old.t1.example").is_empty(), "hosts follow the new list");
    }

    #[test]
    fn deletions_are_remembered_for_a_while_at_their_generation() {
        let deleted = Deleted::new(Duration::from_secs(60));
        deleted.record("u1".into(), 3);
        assert!(deleted.at_least("u1", 3) && deleted.at_least("u1", 1));
        assert!(!deleted.at_least("u1", 4), "a reservation of a later generation is not covered");
        assert!(!deleted.at_least("u2", 1));
        let forgetful = Deleted::new(Duration::ZERO);
        forgetful.record("u1".into(), 3);
        assert!(!forgetful.at_least("u1", 1), "entries older than `keep` are forgotten");
    }
}
