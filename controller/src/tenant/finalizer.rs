//! The Tenant's finalizer, `slipway.dev/namespace`: Kubernetes keeps a deleted Tenant (and so
//! its name) until the controller has removed it, which it does once the tenant's namespace is
//! gone. kube-runtime's `finalizer()` helper is not used because it removes the finalizer as
//! soon as a cleanup pass succeeds, and ours must wait, without failing, for the namespace
//! controller to empty and delete the namespace.

use crate::Result;
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};
use serde_json::json;
use slipway_crds::Tenant;

/// The finalizer's name.
pub const NAME: &str = slipway_crds::TENANT_FINALIZER;

/// Whether `tenant` carries the finalizer.
pub fn present(tenant: &Tenant) -> bool {
    tenant.finalizers().iter().any(|f| f == NAME)
}

/// Applies a JSON patch (RFC 6902) whose `test` operations guard against concurrent changes:
/// a lost race fails the reconcile, which retries on fresh data.
async fn patch(api: &Api<Tenant>, tenant: &Tenant, operations: serde_json::Value) -> Result<()> {
    let patch: json_patch::Patch = serde_json::from_value(operations).expect("a well-formed JSON patch");
    api.patch(&tenant.name_any(), &PatchParams::default(), &Patch::<()>::Json(patch)).await?;
    Ok(())
}

/// Adds the finalizer unless `tenant` has it.
pub async fn add(api: &Api<Tenant>, tenant: &Tenant) -> Result<()> {
    if present(tenant) {
        return Ok(());
    }
    let operations = match &tenant.metadata.finalizers {
        None => json!([
            { "op": "test", "path": "/metadata/finalizers", "value": null },
            { "op": "add", "path": "/metadata/finalizers", "value": [NAME] },
        ]),
        Some(current) => json!([
            { "op": "test", "path": "/metadata/finalizers", "value": current },
            { "op": "add", "path": "/metadata/finalizers/-", "value": NAME },
        ]),
    };
    patch(api, tenant, operations).await
}

/// Removes the finalizer from `tenant`, letting Kubernetes delete it.
pub async fn remove(api: &Api<Tenant>, tenant: &Tenant) -> Result<()> {
    let Some(index) = tenant.finalizers().iter().position(|f| f == NAME) else { return Ok(()) };
    let path = format!("/metadata/finalizers/{index}");
    patch(api, tenant, json!([{ "op": "test", "path": path, "value": NAME }, { "op": "remove", "path": path }])).await
}
