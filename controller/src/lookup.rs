//! Reads every reconciler needs: the tenant behind a namespace, an address of the nodes.

use crate::{Context, Result, conditions::condition};
use k8s_openapi::{
    api::core::v1::{Namespace, Node},
    apimachinery::pkg::apis::meta::v1::Condition,
};
use kube::{Api, ResourceExt, api::ListParams};
use slipway_crds::{TENANT_LABEL, Tenant};

/// The tenant that owns namespace `ns`, by the namespace's tenant label; `None` when the
/// namespace is not a tenant's.
async fn tenant_of(ctx: &Context, ns: &str) -> Result<Option<Tenant>> {
    let namespace = Api::<Namespace>::all(ctx.client.clone()).get_opt(ns).await?;
    let Some(tenant) = namespace.and_then(|n| n.labels().get(TENANT_LABEL).cloned()) else {
        return Ok(None);
    };
    Ok(Api::<Tenant>::all(ctx.client.clone()).get_opt(&tenant).await?)
}

/// The tenant that owns `ns`, or, when there is none, the `Ready=False` condition
/// (`NotInTenantNamespace`) the resource's status should carry instead: Slipway provisions
/// only in tenant namespaces.
pub async fn tenant_or_condition(
    ctx: &Context,
    ns: &str,
    previous: &[Condition],
    generation: Option<i64>,
) -> Result<std::result::Result<Tenant, Condition>> {
    Ok(tenant_of(ctx, ns).await?.ok_or_else(|| {
        let message = format!("namespace {ns} does not belong to a Slipway tenant");
        condition(previous, "Ready", false, "NotInTenantNamespace", message, generation)
    }))
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
