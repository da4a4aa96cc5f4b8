//! Reflector stores the reconcilers read instead of the API server (issue 13: a restart that
//! changed nothing cost 7 requests per App, among them uncached GETs of its namespace and
//! Tenant and DELETEs of objects that did not exist).
//!
//! Each store is filled by the same watch that triggers the reconciles of its kind's owners
//! ([`Controller::owns_stream`](kube::runtime::Controller::owns_stream)): a reflector writes
//! the store before it passes an object on, so a reconcile triggered by an object's change
//! always finds that change in the store. A store that has not listed everything yet, or does
//! not hold an object, is never taken for "absent": the reconciler asks the API server then.

use crate::{Result, triggers};
use futures::{Stream, StreamExt};
use k8s_openapi::api::{
    apps::v1::Deployment,
    autoscaling::v2::HorizontalPodAutoscaler,
    core::v1::{LimitRange, Namespace, ResourceQuota, Service},
    networking::v1::{Ingress, NetworkPolicy},
    rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding},
};
use kube::{
    Api, Client, Resource, ResourceExt,
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use serde::de::DeserializeOwned;
use std::{
    collections::HashMap,
    fmt::Debug,
    hash::{Hash, Hasher},
    sync::Arc,
    time::Duration,
};

/// A store of `K` and the watch events that fill it, passed on once the store holds them, with
/// the deletions a relist reveals (see [`with_relist_deletions`]).
pub fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
) -> (Store<K>, impl Stream<Item = std::result::Result<watcher::Event<K>, watcher::Error>> + Send + 'static)
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    // Nothing here reads managedFields: keep them out of memory.
    let events = watcher(api, config).default_backoff().modify(|obj| obj.managed_fields_mut().clear());
    let events = reflector::reflector(writer, events);
    (store.clone(), with_relist_deletions(store, events))
}

/// `events` (a reflector's, writing `store`), each followed after a relist by a
/// `Delete` of every object the store held before it and the relist no longer shows.
///
/// Why: a watch that lost its place (its `resourceVersion` too old, "410 Gone", after the API
/// server was away longer than etcd keeps history) lists again, and kube-runtime's watcher
/// reports that list as `Init`, `InitApply`… and `InitDone`, never as deletions: the reflector
/// drops objects deleted meanwhile from its store, and nothing else learns of them. Their owners
/// were never woken, so an App whose Deployment was deleted while its controller's watch was
/// away stayed without one until something else changed it. client-go's informers report
/// such objects as deletions (`DeletedFinalStateUnknown`); this does the same.
///
/// The store still holds the previous list until `InitDone` (kube-runtime's `Writer` buffers a
/// relist and swaps it in at its end), so the objects gone are read from it at `Init` and
/// reported, as their last known state, after `InitDone`: like a watch's `Delete`, once the
/// store no longer holds them.
pub fn with_relist_deletions<K>(
    store: Store<K>,
    events: impl Stream<Item = std::result::Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
) -> impl Stream<Item = std::result::Result<watcher::Event<K>, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    // The objects the store held when the current relist began, less those it has shown since.
    let mut unlisted: Option<HashMap<ObjectRef<K>, Arc<K>>> = None;
    events.flat_map(move |event| {
        let mut gone = Vec::new();
        match &event {
            Ok(watcher::Event::Init) => {
                unlisted = Some(store.state().into_iter().map(|obj| (ObjectRef::from_obj(&*obj), obj)).collect());
            }
            Ok(watcher::Event::InitApply(obj)) => {
                if let Some(unlisted) = &mut unlisted {
                    unlisted.remove(&ObjectRef::from_obj(obj));
                }
            }
            Ok(watcher::Event::InitDone) => {
                let deleted = unlisted.take().into_iter().flat_map(HashMap::into_values);
                gone.extend(deleted.map(|obj| Ok(watcher::Event::Delete(Arc::unwrap_or_clone(obj)))));
            }
            _ => {}
        }
        futures::stream::iter(std::iter::once(event).chain(gone))
    })
}

/// The stores the reconcilers read.
#[derive(Clone)]
pub struct Caches {
    /// Tenant namespaces (labelled `slipway.dev/tenant`).
    pub namespaces: Store<Namespace>,
    /// Every Tenant (the Tenant controller's own store).
    pub tenants: Store<slipway_crds::Tenant>,
    /// The guard rails of tenants (labelled `slipway.dev/tenant`, and for network policies
    /// not also by an App, Database or Workspace).
    pub tenant_quotas: Store<ResourceQuota>,
    pub tenant_limits: Store<LimitRange>,
    pub tenant_bindings: Store<RoleBinding>,
    pub tenant_roles: Store<ClusterRole>,
    pub tenant_role_bindings: Store<ClusterRoleBinding>,
    pub tenant_policies: Store<NetworkPolicy>,
    /// Deployments, Services, Ingresses, autoscalers and network policies of Apps (labelled
    /// `slipway.dev/app`).
    pub app_deployments: Store<Deployment>,
    pub app_services: Store<Service>,
    pub app_ingresses: Store<Ingress>,
    pub app_autoscalers: Store<HorizontalPodAutoscaler>,
    pub app_policies: Store<NetworkPolicy>,
    /// Network policies of Databases (labelled `slipway.dev/database`).
    pub database_policies: Store<NetworkPolicy>,
    /// Set once the first reconcile's wait for the stores' first lists is over.
    listed: Arc<tokio::sync::OnceCell<()>>,
}

/// How long the first reconciles wait for the stores' first lists (see [`Caches::listed`]):
/// far longer than lists take when the API server answers (hack/bench-controller.sh's restart
/// with 1,000 Apps reconciled everything within 6 s, lists included). A store that takes longer
/// (a watch refused by RBAC, an API server away) is read around as before.
pub const FIRST_LIST_WAIT: Duration = Duration::from_secs(30);

impl Caches {
    /// Waits until every store has listed, once per process and for at most
    /// [`FIRST_LIST_WAIT`]; every later call returns at once.
    ///
    /// Why: the controllers start reconciling as soon as their own kind is listed, which after
    /// a restart is before the stores of namespaces and owned objects are. A reconcile then
    /// cannot judge from them and asks the API server instead: one request per object that a
    /// moment's wait makes unnecessary (issue 13: a restart costs at most one request per
    /// object). The stores' watches are polled by the controllers alongside their reconciles,
    /// so waiting inside a reconcile does not hold them up.
    pub async fn listed(&self) {
        self.listed
            .get_or_init(|| async {
                // Every store of `Caches`: one added above belongs here too.
                let all = async {
                    futures::join!(
                        self.namespaces.wait_until_ready(),
                        self.tenants.wait_until_ready(),
                        self.tenant_quotas.wait_until_ready(),
                        self.tenant_limits.wait_until_ready(),
                        self.tenant_bindings.wait_until_ready(),
                        self.tenant_roles.wait_until_ready(),
                        self.tenant_role_bindings.wait_until_ready(),
                        self.tenant_policies.wait_until_ready(),
                        self.app_deployments.wait_until_ready(),
                        self.app_services.wait_until_ready(),
                        self.app_ingresses.wait_until_ready(),
                        self.app_autoscalers.wait_until_ready(),
                        self.app_policies.wait_until_ready(),
                        self.database_policies.wait_until_ready(),
                    )
                };
                if tokio::time::timeout(FIRST_LIST_WAIT, all).await.is_err() {
                    tracing::warn!(waited = ?FIRST_LIST_WAIT, "some stores have not listed yet: reading around them");
                }
            })
            .await;
    }
}

/// `name` (in `namespace`, if namespaced) as `store` holds it: `Ok(None)` only when the store
/// has listed everything and does not hold it; `Err(())` when the store cannot say.
pub fn cached<K>(store: &Store<K>, namespace: Option<&str>, name: &str) -> std::result::Result<Option<Arc<K>>, ()>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let key = match namespace {
        Some(ns) => ObjectRef::new(name).within(ns),
        None => ObjectRef::new(name),
    };
    match store.get(&key) {
        Some(found) => Ok(Some(found)),
        None if futures::FutureExt::now_or_never(store.wait_until_ready()).is_some_and(|r| r.is_ok()) => Ok(None),
        None => Err(()),
    }
}

/// Deletes `name` unless `store` knows it does not exist (see [`crate::apply::delete_if_exists`]).
///
/// # Errors
/// Kubernetes errors other than 404.
pub async fn delete_if_cached<K>(store: &Store<K>, api: &Api<K>, namespace: &str, name: &str) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + 'static,
{
    match cached(store, Some(namespace), name) {
        Ok(None) => Ok(()),
        _ => crate::apply::delete_if_exists(api, name).await,
    }
}

/// The caches over `client`, with `tenants` (the Tenant controller's store), and the watch
/// streams that fill them: nothing runs until the controllers poll the streams.
pub fn watches(client: &Client, tenants: Store<slipway_crds::Tenant>) -> (Caches, Streams) {
    use slipway_crds::{APP_LABEL, DATABASE_LABEL, TENANT_LABEL, WORKSPACE_LABEL};
    let tenant_only = format!("{TENANT_LABEL},!{APP_LABEL},!{DATABASE_LABEL},!{WORKSPACE_LABEL}");
    let (namespaces, namespace_events) = labelled(client, TENANT_LABEL);
    let (tenant_quotas, tenant_quota_events) = labelled(client, TENANT_LABEL);
    let (tenant_limits, tenant_limit_events) = labelled(client, TENANT_LABEL);
    let (tenant_bindings, tenant_binding_events) = labelled(client, TENANT_LABEL);
    let (tenant_roles, tenant_role_events) = labelled(client, TENANT_LABEL);
    let (tenant_role_bindings, tenant_role_binding_events) = labelled(client, TENANT_LABEL);
    let (tenant_policies, tenant_policy_events) = labelled(client, &tenant_only);
    // An App's status reads its Deployment's rollout and its Service's node port (in its spec).
    let deployment_reads = |d: &Deployment| {
        let mut hasher = std::hash::DefaultHasher::new();
        (triggers::owned_intent(d), crate::app::progress(d)).hash(&mut hasher);
        hasher.finish()
    };
    let (app_deployments, app_deployment_events) = of_apps(client, deployment_reads);
    let (app_services, app_service_events) = of_apps(client, triggers::owned_intent);
    let (app_ingresses, app_ingress_events) = of_apps(client, triggers::owned_intent);
    let (app_autoscalers, app_autoscaler_events) = of_apps(client, triggers::owned_intent);
    let (app_policies, app_policy_events) = of_apps(client, triggers::owned_intent);
    let (database_policies, database_policy_events) = labelled(client, DATABASE_LABEL);
    let caches = Caches {
        namespaces,
        tenants,
        tenant_quotas,
        tenant_limits,
        tenant_bindings,
        tenant_roles,
        tenant_role_bindings,
        tenant_policies,
        app_deployments,
        app_services,
        app_ingresses,
        app_autoscalers,
        app_policies,
        database_policies,
        listed: Arc::default(),
    };
    let streams = Streams {
        namespaces: namespace_events,
        tenant_quotas: tenant_quota_events,
        tenant_limits: tenant_limit_events,
        tenant_bindings: tenant_binding_events,
        tenant_roles: tenant_role_events,
        tenant_role_bindings: tenant_role_binding_events,
        tenant_policies: tenant_policy_events,
        app_deployments: app_deployment_events,
        app_services: app_service_events,
        app_ingresses: app_ingress_events,
        app_autoscalers: app_autoscaler_events,
        app_policies: app_policy_events,
        database_policies: database_policy_events,
    };
    (caches, streams)
}

/// [`reflect`] of every `K` in the cluster that matches the label `selector`; every object an
/// event touches is passed on.
fn labelled<K>(client: &Client, selector: &str) -> (Store<K>, Events<K>)
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    let (store, events) = reflect(Api::<K>::all(client.clone()), watcher::Config::default().labels(selector));
    (store, events.touched_objects().boxed())
}

/// [`reflect`] of every `K` that an App owns (labelled `slipway.dev/app`); passed on are only
/// the changes [`triggers::owner_wakes`] tells apart with `reads`.
fn of_apps<K>(client: &Client, reads: fn(&K) -> u64) -> (Store<K>, Events<K>)
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    let config = watcher::Config::default().labels(slipway_crds::APP_LABEL);
    let (store, events) = reflect(Api::<K>::all(client.clone()), config);
    (store, triggers::owner_wakes(events, reads).boxed())
}

type Events<K> = futures::stream::BoxStream<'static, std::result::Result<K, watcher::Error>>;

/// The watch streams behind [`Caches`], each to be given to one controller's `owns_stream`.
pub struct Streams {
    pub namespaces: Events<Namespace>,
    pub tenant_quotas: Events<ResourceQuota>,
    pub tenant_limits: Events<LimitRange>,
    pub tenant_bindings: Events<RoleBinding>,
    pub tenant_roles: Events<ClusterRole>,
    pub tenant_role_bindings: Events<ClusterRoleBinding>,
    pub tenant_policies: Events<NetworkPolicy>,
    pub app_deployments: Events<Deployment>,
    pub app_services: Events<Service>,
    pub app_ingresses: Events<Ingress>,
    pub app_autoscalers: Events<HorizontalPodAutoscaler>,
    pub app_policies: Events<NetworkPolicy>,
    pub database_policies: Events<NetworkPolicy>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::watcher::Event;

    fn namespace(name: &str) -> Namespace {
        Namespace {
            metadata: kube::api::ObjectMeta { name: Some(name.into()), ..Default::default() },
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_relist_reports_what_was_deleted_while_the_watch_was_away() {
        let events = [
            // The first list: nothing was known before it, so nothing is gone.
            Event::Init,
            Event::InitApply(namespace("tenant-a")),
            Event::InitApply(namespace("tenant-b")),
            Event::InitDone,
            Event::Apply(namespace("tenant-c")),
            // The watch lost its place; its relist is cut short and starts over.
            Event::Init,
            Event::InitApply(namespace("tenant-a")),
            Event::Init,
            Event::InitApply(namespace("tenant-a")),
            Event::InitApply(namespace("tenant-c")),
            Event::InitDone,
            // Once more, after tenant-c went too.
            Event::Init,
            Event::InitApply(namespace("tenant-a")),
            Event::InitDone,
        ];
        let (store, writer) = reflector::store();
        let reflected = reflector::reflector(writer, futures::stream::iter(events.map(Ok)));
        let passed: Vec<_> = with_relist_deletions(store.clone(), reflected)
            .map(|event| match event.unwrap() {
                Event::Delete(ns) => {
                    assert!(store.get(&ObjectRef::from_obj(&ns)).is_none(), "reported once the store has let it go");
                    format!("delete {}", ns.name_any())
                }
                Event::InitDone => "listed".into(),
                _ => String::new(),
            })
            .filter(|said| futures::future::ready(!said.is_empty()))
            .collect()
            .await;
        assert_eq!(passed, ["listed", "listed", "delete tenant-b", "listed", "delete tenant-c"]);
        assert_eq!(store.state().iter().map(|ns| ns.name_any()).collect::<Vec<_>>(), ["tenant-a"]);
    }

    #[test]
    fn absent_only_once_the_store_has_listed_everything() {
        let (store, mut writer) = reflector::store();
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitApply(namespace("tenant-a")));
        assert!(cached(&store, None, "tenant-b").is_err(), "still listing: it cannot say");
        writer.apply_watcher_event(&Event::InitDone);
        assert!(cached(&store, None, "tenant-a").unwrap().is_some());
        assert!(cached(&store, None, "tenant-b").unwrap().is_none(), "listed and not there: absent");
    }
}
