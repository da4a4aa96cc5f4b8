//! The admission webhook through the real kube-apiserver: requests made with a Kubernetes
//! client (never by calling the webhook directly) are mutated and judged by two webhook
//! replicas behind one address.

mod support;

/// The SQL backend of this binary's Slipway.
const DATABASE: &str = "sqlite";

use futures::future::join_all;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;
use slipway_crds::{App, AppSpec, Expose, ExposeType, TENANT_LABEL};
use support::{Client, kube_admin, slipway};

/// A tenant on `plan` (through the API, so it is Ready) and an admin client's Apps in it.
async fn tenant_apps(prefix: &str, plan: &str) -> (String, Api<App>) {
    let (owner, _) = Client::new_user(prefix).await;
    let tenant = owner.create_tenant(prefix, plan).await;
    (tenant.clone(), Api::namespaced(kube_admin().await, &format!("tenant-{tenant}")))
}

fn app(name: &str, replicas: Option<i32>) -> App {
    App::new(name, AppSpec { image: "nginx".into(), port: 8080, replicas, env: vec![], resources: None, expose: None })
}

/// The message of a denied request, asserting the webhook denied it with 422.
fn denial(result: Result<App, kube::Error>) -> String {
    match result {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 422, "{s:?}");
            s.message
        }
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[tokio::test]
async fn over_the_plan_is_denied_at_the_limit_is_admitted_and_defaults_are_stored() {
    let (tenant, apps) = tenant_apps("adm", "free").await;
    let message = denial(apps.create(&PostParams::default(), &app("big", Some(12))).await);
    assert!(
        message.starts_with(r#"admission webhook "validate.slipway.dev" denied the request: spec.replicas: 12 exceeds the plan "free" limit of 3"#),
        "{message}"
    );

    let admitted = apps.create(&PostParams::default(), &app("edge", Some(3))).await.expect("3 replicas is the limit");
    assert_eq!(admitted.spec.replicas, Some(3));

    // A quantity the schema lets through (it only says "int or string") but no plan could hold
    // is refused with the field named; found by fuzzing, it used to crash the rule code.
    let mut hostile = app("hostile", Some(1));
    hostile.spec.resources = Some(slipway_crds::ComputeResources {
        requests: None,
        limits: Some(slipway_crds::ResourceAmounts { cpu: Some(Quantity("1e26k".into())), memory: None }),
    });
    let message = denial(apps.create(&PostParams::default(), &hostile).await);
    assert!(message.contains(r#"spec.resources.limits.cpu: "1e26k" is not a Kubernetes quantity"#), "{message}");

    // Mutation: the plan's defaults and the tenant label, visible on the stored object.
    let stored = apps.create(&PostParams::default(), &app("bare", None)).await.unwrap();
    assert_eq!(stored.spec.replicas, Some(1));
    assert_eq!(stored.spec.expose, Some(Expose { type_: ExposeType::ClusterIP, host: None }));
    let limits = stored.spec.resources.as_ref().unwrap().limits.as_ref().unwrap();
    assert_eq!(limits.cpu.as_ref().unwrap().0, "250m");
    assert_eq!(stored.labels()[TENANT_LABEL], tenant);

    // An UPDATE over the plan is denied too; lowering usage is admitted. (Merge patches: the
    // controller writes status concurrently, which would make a read-modify-replace conflict.)
    let scale = |n: i32| Patch::Merge(json!({"spec": {"replicas": n}}));
    let message = denial(apps.patch("edge", &PatchParams::default(), &scale(4)).await);
    assert!(message.contains("spec.replicas: 4 exceeds"), "{message}");
    apps.patch("edge", &PatchParams::default(), &scale(2)).await.expect("scaling down is admitted");
}

#[tokio::test]
async fn the_webhooks_message_reaches_api_users_as_problem_details() {
    let (owner, _) = Client::new_user("adm-api").await;
    let tenant = owner.create_tenant("adm-api", "standard").await;
    let apps = format!("/tenants/{tenant}/apps");
    let host = format!("www.{tenant}.{}", support::INGRESS_DOMAIN);
    let body =
        |name: &str| json!({"name": name, "spec": {"image": "nginx", "expose": {"type": "Ingress", "host": host}}});
    assert_eq!(owner.post(&apps, body("first")).await.status, 201);

    // The API previews the plan's rules itself (same messages, field by field)...
    let r = owner.post(&apps, json!({"name": "miner", "spec": {"image": "evil.example.com/miner"}})).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.body["errors"][0]["field"], "spec.image");
    assert_eq!(
        r.body["detail"],
        r#"spec.image: registry "evil.example.com" is not allowed by the plan "standard" (allowed: docker.io, ghcr.io, quay.io, registry.k8s.io)"#
    );
    // ...but only the webhook sees which hosts are held: its denial reaches the user as a 422 too.
    let r = owner.post(&apps, body("second")).await;
    assert_eq!(r.status, 422, "{}", r.body);
    let detail = r.body["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(r#"admission webhook "validate.slipway.dev" denied the request: spec.expose.host:"#),
        "{detail}"
    );
    assert!(detail.ends_with(r#"is already held by App "first" of this tenant; choose another host"#), "{detail}");
}

#[tokio::test]
async fn ingress_hosts_are_confined_to_the_tenants_domain_and_held_once() {
    let (tenant, apps) = tenant_apps("hosts", "standard").await;
    let with_host = |name: &str, host: &str| {
        let mut a = app(name, Some(1));
        a.spec.expose = Some(Expose { type_: ExposeType::Ingress, host: Some(host.into()) });
        a
    };
    let mine = format!("shop.{tenant}.{}", support::INGRESS_DOMAIN);
    apps.create(&PostParams::default(), &with_host("shop", &mine)).await.expect("a host in the tenant's domain");
    let message = denial(apps.create(&PostParams::default(), &with_host("copy", &mine)).await);
    assert!(message.contains(r#"is already held by App "shop" of this tenant"#), "{message}");
    let message = denial(apps.create(&PostParams::default(), &with_host("away", "shop.example.com")).await);
    assert!(message.contains("is outside the tenant's domain"), "{message}");
}

/// Room for 3 Apps, 20 creates at once, two webhook replicas: exactly 3 are admitted.
#[tokio::test]
async fn concurrent_creates_never_overflow_the_plan() {
    let (_, apps) = tenant_apps("race", "free").await;
    let creates = (0..20).map(|i| {
        let apps = apps.clone();
        async move { apps.create(&PostParams::default(), &app(&format!("racer-{i}"), Some(1))).await }
    });
    let results = join_all(creates).await;
    let admitted = results.iter().filter(|r| r.is_ok()).count();
    let denied: Vec<_> = results.into_iter().filter_map(Result::err).collect();
    assert_eq!(admitted, 3, "denials: {denied:?}");
    for e in &denied {
        assert!(
            matches!(e, kube::Error::Api(s) if s.code == 422 && s.message.contains("the plan \"free\" allows 3")),
            "{e:?}"
        );
    }
    assert_eq!(apps.list(&ListParams::default()).await.unwrap().items.len(), 3);
}

#[tokio::test]
async fn malformed_reviews_get_clear_errors() {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    slipway();
    let client = kube_admin().await;
    let config = slipway_webhook::WebhookConfig {
        tls_cert: "unused".into(),
        tls_key: "unused".into(),
        namespace: "slipway-system".into(),
        ingress_domain: support::INGRESS_DOMAIN.into(),
        reservation_ttl: std::time::Duration::from_secs(15),
    };
    let plans = std::sync::Arc::new(slipway_policies::PlanCatalog::embedded());
    let router = slipway_webhook::Webhook::start(client, plans, &config).await.unwrap().router();
    let call = |body: Vec<u8>| {
        let router = router.clone();
        async move {
            let req = axum::http::Request::post("/validate")
                .header("content-type", "application/json")
                .body(axum::body::Body::from(body))
                .unwrap();
            let res = router.oneshot(req).await.unwrap();
            let status = res.status().as_u16();
            let body: serde_json::Value =
                serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap_or_default();
            (status, body)
        }
    };
    let (status, body) = call(b"{not json".to_vec()).await;
    assert_eq!(status, 400);
    assert!(
        body["response"]["status"]["message"].as_str().unwrap().starts_with("the body is not an AdmissionReview"),
        "{body}"
    );
    let (status, body) = call(br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview"}"#.to_vec()).await;
    assert_eq!(status, 400);
    assert!(body["response"]["status"]["message"].as_str().unwrap().contains("unsupported review"), "{body}");
    let (status, _) = call(vec![b' '; slipway_webhook::MAX_REVIEW_BYTES + 1]).await;
    assert_eq!(status, 413);
    let unknown = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "u1", "kind": {"group": "slipway.dev", "version": "v1alpha1", "kind": "Gizmo"},
            "resource": {"group": "slipway.dev", "version": "v1alpha1", "resource": "gizmos"},
            "name": "g", "namespace": "tenant-x", "operation": "CREATE", "userInfo": {},
            "object": {"apiVersion": "slipway.dev/v1alpha1", "kind": "Gizmo", "metadata": {"name": "g"}}
        }
    });
    let (status, body) = call(unknown.to_string().into_bytes()).await;
    assert_eq!(status, 200);
    assert_eq!(body["response"]["allowed"], false);
    assert_eq!(body["response"]["uid"], "u1");
    assert_eq!(body["response"]["status"]["message"], "Slipway's webhook does not handle kind Gizmo");
}
