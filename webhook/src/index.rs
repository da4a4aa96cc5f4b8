//! Watch-backed caches of what admission decisions depend on: every App, Database and
//! Workspace, every tenant namespace and every Tenant. Requests read these caches; they never list the API.

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
use slipway_crds::{App, Database, ExposeType, TENANT_LABEL, Tenant, Workspace};
use slipway_policies::{HostClaim, Inventory};
use std::sync::Arc;

/// Read-only views of the cluster, kept current by watches (kube-runtime reflectors).
#[derive(Clone)]
pub struct Index {
    apps: Store<App>,
    databases: Store<Database>,
    workspaces: Store<Workspace>,
    namespaces: Store<Namespace>,
    tenants: Store<Tenant>,
}

fn reflect<K>(api: Api<K>, config: watcher::Config) -> Store<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector(writer, watcher(api, config)).default_backoff().touched_objects();
    tokio::spawn(async move {
        // The watcher retries with backoff; an error here is logged and the watch resumes.
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            if let Err(e) = item {
                tracing::warn!(error = %e, "watch error; retrying");
            }
        }
    });
    reader
}

impl Index {
    /// Starts the watches and waits until each cache holds a full initial list.
    ///
    /// # Errors
    /// A watch task ended before its first list (the client was dropped).
    pub async fn start(client: Client) -> anyhow::Result<Self> {
        let index = Self {
            apps: reflect(Api::all(client.clone()), watcher::Config::default()),
            databases: reflect(Api::all(client.clone()), watcher::Config::default()),
            workspaces: reflect(Api::all(client.clone()), watcher::Config::default()),
            namespaces: reflect(Api::all(client.clone()), watcher::Config::default().labels(TENANT_LABEL)),
            tenants: reflect(Api::all(client), watcher::Config::default()),
        };
        index.apps.wait_until_ready().await?;
        index.databases.wait_until_ready().await?;
        index.workspaces.wait_until_ready().await?;
        index.namespaces.wait_until_ready().await?;
        index.tenants.wait_until_ready().await?;
        Ok(index)
    }

    /// The tenant that owns namespace `ns`, by its `slipway.dev/tenant` label.
    pub fn tenant_of(&self, ns: &str) -> Option<Arc<Tenant>> {
        let namespace = self.namespaces.get(&ObjectRef::new(ns))?;
        let tenant = namespace.labels().get(TENANT_LABEL)?;
        self.tenants.get(&ObjectRef::new(tenant))
    }

    /// Everything stored in namespace `ns`: its Apps, Databases and Workspaces by name.
    pub fn inventory(&self, ns: &str) -> Inventory {
        fn in_ns<K: kube::Resource<DynamicType = ()> + Clone, S: Clone>(
            store: &Store<K>,
            ns: &str,
            spec: impl Fn(&K) -> &S,
        ) -> std::collections::BTreeMap<String, S> {
            let objects = store.state_filter(|o| o.namespace().as_deref() == Some(ns));
            objects.iter().map(|o| (o.name_any(), spec(o).clone())).collect()
        }
        Inventory {
            apps: in_ns(&self.apps, ns, |a: &App| &a.spec),
            databases: in_ns(&self.databases, ns, |d: &Database| &d.spec),
            workspaces: in_ns(&self.workspaces, ns, |w: &Workspace| &w.spec),
        }
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
