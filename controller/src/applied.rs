//! Compare before write (issue 13: "a reconcile that changes nothing makes no write"): the
//! controller remembers what each of its applies asked for and what Kubernetes answered, and
//! skips the next apply of the same object when nothing changed on either side.
//!
//! "Nothing changed" is judged from a reflector store's copy, so it costs no request: the
//! desired object is the one last applied (the same fingerprint of its JSON), and the live
//! object is the one that apply wrote: same uid, and the same `metadata.generation` (which
//! Kubernetes bumps on every change of a workload's spec, by anyone) or, for kinds without
//! one (Services, Secrets, quotas, RBAC objects), the same content outside `metadata` and
//! `status` (a quota's usage, written by Kubernetes to its status, changes nothing here); its
//! labels and annotations still hold the desired ones. Anything else (a store that lags
//! behind, another writer, a controller restart that emptied the memory) applies as before: a
//! stale judgement costs one idempotent write, never a missed one.

use crate::{Result, apply::apply, cache::cached};
use kube::{Api, Resource, ResourceExt, runtime::reflector::Store};
use serde::{Serialize, de::DeserializeOwned};
use std::{
    collections::{BTreeMap, hash_map::DefaultHasher},
    fmt::Debug,
    hash::{Hash, Hasher},
};

/// How many objects' last applies are remembered; beyond that the least recently used are
/// forgotten (each then costs one apply again). 100,000 entries are a few MB.
const CAPACITY: u64 = 100_000;

/// The controller's last apply of each object it owns.
pub struct Applied {
    last: moka::sync::Cache<String, Written>,
}

impl Default for Applied {
    fn default() -> Self {
        Self { last: moka::sync::Cache::new(CAPACITY) }
    }
}

/// What one apply asked for (`desired`, a fingerprint) and what it wrote.
#[derive(Clone, Debug, PartialEq)]
struct Written {
    desired: u64,
    uid: Option<String>,
    version: Version,
}

/// What moves when anyone changes what an object asks for.
#[derive(Clone, Debug, PartialEq)]
enum Version {
    /// `metadata.generation`, for kinds that have one.
    Generation(i64),
    /// A fingerprint of everything but `metadata` and `status`, for the others.
    Content(u64),
}

impl Version {
    fn of<K: Resource + Serialize>(obj: &K) -> Result<Self> {
        Ok(match obj.meta().generation {
            Some(g) => Version::Generation(g),
            None => {
                let mut json = serde_json::to_value(obj).map_err(kube::Error::SerdeError)?;
                if let Some(fields) = json.as_object_mut() {
                    fields.remove("metadata");
                    fields.remove("status");
                }
                Version::Content(fingerprint(&json)?)
            }
        })
    }
}

impl Applied {
    /// Server-side applies `desired` (see [`apply`]) and returns the object as written, unless
    /// `store`'s copy is what the last apply of the same `desired` wrote (see the module's
    /// documentation): then returns that copy and makes no request.
    ///
    /// # Errors
    /// Kubernetes errors of the apply.
    pub async fn apply<K>(&self, store: &Store<K>, api: &Api<K>, desired: &K) -> Result<K>
    where
        K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug + 'static,
    {
        let key = key(desired);
        let fingerprint = fingerprint(desired)?;
        let live = cached(store, desired.namespace().as_deref(), &desired.name_any());
        if let Ok(Some(live)) = &live
            && self.is_current(&key, fingerprint, live.as_ref())
            && keeps_metadata(desired, live.as_ref())
        {
            tracing::trace!(object = %key, "unchanged since its last apply");
            return Ok(K::clone(live));
        }
        tracing::debug!(object = %key, cached = live.is_ok(), remembered = self.last.contains_key(&key), "applying");
        let written = apply(api, desired).await?;
        self.remember(key, fingerprint, &written);
        Ok(written)
    }

    /// Records that `written` is `desired` as the API server stored it, when the caller wrote
    /// it some other way than [`Applied::apply`] (a create that must not adopt an existing
    /// object): the next apply of the same `desired` makes no request once the store holds it.
    ///
    /// # Errors
    /// `desired` does not serialize.
    pub fn record<K>(&self, desired: &K, written: &K) -> Result<()>
    where
        K: Resource<DynamicType = ()> + Serialize,
    {
        self.remember(key(desired), fingerprint(desired)?, written);
        Ok(())
    }

    fn is_current<K: Resource + Serialize>(&self, key: &str, desired: u64, live: &K) -> bool {
        let Some(last) = self.last.get(key) else { return false };
        last.desired == desired && last.uid == live.meta().uid && Version::of(live).is_ok_and(|v| v == last.version)
    }

    fn remember<K: Resource + Serialize>(&self, key: String, desired: u64, written: &K) {
        match Version::of(written) {
            Ok(version) => self.last.insert(key, Written { desired, uid: written.meta().uid.clone(), version }),
            // Unreadable: the next reconcile applies again.
            Err(_) => self.last.invalidate(&key),
        }
    }
}

/// `Kind/namespace/name`.
fn key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!("{}/{}/{}", K::kind(&()), obj.namespace().unwrap_or_default(), obj.name_any())
}

/// A hash of `obj`'s JSON (maps serialize in key order, so equal objects hash alike).
fn fingerprint<K: Serialize>(obj: &K) -> Result<u64> {
    let json = serde_json::to_vec(obj).map_err(kube::Error::SerdeError)?;
    let mut hasher = DefaultHasher::new();
    json.hash(&mut hasher);
    Ok(hasher.finish())
}

/// Whether `live` still carries each label and annotation of `desired`, with its value.
/// (Metadata changes move neither the generation nor, for kinds that have one, anything else.)
fn keeps_metadata<K: Resource>(desired: &K, live: &K) -> bool {
    let contains = |want: &BTreeMap<String, String>, have: &BTreeMap<String, String>| {
        want.iter().all(|(k, v)| have.get(k) == Some(v))
    };
    contains(desired.labels(), live.labels()) && contains(desired.annotations(), live.annotations())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::{apps::v1::Deployment, core::v1::ResourceQuota};
    use kube::runtime::{reflector, watcher::Event};

    fn deployment(replicas: i32, generation: i64) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "web", "namespace": "tenant-a", "uid": "u1", "generation": generation,
                "resourceVersion": format!("{generation}0"), "labels": { "slipway.dev/app": "web" },
            },
            "spec": { "replicas": replicas, "selector": {}, "template": {} },
        }))
        .unwrap()
    }

    fn desired(replicas: i32) -> Deployment {
        let mut d = deployment(replicas, 0);
        d.metadata = kube::api::ObjectMeta {
            name: Some("web".into()),
            namespace: Some("tenant-a".into()),
            labels: d.metadata.labels,
            ..Default::default()
        };
        d
    }

    fn store_of(live: Option<Deployment>) -> Store<Deployment> {
        let (store, mut writer) = reflector::store();
        writer.apply_watcher_event(&Event::Init);
        if let Some(live) = live {
            writer.apply_watcher_event(&Event::InitApply(live));
        }
        writer.apply_watcher_event(&Event::InitDone);
        store
    }

    /// `applied` after an apply of `desired(2)` that Kubernetes answered with generation 1.
    fn applied_once() -> Applied {
        let applied = Applied::default();
        applied.remember(key(&desired(2)), fingerprint(&desired(2)).unwrap(), &deployment(2, 1));
        applied
    }

    #[test]
    fn current_only_when_the_same_desired_object_meets_what_its_apply_wrote() {
        let applied = applied_once();
        let key = key(&desired(2));
        let same = fingerprint(&desired(2)).unwrap();
        assert!(applied.is_current(&key, same, &deployment(2, 1)));
        // Someone else changed the spec (the generation moved), or the object was recreated.
        assert!(!applied.is_current(&key, same, &deployment(3, 2)));
        let mut recreated = deployment(2, 1);
        recreated.metadata.uid = Some("u2".into());
        assert!(!applied.is_current(&key, same, &recreated));
        // The App asks for something else now.
        assert!(!applied.is_current(&key, fingerprint(&desired(3)).unwrap(), &deployment(2, 1)));
        // Never applied by this process (a restart).
        assert!(!Applied::default().is_current(&key, same, &deployment(2, 1)));
    }

    #[test]
    fn kinds_without_a_generation_compare_what_they_ask_for() {
        let quota = |rv: &str, pods: &str, used: &str| -> ResourceQuota {
            serde_json::from_value(serde_json::json!({
                "metadata": { "name": "tenant", "namespace": "tenant-a", "uid": "u1", "resourceVersion": rv },
                "spec": { "hard": { "pods": pods } },
                "status": { "used": { "pods": used } },
            }))
            .unwrap()
        };
        let applied = Applied::default();
        let key = key(&quota("", "10", "0"));
        applied.remember(key.clone(), 7, &quota("10", "10", "0"));
        assert!(applied.is_current(&key, 7, &quota("10", "10", "0")));
        assert!(applied.is_current(&key, 7, &quota("11", "10", "3")), "usage is status: nothing to apply");
        assert!(!applied.is_current(&key, 7, &quota("12", "20", "3")), "someone changed the limit");
    }

    #[test]
    fn lost_labels_or_annotations_are_applied_again() {
        let mut live = deployment(2, 1);
        assert!(keeps_metadata(&desired(2), &live));
        live.metadata.annotations = Some([("deployment.kubernetes.io/revision".to_string(), "1".to_string())].into());
        assert!(keeps_metadata(&desired(2), &live), "extra annotations are others' business");
        live.metadata.labels = None;
        assert!(!keeps_metadata(&desired(2), &live));
    }

    #[tokio::test]
    async fn a_current_object_is_answered_from_the_store_without_a_request() {
        let applied = applied_once();
        let store = store_of(Some(deployment(2, 1)));
        // A client that fails every request: the apply must not reach it.
        let api: Api<Deployment> = Api::namespaced(unreachable_client(), "tenant-a");
        let answer = applied.apply(&store, &api, &desired(2)).await.expect("answered from the store");
        assert_eq!(answer.metadata.generation, Some(1));
        assert!(applied.apply(&store, &api, &desired(3)).await.is_err(), "a changed App is applied");
    }

    fn unreachable_client() -> kube::Client {
        let service = tower::service_fn(|_request: http::Request<kube::client::Body>| async {
            Err::<http::Response<kube::client::Body>, _>(std::io::Error::other("no API server in unit tests"))
        });
        kube::Client::new(service, "default")
    }
}
