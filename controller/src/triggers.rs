//! What wakes a controller for its own kind: the changes its owners or Kubernetes make, not the
//! controller's own status writes (issue 13: "does not re-reconcile on its own status writes").
//!
//! Without this filter each status write (the phase, the conditions, an email's claim and its
//! withdrawal) came back as a watch event and reconciled the object again at once, ahead of its
//! error backoff: with a failing SMTP server every Ready App claimed, failed to send, withdrew
//! and was reconciled again in a hot loop. Owned objects (a Deployment's rollout, a StatefulSet's
//! ready replicas) still wake their owner through `owns`; failures still requeue with backoff.

use futures::{Stream, StreamExt};
use kube::{
    Api, Resource,
    runtime::{Controller, WatchStreamExt, controller, reflector, reflector::ObjectRef, watcher},
};
use serde::{Serialize, de::DeserializeOwned};
use slipway_crds::Tenant;
use std::{
    collections::{HashMap, hash_map::DefaultHasher},
    fmt::Debug,
    hash::{Hash, Hasher},
};

/// A controller of every `K` that `api` sees, woken by those of their changes that [`intent`]
/// tells apart. Its store (`Controller::store`) holds every change, status included; only the
/// triggers are filtered.
pub fn controller<K>(api: Api<K>) -> Controller<K>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let changes = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(intent, Default::default());
    Controller::for_stream(changes, store).with_config(controller::Config::default().concurrency(CONCURRENT_RECONCILES))
}

/// Most reconciles one controller runs at once. kube-runtime's default is unbounded: after a
/// restart with 1,000 Apps every one of them was in flight at once, and the process kept the
/// memory of that peak (issue 13: 199 MB after a restart against 72 MB before it).
/// controller-runtime's default is 1; reconciles here wait on the API server, not the CPU, so a
/// few dozen keep both cores busy.
pub const CONCURRENT_RECONCILES: u16 = 32;

/// Hashes what a reconcile acts on: `metadata.generation` (bumped by every change of `spec`,
/// never by `status`: Kubernetes API conventions, "spec and status"), whether the object is
/// being deleted, its finalizers, labels and annotations. Status, `resourceVersion` and
/// `managedFields` are left out, so writes of status alone wake no one.
pub fn intent<K: Resource>(obj: &K) -> Option<u64> {
    let meta = obj.meta();
    let mut hasher = DefaultHasher::new();
    meta.generation.hash(&mut hasher);
    meta.deletion_timestamp.is_some().hash(&mut hasher);
    meta.finalizers.hash(&mut hasher);
    meta.labels.hash(&mut hasher);
    meta.annotations.hash(&mut hasher);
    Some(hasher.finish())
}

/// The owned objects whose change can matter to their owner's reconcile, from their watch's
/// events (after its reflector, so the store already holds what a wake shows): every deletion
/// (those a relist reveals included: [`crate::cache::with_relist_deletions`]), and every change
/// of what [`owned_intent`] and `reads` hash. Not an object's creation: the
/// owner's reconcile created it and read what its apply returned (issue 13: the watch event of
/// an App's own new Deployment, Service and NetworkPolicy each woke the App once more, for
/// nothing). Objects a list shows (the first, or after the watch lost its place) wake their
/// owner when new to this stream or changed.
pub fn owner_wakes<K>(
    events: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    reads: fn(&K) -> u64,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Send + 'static,
{
    let mut seen: HashMap<ObjectRef<K>, u64> = HashMap::new();
    events.filter_map(move |event| {
        let wake = match event {
            Err(e) => Some(Err(e)),
            Ok(watcher::Event::Delete(obj)) => {
                seen.remove(&ObjectRef::from_obj(&obj));
                Some(Ok(obj))
            }
            Ok(watcher::Event::Apply(obj)) => {
                let now = reads(&obj);
                let before = seen.insert(ObjectRef::from_obj(&obj), now);
                before.is_some_and(|hash| hash != now).then_some(Ok(obj))
            }
            Ok(watcher::Event::InitApply(obj)) => {
                let now = reads(&obj);
                let before = seen.insert(ObjectRef::from_obj(&obj), now);
                (before != Some(now)).then_some(Ok(obj))
            }
            Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
        };
        futures::future::ready(wake)
    })
}

/// Hashes what anyone but Kubernetes' own controllers changes in an owned object, and what a
/// reconcile would put back: everything outside `metadata` and `status` (the spec), its labels,
/// Slipway's annotations (`slipway.dev/…`: others are Kubernetes' own, like the Deployment
/// controller's revision number), owner references and whether it is being deleted.
pub fn owned_intent<K: Resource + Serialize>(obj: &K) -> u64 {
    let meta = obj.meta();
    let mut hasher = DefaultHasher::new();
    match serde_json::to_value(obj) {
        Ok(serde_json::Value::Object(mut fields)) => {
            fields.remove("metadata");
            fields.remove("status");
            serde_json::Value::Object(fields).to_string().hash(&mut hasher);
        }
        // Not expected of a Kubernetes object: every change wakes its owner.
        _ => meta.resource_version.hash(&mut hasher),
    }
    meta.labels.hash(&mut hasher);
    let annotations = meta.annotations.iter().flatten().filter(|(k, _)| k.starts_with("slipway.dev/"));
    annotations.for_each(|a| a.hash(&mut hasher));
    for owner in meta.owner_references.iter().flatten() {
        (&owner.uid, &owner.controller).hash(&mut hasher);
    }
    meta.deletion_timestamp.is_some().hash(&mut hasher);
    hasher.finish()
}

/// The Tenant that owns `obj`, as the Tenant controller's queue knows it: by name alone.
///
/// `Controller::owns_stream` would name the owner of a namespaced object in that object's
/// namespace, and a Tenant is cluster-scoped: its guard rails in `tenant-<name>` would queue
/// the Tenant under a second key, and the two keys were reconciled at the same time (seen:
/// every guard rail applied twice at once after a restart).
pub fn owning_tenant<K: Resource>(obj: K) -> Option<ObjectRef<Tenant>> {
    let owners = obj.meta().owner_references.as_deref().unwrap_or_default();
    let kind = Tenant::kind(&());
    let api_version = Tenant::api_version(&());
    owners.iter().find(|o| o.kind == kind && o.api_version == api_version).map(|o| ObjectRef::new(&o.name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
    use kube::ResourceExt;
    use slipway_crds::App;

    fn app() -> App {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "slipway.dev/v1alpha1",
            "kind": "App",
            "metadata": { "name": "web", "namespace": "tenant-a", "generation": 1, "resourceVersion": "10" },
            "spec": { "image": "nginx" },
        }))
        .unwrap()
    }

    /// A Service named `name` with uid `uid`, node port `port` and a status that says `ip`.
    fn service(name: &str, uid: &str, port: i32, ip: &str) -> k8s_openapi::api::core::v1::Service {
        serde_json::from_value(serde_json::json!({
            "metadata": { "name": name, "namespace": "tenant-a", "uid": uid },
            "spec": { "type": "NodePort", "ports": [{ "port": 80, "nodePort": port }] },
            "status": { "loadBalancer": { "ingress": [{ "ip": ip }] } },
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn owners_wake_for_what_they_read_and_deletions_not_for_creations() {
        use kube::runtime::watcher::Event;
        let events = [
            // The first list: every object is new to the stream, and wakes its owner.
            Event::Init,
            Event::InitApply(service("listed", "1", 30001, "192.0.2.1")),
            Event::InitDone,
            // Created (by the owner's reconcile, which read what its apply returned): no wake.
            Event::Apply(service("web", "2", 30002, "192.0.2.1")),
            // Its status changed, which the owner does not read: no wake.
            Event::Apply(service("web", "2", 30002, "192.0.2.2")),
            // Its spec changed (someone else's edit the owner's reconcile puts back): a wake.
            Event::Apply(service("web", "2", 30003, "192.0.2.2")),
            Event::Delete(service("web", "2", 30003, "192.0.2.2")),
            // Created again after its deletion: no wake.
            Event::Apply(service("web", "3", 30004, "192.0.2.2")),
            // A list after the watch lost its place: changed objects wake, unchanged do not.
            Event::Init,
            Event::InitApply(service("listed", "1", 30001, "192.0.2.9")),
            Event::InitApply(service("web", "3", 30005, "192.0.2.2")),
            Event::InitDone,
        ];
        let wakes: Vec<_> = owner_wakes(futures::stream::iter(events.map(Ok)), owned_intent)
            .map(|woken| {
                let service = woken.unwrap();
                let port = service.spec.unwrap().ports.unwrap()[0].node_port.unwrap();
                (service.metadata.name.unwrap(), port)
            })
            .collect()
            .await;
        let expected = [("listed", 30001), ("web", 30003), ("web", 30003), ("web", 30005)];
        assert_eq!(wakes, expected.map(|(name, port)| (name.to_string(), port)));
    }

    #[test]
    fn an_owned_objects_intent_leaves_out_kubernetes_own_annotations_and_status() {
        let before = service("web", "1", 30001, "192.0.2.1");
        let mut after = service("web", "1", 30001, "192.0.2.2");
        after.metadata.resource_version = Some("12".into());
        after.annotations_mut().insert("deployment.kubernetes.io/revision".into(), "1".into());
        assert_eq!(owned_intent(&before), owned_intent(&after));
        after.annotations_mut().insert("slipway.dev/applied-fingerprint".into(), "x".into());
        assert_ne!(owned_intent(&before), owned_intent(&after), "Slipway's annotations count");
        let mut labelled = before.clone();
        labelled.labels_mut().insert("slipway.dev/app".into(), "web".into());
        assert_ne!(owned_intent(&before), owned_intent(&labelled));
    }

    #[test]
    fn a_guard_rail_names_its_tenant_without_a_namespace() {
        let quota: k8s_openapi::api::core::v1::ResourceQuota = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "slipway-plan", "namespace": "tenant-a",
                "ownerReferences": [
                    { "apiVersion": "v1", "kind": "Namespace", "name": "x", "uid": "1" },
                    { "apiVersion": "slipway.dev/v1alpha1", "kind": "Tenant", "name": "a", "uid": "2", "controller": true },
                ],
            },
        }))
        .unwrap();
        assert_eq!(owning_tenant(quota), Some(ObjectRef::new("a")));
    }

    #[test]
    fn status_and_resource_version_alone_do_not_trigger() {
        let before = app();
        let mut after = before.clone();
        after.metadata.resource_version = Some("11".into());
        after.status = Some(Default::default());
        assert_eq!(intent(&before), intent(&after));
    }

    #[test]
    fn spec_deletion_finalizers_labels_and_annotations_trigger() {
        let before = app();
        let changes: [fn(&mut App); 5] = [
            |a| a.metadata.generation = Some(2),
            |a| a.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH)),
            |a| a.metadata.finalizers = Some(vec!["slipway.dev/cleanup".into()]),
            |a| a.metadata.labels = Some([("team".to_string(), "x".to_string())].into()),
            |a| a.metadata.annotations = Some([("note".to_string(), "x".to_string())].into()),
        ];
        for change in changes {
            let mut after = before.clone();
            change(&mut after);
            assert_ne!(intent(&before), intent(&after), "{:?}", after.metadata);
        }
    }
}
