//! `Workspace`: a personal Linux container with its own CPU, memory and home volume, reached
//! over SSH on a node port with the owner's public keys.

use crate::database::{ResourcePhase, default_storage};
use k8s_openapi::apimachinery::pkg::{
    api::resource::Quantity,
    apis::meta::v1::{Condition, Time},
};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Desired state of a Workspace.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "slipway.dev",
    version = "v1alpha1",
    kind = "Workspace",
    plural = "workspaces",
    shortname = "sws",
    category = "slipway",
    namespaced,
    status = "WorkspaceStatus",
    doc = "A Slipway Workspace: a personal container with CPU, memory and a home volume, reachable over SSH on a node port.",
    printcolumn(name = "Owner", type_ = "string", json_path = ".spec.owner"),
    printcolumn(name = "Storage", type_ = "string", json_path = ".spec.storage"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "SSH", type_ = "string", json_path = ".status.sshCommand"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = kube::core::Rule::new("self.storage == oldSelf.storage").message("storage cannot change after creation: the home volume keeps its size"))]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceSpec {
    /// Email of the person the Workspace is for: one of the tenant's owners. The access
    /// instructions are mailed there.
    #[schemars(length(min = 3, max = 254))]
    pub owner: String,
    /// CPU cores, e.g. `1`; unset means the plan's default limit. Requested and limited alike.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Quantity>,
    /// Memory, e.g. `1Gi`; unset means the plan's default limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,
    /// Size of the home volume (`/home/dev`), e.g. `5Gi`. Counts against the plan's storage total.
    #[serde(default = "default_storage")]
    pub storage: Quantity,
    /// OpenSSH public keys allowed to log in, one per entry, e.g. `ssh-ed25519 AAAA... me@laptop`.
    /// Replacing them updates the running Workspace; the home volume stays.
    #[schemars(length(min = 1, max = 20))]
    pub ssh_keys: Vec<String>,
    /// Container image; unset means Slipway's workspace image. A custom image must run sshd on
    /// port 2222 as a non-root user, reading keys from `/etc/slipway/ssh/authorized_keys`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,
}

/// Observed state of a Workspace.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceStatus {
    /// Summary of the Workspace's state.
    #[serde(default)]
    pub phase: ResourcePhase,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Address of a node to connect to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The SSH node port allocated by Kubernetes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_port: Option<i32>,
    /// The user to log in as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The exact command to connect: `ssh -p PORT USER@HOST`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_command: Option<String>,
    /// `Ready`, with `observedGeneration`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// When the owner was emailed that the Workspace is ready; set once. Owned by the field
    /// manager `slipway-notifier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_notified_at: Option<Time>,
}
