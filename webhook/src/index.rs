//! Watch-backed caches of what admission decisions depend on: every App, Database and
//! Workspace, every tenant namespace and every Tenant; and what the watches saw deleted a
//! moment ago, so a reservation is released as soon as this replica has seen its object.
//! Requests read these caches; they never list the API.

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client, ResourceExt,
    core::object::HasSpec,
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store, reflector},
        watcher,
    },
};
use slipway_crds::{App, Database, ExposeType, Kind, TENANT_LABEL, Tenant, Workspace, namespace_belongs_to};
use slipway_policies::{HostClaim, Inventory, Spec, TenantPolicy};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

/// UIDs of objects the watches saw deleted, with the generation they had, for as long as a
/// reservation of theirs could still be live.
#[derive(Default)]
struct Deleted {
    seen: Mutex<HashMap<String, (i64, Instant)>>,
}

impl Deleted {
    fn record(&self, uid: String, generation: i64, keep: Duration) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.retain(|_, (_, at)| at.elapsed() < keep);
        seen.insert(uid, (generation, Instant::now()));
    }

    fn at_least(&self, uid: &str, generation: i64) -> bool {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner).get(uid).is_some_and(|(g, _)| *g >= generation)
    }
}

/// Read-only views of the cluster, kept current by watches (kube-runtime reflectors).
#[derive(Clone)]
pub struct Index {
    apps: Store<App>,
    databases: Store<Database>,
    workspaces: Store<Workspace>,
    namespaces: Store<Namespace>,
    tenants: Store<Tenant>,
    deleted: Arc<Deleted>,
}

/// A reflector of `api`, its watch driven in a task; `deleted` (if any) learns what goes.
fn reflect<K>(api: Api<K>, config: watcher::Config, deleted: Option<(Arc<Deleted>, Duration)>) -> Store<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector(writer, watcher(api, config)).default_backoff();
    tokio::spawn(async move {
        // The watcher retries with backoff; an error here is logged and the watch resumes.
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Delete(object)) => {
                    if let (Some((deleted, keep)), Some(uid)) = (&deleted, object.uid()) {
                        deleted.record(uid, object.meta().generation.unwrap_or(0), *keep);
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "watch error; retrying"),
            }
        }
    });
    reader
}

/// The objects of a store in namespace `ns`, by name, as an inventory under `policy`.
fn add_all<K>(inventory: &mut Inventory, store: &Store<K>, ns: &str, policy: &TenantPolicy)
where
    K: kube::Resource<DynamicType = ()> + HasSpec + Clone,
    K::Spec: Spec,
{
    for object in store.state_filter(|o| o.namespace().as_deref() == Some(ns)) {
        inventory.insert_spec(policy, object.name_any(), object.spec());
    }
}

/// The UID and generation of the object `name` in `ns` of `store`, if it holds one.
fn version_of<K: kube::Resource<DynamicType = ()> + Clone>(
    store: &Store<K>,
    ns: &str,
    name: &str,
) -> Option<(Option<String>, i64)> {
    let object = store.get(&ObjectRef::new(name).within(ns))?;
    Some((object.uid(), object.meta().generation.unwrap_or(0)))
}

impl Index {
    /// Starts the watches and waits until each cache holds a full initial list. Deletions are
    /// remembered for `keep` (the reservations' lifetime: older reservations have lapsed anyway).
    ///
    /// # Errors
    /// A watch task ended before its first list (the client was dropped).
    pub async fn start(client: Client, keep: Duration) -> anyhow::Result<Self> {
        let deleted = Arc::new(Deleted::default());
        let all = watcher::Config::default;
        let track = || Some((deleted.clone(), keep));
        let index = Self {
            apps: reflect(Api::all(client.clone()), all(), track()),
            databases: reflect(Api::all(client.clone()), all(), track()),
            workspaces: reflect(Api::all(client.clone()), all(), track()),
            namespaces: reflect(Api::all(client.clone()), all().labels(TENANT_LABEL), None),
            tenants: reflect(Api::all(client), all(), None),
            deleted: deleted.clone(),
        };
        index.apps.wait_until_ready().await?;
        index.databases.wait_until_ready().await?;
        index.workspaces.wait_until_ready().await?;
        index.namespaces.wait_until_ready().await?;
        index.tenants.wait_until_ready().await?;
        Ok(index)
    }

    /// The tenant that owns namespace `ns`: the Tenant its `slipway.dev/tenant` label names, if
    /// the namespace is really that Tenant's (see [`namespace_belongs_to`]).
    pub fn tenant_of(&self, ns: &str) -> Option<Arc<Tenant>> {
        let namespace = self.namespaces.get(&ObjectRef::new(ns))?;
        let tenant = self.tenants.get(&ObjectRef::new(namespace.labels().get(TENANT_LABEL)?))?;
        namespace_belongs_to(&namespace, &tenant).then_some(tenant)
    }

    /// Everything stored in namespace `ns` (its Apps, Databases and Workspaces), with
    /// footprints under `policy`.
    pub fn inventory(&self, ns: &str, policy: &TenantPolicy) -> Inventory {
        let mut inventory = Inventory::default();
        add_all(&mut inventory, &self.apps, ns, policy);
        add_all(&mut inventory, &self.databases, ns, policy);
        add_all(&mut inventory, &self.workspaces, ns, policy);
        inventory
    }

    /// Whether this replica's watch has seen the object `kind`/`name` in `ns` with `uid` (any,
    /// when unknown) at `generation` or later, stored or deleted: from then on the cache counts
    /// it, or rightly no longer does, and its reservation is released.
    pub fn observed(&self, kind: Kind, ns: &str, name: &str, uid: Option<&str>, generation: i64) -> bool {
        let stored = match kind {
            Kind::App => version_of(&self.apps, ns, name),
            Kind::Database => version_of(&self.databases, ns, name),
            Kind::Workspace => version_of(&self.workspaces, ns, name),
        };
        let seen = stored.is_some_and(|(u, g)| uid.is_none_or(|uid| u.as_deref() == Some(uid)) && g >= generation);
        seen || uid.is_some_and(|uid| self.deleted.at_least(uid, generation))
    }

    /// Every Ingress host held by an App, cluster-wide, with its tenant.
    pub fn host_claims(&self) -> Vec<HostClaim> {
        self.apps
            .state()
            .iter()
            .filter_map(|app| {
                let expose = app.spec.expose.as_ref().filter(|e| e.type_ == ExposeType::Ingress)?;
                let ns = app.namespace()?;
                let tenant = self.namespaces.get(&ObjectRef::new(&ns))?.labels().get(TENANT_LABEL)?.clone();
                Some(HostClaim { host: expose.host.clone()?.to_ascii_lowercase(), tenant, app: app.name_any() })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletions_are_remembered_for_a_while_at_their_generation() {
        let deleted = Deleted::default();
        deleted.record("u1".into(), 3, Duration::from_secs(60));
        assert!(deleted.at_least("u1", 3) && deleted.at_least("u1", 1));
        assert!(!deleted.at_least("u1", 4), "a reservation of a later generation is not covered");
        assert!(!deleted.at_least("u2", 1));
        deleted.record("u2".into(), 1, Duration::ZERO);
        assert!(!deleted.at_least("u1", 1), "older entries are pruned");
    }
}
