//! Reads every reconciler needs: the tenant behind a namespace, an address of the nodes.

use crate::{Context, Result, cache::cached, conditions::condition};
use k8s_openapi::{
    api::core::v1::{Namespace, Node},
    apimachinery::pkg::apis::meta::v1::Condition,
};
use kube::{Api, ResourceExt, api::ListParams};
use slipway_crds::{TENANT_LABEL, Tenant, namespace_belongs_to};

/// The tenant that owns namespace `ns`: the Tenant its tenant label names, if the namespace
/// really is that Tenant's; `None` otherwise.
///
/// Both are read from the controller's caches; the API server is asked only when a cache
/// cannot say (still listing, or not holding the object).
async fn tenant_of(ctx: &Context, ns: &str) -> Result<Option<Tenant>> {
    let namespace = match cached(&ctx.caches.namespaces, None, ns) {
        Ok(Some(namespace)) => Namespace::clone(&namespace),
        _ => match Api::<Namespace>::all(ctx.client.clone()).get_opt(ns).await? {
            Some(namespace) => namespace,
            None => return Ok(None),
        },
    };
    let Some(tenant) = namespace.labels().get(TENANT_LABEL) else { return Ok(None) };
    let tenant = match cached(&ctx.caches.tenants, None, tenant) {
        Ok(Some(tenant)) => Some(Tenant::clone(&tenant)),
        _ => Api::<Tenant>::all(ctx.client.clone()).get_opt(tenant).await?,
    };
    Ok(tenant.filter(|t| namespace_belongs_to(&namespace, t)))
}

/// The tenant that owns `ns`, or the `Ready=False` condition the resource's status should
/// carry instead: `NotInTenantNamespace` (Slipway provisions only in tenant namespaces), or
/// `TenantDeleting` (its namespace is going, with everything in it).
pub async fn tenant_or_condition(
    ctx: &Context,
    ns: &str,
    previous: &[Condition],
    generation: Option<i64>,
) -> Result<std::result::Result<Tenant, Condition>> {
    let (reason, message) = match tenant_of(ctx, ns).await? {
        None => ("NotInTenantNamespace", format!("namespace {ns} does not belong to a Slipway tenant")),
        Some(t) if t.metadata.deletion_timestamp.is_some() => {
            ("TenantDeleting", format!("tenant {} is being deleted with everything in it", t.name_any()))
        }
        Some(t) => return Ok(Ok(t)),
    };
    Ok(Err(condition(previous, "Ready", false, reason, message, generation)))
}

/// The address put in node-port URLs and SSH commands: the configured one, else the first
/// node's ExternalIP, else its InternalIP (a node port answers on every node).
pub async fn node_address(ctx: &Context) -> Result<Option<String>> {
    if let Some(address) = &ctx.node_address {
        return Ok(Some(address.clone()));
    }
    first_node_address(ctx).await
}

/// Address of the first node, preferring ExternalIP over InternalIP.
async fn first_node_address(ctx: &Context) -> Result<Option<String>> {
    let nodes = Api::<Node>::all(ctx.client.clone()).list(&ListParams::default().limit(1)).await?;
    let addresses = nodes.items.into_iter().next().and_then(|n| n.status?.addresses).unwrap_or_default();
    let pick = |kind: &str| addresses.iter().find(|a| a.type_ == kind).map(|a| a.address.clone());
    Ok(pick("ExternalIP").or_else(|| pick("InternalIP")))
}
