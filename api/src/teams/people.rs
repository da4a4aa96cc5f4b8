//! The tenant's people as Kubernetes sees them: `Tenant.spec.owners` (who get the tenant's
//! emails) and `Tenant.spec.members` (admins and members), which the admission webhook checks
//! Workspace owners against. SQL is the source; every change there is published here.

use crate::{AppState, cluster::FIELD_MANAGER, error::ApiError};
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use slipway_crds::{MemberRole, Tenant, TenantMember, TenantOwner};

/// Writes the tenant's people, as SQL has them now, into its Tenant's spec.
///
/// Publishes of one replica take turns, each reading SQL after the changes before it, so the
/// last write holds the latest state; a publish of another replica racing this one can only
/// be overtaken by the next change's publish (memberships change rarely).
///
/// # Errors
/// Kubernetes and database errors.
pub async fn publish(state: &AppState, tenant: &str) -> Result<(), ApiError> {
    let _turn = state.people_publishing.lock().await;
    let people = state.db.members(tenant).await?;
    let owners: Vec<TenantOwner> =
        people.iter().filter(|p| p.role == "owner").map(|p| TenantOwner { email: p.email.clone() }).collect();
    let members: Vec<TenantMember> = people
        .iter()
        .filter(|p| p.role != "owner")
        .map(|p| TenantMember {
            email: p.email.clone(),
            role: if p.role == "admin" { MemberRole::Admin } else { MemberRole::Member },
        })
        .collect();
    // A JSON merge patch replaces lists whole (RFC 7386).
    let patch = serde_json::json!({ "spec": { "owners": owners, "members": members } });
    let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    let published = Api::<Tenant>::all(state.cluster.service()).patch(tenant, &params, &Patch::Merge(&patch)).await?;
    state.reads.tenants.wrote(&published);
    Ok(())
}
