//! Slipway's custom resources, API group `slipway.dev`, version `v1alpha1`.
//!
//! ```text
//!   Tenant (cluster-scoped) ──owns──▶ Namespace tenant-<name>
//!                                       ├── App (namespaced) ──owns──▶ Deployment, Service, Ingress
//!                                       ├── Database ──owns──▶ StatefulSet (+ PVC), Services, Secret
//!                                       └── Workspace ──owns──▶ StatefulSet (+ PVC), SSH Service, Secret
//! ```
//!
//! The Rust types are the source of truth: the YAML in `crds/slipway.dev.yaml` is generated
//! from them with `slipway crds > crds/slipway.dev.yaml` (and copied the same way into the Helm
//! chart's `charts/slipway/crds/`), and a test fails when either is stale.
#![forbid(unsafe_code)]
// kube-derive takes one `printcolumn(...)` per column; clippy reads the repeats as duplicates.
#![allow(clippy::duplicated_attributes)]

mod app;
mod database;
mod kind;
pub mod revision;
mod tenant;
mod workspace;

pub use app::{
    App, AppPhase, AppSpec, AppStatus, Autoscaling, ComputeResources, DEFAULT_PROGRESS_DEADLINE_SECONDS,
    DEFAULT_REVISION_HISTORY_LIMIT, EnvVar, EnvVarSource, Expose, ExposeType, ResourceAmounts, RolloutPolicy,
    SecretKeyRef,
};
pub use database::{
    DEFAULT_STORAGE, Database, DatabaseEngine, DatabaseExposeType, DatabaseExposure, DatabaseSpec, DatabaseStatus,
    DeletionPolicy, ResourcePhase,
};
pub use kind::Kind;
pub use tenant::{LimitOverrides, MemberRole, Tenant, TenantMember, TenantOwner, TenantSpec, TenantStatus};
pub use workspace::{Workspace, WorkspaceSpec, WorkspaceStatus};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client, CustomResourceExt,
    api::{Patch, PatchParams},
};

/// The API group of every Slipway resource.
pub const GROUP: &str = "slipway.dev";

/// The Tenant's finalizer: Kubernetes keeps a deleted Tenant (and so its name) until the
/// controller has removed it, which it does once the tenant's namespace is gone. The API
/// creates Tenants with it already set (one write fewer per tenant); the controller adds it to
/// those created without it (`kubectl apply`).
pub const TENANT_FINALIZER: &str = "slipway.dev/namespace";

/// Label put on every object that belongs to a tenant; its value is the tenant's name.
pub const TENANT_LABEL: &str = "slipway.dev/tenant";

/// Label with which a writer says it has filled in the plan's defaults, the tenant label and
/// itself as author ([`revision::CHANGED_BY_ANNOTATION`]) on a new object, as the API does:
/// kube-apiserver then skips the mutating webhook for the CREATE (an `objectSelector`, which it
/// checks far more cheaply than a match condition), and the validating webhook refuses such an
/// object that lacks any of them. Its only value is [`DEFAULTS_FILLED`].
pub const DEFAULTS_LABEL: &str = "slipway.dev/defaults";

/// The value of [`DEFAULTS_LABEL`].
pub const DEFAULTS_FILLED: &str = "filled";

/// Label put on the workload objects of an App; its value is the App's name.
pub const APP_LABEL: &str = "slipway.dev/app";

/// Label put on the objects of a Database; its value is the Database's name.
pub const DATABASE_LABEL: &str = "slipway.dev/database";

/// Label put on the objects of a Workspace; its value is the Workspace's name.
pub const WORKSPACE_LABEL: &str = "slipway.dev/workspace";

/// The user extra the API sets (by impersonation) on the requests it makes for its users, so
/// the admission webhook can tell them from kubectl's: the API audits its own calls. Only a
/// holder of the `impersonate` verb on `userextras/slipway.dev/via` can set it
/// (<https://kubernetes.io/docs/reference/access-authn-authz/authentication/#user-impersonation>).
pub const VIA_EXTRA: &str = "slipway.dev/via";

/// The value of [`VIA_EXTRA`] on the API's requests.
pub const VIA_API: &str = "api";

/// The Kubernetes group whose members may act in a tenant's namespace: `slipway:tenant:<name>`.
/// The API impersonates users with this group, and the tenant's RoleBinding names it.
pub fn tenant_group(tenant: &str) -> String {
    format!("slipway:tenant:{tenant}")
}

/// The Kubernetes group of the tenant's people with `role` (`owner`, `admin`, `member`):
/// `slipway:tenant:<name>:<role>`. The API impersonates each person with it besides
/// [`tenant_group`]; the tenant's RBAC binds each role's rights to it.
pub fn role_group(tenant: &str, role: &str) -> String {
    format!("slipway:tenant:{tenant}:{role}")
}

/// The namespace that holds a tenant's resources: `tenant-<name>`.
///
/// The prefix keeps tenant names from ever colliding with system namespaces such as `kube-system`.
pub fn tenant_namespace(tenant: &str) -> String {
    format!("tenant-{tenant}")
}

#[cfg(test)]
mod tenant_names {
    #[test]
    fn a_tenants_namespace_names_it_back() {
        assert_eq!(super::tenant_named_by(&super::tenant_namespace("shop")), Some("shop"));
        assert_eq!(super::tenant_named_by("kube-system"), None);
    }
}

/// The tenant whose name `namespace` carries (`tenant-<name>`, see [`tenant_namespace`]), for
/// logs and traces. Not proof of ownership: that is [`namespace_belongs_to`].
pub fn tenant_named_by(namespace: &str) -> Option<&str> {
    namespace.strip_prefix("tenant-")
}

/// Whether `namespace` is `tenant`'s own: it carries a controller owner reference to this very
/// Tenant object (its UID), set when the Tenant's controller created it. A namespace of the
/// same name left by an earlier Tenant, or made by anyone else, is not, and must never be
/// used for this Tenant: it may hold another tenant's data.
pub fn namespace_belongs_to(namespace: &k8s_openapi::api::core::v1::Namespace, tenant: &Tenant) -> bool {
    let uid = tenant.metadata.uid.as_deref();
    uid.is_some()
        && namespace
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.controller == Some(true) && Some(o.uid.as_str()) == uid)
}

/// Every CustomResourceDefinition Slipway serves, in installation order.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![Tenant::crd(), App::crd(), Database::crd(), Workspace::crd()]
}

/// The CRDs as one multi-document YAML stream, exactly as committed in `crds/slipway.dev.yaml`.
pub fn render_yaml() -> String {
    let mut out = String::from("# Generated by `slipway crds` from the Rust types in crds/src. Do not edit.\n");
    for crd in all() {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd).expect("a CRD always serializes to YAML"));
    }
    out
}

/// Server-side applies every CRD with the field manager `slipway-crds`, then waits until the
/// apiserver reports each one `Established` (at most 30 s), so callers can use them at once.
///
/// # Errors
/// Any Kubernetes API error, or a timeout while waiting for `Established`.
pub async fn install(client: &Client) -> Result<(), kube::Error> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply("slipway-crds").force();
    for crd in all() {
        let name = crd.metadata.name.clone().expect("derived CRDs are named");
        api.patch(&name, &params, &Patch::Apply(&crd)).await?;
        let established = kube::runtime::wait::conditions::is_crd_established();
        kube::runtime::wait::await_condition(api.clone(), &name, established)
            .await
            .map_err(|e| kube::Error::Service(Box::new(e)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed YAML, and the Helm chart's copy, must be what the Rust types generate;
    /// regenerate them with `cargo run -- crds | tee crds/slipway.dev.yaml charts/slipway/crds/slipway.dev.yaml`.
    #[test]
    fn committed_yaml_is_up_to_date() {
        let committed = [
            ("crds/slipway.dev.yaml", include_str!("../slipway.dev.yaml")),
            ("charts/slipway/crds/slipway.dev.yaml", include_str!("../../charts/slipway/crds/slipway.dev.yaml")),
        ];
        for (path, yaml) in committed {
            assert!(
                yaml == render_yaml(),
                "{path} is stale: run `cargo run -- crds | tee crds/slipway.dev.yaml charts/slipway/crds/slipway.dev.yaml`"
            );
        }
    }

    #[test]
    fn a_namespace_belongs_to_the_tenant_its_controller_reference_names() {
        use k8s_openapi::{api::core::v1::Namespace, apimachinery::pkg::apis::meta::v1::OwnerReference};
        let mut tenant =
            Tenant::new("acme", TenantSpec { owners: vec![], members: vec![], plan: "free".into(), limits: None });
        let owner = |uid: &str, controller| OwnerReference { uid: uid.into(), controller, ..Default::default() };
        let mut ns = Namespace::default();
        assert!(!namespace_belongs_to(&ns, &tenant), "a Tenant without a UID owns nothing");
        tenant.metadata.uid = Some("new".into());
        assert!(!namespace_belongs_to(&ns, &tenant), "an unowned namespace is not adopted");
        ns.metadata.owner_references = Some(vec![owner("old", Some(true)), owner("new", None)]);
        assert!(!namespace_belongs_to(&ns, &tenant), "another Tenant's, or ours only as a plain owner");
        ns.metadata.owner_references = Some(vec![owner("new", Some(true))]);
        assert!(namespace_belongs_to(&ns, &tenant));
    }

    #[test]
    fn names_follow_conventions() {
        assert_eq!(tenant_namespace("acme"), "tenant-acme");
        assert_eq!(tenant_group("acme"), "slipway:tenant:acme");
        let app = App::crd();
        assert_eq!(app.spec.names.short_names.as_deref(), Some(&["sapp".to_string()][..]));
        assert_eq!(app.spec.names.categories.as_deref(), Some(&["slipway".to_string()][..]));
    }
}
