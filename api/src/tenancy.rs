//! Tenants: creating one (within the account's entitlements), reading and deleting them, and
//! the effective policy the API's previews judge with. Tenants are cluster-scoped and written
//! by the API's own identity, except deletion, which impersonates the owner so that
//! Kubernetes RBAC (the tenant's owner ClusterRole) decides too.

use crate::{
    AppState,
    auth::AuthUser,
    cluster::FIELD_MANAGER,
    entitlements,
    error::ApiError,
    teams::{self, Role},
};
use kube::{
    Api,
    api::{DeleteParams, PostParams},
};
use slipway_crds::{Tenant, TenantOwner, TenantSpec};
use slipway_policies::{TenantPolicy, rules::names::check_tenant_name};
use std::time::Duration;

/// How long a create waits for the controller to make the tenant Ready, so that the namespace
/// is usable when the answer arrives. A slower tenant is returned as it is.
const READY_WAIT: Duration = Duration::from_secs(20);

/// Whether the tenant's `Ready` condition is `True`.
pub fn is_ready(tenant: &Tenant) -> bool {
    tenant.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The Tenant object `name`, from the API's watch cache when it can answer
/// ([`crate::read_cache`]), else from the API server.
///
/// # Errors
/// 404 when it does not exist.
pub async fn fetch(state: &AppState, name: &str) -> Result<Tenant, ApiError> {
    if let Some(cached) = state.reads.tenants.get("", name) {
        return Ok(Tenant::clone(&cached));
    }
    fetch_exact(state, name).await
}

/// The Tenant object `name` as the API server has it now.
///
/// # Errors
/// 404 when it does not exist.
async fn fetch_exact(state: &AppState, name: &str) -> Result<Tenant, ApiError> {
    Api::<Tenant>::all(state.cluster.service())
        .get_opt(name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("tenant {name:?} not found")))
}

/// Creates tenant `name` on `plan` owned by `user`, and waits (at most [`READY_WAIT`]) until
/// it is Ready.
///
/// # Errors
/// 422 for a bad name or plan; 403 beyond the account's entitlements; 409 when the name is
/// taken or still being released by a deleted tenant.
pub async fn create(state: &AppState, user: &AuthUser, name: &str, plan: &str) -> Result<Tenant, ApiError> {
    check_tenant_name(name).map_err(|e| ApiError::invalid("name", e))?;
    // Claimed in SQL first (committed: no SQL lock is held across the Kubernetes call), so a
    // taken name or a used-up entitlement fails before touching the cluster; released again if
    // the Tenant cannot be created, so SQL keeps no tenant Kubernetes refused.
    entitlements::claim_tenant(state, &user.id, name, plan).await?;
    let created = match create_in_cluster(state, user, name, plan).await {
        Ok(created) => created,
        Err(e) => {
            state.db.release_tenant_claim(name, &user.id).await?;
            return Err(e);
        }
    };
    state.reads.tenants.wrote(&created);
    tracing::info!(tenant = %name, %plan, user = %user.id, "tenant created");
    let answered = wait_until_ready(state, created).await;
    // The caller is told this version (Ready, usually): reads must not show it an older one
    // the read cache's own watch has not gone past yet.
    state.reads.tenants.wrote(&answered);
    Ok(answered)
}

/// Creates the Tenant object of a claimed tenant.
///
/// # Errors
/// 409 when the name is taken or still being released by a deleted tenant.
async fn create_in_cluster(state: &AppState, user: &AuthUser, name: &str, plan: &str) -> Result<Tenant, ApiError> {
    let taken = || ApiError::Conflict(format!("the tenant name {name:?} is taken; choose another"));
    let spec = TenantSpec {
        owners: vec![TenantOwner { email: user.email.clone() }],
        members: vec![],
        plan: plan.into(),
        limits: None,
    };
    let params = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    let tenants = Api::<Tenant>::all(state.cluster.service());
    let mut tenant = Tenant::new(name, spec);
    // Created with the controller's finalizer, so the controller need not add it in a write of
    // its own (issue 13): the Tenant is protected from its first moment.
    tenant.metadata.finalizers = Some(vec![slipway_crds::TENANT_FINALIZER.into()]);
    let releasing =
        || ApiError::Conflict(format!("the tenant name {name:?} is being released, try again in a few seconds"));
    // A deleted tenant keeps its name until its namespace, and all its data, are gone (the
    // controller's finalizer): never hand them to the next claimant. The old Tenant may go
    // between the conflict and the look at it: then the name is free, and one more try takes it.
    let mut retried = false;
    loop {
        match tenants.create(&params, &tenant).await {
            Ok(t) => return Ok(t),
            Err(kube::Error::Api(s)) if s.code == 409 => match tenants.get_opt(name).await? {
                Some(old) if old.metadata.deletion_timestamp.is_some() => return Err(releasing()),
                Some(_) => return Err(taken()),
                None if !retried => retried = true,
                None => return Err(releasing()),
            },
            Err(e) => return Err(e.into()),
        }
    }
}

async fn wait_until_ready(state: &AppState, created: Tenant) -> Tenant {
    let api = Api::<Tenant>::all(state.cluster.service());
    let name = created.metadata.name.clone().unwrap_or_default();
    let ready = |t: Option<&Tenant>| t.is_some_and(is_ready);
    match tokio::time::timeout(READY_WAIT, kube::runtime::wait::await_condition(api, &name, ready)).await {
        Ok(Ok(Some(t))) => t,
        _ => {
            tracing::warn!(tenant = %name, "tenant not Ready in time; returning it as it is");
            created
        }
    }
}

/// The caller's tenants with their role, by name.
///
/// # Errors
/// Kubernetes and database errors.
pub async fn list(state: &AppState, user: &AuthUser) -> Result<Vec<(Tenant, Role)>, ApiError> {
    let mut items = Vec::new();
    for m in state.db.memberships(&user.id).await? {
        match fetch(state, &m.tenant).await {
            Ok(t) => items.push((t, Role::parse(&m.role))),
            // Recorded in SQL, not (yet, or any more) in Kubernetes: not listed.
            Err(ApiError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(items)
}

/// The tenant `name` and the caller's role in it.
///
/// # Errors
/// 404 for non-members.
pub async fn get(state: &AppState, user: &AuthUser, name: &str) -> Result<(Tenant, Role), ApiError> {
    let m = teams::membership(state, user, name).await?;
    Ok((fetch(state, name).await?, Role::parse(&m.role)))
}

/// Deletes the tenant (owners only): the controller deletes the namespace and everything in
/// it (volumes and Secrets of retained Databases included); the name stays taken until they
/// are gone.
///
/// # Errors
/// 404 for non-members; 403 for anyone but an owner (from the API, and from Kubernetes RBAC).
pub async fn delete(state: &AppState, user: &AuthUser, name: &str) -> Result<(), ApiError> {
    let m = teams::membership(state, user, name).await?;
    let role = Role::parse(&m.role);
    if role != Role::Owner {
        return Err(ApiError::Forbidden(format!("only owners of tenant {name:?} may delete it; you are {role}")));
    }
    let client = state.cluster.as_member(&user.email, name, role.as_str())?;
    match Api::<Tenant>::all(client).delete(name, &DeleteParams::background()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    state.reads.tenants.deleted("", name);
    state.db.delete_tenant(name).await?;
    tracing::info!(tenant = %name, user = %user.id, "tenant deleted");
    Ok(())
}

/// The tenant's spec (its people) and effective policy, for the checks the API runs before
/// writing.
///
/// # Errors
/// 409 while the tenant is not Ready yet (its quota would refuse the write with a cryptic
/// "status unknown for quota"); 500 if its plan is invalid.
pub async fn policy(state: &AppState, tenant: &str) -> Result<(TenantSpec, TenantPolicy), ApiError> {
    let mut t = fetch(state, tenant).await?;
    if !is_ready(&t) {
        // The read cache may be a moment behind a tenant that just became Ready: a refusal is
        // decided on the API server's answer, not on the cache's.
        t = fetch_exact(state, tenant).await?;
    }
    if !is_ready(&t) {
        return Err(ApiError::Conflict(format!(
            "tenant {tenant:?} is still being provisioned; retry in a few seconds"
        )));
    }
    let policy = state
        .plans
        .effective(&t.spec.plan, t.spec.limits.as_ref())
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("tenant {tenant} has an invalid plan: {e}")))?;
    Ok((t.spec, policy))
}
