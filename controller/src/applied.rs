//! Compare before write (issue 13: "a reconcile that changes nothing makes no write"): the
//! controller skips an apply when a reflector store's copy of the object already is what the
//! apply would make it, so the judgement costs no request. Two ways to know:
//!
//! - **This process applied it** and nothing moved since: the desired object is the one last
//!   applied (the same fingerprint), and the live object is the one that apply wrote: same uid,
//!   and the same `metadata.generation` (which Kubernetes bumps on every change of a
//!   workload's spec, by anyone) or, for kinds without one (Services, Secrets, quotas, RBAC
//!   objects), the same content outside `metadata` and `status` (a quota's usage, written by
//!   Kubernetes to its status, changes nothing here); its labels and annotations still hold the
//!   desired ones.
//! - **Any process applied it**, as after a restart, which empties that memory: every apply
//!   stamps the object with the fingerprint of what it asked for ([`FINGERPRINT_ANNOTATION`]),
//!   and the live object carries the fingerprint of today's desired object and still holds
//!   every field that object sets, with its value (see [`derives_from`]). The stamp is what
//!   catches a field the desired object no longer sets: server-side apply would remove it, and
//!   a comparison of fields alone cannot see that it should go.
//!
//! Anything else (a store that lags behind, another writer, a value the API server stores in
//! another spelling) applies as before: a stale judgement costs one idempotent write, never a
//! missed one.

use crate::{Result, apply::apply, cache::cached};
use kube::{Api, Resource, ResourceExt, runtime::reflector::Store};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::{collections::BTreeMap, fmt::Debug};

/// The annotation every apply stamps on the object it writes: the fingerprint (32 hex digits
/// of a SHA-256 of its JSON) of the desired object without this annotation.
pub const FINGERPRINT_ANNOTATION: &str = "slipway.dev/applied-fingerprint";

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
    desired: String,
    uid: Option<String>,
    version: Version,
}

/// What moves when anyone changes what an object asks for.
#[derive(Clone, Debug, PartialEq)]
enum Version {
    /// `metadata.generation`, for kinds that have one.
    Generation(i64),
    /// A fingerprint of everything but `metadata` and `status`, for the others.
    Content(String),
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
    /// Server-side applies `desired` (see [`apply`]), stamped with its fingerprint, and returns
    /// the object as written, unless `store`'s copy already is what that apply would make it
    /// (see the module's documentation): then returns that copy and makes no request.
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
            && self.is_current(&key, &fingerprint, live.as_ref())
            && keeps_metadata(desired, live.as_ref())
        {
            tracing::trace!(object = %key, "unchanged since this process applied it");
            return Ok(K::clone(live));
        }
        let stamped = stamped_with(desired, &fingerprint);
        if let Ok(Some(live)) = &live
            && stamped_alike(&fingerprint, &stamped, live.as_ref())
        {
            // Applied by an earlier process: what it wrote stands, so remember it as ours.
            tracing::debug!(object = %key, "unchanged since its last apply");
            self.remember(key, fingerprint, live.as_ref());
            return Ok(K::clone(live));
        }
        tracing::debug!(object = %key, cached = live.is_ok(), remembered = self.last.contains_key(&key), "applying");
        let written = apply(api, &stamped).await?;
        self.remember(key, fingerprint, &written);
        Ok(written)
    }

    /// Records that `written` is `desired` as the API server stored it, when the caller wrote
    /// it some other way than [`Applied::apply`] (a create that must not adopt an existing
    /// object, of [`stamped`]`(desired)`): the next apply of the same `desired` makes no
    /// request once the store holds it.
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

    fn is_current<K: Resource + Serialize>(&self, key: &str, desired: &str, live: &K) -> bool {
        let Some(last) = self.last.get(key) else { return false };
        last.desired == desired && last.uid == live.meta().uid && Version::of(live).is_ok_and(|v| v == last.version)
    }

    fn remember<K: Resource + Serialize>(&self, key: String, desired: String, written: &K) {
        match Version::of(written) {
            Ok(version) => self.last.insert(key, Written { desired, uid: written.meta().uid.clone(), version }),
            // Unreadable: the next reconcile applies again.
            Err(_) => self.last.invalidate(&key),
        }
    }
}

/// `desired` with [`FINGERPRINT_ANNOTATION`]: what to write when creating an object that
/// [`Applied::apply`] will apply later, so that even a later process need not apply it again.
///
/// # Errors
/// `desired` does not serialize.
pub fn stamped<K: Resource + Serialize + Clone>(desired: &K) -> Result<K> {
    Ok(stamped_with(desired, &fingerprint(desired)?))
}

/// `desired` with [`FINGERPRINT_ANNOTATION`] set to `fingerprint` (its own).
fn stamped_with<K: Resource + Clone>(desired: &K, fingerprint: &str) -> K {
    let mut stamped = desired.clone();
    stamped.annotations_mut().insert(FINGERPRINT_ANNOTATION.into(), fingerprint.into());
    stamped
}

/// `Kind/namespace/name`.
fn key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!("{}/{}/{}", K::kind(&()), obj.namespace().unwrap_or_default(), obj.name_any())
}

/// 32 hex digits of the SHA-256 of `obj`'s JSON (maps serialize in key order, so equal objects
/// hash alike, in every process and release: the fingerprint outlives the process on objects).
fn fingerprint<K: Serialize>(obj: &K) -> Result<String> {
    let json = serde_json::to_vec(obj).map_err(kube::Error::SerdeError)?;
    let mut hex = format!("{:x}", Sha256::digest(&json));
    hex.truncate(32);
    Ok(hex)
}

/// Whether `live` carries `fingerprint` (so the last apply asked for what `stamped` asks for)
/// and still holds everything `stamped` sets (so nobody changed it since).
fn stamped_alike<K: Resource + Serialize>(fingerprint: &str, stamped: &K, live: &K) -> bool {
    live.annotations().get(FINGERPRINT_ANNOTATION).is_some_and(|f| f == fingerprint)
        && matches!((serde_json::to_value(stamped), serde_json::to_value(live)), (Ok(s), Ok(l)) if derives_from(&s, &l))
}

/// Whether `live` holds every field `desired` sets, with its value: what a server-side apply
/// of `desired` would leave unchanged. Fields only `live` has (defaults the API server filled
/// in, status, other managers' fields) do not count; a list must have as many items, each
/// derived from its counterpart (an apply would remove or reorder ours); an empty or null field
/// of `desired` is met by its absence. This is Knative's `equality.Semantic.DeepDerivative`
/// over JSON, except that `false`, `0` and `""` are values to match, not "unset" (an App
/// stopped at 0 replicas must not match one running 3).
fn derives_from(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(want), Value::Object(have)) => want.iter().all(|(k, v)| match have.get(k) {
            Some(h) => derives_from(v, h),
            None => is_empty(v),
        }),
        (Value::Array(want), Value::Array(have)) => {
            want.len() == have.len() && want.iter().zip(have).all(|(w, h)| derives_from(w, h))
        }
        (Value::Number(want), Value::Number(have)) => match (want.as_i64(), have.as_i64()) {
            (Some(want), Some(have)) => want == have,
            // 1 and 1.0 are one number to the API server.
            _ => want.as_f64() == have.as_f64(),
        },
        _ if is_empty(desired) && live.is_null() => true,
        _ => desired == live,
    }
}

/// `null`, `{}` or `[]`: what the API server stores as an absent field.
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(o) => o.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
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
        assert!(applied.is_current(&key, &same, &deployment(2, 1)));
        // Someone else changed the spec (the generation moved), or the object was recreated.
        assert!(!applied.is_current(&key, &same, &deployment(3, 2)));
        let mut recreated = deployment(2, 1);
        recreated.metadata.uid = Some("u2".into());
        assert!(!applied.is_current(&key, &same, &recreated));
        // The App asks for something else now.
        assert!(!applied.is_current(&key, &fingerprint(&desired(3)).unwrap(), &deployment(2, 1)));
        // Never applied by this process (a restart).
        assert!(!Applied::default().is_current(&key, &same, &deployment(2, 1)));
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
        applied.remember(key.clone(), "7".into(), &quota("10", "10", "0"));
        assert!(applied.is_current(&key, "7", &quota("10", "10", "0")));
        assert!(applied.is_current(&key, "7", &quota("11", "10", "3")), "usage is status: nothing to apply");
        assert!(!applied.is_current(&key, "7", &quota("12", "20", "3")), "someone changed the limit");
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

    /// `desired(replicas)` as an earlier process's apply left it: stamped, with what the API
    /// server adds (uid, generation, defaults, status).
    fn written_by_an_earlier_process(replicas: i32) -> Deployment {
        let mut live = deployment(replicas, 4);
        live.annotations_mut().insert(FINGERPRINT_ANNOTATION.into(), fingerprint(&desired(replicas)).unwrap());
        let spec = live.spec.as_mut().unwrap();
        spec.revision_history_limit = Some(10);
        spec.progress_deadline_seconds = Some(600);
        live.status = Some(Default::default());
        live
    }

    #[tokio::test]
    async fn after_a_restart_an_object_its_stamp_and_fields_vouch_for_is_not_applied_again() {
        let api: Api<Deployment> = Api::namespaced(unreachable_client(), "tenant-a");
        let restarted = Applied::default();
        let store = store_of(Some(written_by_an_earlier_process(2)));
        let answer = restarted.apply(&store, &api, &desired(2)).await.expect("answered from the store");
        assert_eq!(answer.metadata.generation, Some(4));
        assert!(restarted.is_current(&key(&desired(2)), &fingerprint(&desired(2)).unwrap(), &answer), "now remembered");

        // The App asks for something else than the stamp says was applied.
        assert!(Applied::default().apply(&store, &api, &desired(3)).await.is_err());
        // Someone scaled it by hand since: the stamp still matches, a field does not.
        let mut scaled = written_by_an_earlier_process(2);
        scaled.spec.as_mut().unwrap().replicas = Some(5);
        assert!(Applied::default().apply(&store_of(Some(scaled)), &api, &desired(2)).await.is_err());
        // Written before stamps existed.
        let mut unstamped = written_by_an_earlier_process(2);
        unstamped.metadata.annotations = None;
        assert!(Applied::default().apply(&store_of(Some(unstamped)), &api, &desired(2)).await.is_err());
    }

    #[test]
    fn derived_means_every_field_asked_for_is_there_with_its_value() {
        use serde_json::json;
        let live = json!({"spec": {"replicas": 0, "paused": false, "ports": [{"port": 80, "protocol": "TCP"}],
                                   "cpu": 1.0, "labels": {"a": "1", "b": "2"}}});
        let derived = |desired: Value| derives_from(&desired, &live);
        assert!(derived(json!({"spec": {"replicas": 0, "ports": [{"port": 80}], "labels": {"a": "1"}}})));
        assert!(derived(json!({"spec": {"cpu": 1, "selector": {}, "env": [], "name": null}})), "empty is absent");
        assert!(!derived(json!({"spec": {"replicas": 3}})), "0 replicas is a value, not unset");
        assert!(!derived(json!({"spec": {"paused": true}})));
        assert!(!derived(json!({"spec": {"ports": [{"port": 80}, {"port": 443}]}})), "a missing item");
        assert!(!derived(json!({"spec": {"ports": []}})), "an apply of no ports removes ours");
        assert!(!derived(json!({"spec": {"labels": {"c": "3"}}})), "a missing key");
        assert!(!derived(json!({"spec": {"image": "web:2"}})), "a missing field");
    }

    fn unreachable_client() -> kube::Client {
        let service = tower::service_fn(|_request: http::Request<kube::client::Body>| async {
            Err::<http::Response<kube::client::Body>, _>(std::io::Error::other("no API server in unit tests"))
        });
        kube::Client::new(service, "default")
    }
}
