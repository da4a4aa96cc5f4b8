//! The API's preview of admission: the same review the webhook runs
//! (`slipway_policies::Spec::review`), on the spec as the webhook will see it (the plan's
//! defaults filled in), next to the tenant's objects as the caller lists them. It answers
//! with precise field errors before Kubernetes is asked; the webhook stays the enforcement
//! point (it alone sees reservations and other tenants' Ingress hosts).

use super::objects;
use crate::{
    AppState,
    auth::AuthUser,
    error::{ApiError, FieldError},
};
use kube::{Api, Client, ResourceExt, api::ListParams, core::object::HasSpec};
use slipway_crds::{App, Database, Workspace, tenant_namespace};
use slipway_policies::{Inventory, Outcome, Requester, Review, Spec, TenantPolicy};

/// The objects of kind `K` in namespace `ns` as `client` lists them.
async fn listed<K: objects::TenantObject>(client: &Client, ns: &str) -> Result<Vec<K>, kube::Error> {
    Ok(Api::<K>::namespaced(client.clone(), ns).list(&ListParams::default()).await?.items)
}

/// The tenant's Apps, Databases and Workspaces as `client` lists them (three LISTs at once),
/// with footprints under `policy`.
async fn inventory(client: &Client, tenant: &str, policy: &TenantPolicy) -> Result<Inventory, ApiError> {
    let ns = tenant_namespace(tenant);
    let (apps, databases, workspaces) = tokio::try_join!(
        listed::<App>(client, &ns),
        listed::<Database>(client, &ns),
        listed::<Workspace>(client, &ns)
    )?;
    let mut inventory = Inventory::default();
    for app in &apps {
        inventory.insert_spec(policy, app.name_any(), app.spec());
    }
    for database in &databases {
        inventory.insert_spec(policy, database.name_any(), database.spec());
    }
    for workspace in &workspaces {
        inventory.insert_spec(policy, workspace.name_any(), workspace.spec());
    }
    Ok(inventory)
}

/// A denial as the API answers it: 403 when the caller may not make the change at all, else
/// 422 with one error per field.
fn refusal(outcome: Outcome) -> ApiError {
    let detail = outcome.message();
    if outcome.status_code() == 403 {
        return ApiError::Forbidden(detail);
    }
    let errors = outcome.violations.into_iter().map(|v| FieldError { field: v.field, message: v.message }).collect();
    ApiError::Unprocessable { detail, errors }
}

/// Judges the object `name` of spec `spec` (`previous`: its stored spec, on an update) in
/// `tenant` as the caller would be judged by the webhook, `client` being the caller's. Returns
/// the spec with the plan's defaults filled in, as the mutating webhook would (the same
/// `Spec::defaulted`): a create that sends it is one the webhook is not called for.
///
/// # Errors
/// 409 while the tenant is not Ready, or when a created name is taken; 403 or 422 as the
/// rules decide; Kubernetes errors of the reads.
pub async fn preview<S: Spec>(
    state: &AppState,
    user: &AuthUser,
    client: &Client,
    tenant: &str,
    name: &str,
    spec: &S,
    previous: Option<&S>,
) -> Result<S, ApiError> {
    let (people, policy) = crate::tenancy::policy(state, tenant).await?;
    let mut others = inventory(client, tenant, &policy).await?;
    if previous.is_none() && others.contains(S::KIND, name) {
        // Said first: on a full tenant, the count would otherwise answer before the name clash.
        return Err(objects::already_exists(S::KIND, name, tenant));
    }
    others.remove(S::KIND, name);
    let spec = spec.defaulted(&policy);
    let outcome = S::review(
        &policy,
        &Review {
            tenant,
            owners: &people.owners,
            members: &people.members,
            name,
            spec: &spec,
            previous,
            requester: Requester::Member(&user.email),
            others: &others,
            hosts: &[],
            platform: &state.platform,
        },
    );
    if outcome.allowed() { Ok(spec) } else { Err(refusal(outcome)) }
}
