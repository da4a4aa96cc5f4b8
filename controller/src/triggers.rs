//! What wakes a controller for its own kind: the changes its owners or Kubernetes make, not the
//! controller's own status writes (issue 13: "does not re-reconcile on its own status writes").
//!
//! Without this filter each status write (the phase, the conditions, an email's claim and its
//! withdrawal) came back as a watch event and reconciled the object again at once, ahead of its
//! error backoff: with a failing SMTP server every Ready App claimed, failed to send, withdrew
//! and was reconciled again in a hot loop. Owned objects (a Deployment's rollout, a StatefulSet's
//! ready replicas) still wake their owner through `owns`; failures still requeue with backoff.

use kube::{
    Api, Resource,
    runtime::{Controller, WatchStreamExt, controller, reflector, reflector::ObjectRef, watcher},
};
use serde::de::DeserializeOwned;
use slipway_crds::Tenant;
use std::{
    collections::hash_map::DefaultHasher,
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
