//! Watch-backed caches of what admission decisions depend on: every App, Database and
//! Workspace (by namespace and Ingress host, see [`ByNamespace`]), every tenant namespace and
//! every Tenant; and what the watches saw deleted a moment ago, so a reservation is released as
//! soon as this replica has seen its object. Requests read these caches; they never list the API.

use crate::by_namespace::{ByNamespace, Deleted};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client, ResourceExt,
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store, reflector},
        watcher,
    },
};
use slipway_crds::{App, Database, Kind, TENANT_LABEL, Tenant, Workspace, namespace_belongs_to};
use slipway_policies::{HostClaim, Inventory, TenantPolicy};
use std::{sync::Arc, time::Duration};

/// Read-only views of the cluster, kept current by watches. A review reads only its own
/// namespace's objects and its own host's holders, so it costs the same whatever the number
/// of objects stored.
#[derive(Clone)]
pub struct Index {
    apps: Arc<ByNamespace<App>>,
    databases: Arc<ByNamespace<Database>>,
    workspaces: Arc<ByNamespace<Workspace>>,
    namespaces: Store<Namespace>,
    tenants: Store<Tenant>,
    deleted: Arc<Deleted>,
}

/// A kube-runtime reflector of `api`, its watch driven in a task.
fn reflect<K>(api: Api<K>, config: watcher::Config) -> Store<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector(writer, watcher(api, config)).default_backoff();
    tokio::spawn(async move {
        // The watcher retries with backoff; an error here is logged and the watch resumes.
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            if let Err(e) = event {
                tracing::warn!(error = %e, "watch error; retrying");
            }
        }
    });
    reader
}

impl Index {
    /// Starts the watches and waits until each cache holds a full initial list. Deletions are
    /// remembered for `keep` (the reservations' lifetime: older reservations have lapsed anyway).
    ///
    /// # Errors
    /// A watch task ended before its first list (the client was dropped).
    pub async fn start(client: Client, keep: Duration) -> anyhow::Result<Self> {
        let deleted = Arc::new(Deleted::new(keep));
        let index = Self {
            apps: ByNamespace::start(Api::all(client.clone()), deleted.clone()),
            databases: ByNamespace::start(Api::all(client.clone()), deleted.clone()),
            workspaces: ByNamespace::start(Api::all(client.clone()), deleted.clone()),
            namespaces: reflect(Api::all(client.clone()), watcher::Config::default().labels(TENANT_LABEL)),
            tenants: reflect(Api::all(client), watcher::Config::default()),
            deleted,
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
        self.apps.add_to(&mut inventory, ns, policy);
        self.databases.add_to(&mut inventory, ns, policy);
        self.workspaces.add_to(&mut inventory, ns, policy);
        inventory
    }

    /// Whether this replica's watch has seen the object `kind`/`name` in `ns` with `uid` (any,
    /// when unknown) at `generation` or later, stored or deleted: from then on the cache counts
    /// it, or rightly no longer does, and its reservation is released.
    pub fn observed(&self, kind: Kind, ns: &str, name: &str, uid: Option<&str>, generation: i64) -> bool {
        let stored = match kind {
            Kind::App => self.apps.version(ns, name),
            Kind::Database => self.databases.version(ns, name),
            Kind::Workspace => self.workspaces.version(ns, name),
        };
        let seen = stored.is_some_and(|(u, g)| uid.is_none_or(|uid| u.as_deref() == Some(uid)) && g >= generation);
        seen || uid.is_some_and(|uid| self.deleted.at_least(uid, generation))
    }

    /// Every App holding Ingress host `host` (lowercase), with its tenant: all that the host
    /// rule needs to know of other Apps' hosts.
    pub fn host_claims(&self, host: &str) -> Vec<HostClaim> {
        self.apps
            .holders(host)
            .into_iter()
            .filter_map(|(ns, name)| {
                let tenant = self.namespaces.get(&ObjectRef::new(&ns))?.labels().get(TENANT_LABEL)?.clone();
                Some(HostClaim { host: host.to_string(), tenant, app: name })
            })
            .collect()
    }
}
