//! Pure builders of the objects an App owns: Deployment, Service, Ingress, expose policy.

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec},
        core::v1::{
            Container, ContainerPort, EnvVar, EnvVarSource, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
            ResourceRequirements, SeccompProfile, SecretKeySelector, Service, ServicePort, ServiceSpec,
            TCPSocketAction,
        },
        networking::v1::{
            HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule, IngressServiceBackend,
            IngressSpec, NetworkPolicy, ServiceBackendPort,
        },
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector, ObjectMeta},
        util::intstr::IntOrString,
    },
};
use slipway_crds::{AppSpec, ExposeType, ResourceAmounts};
use std::collections::BTreeMap;

pub use crate::identity::Identity as AppIdentity;
use crate::identity::{IMAGE_PULL_POLICY, restricted_container};

fn amounts(a: Option<&ResourceAmounts>) -> Option<BTreeMap<String, Quantity>> {
    a.and_then(|a| crate::identity::cpu_and_memory(a.cpu.as_ref(), a.memory.as_ref()))
}

/// The App's Deployment. The pod passes the `restricted` Pod Security Standard (non-root,
/// no privilege escalation, all capabilities dropped, RuntimeDefault seccomp), does not mount
/// a service-account token (tenant code has no business with the API), and is ready when its
/// port accepts TCP connections. Unset CPU/memory are left to the namespace's LimitRange. A
/// rollout that makes no progress for `spec.rollout.progressDeadlineSeconds` is reported
/// failed by the Deployment controller (condition Progressing=False, ProgressDeadlineExceeded).
pub fn deployment(id: &AppIdentity<'_>, spec: &AppSpec, replicas: i32) -> Deployment {
    let resources = spec.resources.as_ref().map(|r| ResourceRequirements {
        requests: amounts(r.requests.as_ref()),
        limits: amounts(r.limits.as_ref()),
        ..Default::default()
    });
    let container = Container {
        name: "app".into(),
        image: Some(spec.image.clone()),
        image_pull_policy: Some(IMAGE_PULL_POLICY.into()),
        ports: Some(vec![ContainerPort { name: Some("http".into()), container_port: spec.port, ..Default::default() }]),
        env: (!spec.env.is_empty()).then(|| {
            spec.env
                .iter()
                .map(|e| EnvVar {
                    name: e.name.clone(),
                    value: e.value_from.is_none().then(|| e.value.clone()),
                    value_from: e.value_from.as_ref().map(|source| EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: source.secret_key_ref.name.clone(),
                            key: source.secret_key_ref.key.clone(),
                            optional: Some(false),
                        }),
                        ..Default::default()
                    }),
                })
                .collect()
        }),
        resources,
        readiness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction { port: IntOrString::Int(spec.port), ..Default::default() }),
            period_seconds: Some(5),
            ..Default::default()
        }),
        security_context: Some(restricted_container()),
        ..Default::default()
    };
    Deployment {
        metadata: id.meta(id.name),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            progress_deadline_seconds: Some(spec.progress_deadline_seconds()),
            selector: LabelSelector { match_labels: Some(id.selector()), ..Default::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(id.labels()), ..Default::default() }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    automount_service_account_token: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..Default::default() }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The App's Service: `NodePort` when asked for, else `ClusterIP` (an Ingress routes to it).
/// The port number is the container's; Kubernetes allocates the node port.
pub fn service(id: &AppIdentity<'_>, spec: &AppSpec) -> Service {
    let type_ = match spec.expose_type() {
        ExposeType::NodePort => "NodePort",
        ExposeType::ClusterIP | ExposeType::Ingress => "ClusterIP",
    };
    Service {
        metadata: id.meta(id.name),
        spec: Some(ServiceSpec {
            type_: Some(type_.into()),
            selector: Some(id.selector()),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: spec.port,
                target_port: Some(IntOrString::String("http".into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The App's Ingress, only for `expose.type: Ingress`: every path of the host to the Service,
/// served by the controller of IngressClass `class` (`None`: the cluster's default class).
pub fn ingress(id: &AppIdentity<'_>, spec: &AppSpec, class: Option<&str>) -> Option<Ingress> {
    let host = spec.expose.as_ref().filter(|e| e.type_ == ExposeType::Ingress)?.host.clone()?;
    let backend = IngressBackend {
        service: Some(IngressServiceBackend {
            name: id.name.into(),
            port: Some(ServiceBackendPort { number: Some(spec.port), ..Default::default() }),
        }),
        ..Default::default()
    };
    Some(Ingress {
        metadata: id.meta(id.name),
        spec: Some(IngressSpec {
            ingress_class_name: class.map(Into::into),
            rules: Some(vec![IngressRule {
                host: Some(host),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath { path: Some("/".into()), path_type: "Prefix".into(), backend }],
                }),
            }]),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The allow policy of an exposed App: its pods' port from any address.
pub fn expose_policy(id: &AppIdentity<'_>, spec: &AppSpec) -> Option<NetworkPolicy> {
    if spec.expose_type() == ExposeType::ClusterIP {
        return None;
    }
    Some(crate::identity::expose_policy(id, spec.port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use slipway_crds::{APP_LABEL, Expose};

    fn id() -> AppIdentity<'static> {
        AppIdentity {
            name: "web",
            namespace: "tenant-acme",
            tenant: "acme",
            owner: OwnerReference { name: "web".into(), ..Default::default() },
            label: APP_LABEL,
        }
    }

    fn spec(expose: Option<Expose>) -> AppSpec {
        AppSpec {
            image: "nginx".into(),
            port: 8080,
            replicas: Some(2),
            env: vec![],
            resources: None,
            expose,
            autoscaling: None,
            rollout: None,
            revision_history_limit: None,
        }
    }

    #[test]
    fn deployment_is_restricted_and_selects_its_pods() {
        let d = deployment(&id(), &spec(None), 2);
        let d = d.spec.unwrap();
        assert_eq!(d.replicas, Some(2));
        let pod = d.template.spec.unwrap();
        let sc = pod.containers[0].security_context.clone().unwrap();
        // "nginx" means "nginx:latest", which Kubernetes would pull on every start.
        assert_eq!(pod.containers[0].image_pull_policy.as_deref(), Some("IfNotPresent"));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(pod.automount_service_account_token, Some(false));
        let template_labels = d.template.metadata.unwrap().labels.unwrap();
        for (k, v) in d.selector.match_labels.unwrap() {
            assert_eq!(template_labels[&k], v);
        }
    }

    #[test]
    fn env_vars_take_literal_values_or_secret_keys() {
        let mut s = spec(None);
        s.env = serde_json::from_value(serde_json::json!([
            {"name": "MODE", "value": "production"},
            {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "orders-credentials", "key": "uri"}}},
        ]))
        .unwrap();
        let pod = deployment(&id(), &s, 1).spec.unwrap().template.spec.unwrap();
        let env = pod.containers[0].env.clone().unwrap();
        assert_eq!(env[0].value.as_deref(), Some("production"));
        assert!(env[0].value_from.is_none());
        assert_eq!(env[1].value, None, "a Secret's value never lands in the pod spec");
        let key = env[1].value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap();
        assert_eq!((key.name.as_str(), key.key.as_str(), key.optional), ("orders-credentials", "uri", Some(false)));
    }

    #[test]
    fn exposure_picks_service_type_ingress_and_policy() {
        let node_port = spec(Some(Expose { type_: ExposeType::NodePort, host: None }));
        assert_eq!(service(&id(), &node_port).spec.unwrap().type_.as_deref(), Some("NodePort"));
        assert!(ingress(&id(), &node_port, Some("traefik")).is_none());
        assert!(expose_policy(&id(), &node_port).is_some());
        let by_host = spec(Some(Expose { type_: ExposeType::Ingress, host: Some("shop.example.com".into()) }));
        assert_eq!(service(&id(), &by_host).spec.unwrap().type_.as_deref(), Some("ClusterIP"));
        let ingress_spec = ingress(&id(), &by_host, Some("traefik")).unwrap().spec.unwrap();
        assert_eq!(ingress_spec.ingress_class_name.as_deref(), Some("traefik"));
        let rule = &ingress_spec.rules.unwrap()[0];
        assert_eq!(rule.host.as_deref(), Some("shop.example.com"));
        let default_class = ingress(&id(), &by_host, None).unwrap().spec.unwrap();
        assert_eq!(default_class.ingress_class_name, None, "left to the cluster's default class");
        assert!(expose_policy(&id(), &spec(None)).is_none());
    }
}
