//! Names, labels and ownership shared by every object the controller makes for one custom
//! resource, and the pod settings every tenant workload shares.

use k8s_openapi::{
    api::{
        core::v1::{Capabilities, PodSecurityContext, SeccompProfile, SecurityContext},
        networking::v1::{
            IPBlock, NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
        },
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference},
        util::intstr::IntOrString,
    },
};
use slipway_crds::TENANT_LABEL;
use std::collections::BTreeMap;

/// Who the owned objects belong to.
pub struct Identity<'a> {
    /// The custom resource's name; the main owned objects have the same name.
    pub name: &'a str,
    /// Its namespace.
    pub namespace: &'a str,
    /// The tenant the namespace belongs to.
    pub tenant: &'a str,
    /// Controller owner reference to the custom resource, so deleting it deletes them.
    pub owner: OwnerReference,
    /// The label naming the resource on its objects, e.g. `slipway.dev/app`.
    pub label: &'static str,
}

impl Identity<'_> {
    /// The pod selector: `<label>: <name>`.
    pub fn selector(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(self.label.to_string(), self.name.to_string())])
    }

    /// Labels of every owned object: the selector, the tenant, and the recommended
    /// `app.kubernetes.io` labels.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.selector();
        labels.insert(TENANT_LABEL.into(), self.tenant.into());
        labels.insert("app.kubernetes.io/name".into(), self.name.into());
        labels.insert("app.kubernetes.io/managed-by".into(), "slipway".into());
        labels
    }

    /// Metadata of an owned object called `name`, owned by the resource.
    pub fn meta(&self, name: &str) -> ObjectMeta {
        ObjectMeta { owner_references: Some(vec![self.owner.clone()]), ..self.unowned_meta(name) }
    }

    /// Metadata of an object that must outlive the resource (no owner reference).
    pub fn unowned_meta(&self, name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some(self.namespace.into()),
            labels: Some(self.labels()),
            ..Default::default()
        }
    }
}

/// CPU and memory as a container's resource map; `None` when neither is set.
pub fn cpu_and_memory(cpu: Option<&Quantity>, memory: Option<&Quantity>) -> Option<BTreeMap<String, Quantity>> {
    let map: BTreeMap<String, Quantity> =
        [("cpu", cpu), ("memory", memory)].into_iter().filter_map(|(k, v)| Some((k.to_string(), v?.clone()))).collect();
    (!map.is_empty()).then_some(map)
}

/// Pull policy of every container Slipway runs: pull only when the node lacks the image,
/// whatever the tag. Kubernetes would pull `:latest` (or untagged) images on every start;
/// Slipway treats an image reference as a release instead: a new build gets a new tag (or
/// digest), which changes the spec and rolls the pods out, and a restart or a rescheduled
/// pod runs exactly what ran before. It also lets nodes run images they were given without
/// a registry (the dev cluster's, hack/images.sh).
/// (<https://kubernetes.io/docs/concepts/containers/images/#image-pull-policy>)
pub const IMAGE_PULL_POLICY: &str = "IfNotPresent";

/// A container security context that passes the `restricted` Pod Security Standard
/// (<https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted>).
pub fn restricted_container() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Default::default() }),
        run_as_non_root: Some(true),
        seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..Default::default() }),
        ..Default::default()
    }
}

/// A `restricted` pod security context running as `uid` (also the group and the volumes'
/// fsGroup, so the process owns its data volume).
pub fn restricted_pod_as(uid: i64) -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(uid),
        run_as_group: Some(uid),
        fs_group: Some(uid),
        seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..Default::default() }),
        ..Default::default()
    }
}

/// Name of the NetworkPolicy that opens an exposed resource's port to traffic from outside
/// the namespace (the tenant's default deny would drop NodePort and Ingress traffic otherwise).
pub fn expose_policy_name(name: &str) -> String {
    format!("slipway-expose-{name}")
}

/// The allow policy of an exposed resource: its pods' TCP `port` from any address.
pub fn expose_policy(id: &Identity<'_>, port: i32) -> NetworkPolicy {
    NetworkPolicy {
        metadata: id.meta(&expose_policy_name(id.name)),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector { match_labels: Some(id.selector()), ..Default::default() }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![NetworkPolicyPeer {
                    ip_block: Some(IPBlock { cidr: "0.0.0.0/0".into(), ..Default::default() }),
                    ..Default::default()
                }]),
                ports: Some(vec![NetworkPolicyPort {
                    port: Some(IntOrString::Int(port)),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
            }]),
            ..Default::default()
        }),
    }
}
