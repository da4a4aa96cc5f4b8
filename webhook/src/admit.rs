//! Admission of Slipway's kinds (App, Database, Workspace): the plan's defaults and the
//! tenant label on `/mutate`; the plan's rules on `/validate`, judged against the tenant's
//! inventory of every kind (watch caches plus the reservation ledger).

use crate::{
    Webhook,
    reservations::Reserved,
    review::{Phase, deny},
};
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Resource, ResourceExt,
    core::{
        DynamicObject,
        admission::{AdmissionRequest, AdmissionResponse, Operation},
    },
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use slipway_crds::{
    App, AppSpec, Database, DatabaseSpec, TENANT_LABEL, Tenant, Workspace, WorkspaceSpec, tenant_group,
};
use slipway_policies::{AppReview, HostClaim, Inventory, Kind, ObjectReview, Outcome, TenantPolicy, Violation};
use std::sync::Arc;

/// What admission needs to know of one kind.
pub trait Admissible: Resource<DynamicType = ()> + DeserializeOwned + Sized {
    /// The kind, for inventories and messages.
    const KIND: Kind;
    /// The kind's spec.
    type Spec: Serialize + Clone;
    /// The object's spec.
    fn spec(&self) -> &Self::Spec;
    /// The spec with the plan's defaults filled in.
    fn defaulted(policy: &TenantPolicy, spec: &Self::Spec) -> Self::Spec;
    /// The spec as a ledger entry.
    fn reserved(spec: &Self::Spec) -> Reserved;
    /// Whether an UPDATE from `previous` may raise the tenant's usage (else it is judged
    /// without reading the ledger).
    fn grows(_policy: &TenantPolicy, _previous: &Self::Spec, _spec: &Self::Spec) -> bool {
        true
    }
    /// The plan's verdict on `spec` next to `others`.
    fn review(judge: &Judge<'_>, spec: &Self::Spec, others: &Inventory, previous: Option<&Self::Spec>) -> Outcome;
}

/// Everything a verdict depends on besides the inventory.
pub struct Judge<'a> {
    policy: &'a TenantPolicy,
    tenant: &'a Tenant,
    tenant_name: &'a str,
    name: &'a str,
    hosts: Vec<HostClaim>,
    ingress_domain: &'a str,
    /// The requesting user when they act as a member of this tenant (group
    /// `slipway:tenant:<t>`, as the API impersonates them); `None` for operators and controllers.
    member: Option<&'a str>,
}

impl Admissible for App {
    const KIND: Kind = Kind::App;
    type Spec = AppSpec;
    fn spec(&self) -> &AppSpec {
        &self.spec
    }
    fn defaulted(policy: &TenantPolicy, spec: &AppSpec) -> AppSpec {
        policy.default_app(spec)
    }
    fn reserved(spec: &AppSpec) -> Reserved {
        Reserved::App(spec.clone())
    }
    fn grows(policy: &TenantPolicy, previous: &AppSpec, spec: &AppSpec) -> bool {
        policy.grows(previous, spec)
    }
    fn review(j: &Judge<'_>, spec: &AppSpec, others: &Inventory, previous: Option<&AppSpec>) -> Outcome {
        j.policy.review_app(&AppReview {
            tenant: j.tenant_name,
            name: j.name,
            spec,
            others,
            previous,
            hosts: &j.hosts,
            ingress_domain: j.ingress_domain,
        })
    }
}

impl Admissible for Database {
    const KIND: Kind = Kind::Database;
    type Spec = DatabaseSpec;
    fn spec(&self) -> &DatabaseSpec {
        &self.spec
    }
    fn defaulted(policy: &TenantPolicy, spec: &DatabaseSpec) -> DatabaseSpec {
        policy.default_database(spec)
    }
    fn reserved(spec: &DatabaseSpec) -> Reserved {
        Reserved::Database(spec.clone())
    }
    fn review(j: &Judge<'_>, spec: &DatabaseSpec, others: &Inventory, previous: Option<&DatabaseSpec>) -> Outcome {
        j.policy.review_database(&ObjectReview { name: j.name, spec, others, previous })
    }
}

impl Admissible for Workspace {
    const KIND: Kind = Kind::Workspace;
    type Spec = WorkspaceSpec;
    fn spec(&self) -> &WorkspaceSpec {
        &self.spec
    }
    fn defaulted(policy: &TenantPolicy, spec: &WorkspaceSpec) -> WorkspaceSpec {
        policy.default_workspace(spec)
    }
    fn reserved(spec: &WorkspaceSpec) -> Reserved {
        Reserved::Workspace(spec.clone())
    }
    /// Besides the plan: the owner must be one of the tenant's owners, since the access
    /// instructions are mailed to that address; and a member may create Workspaces only for
    /// themself and change the keys or owner only of their own, since the keys open its home
    /// directory.
    fn review(j: &Judge<'_>, spec: &WorkspaceSpec, others: &Inventory, previous: Option<&WorkspaceSpec>) -> Outcome {
        let mut outcome = j.policy.review_workspace(&ObjectReview { name: j.name, spec, others, previous });
        if let Some(member) = j.member {
            let refusal = match previous {
                None if !spec.owner.eq_ignore_ascii_case(member) => {
                    Some(format!("members create Workspaces for themselves: set it to {member:?}"))
                }
                Some(p)
                    if (p.ssh_keys != spec.ssh_keys || p.owner != spec.owner)
                        && !p.owner.eq_ignore_ascii_case(member) =>
                {
                    Some(format!(
                        "only the owner {:?} may change this Workspace's keys or owner; you are {member:?}",
                        p.owner
                    ))
                }
                _ => None,
            };
            if let Some(message) = refusal {
                outcome.violations.push(Violation { field: "spec.owner".into(), message });
            }
        }
        let owners = &j.tenant.spec.owners;
        if !owners.iter().any(|o| o.email.eq_ignore_ascii_case(&spec.owner)) {
            let list: Vec<_> = owners.iter().map(|o| o.email.as_str()).collect();
            outcome.violations.push(Violation {
                field: "spec.owner".into(),
                message: format!(
                    "{:?} is not an owner of tenant {:?} (owners: {})",
                    spec.owner,
                    j.tenant_name,
                    list.join(", ")
                ),
            });
        }
        outcome
    }
}

/// Admits one request for kind `K` in `phase`.
pub async fn admit<K: Admissible>(
    webhook: &Webhook,
    request: &AdmissionRequest<DynamicObject>,
    phase: Phase,
    base: AdmissionResponse,
) -> AdmissionResponse {
    let Some(object) = request.object.as_ref() else {
        return deny(base, 400, "the request carries no object");
    };
    let kind = K::KIND;
    let parsed: K = match serde_json::to_value(object).and_then(serde_json::from_value) {
        Ok(o) => o,
        Err(e) => return deny(base, 400, format!("the object is not a valid {kind}: {e}")),
    };
    let Some(ns) = request.namespace.as_deref() else {
        return deny(base, 400, format!("a {kind} must be namespaced"));
    };
    let tenant = match tenant_of(webhook, ns).await {
        Ok(Some(t)) => t,
        Ok(None) => return deny(base, 403, format!("namespace {ns} does not belong to a Slipway tenant")),
        Err(e) => return deny(base, 503, format!("cannot look up the tenant of {ns}: {e}")),
    };
    let policy = match webhook.plans.effective(&tenant.spec.plan, tenant.spec.limits.as_ref()) {
        Ok(p) => p,
        Err(e) => return deny(base, 422, format!("tenant {} has an unusable plan: {e}", tenant.name_any())),
    };
    match phase {
        Phase::Mutate => mutate(base, object, &K::defaulted(&policy, parsed.spec()), &tenant.name_any()),
        Phase::Validate => validate(webhook, request, base, &parsed, ns, &tenant, &policy).await,
    }
}

/// The tenant owning `ns`, from the cache; on a miss (a namespace created a moment ago)
/// from the API server, so a fresh tenant is never refused for the cache's lag.
async fn tenant_of(webhook: &Webhook, ns: &str) -> Result<Option<Arc<Tenant>>, kube::Error> {
    if let Some(t) = webhook.index.tenant_of(ns) {
        return Ok(Some(t));
    }
    let Some(namespace) = Api::<Namespace>::all(webhook.client.clone()).get_opt(ns).await? else {
        return Ok(None);
    };
    let Some(name) = namespace.labels().get(TENANT_LABEL) else { return Ok(None) };
    Ok(Api::<Tenant>::all(webhook.client.clone()).get_opt(name).await?.map(Arc::new))
}

/// Adds to `target` every key of `defaults` it lacks, recursively; never replaces a value.
/// Working on JSON keeps fields this webhook does not know (a newer CRD) untouched.
fn add_missing(target: &mut Value, defaults: &Value) {
    if let (Value::Object(target), Value::Object(defaults)) = (target, defaults) {
        for (key, value) in defaults {
            match target.get_mut(key) {
                Some(existing) => add_missing(existing, value),
                None => drop(target.insert(key.clone(), value.clone())),
            }
        }
    }
}

/// The JSON patch that fills in the plan's defaults and the tenant label. Applying it to its
/// own output yields an empty patch (idempotent).
pub fn defaulting_patch(object: &Value, defaulted: &impl Serialize, tenant: &str) -> json_patch::Patch {
    let mut mutated = object.clone();
    let defaults = serde_json::json!({
        "metadata": { "labels": { TENANT_LABEL: tenant } },
        "spec": defaulted,
    });
    add_missing(&mut mutated, &defaults);
    json_patch::diff(object, &mutated)
}

fn mutate(
    base: AdmissionResponse,
    object: &DynamicObject,
    defaulted: &impl Serialize,
    tenant: &str,
) -> AdmissionResponse {
    let original = match serde_json::to_value(object) {
        Ok(v) => v,
        Err(e) => return deny(base, 400, format!("the object does not serialize: {e}")),
    };
    let patch = defaulting_patch(&original, defaulted, tenant);
    if patch.0.is_empty() {
        return base;
    }
    match base.clone().with_patch(patch) {
        Ok(r) => r,
        Err(e) => deny(base, 500, format!("could not encode the patch: {e}")),
    }
}

async fn validate<K: Admissible>(
    webhook: &Webhook,
    request: &AdmissionRequest<DynamicObject>,
    base: AdmissionResponse,
    object: &K,
    ns: &str,
    tenant: &Tenant,
    policy: &TenantPolicy,
) -> AdmissionResponse {
    let name = object.meta().name.clone().unwrap_or_default();
    let tenant_name = tenant.name_any();
    if let Some(label) = object.meta().labels.as_ref().and_then(|l| l.get(TENANT_LABEL)).filter(|l| **l != tenant_name)
    {
        return deny(
            base,
            422,
            format!("metadata.labels.{TENANT_LABEL}: {label:?} must be {tenant_name:?}, the namespace's tenant"),
        );
    }
    // The tenant's other objects from the cache; reservations add the ones admitted a moment ago.
    let stored = webhook.index.inventory(ns).without(K::KIND, &name);
    let judge = Judge {
        policy,
        tenant,
        tenant_name: &tenant_name,
        name: &name,
        hosts: if K::KIND == Kind::App { webhook.index.host_claims() } else { Vec::new() },
        ingress_domain: &webhook.ingress_domain,
        member: request
            .user_info
            .groups
            .iter()
            .flatten()
            .any(|g| *g == tenant_group(&tenant_name))
            .then_some(request.user_info.username.as_deref())
            .flatten(),
    };
    let previous: Option<K::Spec> = request
        .old_object
        .as_ref()
        .and_then(|o| serde_json::from_value::<K>(serde_json::to_value(o).ok()?).ok())
        .map(|o| o.spec().clone());
    let spec = object.spec();
    let verdict = |reserved: &Inventory| {
        let mut others = stored.clone();
        others.merge(reserved);
        let outcome = K::review(&judge, spec, &others, previous.as_ref());
        (outcome.violations.is_empty(), outcome)
    };
    let outcome: Result<Outcome, kube::Error> = match (&request.operation, &previous) {
        (Operation::Create, _) => {
            webhook.ledger.reserve(&tenant_name, &name, &K::reserved(spec), request.dry_run, verdict).await
        }
        // An UPDATE that does not grow the object cannot break a total: no need for reservations.
        (_, Some(previous)) if !K::grows(policy, previous, spec) => Ok(verdict(&Inventory::default()).1),
        _ => webhook.ledger.reserved(&tenant_name, K::KIND, &name).await.map(|reserved| verdict(&reserved).1),
    };
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => return deny(base, 503, format!("could not check the tenant's usage, retry: {e}")),
    };
    let mut response = if outcome.violations.is_empty() {
        base
    } else {
        let message = outcome.violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        deny(base, 422, message)
    };
    if !outcome.warnings.is_empty() {
        response.warnings = Some(outcome.warnings);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_policies::PlanCatalog;

    fn object(spec: Value) -> Value {
        serde_json::json!({
            "apiVersion": "slipway.dev/v1alpha1", "kind": "App",
            "metadata": { "name": "web", "namespace": "tenant-acme", "labels": { "team": "a" } },
            "spec": spec,
        })
    }

    #[test]
    fn defaulting_adds_only_what_is_missing_and_is_idempotent() {
        let free = PlanCatalog::embedded().effective("free", None).unwrap();
        let original = object(serde_json::json!({"image": "nginx", "port": 8080, "replicas": 3, "future": {"x": 1}}));
        let spec: AppSpec = serde_json::from_value(original["spec"].clone()).unwrap();
        let patch = defaulting_patch(&original, &free.default_app(&spec), "acme");
        let mut patched = original.clone();
        json_patch::patch(&mut patched, &patch).unwrap();
        assert_eq!(patched["spec"]["replicas"], 3, "user values stay");
        assert_eq!(patched["spec"]["future"]["x"], 1, "unknown fields stay");
        assert_eq!(patched["spec"]["expose"]["type"], "ClusterIP");
        assert_eq!(patched["spec"]["resources"]["limits"]["cpu"], "250m");
        assert_eq!(patched["metadata"]["labels"]["team"], "a");
        assert_eq!(patched["metadata"]["labels"][TENANT_LABEL], "acme");

        let again_spec: AppSpec = serde_json::from_value(patched["spec"].clone()).unwrap();
        assert!(
            defaulting_patch(&patched, &free.default_app(&again_spec), "acme").0.is_empty(),
            "the patch of a patched object is empty"
        );
    }
}
