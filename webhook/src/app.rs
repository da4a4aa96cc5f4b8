//! Admission of Apps: defaults and tenant label on `/mutate`; the plan on `/validate`.

use crate::{
    Webhook,
    review::{Phase, deny},
};
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, ResourceExt,
    core::{
        DynamicObject,
        admission::{AdmissionRequest, AdmissionResponse, Operation},
    },
};
use serde_json::Value;
use slipway_crds::{App, AppSpec, TENANT_LABEL, Tenant};
use slipway_policies::{AppReview, Outcome, TenantPolicy};
use std::{collections::BTreeMap, sync::Arc};

/// Admits one App request in `phase`.
pub async fn admit(
    webhook: &Webhook,
    request: &AdmissionRequest<DynamicObject>,
    phase: Phase,
    base: AdmissionResponse,
) -> AdmissionResponse {
    let Some(object) = request.object.as_ref() else {
        return deny(base, 400, "the request carries no object");
    };
    let app: App = match serde_json::to_value(object).and_then(serde_json::from_value) {
        Ok(app) => app,
        Err(e) => return deny(base, 400, format!("the object is not a valid App: {e}")),
    };
    let Some(ns) = request.namespace.as_deref() else {
        return deny(base, 400, "an App must be namespaced");
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
        Phase::Mutate => mutate(base, object, &app, &tenant.name_any(), &policy),
        Phase::Validate => validate(webhook, request, base, &app, ns, &tenant.name_any(), &policy).await,
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
pub fn defaulting_patch(object: &Value, spec: &AppSpec, tenant: &str, policy: &TenantPolicy) -> json_patch::Patch {
    let mut mutated = object.clone();
    let defaults = serde_json::json!({
        "metadata": { "labels": { TENANT_LABEL: tenant } },
        "spec": policy.default_app(spec),
    });
    add_missing(&mut mutated, &defaults);
    json_patch::diff(object, &mutated)
}

fn mutate(
    base: AdmissionResponse,
    object: &DynamicObject,
    app: &App,
    tenant: &str,
    policy: &TenantPolicy,
) -> AdmissionResponse {
    let original = match serde_json::to_value(object) {
        Ok(v) => v,
        Err(e) => return deny(base, 400, format!("the object does not serialize: {e}")),
    };
    let patch = defaulting_patch(&original, &app.spec, tenant, policy);
    if patch.0.is_empty() {
        return base;
    }
    match base.clone().with_patch(patch) {
        Ok(r) => r,
        Err(e) => deny(base, 500, format!("could not encode the patch: {e}")),
    }
}

async fn validate(
    webhook: &Webhook,
    request: &AdmissionRequest<DynamicObject>,
    base: AdmissionResponse,
    app: &App,
    ns: &str,
    tenant: &str,
    policy: &TenantPolicy,
) -> AdmissionResponse {
    let name = app.name_any();
    if let Some(label) = app.labels().get(TENANT_LABEL).filter(|l| *l != tenant) {
        return deny(
            base,
            422,
            format!("metadata.labels.{TENANT_LABEL}: {label:?} must be {tenant:?}, the namespace's tenant"),
        );
    }
    // The tenant's other Apps from the cache; reservations add the ones admitted a moment ago.
    let stored: BTreeMap<String, AppSpec> = webhook
        .index
        .apps_in(ns)
        .iter()
        .filter(|a| a.name_any() != name)
        .map(|a| (a.name_any(), a.spec.clone()))
        .collect();
    let hosts = webhook.index.host_claims();
    let previous: Option<AppSpec> = request
        .old_object
        .as_ref()
        .and_then(|o| serde_json::from_value::<App>(serde_json::to_value(o).ok()?).ok())
        .map(|a| a.spec);
    let judge = |reserved: &BTreeMap<String, AppSpec>| {
        let mut others = stored.clone();
        for (n, spec) in reserved {
            others.entry(n.clone()).or_insert_with(|| spec.clone());
        }
        let others: Vec<AppSpec> = others.into_values().collect();
        let review = AppReview {
            tenant,
            name: &name,
            spec: &app.spec,
            others: &others,
            previous: previous.as_ref(),
            hosts: &hosts,
            ingress_domain: &webhook.ingress_domain,
        };
        let outcome = policy.review_app(&review);
        (outcome.violations.is_empty(), outcome)
    };
    let outcome: Result<Outcome, kube::Error> = match (&request.operation, &previous) {
        (Operation::Create, _) => webhook.ledger.reserve(tenant, &name, &app.spec, request.dry_run, judge).await,
        // An UPDATE that does not grow the App cannot break a total: no need for reservations.
        (_, Some(previous)) if !policy.grows(previous, &app.spec) => Ok(judge(&BTreeMap::new()).1),
        _ => webhook.ledger.reserved_apps(tenant).await.map(|reserved| judge(&reserved).1),
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
        let patch = defaulting_patch(&original, &spec, "acme", &free);
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
            defaulting_patch(&patched, &again_spec, "acme", &free).0.is_empty(),
            "the patch of a patched object is empty"
        );
    }
}
