//! Registering the webhook with the API server.

use k8s_openapi::{
    ByteString,
    api::{
        admissionregistration::v1::{
            MatchCondition, MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, ServiceReference,
            ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
        },
        core::v1::Namespace,
    },
    apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement, ObjectMeta},
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};

/// Name of both webhook configurations, and the field manager that applies them.
pub const CONFIGURATION: &str = "slipway";

/// Where the API server reaches the webhook.
#[derive(Clone, Debug)]
pub enum WebhookTarget {
    /// A base URL, e.g. `https://127.0.0.1:8443` (single machine, tests).
    Url(String),
    /// A Service in the cluster (the Helm chart).
    Service {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Its port.
        port: i32,
    },
}

impl WebhookTarget {
    fn client_config(&self, path: &str, ca_pem: Option<&str>) -> WebhookClientConfig {
        let ca_bundle = ca_pem.map(|pem| ByteString(pem.as_bytes().to_vec()));
        match self {
            WebhookTarget::Url(base) => WebhookClientConfig {
                url: Some(format!("{}{path}", base.trim_end_matches('/'))),
                ca_bundle,
                service: None,
            },
            WebhookTarget::Service { namespace, name, port } => WebhookClientConfig {
                service: Some(ServiceReference {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    path: Some(path.into()),
                    port: Some(*port),
                }),
                ca_bundle,
                url: None,
            },
        }
    }
}

/// `operations` of Slipway's namespaced kinds, and of `subresources` (e.g. `apps/scale`: a
/// rule for `apps` does not cover its subresources). Kinds whose CRD is not installed yet are
/// harmless here and covered as soon as it is.
fn rules(operations: &[&str], subresources: &[&str]) -> Vec<RuleWithOperations> {
    let kinds = slipway_crds::Kind::ALL.iter().map(|k| k.plural().into_owned());
    vec![RuleWithOperations {
        api_groups: Some(vec![slipway_crds::GROUP.into()]),
        api_versions: Some(vec!["v1alpha1".into()]),
        operations: Some(operations.iter().map(|o| o.to_string()).collect()),
        resources: Some(kinds.chain(subresources.iter().map(|s| s.to_string())).collect()),
        scope: Some("Namespaced".into()),
    }]
}

/// The App's scale subresource, which the validating webhook judges like an UPDATE of the App
/// (see `crate::scale`).
const APP_SCALE: &str = "apps/scale";

/// Only namespaces labelled as a tenant's: never system namespaces, never the webhook's own,
/// so the webhook cannot block its own start or the cluster's.
fn tenant_namespaces() -> LabelSelector {
    LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: slipway_crds::TENANT_LABEL.into(),
            operator: "Exists".into(),
            values: None,
        }]),
        ..Default::default()
    }
}

/// The mutating webhook's match condition: kube-apiserver calls it only for an object that
/// lacks something it would add (issue 13: its round trip, and applying the patch it returns,
/// were the largest part of what admission added to a create).
///
/// The webhook adds the tenant label, the plan's defaults where the spec is silent
/// ([`Spec::DEFAULTED_FIELDS`], tested to be exactly what defaulting fills), and, on a change
/// of what runs, the author annotation set to the requester. An object that already carries
/// the label, every defaulted field and the requester as its author is one the webhook would
/// leave as it is, so skipping it changes nothing: the API sends its creates that way. The
/// values are still the validating webhook's to judge (a wrong tenant label, a limit over the
/// plan). Each `has()` tests one level, so a missing parent makes the condition true (call the
/// webhook), never an error.
fn lacks_defaults() -> MatchCondition {
    use slipway_policies::Spec;
    fn carries(fields: &[&str]) -> String {
        let mut tests: Vec<String> = vec![];
        for field in fields {
            let mut path = String::from("object.spec");
            for part in field.split('.') {
                path = format!("{path}.{part}");
                let test = format!("has({path})");
                if !tests.contains(&test) {
                    tests.push(test);
                }
            }
        }
        format!("({})", tests.join(" && "))
    }
    let (label, author) = (slipway_crds::TENANT_LABEL, slipway_crds::revision::CHANGED_BY_ANNOTATION);
    let by_kind = [
        (slipway_crds::Kind::App, carries(slipway_crds::AppSpec::DEFAULTED_FIELDS)),
        (slipway_crds::Kind::Database, carries(slipway_crds::DatabaseSpec::DEFAULTED_FIELDS)),
        (slipway_crds::Kind::Workspace, carries(slipway_crds::WorkspaceSpec::DEFAULTED_FIELDS)),
    ]
    .iter()
    .fold("false".to_string(), |otherwise, (kind, test)| {
        format!("request.kind.kind == '{kind}' ? {test} : {otherwise}")
    });
    MatchCondition {
        name: "lacks-defaults".into(),
        expression: format!(
            "!(has(object.metadata.labels) && '{label}' in object.metadata.labels \
             && has(object.metadata.annotations) && '{author}' in object.metadata.annotations \
             && object.metadata.annotations['{author}'] == request.userInfo.username \
             && ({by_kind}))"
        ),
    }
}

/// Seconds the API server waits for an answer before failing the request (failurePolicy Fail).
const TIMEOUT_SECONDS: i32 = 5;

/// Objects that do not say they carry the plan's defaults ([`slipway_crds::DEFAULTS_LABEL`]).
fn not_labelled_complete() -> LabelSelector {
    LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: slipway_crds::DEFAULTS_LABEL.into(),
            operator: "NotIn".into(),
            values: Some(vec![slipway_crds::DEFAULTS_FILLED.into()]),
        }]),
        ..Default::default()
    }
}

/// The Mutating- and ValidatingWebhookConfiguration `slipway` pointing at `target` and
/// trusting `ca_pem` (PEM; `None` leaves `caBundle` out, for a deployment that patches it in
/// later, see [`crate::ManagedCertificate`]): failurePolicy Fail, admissionReviewVersions
/// [v1], tenant namespaces only.
///
/// The validating webhook also sees UPDATEs of `apps/scale` (`kubectl scale`), judged as
/// UPDATEs of the App. A second validating webhook, `audit.slipway.dev`, sees DELETEs for the
/// audit trail only.
///
/// The mutating webhook (one entry for CREATE, one for UPDATE) has `sideEffects: None`, and is
/// called only for objects it would change ([`lacks_defaults`]), never for CREATEs labelled as
/// complete ([`slipway_crds::DEFAULTS_LABEL`]). The validating one declares `NoneOnDryRun`:
/// on a real CREATE, or an UPDATE that grows a footprint, it records a reservation (see
/// [`crate::Ledger`]), a side effect that it skips for dry runs, which is exactly what that
/// value promises.
///
/// The Helm chart's `templates/webhook-configurations.yaml` is rendered from this function, so
/// both registrations are the same.
pub fn configurations(
    target: &WebhookTarget,
    ca_pem: Option<&str>,
) -> (MutatingWebhookConfiguration, ValidatingWebhookConfiguration) {
    let meta = ObjectMeta { name: Some(CONFIGURATION.into()), ..Default::default() };
    let mutate = |name: &str, operation: &str| MutatingWebhook {
        name: name.into(),
        client_config: target.client_config("/mutate", ca_pem),
        rules: Some(rules(&[operation], &[])),
        namespace_selector: Some(tenant_namespaces()),
        failure_policy: Some("Fail".into()),
        side_effects: "None".into(),
        timeout_seconds: Some(TIMEOUT_SECONDS),
        admission_review_versions: vec!["v1".into()],
        match_policy: Some("Equivalent".into()),
        reinvocation_policy: Some("Never".into()),
        match_conditions: Some(vec![lacks_defaults()]),
        ..Default::default()
    };
    let mutating = MutatingWebhookConfiguration {
        metadata: meta.clone(),
        webhooks: Some(vec![
            // CREATEs labelled as complete never reach it (see `DEFAULTS_LABEL`): kube-apiserver
            // matches labels before it prepares the request a match condition needs, which
            // measured as the larger cost (issue 13). UPDATEs have their own entry: the label
            // stays on the object, and a member's later change still gets its author.
            MutatingWebhook {
                object_selector: Some(not_labelled_complete()),
                ..mutate("mutate.slipway.dev", "CREATE")
            },
            mutate("mutate-update.slipway.dev", "UPDATE"),
        ]),
    };
    let webhook = |name: &str, operations: &[&str], subresources: &[&str], failure_policy: &str| ValidatingWebhook {
        name: name.into(),
        client_config: target.client_config("/validate", ca_pem),
        rules: Some(rules(operations, subresources)),
        namespace_selector: Some(tenant_namespaces()),
        failure_policy: Some(failure_policy.into()),
        side_effects: "NoneOnDryRun".into(),
        timeout_seconds: Some(TIMEOUT_SECONDS),
        admission_review_versions: vec!["v1".into()],
        match_policy: Some("Equivalent".into()),
        ..Default::default()
    };
    let validating = ValidatingWebhookConfiguration {
        metadata: meta,
        webhooks: Some(vec![
            webhook("validate.slipway.dev", &["CREATE", "UPDATE"], &[APP_SCALE], "Fail"),
            // Deletions only for the audit trail (see `crate::audit`): always allowed, and
            // failurePolicy Ignore, so a webhook outage never blocks a deletion (a tenant's
            // namespace being emptied, say); such deletions then go unrecorded.
            webhook("audit.slipway.dev", &["DELETE"], &[], "Ignore"),
        ]),
    };
    (mutating, validating)
}

/// Server-side applies [`configurations`] for `target`, trusting `ca_pem`, with the field
/// manager `slipway` (single machine and tests; the Helm chart installs them itself).
///
/// # Errors
/// Kubernetes API errors.
pub async fn register(client: &Client, target: &WebhookTarget, ca_pem: &str) -> Result<(), kube::Error> {
    let (mutating, validating) = configurations(target, Some(ca_pem));
    let params = PatchParams::apply(CONFIGURATION).force();
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .patch(CONFIGURATION, &params, &Patch::Apply(&mutating))
        .await?;
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .patch(CONFIGURATION, &params, &Patch::Apply(&validating))
        .await?;
    Ok(())
}

/// Creates namespace `name` if it does not exist (the home of the reservation ledgers).
///
/// # Errors
/// Kubernetes API errors.
pub async fn ensure_namespace(client: &Client, name: &str) -> Result<(), kube::Error> {
    let ns = Namespace { metadata: ObjectMeta { name: Some(name.into()), ..Default::default() }, ..Default::default() };
    Api::<Namespace>::all(client.clone()).patch(name, &PatchParams::apply(CONFIGURATION), &Patch::Apply(&ns)).await?;
    Ok(())
}
