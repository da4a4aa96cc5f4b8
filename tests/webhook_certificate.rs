//! The webhook's self-managed certificate (`slipway webhook --certificate-secret`, what the
//! Helm chart runs) against the real API server: replicas racing to issue it agree on one,
//! a sync that finds it fresh writes nothing, and one for another name is renewed with the
//! old CA still trusted.

mod support;

const DATABASE: &str = "sqlite";
const CLUSTER: support::Cluster = support::Cluster::Kwok;

use k8s_openapi::api::{
    admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration},
    core::v1::{Namespace, Secret},
};
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use slipway_webhook::{ManagedCertificate, WebhookTarget, certs};
use support::{kube_admin, unique};

/// The CA bundle every webhook of both configurations `slipway` trusts, one entry per webhook.
async fn ca_bundles(client: &kube::Client) -> Vec<String> {
    let text = |b: Option<k8s_openapi::ByteString>| String::from_utf8(b.unwrap_or_default().0).unwrap();
    let mutating = Api::<MutatingWebhookConfiguration>::all(client.clone()).get("slipway").await.unwrap();
    let validating = Api::<ValidatingWebhookConfiguration>::all(client.clone()).get("slipway").await.unwrap();
    let mut bundles: Vec<String> =
        mutating.webhooks.unwrap().into_iter().map(|w| text(w.client_config.ca_bundle)).collect();
    bundles.extend(validating.webhooks.unwrap().into_iter().map(|w| text(w.client_config.ca_bundle)));
    bundles
}

fn key(secret: &Secret, name: &str) -> String {
    String::from_utf8(secret.data.as_ref().unwrap()[name].0.clone()).unwrap()
}

#[tokio::test]
async fn replicas_agree_on_one_certificate_keep_a_fresh_one_and_renew_a_wrong_one_trusting_the_old_ca() {
    let client = kube_admin().await;
    let namespace = unique("webhook-cert");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}})).unwrap();
    namespaces.create(&PostParams::default(), &ns).await.unwrap();
    // The configurations as the chart installs them: no caBundle. The in-process Slipways of
    // the other test binaries register theirs again when they start.
    let target = WebhookTarget::Service { namespace: namespace.clone(), name: "slipway-webhook".into(), port: 443 };
    let (mutating, validating) = slipway_webhook::configurations(&target, None);
    let webhooks = mutating.webhooks.as_ref().map_or(0, Vec::len) + validating.webhooks.as_ref().map_or(0, Vec::len);
    let apply = PatchParams::apply("slipway").force();
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .patch("slipway", &apply, &Patch::Apply(&mutating))
        .await
        .unwrap();
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .patch("slipway", &apply, &Patch::Apply(&validating))
        .await
        .unwrap();

    let dir = std::env::temp_dir().join(unique("slipway-managed-cert"));
    let replica = |n: u32| ManagedCertificate {
        namespace: namespace.clone(),
        secret: "slipway-webhook-tls".into(),
        service: "slipway-webhook".into(),
        tls_cert: dir.join(format!("{n}/tls.crt")),
        tls_key: dir.join(format!("{n}/tls.key")),
    };
    let (first, second) = (replica(1), replica(2));
    std::fs::create_dir_all(dir.join("1")).unwrap();
    std::fs::create_dir_all(dir.join("2")).unwrap();

    // Two replicas start at once with no Secret: one issues, the other adopts it.
    let (a, b) = tokio::join!(first.sync(&client), second.sync(&client));
    a.unwrap();
    b.unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let issued = secrets.get("slipway-webhook-tls").await.unwrap();
    assert_eq!(issued.type_.as_deref(), Some("kubernetes.io/tls"));
    for n in [1, 2] {
        let served = std::fs::read_to_string(dir.join(format!("{n}/tls.crt"))).unwrap();
        assert_eq!(served, key(&issued, "tls.crt"), "replica {n} serves the stored certificate");
    }
    let ca = key(&issued, "ca.crt");
    assert_eq!(ca.matches("BEGIN CERTIFICATE").count(), 1, "a first issue trusts one CA");
    assert_eq!(ca_bundles(&client).await, vec![ca.clone(); webhooks], "every webhook trusts the stored CA");

    // A sync that finds the certificate fresh writes nothing.
    first.sync(&client).await.unwrap();
    let again = secrets.get("slipway-webhook-tls").await.unwrap();
    assert_eq!(again.metadata.resource_version, issued.metadata.resource_version);

    // A certificate for another name is renewed; the old CA stays trusted next to the new one.
    let elsewhere = certs::generate(&["elsewhere.example".to_string()]).unwrap();
    let mut wrong = again.clone();
    let bytes = |s: &str| k8s_openapi::ByteString(s.as_bytes().to_vec());
    wrong.data = Some(
        [("ca.crt", &elsewhere.ca_pem), ("tls.crt", &elsewhere.cert_pem), ("tls.key", &elsewhere.key_pem)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), bytes(v)))
            .collect(),
    );
    secrets.replace("slipway-webhook-tls", &PostParams::default(), &wrong).await.unwrap();
    second.sync(&client).await.unwrap();
    let renewed = secrets.get("slipway-webhook-tls").await.unwrap();
    let bundle = key(&renewed, "ca.crt");
    assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 2, "{bundle}");
    assert!(bundle.ends_with(&elsewhere.ca_pem), "the replaced CA is still trusted");
    assert_ne!(key(&renewed, "tls.crt"), elsewhere.cert_pem);
    assert_eq!(std::fs::read_to_string(dir.join("2/tls.crt")).unwrap(), key(&renewed, "tls.crt"));
    assert_eq!(ca_bundles(&client).await, vec![bundle; webhooks]);

    namespaces.delete(&namespace, &DeleteParams::default()).await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
