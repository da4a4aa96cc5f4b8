//! Admission of Slipway's kinds, one generic path for all of them: on `/mutate` the plan's
//! defaults ([`Spec::defaulted`]) and the tenant label; on `/validate` the plan's review
//! ([`Spec::review`]) against the tenant's inventory of every kind (watch caches plus pending
//! reservations). No rule lives here: they are all in `slipway-policies`.

use crate::{
    Webhook,
    answer::{Phase, Verdict, deny},
    by_namespace::Watched,
    reservations::{Claim, Reserved},
};
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Resource, ResourceExt,
    core::{
        DynamicObject,
        admission::{AdmissionRequest, AdmissionResponse, Operation},
        object::HasSpec,
    },
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use slipway_crds::{
    DEFAULTS_FILLED, DEFAULTS_LABEL, TENANT_LABEL, Tenant, namespace_belongs_to, revision::CHANGED_BY_ANNOTATION,
    tenant_group,
};
use slipway_policies::{Inventory, Outcome, Requester, Review, Spec, TenantPolicy};
use std::sync::Arc;

/// A Slipway kind the webhook admits: a custom resource whose spec the plan judges.
pub trait Admissible: Watched + HasSpec<Spec: Spec + Serialize> {}

impl<K> Admissible for K where K: Watched + HasSpec<Spec: Spec + Serialize> {}

/// Admits one request for kind `K` in `phase`.
pub async fn admit<K: Admissible>(
    webhook: &Webhook,
    request: &AdmissionRequest<DynamicObject>,
    phase: Phase,
    base: AdmissionResponse,
) -> Verdict {
    let kind = K::Spec::KIND;
    let Some(object) = request.object.as_ref() else {
        return deny(base, 400, "the request carries no object").into();
    };
    let parsed: K = match parse(object) {
        Ok(o) => o,
        Err(e) => return deny(base, 400, format!("the object is not a valid {kind}: {e}")).into(),
    };
    let Some(ns) = request.namespace.as_deref() else {
        return deny(base, 400, format!("a {kind} must be namespaced")).into();
    };
    let tenant = match tenant_of(webhook, ns).await {
        Ok(Some(t)) => t,
        Ok(None) => return deny(base, 403, format!("namespace {ns} does not belong to a Slipway tenant")).into(),
        Err(e) => return deny(base, 503, format!("cannot look up the tenant of {ns}: {e}")).into(),
    };
    let tenant_name = tenant.name_any();
    if tenant.meta().deletion_timestamp.is_some() {
        return deny(base, 403, format!("tenant {tenant_name:?} is being deleted")).into();
    }
    let policy = match webhook.plans.effective(&tenant.spec.plan, tenant.spec.limits.as_ref()) {
        Ok(p) => p,
        Err(e) => return deny(base, 422, format!("tenant {tenant_name} has an unusable plan: {e}")).into(),
    };
    match phase {
        Phase::Mutate => {
            let defaulted = parsed.spec().defaulted(&policy);
            // A new object, or a change of what runs, names its author (see `CHANGED_BY_ANNOTATION`).
            let previous = request.old_object.as_ref().and_then(|o| parse::<K>(o).ok());
            let changed = previous.is_none_or(|p| defaulted.runs_differently(&p.spec().defaulted(&policy)));
            let author = request.user_info.username.as_deref().filter(|_| changed);
            mutate(base, object, &defaulted, &tenant_name, author).into()
        }
        Phase::Validate => validate(webhook, request, base, &parsed, &tenant, &policy).await,
    }
}

fn parse<K: DeserializeOwned>(object: &DynamicObject) -> Result<K, serde_json::Error> {
    serde_json::to_value(object).and_then(serde_json::from_value)
}

/// The tenant owning `ns`, from the cache; on a miss (a namespace created a moment ago) from
/// the API server, so a fresh tenant is never refused for the cache's lag. Either way, only a
/// namespace that really is the Tenant's own counts (see [`namespace_belongs_to`]).
pub async fn tenant_of(webhook: &Webhook, ns: &str) -> Result<Option<Arc<Tenant>>, kube::Error> {
    if let Some(t) = webhook.index.tenant_of(ns) {
        return Ok(Some(t));
    }
    let Some(namespace) = Api::<Namespace>::all(webhook.client.clone()).get_opt(ns).await? else {
        return Ok(None);
    };
    let Some(name) = namespace.labels().get(TENANT_LABEL) else { return Ok(None) };
    let tenant = Api::<Tenant>::all(webhook.client.clone()).get_opt(name).await?;
    Ok(tenant.filter(|t| namespace_belongs_to(&namespace, t)).map(Arc::new))
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

/// The JSON patch that fills in the plan's defaults and the tenant label and, when `author` is
/// given (the requester of a change of what runs), sets the annotation
/// [`CHANGED_BY_ANNOTATION`] to it, which the controller copies onto the App's revision.
/// Applying it to its own output yields an empty patch (idempotent).
pub fn defaulting_patch(
    object: &Value,
    defaulted: &impl Serialize,
    tenant: &str,
    author: Option<&str>,
) -> json_patch::Patch {
    let mut mutated = object.clone();
    let defaults = serde_json::json!({
        "metadata": { "labels": { TENANT_LABEL: tenant } },
        "spec": defaulted,
    });
    add_missing(&mut mutated, &defaults);
    if let Some(author) = author {
        add_missing(&mut mutated, &serde_json::json!({ "metadata": { "annotations": {} } }));
        mutated["metadata"]["annotations"][CHANGED_BY_ANNOTATION] = Value::from(author);
    }
    json_patch::diff(object, &mutated)
}

fn mutate(
    base: AdmissionResponse,
    object: &DynamicObject,
    defaulted: &impl Serialize,
    tenant: &str,
    author: Option<&str>,
) -> AdmissionResponse {
    let original = match serde_json::to_value(object) {
        Ok(v) => v,
        Err(e) => return deny(base, 400, format!("the object does not serialize: {e}")),
    };
    let patch = defaulting_patch(&original, defaulted, tenant, author);
    if patch.0.is_empty() {
        return base;
    }
    match base.clone().with_patch(patch) {
        Ok(r) => r,
        Err(e) => deny(base, 500, format!("could not encode the patch: {e}")),
    }
}

/// The requester as the rules see them: a member when they act through the tenant's group
/// (as the API impersonates them), else an operator or a controller.
fn requester<'a>(request: &'a AdmissionRequest<DynamicObject>, tenant: &str) -> Requester<'a> {
    let group = tenant_group(tenant);
    let member = request.user_info.groups.iter().flatten().any(|g| *g == group);
    match request.user_info.username.as_deref() {
        Some(name) if member => Requester::Member(name),
        _ => Requester::Operator,
    }
}

async fn validate<K: Admissible>(
    webhook: &Webhook,
    request: &AdmissionRequest<DynamicObject>,
    base: AdmissionResponse,
    object: &K,
    tenant: &Tenant,
    policy: &TenantPolicy,
) -> Verdict {
    let kind = K::Spec::KIND;
    let (name, tenant_name) = (object.name_any(), tenant.name_any());
    let ns = request.namespace.clone().unwrap_or_default();
    if let Some(label) = object.labels().get(TENANT_LABEL).filter(|l| **l != tenant_name) {
        return deny(
            base,
            422,
            format!("metadata.labels.{TENANT_LABEL}: {label:?} must be {tenant_name:?}, the namespace's tenant"),
        )
        .into();
    }
    if request.operation == Operation::Create
        && let Some(message) = incomplete(object, &tenant_name, request.user_info.username.as_deref())
    {
        return deny(base, 422, message).into();
    }
    let previous: Option<K::Spec> =
        request.old_object.as_ref().and_then(|o| parse::<K>(o).ok()).map(|o| o.spec().clone());
    let spec = object.spec();
    let hosts = K::ingress_host(spec).map(|host| webhook.index.host_claims(&host)).unwrap_or_default();
    let requester = requester(request, &tenant_name);
    let judge = |reserved: Inventory| {
        // The tenant's other objects from the cache, read now: after the ledger has dropped
        // the reservations this cache already covers, so an object is counted either by its
        // pending reservation or by what the cache holds of it at least as new. Reservations
        // add objects admitted a moment ago, and replace the cached footprint of those that
        // just grew.
        let mut others = webhook.index.inventory(&ns, policy);
        others.remove(kind, &name);
        others.overlay(reserved);
        let outcome = K::Spec::review(
            policy,
            &Review {
                tenant: &tenant_name,
                owners: &tenant.spec.owners,
                members: &tenant.spec.members,
                name: &name,
                spec,
                previous: previous.as_ref(),
                requester,
                others: &others,
                hosts: &hosts,
                platform: &webhook.platform,
            },
        );
        (outcome.allowed(), outcome)
    };
    let grows = match (&request.operation, &previous) {
        (Operation::Create, _) => true,
        (_, Some(previous)) => policy.grows(previous, spec),
        (_, None) => true,
    };
    let outcome: Result<Reserved<Outcome>, kube::Error> = if grows {
        let claim = Claim {
            kind,
            name: name.clone(),
            uid: object.uid(),
            generation: object.meta().generation.unwrap_or(0),
            footprint: spec.footprint(policy).unwrap_or_default(),
        };
        let (index, ns) = (webhook.index.clone(), ns.clone());
        let observed: crate::reservations::Observed =
            Arc::new(move |kind, name, r| index.observed(kind, &ns, name, r.uid.as_deref(), r.generation));
        webhook.ledger.reserve(tenant, &claim, request.dry_run, observed, judge).await
    } else {
        // A change that grows nothing cannot break a total: no reservation to read or write.
        Ok(Reserved::Judged(judge(Inventory::default()).1))
    };
    let outcome = match outcome {
        Ok(Reserved::Judged(o)) => o,
        Ok(Reserved::HeldBy(holder)) => return Verdict::Forward(holder),
        Err(e) => return deny(base, 503, format!("could not check the tenant's usage, retry: {e}")).into(),
    };
    let mut response = if outcome.allowed() { base } else { deny(base, outcome.status_code(), outcome.message()) };
    if !outcome.warnings.is_empty() {
        response.warnings = Some(outcome.warnings);
    }
    response.into()
}

/// Why a new object labelled as complete ([`DEFAULTS_LABEL`]) is not, if it is not: the
/// mutating webhook was skipped for it, so whatever it lacks would be stored missing. `None`
/// for a complete object, or one without the label (the mutating webhook filled it in).
fn incomplete<K: Admissible>(object: &K, tenant: &str, requester: Option<&str>) -> Option<String> {
    if object.labels().get(DEFAULTS_LABEL).map(String::as_str) != Some(DEFAULTS_FILLED) {
        return None;
    }
    let mut lacks: Vec<String> =
        object.spec().unset_defaulted_fields().into_iter().map(|field| format!("spec.{field}")).collect();
    if object.labels().get(TENANT_LABEL).is_none() {
        lacks.push(format!("metadata.labels.{TENANT_LABEL}: {tenant:?}"));
    }
    let author = object.annotations().get(CHANGED_BY_ANNOTATION).map(String::as_str);
    if author.is_none() || author != requester {
        lacks.push(format!("metadata.annotations.{CHANGED_BY_ANNOTATION}: {:?}", requester.unwrap_or_default()));
    }
    (!lacks.is_empty()).then(|| {
        format!(
            "metadata.labels.{DEFAULTS_LABEL}: {DEFAULTS_FILLED:?} says the object carries the plan's defaults and its author, \
             but it lacks {}; set them, or drop the label to have them filled in",
            lacks.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_crds::AppSpec;
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
        let patch = defaulting_patch(&original, &free.default_app(&spec), "acme", Some("bob@example.com"));
        let mut patched = original.clone();
        json_patch::patch(&mut patched, &patch).unwrap();
        assert_eq!(patched["spec"]["replicas"], 3, "user values stay");
        assert_eq!(patched["spec"]["future"]["x"], 1, "unknown fields stay");
        assert_eq!(patched["spec"]["expose"]["type"], "ClusterIP");
        assert_eq!(patched["spec"]["resources"]["limits"]["cpu"], "250m");
        assert_eq!(patched["metadata"]["labels"]["team"], "a");
        assert_eq!(patched["metadata"]["labels"][TENANT_LABEL], "acme");
        assert_eq!(patched["metadata"]["annotations"][CHANGED_BY_ANNOTATION], "bob@example.com");

        let again_spec: AppSpec = serde_json::from_value(patched["spec"].clone()).unwrap();
        assert!(
            defaulting_patch(&patched, &free.default_app(&again_spec), "acme", Some("bob@example.com")).0.is_empty(),
            "the patch of a patched object is empty"
        );
    }
}
