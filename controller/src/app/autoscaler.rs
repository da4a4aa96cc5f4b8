//! The HorizontalPodAutoscaler of an App with `spec.autoscaling` (pure builder).
//!
//! It targets the App itself, through its scale subresource, not the Deployment: the
//! autoscaler then writes the App's `spec.replicas`, which the controller passes on to the
//! Deployment as for any scaling. So there is one owner of the replica count, every change of
//! it is judged by the admission webhook (the plan counts `maxReplicas` already, so it always
//! fits), and removing autoscaling keeps the count the autoscaler reached.

use super::resources::AppIdentity;
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HPAScalingRules, HorizontalPodAutoscaler, HorizontalPodAutoscalerBehavior,
    HorizontalPodAutoscalerSpec, MetricSpec, MetricTarget, ResourceMetricSource,
};
use kube::Resource;
use slipway_crds::{App, AppSpec};

/// The App's autoscaler, when its spec asks for one.
pub fn autoscaler(id: &AppIdentity<'_>, spec: &AppSpec) -> Option<HorizontalPodAutoscaler> {
    let a = spec.autoscaling.as_ref()?;
    let utilization = |resource: &str, percent: Option<i32>| {
        percent.map(|p| MetricSpec {
            type_: "Resource".into(),
            resource: Some(ResourceMetricSource {
                name: resource.into(),
                target: MetricTarget {
                    type_: "Utilization".into(),
                    average_utilization: Some(p),
                    ..Default::default()
                },
            }),
            ..Default::default()
        })
    };
    let metrics: Vec<MetricSpec> = [
        utilization("cpu", a.target_cpu_utilization_percentage),
        utilization("memory", a.target_memory_utilization_percentage),
    ]
    .into_iter()
    .flatten()
    .collect();
    let behavior = a.scale_down_stabilization_seconds.map(|seconds| HorizontalPodAutoscalerBehavior {
        scale_down: Some(HPAScalingRules { stabilization_window_seconds: Some(seconds), ..Default::default() }),
        ..Default::default()
    });
    Some(HorizontalPodAutoscaler {
        metadata: id.meta(id.name),
        spec: HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some(App::api_version(&()).into_owned()),
                kind: App::kind(&()).into_owned(),
                name: id.name.into(),
            },
            min_replicas: Some(a.min_replicas.unwrap_or(1)),
            max_replicas: a.max_replicas,
            metrics: Some(metrics),
            behavior,
        },
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use slipway_crds::Autoscaling;

    #[test]
    fn the_autoscaler_scales_the_app_itself_within_its_bounds() {
        let id = AppIdentity {
            name: "web",
            namespace: "tenant-acme",
            tenant: "acme",
            owner: OwnerReference { name: "web".into(), uid: "u1".into(), ..Default::default() },
            label: slipway_crds::APP_LABEL,
        };
        let mut spec = AppSpec {
            image: "nginx".into(),
            port: 8080,
            replicas: Some(1),
            env: vec![],
            resources: None,
            expose: None,
            autoscaling: None,
            rollout: None,
            revision_history_limit: None,
        };
        assert!(autoscaler(&id, &spec).is_none());
        spec.autoscaling = Some(Autoscaling {
            max_replicas: 4,
            target_cpu_utilization_percentage: Some(50),
            scale_down_stabilization_seconds: Some(15),
            ..Default::default()
        });
        let hpa = autoscaler(&id, &spec).unwrap();
        let s = hpa.spec;
        assert_eq!(s.scale_target_ref.api_version.as_deref(), Some("slipway.dev/v1alpha1"));
        assert_eq!((s.scale_target_ref.kind.as_str(), s.scale_target_ref.name.as_str()), ("App", "web"));
        assert_eq!((s.min_replicas, s.max_replicas), (Some(1), 4));
        let metrics = s.metrics.unwrap();
        assert_eq!(metrics.len(), 1);
        let cpu = metrics[0].resource.as_ref().unwrap();
        assert_eq!((cpu.name.as_str(), cpu.target.average_utilization), ("cpu", Some(50)));
        assert_eq!(s.behavior.unwrap().scale_down.unwrap().stabilization_window_seconds, Some(15));
        assert_eq!(hpa.metadata.owner_references.unwrap()[0].uid, "u1");
    }
}
