//! Reads of Tenants and of tenants' Apps, Databases and Workspaces from watch caches (kube-runtime
//! reflectors of each kind, all namespaces), so that a GET costs a membership lookup and a
//! map read instead of an impersonated round trip through kube-apiserver (issue 13: about
//! 490 reads/s that way on 2 cores).
//!
//! A cache may be a moment behind the API server. The API reads its own writes: every write
//! it makes records the `resourceVersion` Kubernetes answered (or that the object is going),
//! and until the cache shows that version (or [`WRITE_WINDOW`] has passed) reads of that
//! object, and lists of its namespace, go to the API server as before. Everything else a
//! cache does not hold (an object created through kubectl a moment ago, a cache still
//! syncing) is read from the API server too, so a miss is never a wrong 404.
//!
//! Who may read is decided before the cache is consulted: membership of the tenant (the
//! API's own check), which grants every role `get` and `list` on these kinds (the ClusterRole
//! `slipway:tenant-member`), exactly what the impersonated read would have been allowed.

use futures::StreamExt;
use kube::{
    Api, Client, ResourceExt,
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use serde::de::DeserializeOwned;
use slipway_crds::{App, Database, Tenant, Workspace};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

/// How long the API waits for its cache to show one of its own writes before it reads that
/// object from the cache again regardless (a watch event arrives within milliseconds; this
/// only bounds how long a lost one costs exact reads).
pub const WRITE_WINDOW: Duration = Duration::from_secs(10);

/// The API's own write of an object that its cache may not show yet.
#[derive(Clone, Debug)]
enum Written {
    /// Created or changed: Kubernetes answered this `resourceVersion`.
    Version(String),
    /// Deleted (it may linger with a deletion timestamp, or be gone).
    Deleted,
}

/// The watch cache of one kind, with the API's recent writes of it.
pub struct KindCache<K: kube::Resource<DynamicType = ()> + Clone + 'static> {
    store: Store<K>,
    /// `(namespace, name)` → the write and when it was made.
    writes: Mutex<HashMap<(String, String), (Written, Instant)>>,
}

impl<K> KindCache<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + DeserializeOwned + Send + Sync + 'static,
{
    /// A cache of every `K` in the cluster, filled by a reflector on `client` in a background
    /// task (retried with kube-runtime's default backoff while the API server is away).
    fn start(client: Client) -> Self {
        let (store, writer) = reflector::store();
        // managedFields are most of an object's size and no view shows them.
        let events = watcher(Api::<K>::all(client), watcher::Config::default())
            .default_backoff()
            .modify(|o| o.meta_mut().managed_fields = None);
        let stream = reflector::reflector(writer, events).touched_objects();
        tokio::spawn(stream.for_each(|event| async move {
            if let Err(e) = event {
                tracing::debug!(error = %e, kind = %K::kind(&()), "the read cache's watch is retrying");
            }
        }));
        Self::over(store)
    }

    fn over(store: Store<K>) -> Self {
        Self { store, writes: Mutex::new(HashMap::new()) }
    }

    /// Records that the API wrote `object` (Kubernetes' answer to a create or change).
    pub fn wrote(&self, object: &K) {
        let Some(version) = object.resource_version() else { return };
        self.record(object.namespace().unwrap_or_default(), object.name_any(), Written::Version(version));
    }

    /// Records that the API deleted `name` in `namespace` (`""` for a cluster-scoped kind).
    pub fn deleted(&self, namespace: &str, name: &str) {
        self.record(namespace.to_string(), name.to_string(), Written::Deleted);
    }

    fn record(&self, namespace: String, name: String, written: Written) {
        let mut writes = self.writes.lock().unwrap_or_else(PoisonError::into_inner);
        writes.retain(|_, (_, at)| at.elapsed() < WRITE_WINDOW);
        writes.insert((namespace, name), (written, Instant::now()));
    }

    /// The object `name` in `namespace` (`""`: cluster-scoped) in the store.
    fn stored(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        let key = if namespace.is_empty() { ObjectRef::new(name) } else { ObjectRef::new(name).within(namespace) };
        self.store.get(&key)
    }

    /// Whether the cache shows the API's recent write of `key`, if there is one.
    fn shows(&self, key: &(String, String), written: &Written) -> bool {
        let cached = self.stored(&key.0, &key.1);
        match written {
            Written::Version(v) => cached.is_some_and(|o| o.resource_version().as_ref() == Some(v)),
            Written::Deleted => cached.is_none_or(|o| o.meta().deletion_timestamp.is_some()),
        }
    }

    /// Whether a recent write of the API in `namespace` (of `name`, or of any object when
    /// `None`) is not in the cache yet.
    fn behind(&self, namespace: &str, name: Option<&str>) -> bool {
        let writes = self.writes.lock().unwrap_or_else(PoisonError::into_inner);
        writes.iter().any(|(key, (written, at))| {
            key.0 == namespace
                && name.is_none_or(|n| n == key.1)
                && at.elapsed() < WRITE_WINDOW
                && !self.shows(key, written)
        })
    }

    /// The object `name` in `namespace` (`""` for a cluster-scoped kind) as the cache holds
    /// it, when the cache can answer: it has synced, holds the object, and is not behind one
    /// of the API's writes of it. `None` means "ask the API server".
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        if !self.synced() {
            return None;
        }
        let object = self.stored(namespace, name)?;
        (!self.behind(namespace, Some(name))).then_some(object)
    }

    /// Every object in `namespace`, by name, when the cache can answer (synced and not behind
    /// any of the API's writes there); `None` means "ask the API server".
    pub fn list(&self, namespace: &str) -> Option<Vec<Arc<K>>> {
        if !self.synced() || self.behind(namespace, None) {
            return None;
        }
        let mut objects: Vec<_> =
            self.store.state().into_iter().filter(|o| o.namespace().as_deref() == Some(namespace)).collect();
        // As the API server lists them: by name.
        objects.sort_by_key(|o| o.name_any());
        Some(objects)
    }

    /// Whether the reflector has listed every object once.
    fn synced(&self) -> bool {
        futures::FutureExt::now_or_never(self.store.wait_until_ready()).is_some_and(|r| r.is_ok())
    }
}

/// The watch caches of Tenants and of the three kinds in tenants' namespaces.
pub struct ReadCache {
    pub tenants: KindCache<Tenant>,
    pub apps: KindCache<App>,
    pub databases: KindCache<Database>,
    pub workspaces: KindCache<Workspace>,
}

impl ReadCache {
    /// Starts the caches' watches on `client` (the API's own identity, which may list and
    /// watch Tenants, and these kinds in every namespace).
    pub fn start(client: &Client) -> Self {
        Self {
            tenants: KindCache::start(client.clone()),
            apps: KindCache::start(client.clone()),
            databases: KindCache::start(client.clone()),
            workspaces: KindCache::start(client.clone()),
        }
    }
}

/// A kind the [`ReadCache`] holds.
pub trait Cached: kube::Resource<DynamicType = ()> + Clone + Sized + 'static {
    /// This kind's cache.
    fn cache(cache: &ReadCache) -> &KindCache<Self>;
}

impl Cached for Tenant {
    fn cache(cache: &ReadCache) -> &KindCache<Self> {
        &cache.tenants
    }
}

impl Cached for App {
    fn cache(cache: &ReadCache) -> &KindCache<Self> {
        &cache.apps
    }
}

impl Cached for Database {
    fn cache(cache: &ReadCache) -> &KindCache<Self> {
        &cache.databases
    }
}

impl Cached for Workspace {
    fn cache(cache: &ReadCache) -> &KindCache<Self> {
        &cache.workspaces
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::watcher::Event;
    use slipway_crds::AppSpec;

    fn app(name: &str, version: &str) -> App {
        let mut app = App::new(name, serde_json::from_value::<AppSpec>(serde_json::json!({"image": "nginx"})).unwrap());
        app.metadata.namespace = Some("tenant-a".into());
        app.metadata.resource_version = Some(version.into());
        app
    }

    #[test]
    fn reads_come_from_the_cache_once_it_shows_the_apis_own_writes() {
        let (store, mut writer) = reflector::store();
        let cache = KindCache::over(store);
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitApply(app("web", "1")));
        assert!(cache.get("tenant-a", "web").is_none(), "not synced yet: ask the API server");
        writer.apply_watcher_event(&Event::InitDone);
        assert_eq!(cache.get("tenant-a", "web").unwrap().resource_version().as_deref(), Some("1"));
        assert!(cache.get("tenant-a", "api").is_none(), "a miss asks the API server");

        cache.wrote(&app("web", "2"));
        assert!(cache.get("tenant-a", "web").is_none(), "behind the API's own write");
        assert!(cache.list("tenant-a").is_none(), "a list of that namespace too");
        assert_eq!(cache.list("tenant-b").unwrap().len(), 0, "other namespaces are not affected");
        writer.apply_watcher_event(&Event::Apply(app("web", "2")));
        assert_eq!(cache.get("tenant-a", "web").unwrap().resource_version().as_deref(), Some("2"));

        writer.apply_watcher_event(&Event::Apply(app("api", "3")));
        let names: Vec<_> = cache.list("tenant-a").unwrap().iter().map(|a| a.name_any()).collect();
        assert_eq!(names, ["api", "web"], "by name, as the API server lists");

        cache.deleted("tenant-a", "web");
        assert!(cache.get("tenant-a", "web").is_none() && cache.list("tenant-a").is_none());
        writer.apply_watcher_event(&Event::Delete(app("web", "2")));
        assert_eq!(cache.list("tenant-a").unwrap().len(), 1);
    }
}
