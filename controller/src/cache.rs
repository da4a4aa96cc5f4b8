//! Reflector stores the reconcilers read instead of the API server (issue 13: a restart that
//! changed nothing cost 7 requests per App, among them uncached GETs of its namespace and
//! Tenant and DELETEs of objects that did not exist).
//!
//! Each store is filled by the same watch that triggers the reconciles of its kind's owners
//! ([`Controller::owns_stream`](kube::runtime::Controller::owns_stream)): a reflector writes
//! the store before it passes an object on, so a reconcile triggered by an object's change
//! always finds that change in the store. A store that has not listed everything yet, or does
//! not hold an object, is never taken for "absent": the reconciler asks the API server then.

use crate::Result;
use futures::{Stream, StreamExt};
use k8s_openapi::api::{
    autoscaling::v2::HorizontalPodAutoscaler,
    core::v1::Namespace,
    networking::v1::{Ingress, NetworkPolicy},
};
use kube::{
    Api, Client, Resource,
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use serde::de::DeserializeOwned;
use std::{fmt::Debug, sync::Arc};

/// A store of `K` and the watch stream that fills it, for a controller's `owns_stream`.
pub fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
) -> (Store<K>, impl Stream<Item = std::result::Result<K, watcher::Error>> + Send + 'static)
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, config).default_backoff()).touched_objects();
    (store, stream)
}

/// The stores the reconcilers read.
#[derive(Clone)]
pub struct Caches {
    /// Tenant namespaces (labelled `slipway.dev/tenant`).
    pub namespaces: Store<Namespace>,
    /// Every Tenant (the Tenant controller's own store).
    pub tenants: Store<slipway_crds::Tenant>,
    /// Ingresses, autoscalers and network policies of Apps (labelled `slipway.dev/app`).
    pub app_ingresses: Store<Ingress>,
    pub app_autoscalers: Store<HorizontalPodAutoscaler>,
    pub app_policies: Store<NetworkPolicy>,
    /// Network policies of Databases (labelled `slipway.dev/database`).
    pub database_policies: Store<NetworkPolicy>,
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
    let labelled = |label: &str| watcher::Config::default().labels(label);
    let (namespaces, namespace_events) =
        reflect(Api::<Namespace>::all(client.clone()), labelled(slipway_crds::TENANT_LABEL));
    let (app_ingresses, app_ingress_events) =
        reflect(Api::<Ingress>::all(client.clone()), labelled(slipway_crds::APP_LABEL));
    let (app_autoscalers, app_autoscaler_events) =
        reflect(Api::<HorizontalPodAutoscaler>::all(client.clone()), labelled(slipway_crds::APP_LABEL));
    let (app_policies, app_policy_events) =
        reflect(Api::<NetworkPolicy>::all(client.clone()), labelled(slipway_crds::APP_LABEL));
    let (database_policies, database_policy_events) =
        reflect(Api::<NetworkPolicy>::all(client.clone()), labelled(slipway_crds::DATABASE_LABEL));
    let caches = Caches { namespaces, tenants, app_ingresses, app_autoscalers, app_policies, database_policies };
    let streams = Streams {
        namespaces: namespace_events.boxed(),
        app_ingresses: app_ingress_events.boxed(),
        app_autoscalers: app_autoscaler_events.boxed(),
        app_policies: app_policy_events.boxed(),
        database_policies: database_policy_events.boxed(),
    };
    (caches, streams)
}

type Events<K> = futures::stream::BoxStream<'static, std::result::Result<K, watcher::Error>>;

/// The watch streams behind [`Caches`], each to be given to one controller's `owns_stream`.
pub struct Streams {
    pub namespaces: Events<Namespace>,
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
