//! `App`: a container image run as a Deployment with a Service and, optionally, an Ingress.

use k8s_openapi::apimachinery::pkg::{
    api::resource::Quantity,
    apis::meta::v1::{Condition, Time},
};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of an App.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "slipway.dev",
    version = "v1alpha1",
    kind = "App",
    plural = "apps",
    shortname = "sapp",
    category = "slipway",
    namespaced,
    status = "AppStatus",
    // The scale subresource (`kubectl scale app/NAME --replicas=N`, `PUT .../apps/{a}/scale`):
    // a Scale's spec.replicas is the App's, its status.replicas the App's desired count. The
    // webhook registers for `apps/scale` too, so scaling is judged like any other change.
    // The label selector lets a HorizontalPodAutoscaler find the App's pods.
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    doc = "A Slipway App: a container image run with replicas behind a Service, optionally exposed on a NodePort or an Ingress.",
    printcolumn(name = "Image", type_ = "string", json_path = ".spec.image"),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "Available", type_ = "integer", json_path = ".status.availableReplicas"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "URL", type_ = "string", json_path = ".status.url"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct AppSpec {
    /// Container image reference, e.g. `nginxinc/nginx-unprivileged:1.27`.
    #[schemars(length(min = 1, max = 512))]
    pub image: String,
    /// TCP port the container listens on; the Service exposes the same port.
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Number of pods. Unset means the plan's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: Option<i32>,
    /// Environment variables given to the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub env: Vec<EnvVar>,
    /// CPU and memory per pod. Unset amounts take the plan's defaults (through the namespace's LimitRange).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ComputeResources>,
    /// How the App is reached. Unset means `ClusterIP` (inside the cluster only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expose: Option<Expose>,
    /// Scales the App between `minReplicas` and `maxReplicas` on CPU or memory use, through a
    /// HorizontalPodAutoscaler. The plan counts `maxReplicas` against the tenant's totals, so
    /// scaling up can never take the tenant past them. Removing it keeps the current count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
    /// How a rollout of a new revision is watched, and what happens when it fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutPolicy>,
    /// How many revisions (changes of what runs, not of the replica count) to keep for
    /// rollback, the newest ones. Unset means 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub revision_history_limit: Option<i32>,
}

/// An App's autoscaling: an `autoscaling/v2` HorizontalPodAutoscaler on the App's scale
/// subresource (<https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/>).
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.minReplicas) || self.minReplicas <= self.maxReplicas").message("autoscaling.minReplicas must not exceed maxReplicas"))]
#[x_kube(validation = kube::core::Rule::new("has(self.targetCPUUtilizationPercentage) || has(self.targetMemoryUtilizationPercentage)").message("autoscaling needs targetCPUUtilizationPercentage or targetMemoryUtilizationPercentage"))]
pub struct Autoscaling {
    /// Fewest pods. Unset means 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub min_replicas: Option<i32>,
    /// Most pods; at most the plan's `maxReplicas`, and counted in full against the tenant's
    /// CPU and memory totals.
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,
    /// Average CPU use to aim at, in percent of the pods' CPU requests.
    #[serde(default, rename = "targetCPUUtilizationPercentage", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub target_cpu_utilization_percentage: Option<i32>,
    /// Average memory use to aim at, in percent of the pods' memory requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub target_memory_utilization_percentage: Option<i32>,
    /// Seconds of lower recommendations before scaling down (the HPA's
    /// `behavior.scaleDown.stabilizationWindowSeconds`). Unset means Kubernetes' 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub scale_down_stabilization_seconds: Option<i32>,
}

/// How an App's rollouts are watched.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RolloutPolicy {
    /// Seconds a rollout may go without progress before it is `Failed` with reason
    /// `ProgressDeadlineExceeded` (the Deployment's `progressDeadlineSeconds`). Unset means 120.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 3600))]
    pub progress_deadline_seconds: Option<i32>,
    /// Whether a failed rollout goes back to the last healthy revision by itself. Unset means
    /// the plan's default (`defaults.autoRollback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_rollback: Option<bool>,
}

/// Seconds a rollout may go without progress when `spec.rollout.progressDeadlineSeconds` is
/// unset (Kubernetes' own default is 600; an App's user wants to hear sooner).
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: i32 = 120;

/// Revisions kept per App when `spec.revisionHistoryLimit` is unset (as a Deployment's
/// `revisionHistoryLimit`, <https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#revision-history-limit>).
pub const DEFAULT_REVISION_HISTORY_LIMIT: i32 = 10;

fn default_port() -> i32 {
    8080
}

/// One environment variable: a literal `value`, or `valueFrom` a key of a Secret in the
/// tenant's namespace, e.g. `{"name": "DATABASE_URL", "valueFrom": {"secretKeyRef":
/// {"name": "orders-credentials", "key": "uri"}}}` (a Database's credentials), as in a
/// Kubernetes container (<https://kubernetes.io/docs/tasks/inject-data-application/distribute-credentials-secure/>).
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    /// Variable name, a C identifier.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub name: String,
    /// Value; empty is allowed. Not together with `valueFrom`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    /// Where the value comes from instead of `value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvVarSource>,
}

/// The source of an environment variable's value.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EnvVarSource {
    /// A key of a Secret in the App's namespace; the pod does not start while it is missing.
    pub secret_key_ref: SecretKeyRef,
}

/// A key of a Secret in the same namespace.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct SecretKeyRef {
    /// The Secret's name (a DNS subdomain, RFC 1123).
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub name: String,
    /// The key within the Secret's data.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// Requests and limits of one pod, in Kubernetes quantities.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
pub struct ComputeResources {
    /// What the scheduler reserves for the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<ResourceAmounts>,
    /// The most the pod may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ResourceAmounts>,
}

/// CPU (e.g. `250m`) and memory (e.g. `256Mi`).
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
pub struct ResourceAmounts {
    /// CPU cores, e.g. `500m` or `1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Quantity>,
    /// Memory bytes, e.g. `256Mi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,
}

/// How an App is reached.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = kube::core::Rule::new("self.type == 'Ingress' ? has(self.host) : !has(self.host)").message("expose.host is required for type Ingress and not allowed otherwise"))]
pub struct Expose {
    /// `ClusterIP` (in-cluster only), `NodePort` (a port on every node) or `Ingress` (HTTP by host name).
    #[serde(rename = "type")]
    pub type_: ExposeType,
    /// Host name served by the Ingress, e.g. `shop.example.com`. Only for type `Ingress`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub host: Option<String>,
}

/// The kinds of exposure an App may ask for (a plan may allow only some).
#[derive(JsonSchema, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExposeType {
    /// Reachable inside the cluster only.
    ClusterIP,
    /// Reachable on a port of every node.
    NodePort,
    /// Reachable over HTTP by host name through the cluster's ingress controller.
    Ingress,
}

impl std::fmt::Display for ExposeType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ExposeType::ClusterIP => "ClusterIP",
            ExposeType::NodePort => "NodePort",
            ExposeType::Ingress => "Ingress",
        })
    }
}

impl AppSpec {
    /// The exposure asked for, `ClusterIP` when unset.
    pub fn expose_type(&self) -> ExposeType {
        self.expose.as_ref().map_or(ExposeType::ClusterIP, |e| e.type_)
    }

    /// What runs: the spec without the fields that say how many pods run, how rollouts are
    /// watched and how history is kept (`replicas`, `autoscaling`, `rollout`,
    /// `revisionHistoryLimit`). A change of the template is a new revision; scaling is not.
    pub fn template(&self) -> AppSpec {
        AppSpec { replicas: None, autoscaling: None, rollout: None, revision_history_limit: None, ..self.clone() }
    }

    /// This spec running `template` (a revision's) instead, keeping its own replica count,
    /// autoscaling, rollout policy and history limit: what a rollback to that revision sets.
    pub fn running(&self, template: &AppSpec) -> AppSpec {
        AppSpec {
            replicas: self.replicas,
            autoscaling: self.autoscaling.clone(),
            rollout: self.rollout.clone(),
            revision_history_limit: self.revision_history_limit,
            ..template.template()
        }
    }

    /// Seconds a rollout may go without progress (see [`RolloutPolicy`]).
    pub fn progress_deadline_seconds(&self) -> i32 {
        self.rollout.as_ref().and_then(|r| r.progress_deadline_seconds).unwrap_or(DEFAULT_PROGRESS_DEADLINE_SECONDS)
    }

    /// Revisions to keep (see [`DEFAULT_REVISION_HISTORY_LIMIT`]).
    pub fn revision_history_limit(&self) -> usize {
        usize::try_from(self.revision_history_limit.unwrap_or(DEFAULT_REVISION_HISTORY_LIMIT)).unwrap_or(1).max(1)
    }
}

/// Observed state of an App.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AppStatus {
    /// Summary of the App's state.
    #[serde(default)]
    pub phase: AppPhase,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pods wanted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// The App's pods' label selector, e.g. `slipway.dev/app=web` (for the scale subresource:
    /// a HorizontalPodAutoscaler reads its pods' metrics through it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Pods available (ready for at least `minReadySeconds`).
    #[serde(default)]
    pub available_replicas: i32,
    /// The node port allocated by Kubernetes for a `NodePort` App.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_port: Option<i32>,
    /// Where the App answers: `http://<node>:<nodePort>`, `http://<host>/`, or the in-cluster Service URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `Ready` and `Progressing`, each with `observedGeneration`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The number of the revision the spec asks for: its ControllerRevision is `<app>-<number>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// The key of that revision's template (its label `slipway.dev/template-key`), so a
    /// reconcile that changes nothing need not read the revisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_key: Option<String>,
    /// The revision whose failed rollout the owners were emailed about; set once per revision,
    /// so that email is sent once. Owned by the field manager `slipway-notifier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_notified_revision: Option<i64>,
    /// When the owners were emailed that the App is ready; set once, so the email is sent once.
    /// Owned by the field manager `slipway-notifier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_notified_at: Option<Time>,
}

/// Summary phase of an App, derived from its Deployment.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AppPhase {
    /// Nothing is running yet.
    #[default]
    Pending,
    /// A rollout is under way.
    Progressing,
    /// Every wanted replica is available with the current spec.
    Ready,
    /// The rollout failed (e.g. its progress deadline passed).
    Failed,
}
