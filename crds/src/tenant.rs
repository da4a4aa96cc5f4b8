//! `Tenant`: a cluster-scoped unit of isolation that owns one namespace.

use k8s_openapi::apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::Condition};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Desired state of a tenant: who owns it and which plan limits it.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "slipway.dev",
    version = "v1alpha1",
    kind = "Tenant",
    plural = "tenants",
    shortname = "tnt",
    category = "slipway",
    status = "TenantStatus",
    doc = "A Slipway tenant: an isolated namespace with RBAC, quota, limits and network policy derived from its plan.",
    printcolumn(name = "Plan", type_ = "string", json_path = ".spec.plan"),
    printcolumn(name = "Namespace", type_ = "string", json_path = ".status.namespace"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct TenantSpec {
    /// People who own the tenant; they receive its emails. At least one.
    #[schemars(length(min = 1, max = 20))]
    pub owners: Vec<TenantOwner>,
    /// The other people of the tenant, with their role (owners are in `owners`). Each may
    /// act in the tenant's namespace as its role allows, and own Workspaces there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 200))]
    pub members: Vec<TenantMember>,
    /// Name of a plan from the plan catalogue (`policies/plans.yaml`), e.g. `free`.
    #[schemars(length(min = 1, max = 63))]
    pub plan: String,
    /// Per-tenant exceptions to the plan's limits; unset fields keep the plan's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitOverrides>,
}

/// A tenant owner, identified by the email address they signed up with.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TenantOwner {
    /// Email address, also the Kubernetes user name the API impersonates for this person.
    #[schemars(length(min = 3, max = 254))]
    pub email: String,
}

/// Someone of the tenant besides its owners.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TenantMember {
    /// Email address, also the Kubernetes user name the API impersonates for this person.
    #[schemars(length(min = 3, max = 254))]
    pub email: String,
    /// What they may do.
    pub role: MemberRole,
}

/// The role of a [`TenantMember`]. Each role is a Kubernetes group,
/// `slipway:tenant:<tenant>:<role>` (see [`crate::role_group`]), bound to what it may do.
#[derive(schemars::JsonSchema, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MemberRole {
    /// Manages members and the tenant's volumes, besides what members do.
    Admin,
    /// Manages Apps, Databases and Workspaces, and reads what runs.
    Member,
}

/// Overrides of a plan's limits for one tenant. Every field is optional.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LimitOverrides {
    /// Maximum number of Apps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_apps: Option<u32>,
    /// Maximum number of Databases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_databases: Option<u32>,
    /// Maximum number of Workspaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_workspaces: Option<u32>,
    /// Maximum replicas of one App.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_replicas: Option<u32>,
    /// Total CPU of the tenant (requests and limits), e.g. `4` or `1500m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Quantity>,
    /// Total memory of the tenant (requests and limits), e.g. `8Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,
    /// Total persistent storage requested by the tenant, e.g. `20Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Quantity>,
}

/// Observed state of a tenant.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TenantStatus {
    /// The namespace that holds the tenant's resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: the namespace and its guard rails are in place.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
