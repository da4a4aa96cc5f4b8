//! What Databases and Workspaces share: one pod run by a StatefulSet with a volume claim
//! template, and a phase derived from that StatefulSet.

use crate::conditions::condition;
use k8s_openapi::{
    api::{
        apps::v1::{StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec},
        core::v1::{
            PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSpec, PodTemplateSpec, ResourceRequirements,
            VolumeResourceRequirements,
        },
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{Condition, LabelSelector, ObjectMeta},
    },
};
use slipway_crds::ResourcePhase;
use std::collections::BTreeMap;

use crate::identity::Identity;

/// CPU and memory, requested and limited alike (Guaranteed QoS,
/// <https://kubernetes.io/docs/concepts/workloads/pods/pod-qos/#guaranteed>), so a database or
/// a workspace is never the first to be evicted and its plan footprint is exact.
pub fn guaranteed(cpu: Option<&Quantity>, memory: Option<&Quantity>) -> ResourceRequirements {
    let amounts = crate::identity::cpu_and_memory(cpu, memory);
    ResourceRequirements { requests: amounts.clone(), limits: amounts, ..Default::default() }
}

/// A single-replica StatefulSet running `pod`, with one ReadWriteOnce volume claim called
/// `volume` of `storage` (the claim is `<volume>-<name>-0`). `delete_volume` decides whether
/// Kubernetes deletes the claim with the StatefulSet
/// (<https://kubernetes.io/docs/concepts/workloads/controllers/statefulset/#persistentvolumeclaim-retention>).
pub fn stateful_set(
    id: &Identity<'_>,
    service_name: Option<String>,
    pod: PodSpec,
    volume: &str,
    storage: &Quantity,
    delete_volume: bool,
) -> StatefulSet {
    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta { name: Some(volume.into()), labels: Some(id.labels()), ..Default::default() },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), storage.clone())])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let when = if delete_volume { "Delete" } else { "Retain" };
    StatefulSet {
        metadata: id.meta(id.name),
        spec: Some(StatefulSetSpec {
            replicas: Some(1),
            service_name,
            selector: LabelSelector { match_labels: Some(id.selector()), ..Default::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(id.labels()), ..Default::default() }),
                spec: Some(PodSpec { automount_service_account_token: Some(false), ..pod }),
            },
            volume_claim_templates: Some(vec![claim]),
            persistent_volume_claim_retention_policy: Some(StatefulSetPersistentVolumeClaimRetentionPolicy {
                when_deleted: Some(when.into()),
                when_scaled: Some("Retain".into()),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Phase, reason and message of a single-instance StatefulSet, from its documented status
/// fields: Ready once the current revision's pod passes its readiness probe.
pub fn phase(sts: &StatefulSet) -> (ResourcePhase, &'static str, String) {
    let Some(status) = sts.status.as_ref() else {
        return (ResourcePhase::Pending, "StatefulSetPending", "the StatefulSet has not reported status yet".into());
    };
    let observed = status.observed_generation >= sts.metadata.generation;
    let ready = status.ready_replicas.unwrap_or(0) >= 1;
    let updated = status.update_revision.is_none() || status.update_revision == status.current_revision;
    match (observed && updated, ready) {
        (true, true) => (ResourcePhase::Ready, "InstanceReady", "the instance is running and ready".into()),
        (false, true) => (ResourcePhase::Progressing, "RollingOut", "the instance restarts with the new spec".into()),
        (_, false) => (
            ResourcePhase::Pending,
            "InstanceStarting",
            "the instance is starting (volume binding, image pull, readiness probe)".into(),
        ),
    }
}

/// The `Ready` condition for `phase`.
pub fn ready_condition(
    previous: &[Condition],
    phase: (ResourcePhase, &'static str, String),
    generation: Option<i64>,
) -> Condition {
    let (phase, reason, message) = phase;
    condition(previous, "Ready", phase == ResourcePhase::Ready, reason, message, generation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::StatefulSetStatus;

    fn sts(ready: i32, current: &str, update: &str) -> StatefulSet {
        StatefulSet {
            metadata: ObjectMeta { generation: Some(2), ..Default::default() },
            status: Some(StatefulSetStatus {
                observed_generation: Some(2),
                ready_replicas: Some(ready),
                current_revision: Some(current.into()),
                update_revision: Some(update.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn phase_follows_readiness_and_revision() {
        assert_eq!(phase(&StatefulSet::default()).0, ResourcePhase::Pending);
        assert_eq!(phase(&sts(0, "a", "a")).0, ResourcePhase::Pending);
        assert_eq!(phase(&sts(1, "a", "a")).0, ResourcePhase::Ready);
        assert_eq!(phase(&sts(1, "a", "b")).0, ResourcePhase::Progressing);
    }

    #[test]
    fn guaranteed_requests_equal_limits() {
        let r = guaranteed(Some(&Quantity("1".into())), Some(&Quantity("1Gi".into())));
        assert_eq!(r.requests, r.limits);
        assert_eq!(r.limits.unwrap()["memory"], Quantity("1Gi".into()));
    }
}
