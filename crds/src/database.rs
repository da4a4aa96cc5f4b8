//! `Database`: a managed PostgreSQL, MySQL, MariaDB or Redis instance with its own storage and
//! generated credentials, run as a single-replica StatefulSet.

use k8s_openapi::apimachinery::pkg::{
    api::resource::Quantity,
    apis::meta::v1::{Condition, Time},
};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of a Database.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "slipway.dev",
    version = "v1alpha1",
    kind = "Database",
    plural = "databases",
    shortname = "sdb",
    category = "slipway",
    namespaced,
    status = "DatabaseStatus",
    doc = "A Slipway Database: an engine instance (PostgreSQL, MySQL, MariaDB or Redis) with its own storage and generated credentials.",
    printcolumn(name = "Engine", type_ = "string", json_path = ".spec.engine"),
    printcolumn(name = "Version", type_ = "string", json_path = ".spec.version"),
    printcolumn(name = "Storage", type_ = "string", json_path = ".spec.storage"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Host", type_ = "string", json_path = ".status.host"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = kube::core::Rule::new("self.engine == oldSelf.engine && self.version == oldSelf.version && self.storage == oldSelf.storage").message("engine, version and storage cannot change after creation; create a new Database and move the data"))]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSpec {
    /// The engine: `postgres`, `mysql`, `mariadb` or `redis`.
    pub engine: DatabaseEngine,
    /// Major version of the engine, as the plan offers it (e.g. `17` for PostgreSQL, `8.4` for MySQL).
    #[schemars(length(min = 1, max = 16), regex(pattern = r"^[0-9]+(\.[0-9]+)?$"))]
    pub version: String,
    /// Size of the data volume, e.g. `1Gi`. Counts against the plan's storage total.
    #[serde(default = "default_storage")]
    pub storage: Quantity,
    /// CPU cores of the instance, e.g. `500m`; unset means the plan's default limit. Requested
    /// and limited alike (Guaranteed QoS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Quantity>,
    /// Memory of the instance, e.g. `512Mi`; unset means the plan's default limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,
    /// How the Database is reached. Unset means `ClusterIP` (inside the cluster only);
    /// `NodePort` also opens a port on every node, where the plan allows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expose: Option<DatabaseExposure>,
    /// What deleting the Database does to its data volume and credentials Secret: `Retain`
    /// (the default) keeps both, so a Database re-created with the same name finds its data;
    /// `Delete` removes them.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// Volume size of a Database or Workspace whose spec names none.
pub const DEFAULT_STORAGE: &str = "1Gi";

pub(crate) fn default_storage() -> Quantity {
    Quantity(DEFAULT_STORAGE.into())
}

/// The engines Slipway runs.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseEngine {
    /// PostgreSQL (image `postgres`).
    Postgres,
    /// MySQL (image `mysql`).
    Mysql,
    /// MariaDB (image `mariadb`).
    Mariadb,
    /// Redis (image `redis`).
    Redis,
}

impl DatabaseEngine {
    /// The engine's name as written in specs and plans: `postgres`, `mysql`, `mariadb`, `redis`.
    pub fn as_str(self) -> &'static str {
        match self {
            DatabaseEngine::Postgres => "postgres",
            DatabaseEngine::Mysql => "mysql",
            DatabaseEngine::Mariadb => "mariadb",
            DatabaseEngine::Redis => "redis",
        }
    }
}

impl std::fmt::Display for DatabaseEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a Database is reached.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct DatabaseExposure {
    /// `ClusterIP` (in-cluster only) or `NodePort` (also a port on every node, for desktop SQL clients).
    #[serde(rename = "type")]
    pub type_: DatabaseExposeType,
}

/// The exposures a Database may ask for.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DatabaseExposeType {
    /// Reachable inside the cluster only.
    #[default]
    ClusterIP,
    /// Also reachable on a port of every node.
    NodePort,
}

/// What happens to a Database's data when the Database is deleted.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeletionPolicy {
    /// Keep the data volume and the credentials Secret (delete them by hand when done).
    #[default]
    Retain,
    /// Delete the data volume and the credentials Secret with the Database.
    Delete,
}

impl DatabaseSpec {
    /// Whether the Database asks for a node port.
    pub fn node_port(&self) -> bool {
        self.expose.as_ref().is_some_and(|e| e.type_ == DatabaseExposeType::NodePort)
    }
}

/// Observed state of a Database.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseStatus {
    /// Summary of the Database's state.
    #[serde(default)]
    pub phase: ResourcePhase,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// In-cluster host name, e.g. `orders.tenant-acme.svc.cluster.local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// In-cluster port, e.g. `5432`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// The node port allocated by Kubernetes when `spec.expose.type` is `NodePort`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_port: Option<i32>,
    /// Name of the Secret holding `username`, `password`, `host`, `port`, `dbname` and `uri`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// `Ready`, with `observedGeneration`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// When the owners were emailed that the Database is ready; set once, so the email is sent
    /// once. Owned by the field manager `slipway-notifier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_notified_at: Option<Time>,
}

/// Summary phase of a Database or Workspace, derived from its StatefulSet.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ResourcePhase {
    /// Nothing is running yet (volume binding, image pull, start-up).
    #[default]
    Pending,
    /// The instance runs and passes its readiness probe.
    Ready,
    /// A change is rolling out (the instance restarts with the new spec).
    Progressing,
}
