//! The admission webhook through the real kube-apiserver: requests made with a Kubernetes
//! client (never by calling the webhook directly) are mutated and judged by two webhook
//! replicas behind one address.

mod support;

/// The SQL backend of this binary's Slipway.
const DATABASE: &str = "sqlite";
/// The cluster of this binary's Slipway: the kwok one (pods become Ready, nothing runs).
const CLUSTER: support::Cluster = support::Cluster::Kwok;

use futures::future::join_all;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;
use slipway_crds::{
    App, AppSpec, Database, DatabaseEngine, DatabaseSpec, DeletionPolicy, Expose, ExposeType, TENANT_LABEL, Workspace,
    WorkspaceSpec,
};
use support::{
    Client, admin_api, denial, kube_admin, kubectl_as_member, member_api, refusal, slipway, validation_denial,
};

/// An SSH key every plan accepts, for Workspaces.
const ED25519: &str = include_str!("../policies/tests/ssh-keys/ed25519.pub");

/// A tenant on `plan` (through the API, so it is Ready) and an admin client's Apps in it.
async fn tenant_apps(prefix: &str, plan: &str) -> (String, Api<App>) {
    let (owner, _) = Client::new_user(prefix).await;
    let tenant = owner.create_tenant(prefix, plan).await;
    (tenant.clone(), Api::namespaced(kube_admin().await, &format!("tenant-{tenant}")))
}

fn app(name: &str, replicas: Option<i32>) -> App {
    App::new(
        name,
        AppSpec {
            image: "nginx".into(),
            port: 8080,
            replicas,
            env: vec![],
            resources: None,
            expose: None,
            autoscaling: None,
            rollout: None,
            revision_history_limit: None,
        },
    )
}

/// A tenant on `plan` (through the API, so it is Ready): its name and its owner's email.
async fn new_tenant(prefix: &str, plan: &str) -> (String, String) {
    let (owner, email) = Client::new_user(prefix).await;
    (owner.create_tenant(prefix, plan).await, email)
}

/// A PostgreSQL 17 Database of `storage`, CPU and memory left to the plan.
fn database(name: &str, storage: &str) -> Database {
    Database::new(
        name,
        DatabaseSpec {
            engine: DatabaseEngine::Postgres,
            version: "17".into(),
            storage: Quantity(storage.into()),
            cpu: None,
            memory: None,
            expose: None,
            deletion_policy: DeletionPolicy::Delete,
        },
    )
}

/// A Workspace for `owner` with a home volume of `storage`, CPU and memory left to the plan.
fn workspace(name: &str, owner: &str, storage: &str) -> Workspace {
    Workspace::new(
        name,
        WorkspaceSpec {
            owner: owner.into(),
            cpu: None,
            memory: None,
            storage: Quantity(storage.into()),
            ssh_keys: vec![ED25519.trim().into()],
            image: None,
        },
    )
}

/// The outcome of concurrent creates: the admitted objects, and the messages of the denials
/// (each asserted to be a 422 of the webhook).
fn admitted_and_denied<K: std::fmt::Debug>(results: Vec<Result<K, kube::Error>>) -> (Vec<K>, Vec<String>) {
    let mut admitted = Vec::new();
    let mut denied = Vec::new();
    for result in results {
        match result {
            Ok(object) => admitted.push(object),
            Err(e) => denied.push(validation_denial::<K>(Err(e))),
        }
    }
    (admitted, denied)
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
    creates_at_once_admit_exactly_the_room("race", "free", 20, 3).await;
}

/// Room for 10 Apps, 30 creates at once: each replica writes the reservations it admits in
/// batches (group commit), and still exactly 10 are admitted, none wrongly refused.
#[tokio::test]
async fn batched_reservations_admit_exactly_the_room() {
    creates_at_once_admit_exactly_the_room("batch", "standard", 30, 10).await;
}

/// Creates `creates` one-replica Apps at once in a new tenant on `plan`, whose App count
/// allows `room` of them: exactly `room` are admitted and stored, the rest refused by the
/// count.
async fn creates_at_once_admit_exactly_the_room(prefix: &str, plan: &str, creates: usize, room: usize) {
    let (_, apps) = tenant_apps(prefix, plan).await;
    let creates = (0..creates).map(|i| {
        let apps = apps.clone();
        async move { apps.create(&PostParams::default(), &app(&format!("racer-{i}"), Some(1))).await }
    });
    let results = join_all(creates).await;
    let admitted = results.iter().filter(|r| r.is_ok()).count();
    let denied: Vec<_> = results.into_iter().filter_map(Result::err).collect();
    assert_eq!(admitted, room, "denials: {denied:?}");
    let count_rule = format!("the plan \"{plan}\" allows {room}");
    for e in &denied {
        assert!(matches!(e, kube::Error::Api(s) if s.code == 422 && s.message.contains(&count_rule)), "{e:?}");
    }
    assert_eq!(apps.list(&ListParams::default()).await.unwrap().items.len(), room);
}

/// `kubectl scale` goes through the App's scale subresource, which a webhook rule for `apps`
/// alone never sees: it is judged like any change of the App, and recorded as a scale.
#[tokio::test]
async fn kubectl_scale_is_judged_by_the_plan() {
    let (owner, email) = Client::new_user("kscale").await;
    let tenant = owner.create_tenant("kscale", "free").await;
    let apps: Api<App> = member_api(&email, &tenant).await;
    apps.create(&PostParams::default(), &app("web", Some(1))).await.unwrap();

    let (ok, out) = kubectl_as_member(&email, &tenant, &["scale", "app/web", "--replicas=4"]).await;
    assert!(!ok, "scaling past the plan must fail: {out}");
    assert!(
        out.contains(r#"admission webhook "validate.slipway.dev" denied the request: spec.replicas: 4 exceeds the plan "free" limit of 3"#),
        "{out}"
    );
    assert_eq!(apps.get("web").await.unwrap().spec.replicas, Some(1), "a denied scale changes nothing");

    let (ok, out) = kubectl_as_member(&email, &tenant, &["scale", "app/web", "--replicas=3"]).await;
    assert!(ok, "{out}");
    let scaled = apps.get("web").await.unwrap();
    assert_eq!(scaled.spec.replicas, Some(3));
    assert_eq!(scaled.spec.image, "nginx", "only the replica count changed");
    let scale = apps.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(3));

    // The audit trail names the subresource, as kubectl does.
    let trail = support::eventually(std::time::Duration::from_secs(60), "the scale in the audit trail", || {
        let owner = owner.clone();
        let tenant = tenant.clone();
        async move {
            let r = owner.get(&format!("/tenants/{tenant}/audit")).await;
            let events = r.body["items"].as_array().cloned().unwrap_or_default();
            let scales: Vec<_> =
                events.into_iter().filter(|e| e["action"] == "UPDATE apps/scale.slipway.dev").collect();
            (scales.len() >= 2).then_some(scales)
        }
    })
    .await;
    // One event per change, however often the API server asked (it asks again when a
    // controller's status write conflicts with the scale).
    assert_eq!(trail.len(), 2, "{trail:?}");
    let statuses: Vec<_> = trail.iter().map(|e| e["status"].as_u64().unwrap()).collect();
    assert!(statuses.contains(&200) && statuses.contains(&422), "{trail:?}");
    assert!(trail.iter().all(|e| e["object"].as_str().unwrap().ends_with("/apps/web/scale")), "{trail:?}");
}

/// Two back-to-back `kubectl scale` commands overflow tenant-wide quotas elsewhere. Four Apps of
/// 1 CPU each on "standard" (8 CPU): scaling all four from 1 to 3 at once, two through the
/// API's scale endpoint and two through kubectl's scale subresource, fits exactly two.
#[tokio::test]
async fn racing_scale_ups_through_the_api_and_kubectl_never_overflow_the_tenant() {
    let (owner, email) = Client::new_user("race-scale").await;
    let tenant = owner.create_tenant("race-scale", "standard").await;
    let apps: Api<App> = member_api(&email, &tenant).await;
    for i in 0..4 {
        let mut one_cpu = app(&format!("s{i}"), Some(1));
        one_cpu.spec.resources = Some(slipway_crds::ComputeResources {
            requests: None,
            limits: Some(slipway_crds::ResourceAmounts { cpu: Some(Quantity("1".into())), memory: None }),
        });
        apps.create(&PostParams::default(), &one_cpu).await.unwrap();
    }
    let through_api = (0..2).map(|i| {
        let (owner, tenant) = (owner.clone(), tenant.clone());
        async move {
            let r = owner.put(&format!("/tenants/{tenant}/apps/s{i}/scale"), json!({"replicas": 3})).await;
            match r.status {
                200 => Ok(()),
                422 => Err(r.body["detail"].as_str().unwrap().to_string()),
                other => panic!("PUT .../s{i}/scale answered {other}: {}", r.body),
            }
        }
    });
    let through_kubectl = (2..4).map(|i| {
        let (email, tenant) = (email.clone(), tenant.clone());
        async move {
            let (ok, out) = kubectl_as_member(&email, &tenant, &["scale", &format!("app/s{i}"), "--replicas=3"]).await;
            if ok { Ok(()) } else { Err(out) }
        }
    });
    let (api, kubectl) = futures::join!(join_all(through_api), join_all(through_kubectl));
    let results: Vec<_> = api.into_iter().chain(kubectl).collect();
    let denied: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(results.len() - denied.len(), 2, "8 CPU hold exactly two Apps of 3; denials: {denied:?}");
    for message in &denied {
        // The webhook's words, or the API's preview of them when a winner was already stored.
        assert!(
            message.contains(r#"needs 3 but the tenant already uses 7 of the plan "standard" cpu limit of 8 (1 left)"#),
            "{message}"
        );
    }
    let stored: i32 = apps.list(&ListParams::default()).await.unwrap().iter().filter_map(|a| a.spec.replicas).sum();
    assert_eq!(stored, 1 + 1 + 3 + 3, "the stored Apps hold 8 CPU");
}

/// `spec.autoscaling.maxReplicas` is held to the plan, the tenant's totals count it in full,
/// and the App's HorizontalPodAutoscaler comes and goes with it, aimed at the App itself.
#[tokio::test]
async fn autoscaling_is_held_to_the_plan_and_its_autoscaler_follows_the_app() {
    let (tenant, apps) = tenant_apps("hpa", "free").await;
    let autoscaled = |name: &str, max: i32| {
        let mut a = app(name, Some(1));
        a.spec.autoscaling = Some(slipway_crds::Autoscaling {
            max_replicas: max,
            target_cpu_utilization_percentage: Some(60),
            ..Default::default()
        });
        a
    };
    let message = denial(apps.create(&PostParams::default(), &autoscaled("big", 4)).await);
    assert!(message.contains(r#"spec.autoscaling.maxReplicas: 4 exceeds the plan "free" limit of 3"#), "{message}");
    // A target is required (a CEL rule of the CRD).
    let mut aimless = autoscaled("aimless", 2);
    aimless.spec.autoscaling.as_mut().unwrap().target_cpu_utilization_percentage = None;
    let message = refusal(422, apps.create(&PostParams::default(), &aimless).await);
    assert!(message.contains("autoscaling needs targetCPUUtilizationPercentage"), "{message}");

    // Two Apps that may reach 3 pods of 250m each hold 1500m of the 2 CPU: a third cannot,
    // though each runs one pod now; without autoscaling it fits.
    for name in ["a", "b"] {
        apps.create(&PostParams::default(), &autoscaled(name, 3)).await.unwrap();
    }
    let message = denial(apps.create(&PostParams::default(), &autoscaled("c", 3)).await);
    assert!(
        message.contains(r#"the tenant already uses 1500m of the plan "free" cpu limit of 2 (500m left)"#),
        "{message}"
    );
    apps.create(&PostParams::default(), &app("c", Some(1))).await.expect("one pod fits");

    let autoscalers: Api<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler> = admin_api(&tenant).await;
    let hpa = support::eventually(std::time::Duration::from_secs(60), "the autoscaler of a", || async {
        autoscalers.get_opt("a").await.unwrap()
    })
    .await;
    let spec = hpa.spec;
    assert_eq!((spec.scale_target_ref.kind.as_str(), spec.scale_target_ref.name.as_str()), ("App", "a"));
    assert_eq!(spec.max_replicas, 3);
    // The App's scale subresource names its pods, for the autoscaler.
    let selector = support::eventually(std::time::Duration::from_secs(60), "the App's selector", || async {
        apps.get_scale("a").await.unwrap().status?.selector
    })
    .await;
    assert_eq!(selector, "slipway.dev/app=a");

    // Removing autoscaling removes the autoscaler and keeps the count it reached.
    apps.patch_scale("a", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 2}}))).await.unwrap();
    apps.patch("a", &PatchParams::default(), &Patch::Merge(json!({"spec": {"autoscaling": null}}))).await.unwrap();
    support::eventually(std::time::Duration::from_secs(60), "the autoscaler of a to go", || async {
        autoscalers.get_opt("a").await.unwrap().is_none().then_some(())
    })
    .await;
    assert_eq!(apps.get("a").await.unwrap().spec.replicas, Some(2));
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
        platform: support::platform(),
        reservation_ttl: support::RESERVATION_TTL,
        advertise: None,
    };
    let plans = std::sync::Arc::new(slipway_policies::PlanCatalog::embedded());
    let router = slipway_webhook::Webhook::start(client, plans, &config, None).await.unwrap().router();
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

/// Room for 1 Database, 10 creates at once on two webhook replicas: exactly 1 is admitted, the
/// others are refused by the plan's Database count (the reservation ledger covers every kind).
#[tokio::test]
async fn concurrent_database_creates_never_overflow_the_plan() {
    let (tenant, _) = new_tenant("race-db", "free").await;
    let dbs: Api<Database> = admin_api(&tenant).await;
    let creates = (0..10).map(|i| {
        let dbs = dbs.clone();
        async move { dbs.create(&PostParams::default(), &database(&format!("db-{i}"), "1Gi")).await }
    });
    let (admitted, denied) = admitted_and_denied(join_all(creates).await);
    assert_eq!(admitted.len(), 1, "the plan \"free\" allows 1 Database; denials: {denied:?}");
    assert_eq!(denied.len(), 9);
    for message in &denied {
        assert!(
            message
                .ends_with(r#"metadata.name: the tenant already has 1 Databases; the plan "free" allows 1 (0 left)"#),
            "{message}"
        );
    }
    let stored: Vec<_> = dbs.list(&ListParams::default()).await.unwrap().iter().map(ResourceExt::name_any).collect();
    assert_eq!(stored, [admitted[0].name_any()], "only the admitted Database is stored");
}

/// Storage is one tenant total over Databases and Workspaces: 3 Databases and 5 Workspaces of
/// 10Gi each, all at once, against the 50Gi of "standard" (counts allow all 8): exactly 5 fit.
#[tokio::test]
async fn concurrent_creates_of_two_kinds_share_the_storage_total() {
    let (tenant, owner) = new_tenant("race-gi", "standard").await;
    let dbs: Api<Database> = admin_api(&tenant).await;
    let wss: Api<Workspace> = admin_api(&tenant).await;
    let db_creates = (0..3).map(|i| {
        let dbs = dbs.clone();
        async move { dbs.create(&PostParams::default(), &database(&format!("db-{i}"), "10Gi")).await.map(drop) }
    });
    let ws_creates = (0..5).map(|i| {
        let (wss, owner) = (wss.clone(), owner.clone());
        async move { wss.create(&PostParams::default(), &workspace(&format!("ws-{i}"), &owner, "10Gi")).await.map(drop) }
    });
    let (db_results, ws_results) = futures::join!(join_all(db_creates), join_all(ws_creates));
    let (admitted, denied) = admitted_and_denied(db_results.into_iter().chain(ws_results).collect());
    assert_eq!(admitted.len(), 5, "50Gi holds five 10Gi volumes; denials: {denied:?}");
    for message in &denied {
        assert!(
            message.contains(r#"spec.storage: this "#)
                && message.ends_with(
                    r#"needs 10Gi but the tenant already uses 50Gi of the plan "standard" storage limit of 50Gi (0 left)"#
                ),
            "{message}"
        );
    }
    let stored = dbs.list(&ListParams::default()).await.unwrap().items.len()
        + wss.list(&ListParams::default()).await.unwrap().items.len();
    assert_eq!(stored, 5, "only the admitted objects are stored");
}

/// An App and a Database of the same name, created at once, would fight over one Service:
/// of each pair exactly one is admitted, whichever replica judges which.
#[tokio::test]
async fn concurrent_creates_of_two_kinds_never_share_a_service_name() {
    let (tenant, _) = new_tenant("race-name", "standard").await;
    let apps: Api<App> = admin_api(&tenant).await;
    let dbs: Api<Database> = admin_api(&tenant).await;
    for round in 0..3 {
        let name = format!("twin-{round}");
        let (pp, twin_app, twin_db) = (PostParams::default(), app(&name, Some(1)), database(&name, "1Gi"));
        let (as_app, as_db) = futures::join!(apps.create(&pp, &twin_app), dbs.create(&pp, &twin_db));
        let (app_ok, db_ok) = (as_app.is_ok(), as_db.is_ok());
        assert!(app_ok != db_ok, "{name}: exactly one of App and Database is admitted: {as_app:?} / {as_db:?}");
        let message = if app_ok { validation_denial(as_db) } else { validation_denial(as_app) };
        let winner = if app_ok { "App" } else { "Database" };
        assert!(
            message.ends_with(&format!(
                r#"metadata.name: "{name}" clashes with {winner} "{name}" of this tenant (both would use Service "{name}"); choose another name"#
            )),
            "{message}"
        );
    }
}

/// Every object of a tenant shares its namespace, so Service names are unique across kinds: a
/// Database `x` also claims `x-headless`.
#[tokio::test]
async fn service_names_are_unique_across_kinds() {
    let (tenant, owner) = new_tenant("names", "standard").await;
    let apps: Api<App> = admin_api(&tenant).await;
    let dbs: Api<Database> = admin_api(&tenant).await;
    let wss: Api<Workspace> = admin_api(&tenant).await;
    let pp = PostParams::default();

    apps.create(&pp, &app("web", Some(1))).await.expect("App web");
    let message = validation_denial(dbs.create(&pp, &database("web", "1Gi")).await);
    assert!(
        message.ends_with(
            r#"metadata.name: "web" clashes with App "web" of this tenant (both would use Service "web"); choose another name"#
        ),
        "{message}"
    );
    let message = validation_denial(wss.create(&pp, &workspace("web", &owner, "1Gi")).await);
    assert!(message.contains(r#""web" clashes with App "web""#), "{message}");

    dbs.create(&pp, &database("orders", "1Gi")).await.expect("Database orders");
    let message = validation_denial(apps.create(&pp, &app("orders-headless", Some(1))).await);
    assert!(
        message.ends_with(
            r#"metadata.name: "orders-headless" clashes with Database "orders" of this tenant (both would use Service "orders-headless"); choose another name"#
        ),
        "{message}"
    );
    let message = validation_denial(apps.create(&pp, &app("orders", Some(1))).await);
    assert!(message.contains(r#""orders" clashes with Database "orders""#), "{message}");
    // A name that only looks alike is free.
    apps.create(&pp, &app("orders-api", Some(1))).await.expect("orders-api claims no Service of orders");
}

/// A Workspace's access instructions are mailed to `spec.owner`: a member creating one through
/// Kubernetes (impersonated, as the API does) may name only someone of the tenant.
#[tokio::test]
async fn a_workspace_owner_must_be_someone_of_the_tenant() {
    let (tenant, email) = new_tenant("ws-owner", "free").await;
    let (_, stranger) = Client::new_user("ws-stranger").await;
    // Even an operator, whom the member rules do not bind, names only someone of the tenant.
    let wss: Api<Workspace> = admin_api(&tenant).await;

    let message = validation_denial(wss.create(&PostParams::default(), &workspace("box", &stranger, "1Gi")).await);
    assert!(
        message.ends_with(&format!(r#"spec.owner: "{stranger}" is not in tenant "{tenant}" (its people: {email})"#)),
        "{message}"
    );
    let admitted = wss.create(&PostParams::default(), &workspace("box", &email, "1Gi")).await.expect("the owner's own");
    assert_eq!(admitted.spec.owner, email);

    // An UPDATE may not hand the Workspace to someone else either.
    let handover = Patch::Merge(json!({"spec": {"owner": stranger}}));
    let message = validation_denial(wss.patch("box", &PatchParams::default(), &handover).await);
    assert!(message.contains(&format!(r#"spec.owner: "{stranger}" is not in tenant"#)), "{message}");
    assert_eq!(wss.get("box").await.unwrap().spec.owner, email, "the stored owner is unchanged");
}

/// Keys open a Workspace's home directory: a second owner of the tenant may neither create a
/// Workspace in the first owner's name nor change the first owner's keys (nor anything else
/// of it: see isolation.rs); an operator may.
#[tokio::test]
async fn members_hold_the_keys_of_their_own_workspaces_only() {
    let (tenant, alice) = new_tenant("ws-keys", "standard").await;
    let (_, bob) = Client::new_user("ws-keys-bob").await;
    let tenants: Api<slipway_crds::Tenant> = Api::all(kube_admin().await);
    let owners = Patch::Merge(json!({"spec": {"owners": [{"email": alice}, {"email": bob}]}}));
    tenants.patch(&tenant, &PatchParams::default(), &owners).await.expect("a second owner");
    let (as_alice, as_bob): (Api<Workspace>, Api<Workspace>) =
        (member_api(&alice, &tenant).await, member_api(&bob, &tenant).await);
    // The webhook's Tenant cache may lag the patch: retry until bob counts as an owner.
    support::eventually(std::time::Duration::from_secs(10), "bob's own Workspace", || async {
        as_bob.create(&PostParams::default(), &workspace("bobs", &bob, "1Gi")).await.ok()
    })
    .await;
    as_alice.create(&PostParams::default(), &workspace("alices", &alice, "1Gi")).await.expect("alice's own");

    let message = refusal(403, as_bob.create(&PostParams::default(), &workspace("fake", &alice, "1Gi")).await);
    assert!(message.contains(&format!(r#"members create Workspaces for themselves: set it to "{bob}""#)), "{message}");
    let rotate =
        Patch::Merge(json!({"spec": {"sshKeys": [include_str!("../policies/tests/ssh-keys/ecdsa-p256.pub").trim()]}}));
    let message = refusal(403, as_bob.patch("alices", &PatchParams::default(), &rotate).await);
    assert!(
        message.contains(&format!(r#"only its owner "{alice}" may change this Workspace; you are "{bob}""#)),
        "{message}"
    );
    // The owner and an operator may rotate keys.
    as_alice.patch("alices", &PatchParams::default(), &rotate).await.expect("the owner rotates her keys");
    let admin: Api<Workspace> = admin_api(&tenant).await;
    admin.patch("bobs", &PatchParams::default(), &rotate).await.expect("an operator may rotate keys");
}

/// Mutation: Databases and Workspaces get the plan's CPU and memory where they name none (free:
/// 250m, 128Mi) and the tenant label, on the stored object; what the user set stays.
#[tokio::test]
async fn databases_and_workspaces_get_the_plans_cpu_and_memory() {
    let (tenant, owner) = new_tenant("sized", "free").await;
    let dbs: Api<Database> = admin_api(&tenant).await;
    let wss: Api<Workspace> = admin_api(&tenant).await;
    let quantity = |q: &Option<Quantity>| q.as_ref().map(|q| q.0.clone());

    dbs.create(&PostParams::default(), &database("orders", "1Gi")).await.expect("a bare Database");
    let stored = dbs.get("orders").await.unwrap();
    assert_eq!(quantity(&stored.spec.cpu).as_deref(), Some("250m"), "{:?}", stored.spec);
    assert_eq!(quantity(&stored.spec.memory).as_deref(), Some("128Mi"), "{:?}", stored.spec);
    assert_eq!(stored.labels()[TENANT_LABEL], tenant);

    let mut mine = workspace("box", &owner, "1Gi");
    mine.spec.cpu = Some(Quantity("500m".into()));
    wss.create(&PostParams::default(), &mine).await.expect("a Workspace with its own CPU");
    let stored = wss.get("box").await.unwrap();
    assert_eq!(quantity(&stored.spec.cpu).as_deref(), Some("500m"), "the user's CPU stays");
    assert_eq!(quantity(&stored.spec.memory).as_deref(), Some("128Mi"), "{:?}", stored.spec);
    assert_eq!(stored.labels()[TENANT_LABEL], tenant);
}

/// UPDATEs are never counted: the only Database a "free" tenant may have can still be changed,
/// right after its CREATE (while its own reservation is live); the totals still apply.
#[tokio::test]
async fn updating_the_only_database_of_a_full_plan_is_admitted() {
    let (tenant, _) = new_tenant("upd", "free").await;
    let dbs: Api<Database> = admin_api(&tenant).await;
    dbs.create(&PostParams::default(), &database("orders", "1Gi")).await.expect("the first Database");
    let message = validation_denial(dbs.create(&PostParams::default(), &database("more", "1Gi")).await);
    assert!(message.contains(r#"the plan "free" allows 1 (0 left)"#), "the plan is full: {message}");

    let cpu = |q: &str| Patch::Merge(json!({"spec": {"cpu": q}}));
    let updated = dbs.patch("orders", &PatchParams::default(), &cpu("500m")).await.expect("an UPDATE is not counted");
    assert_eq!(updated.spec.cpu, Some(Quantity("500m".into())));
    let updated = dbs.patch("orders", &PatchParams::default(), &cpu("750m")).await.expect("and again");
    assert_eq!(updated.spec.cpu, Some(Quantity("750m".into())));

    let message = validation_denial(dbs.patch("orders", &PatchParams::default(), &cpu("3")).await);
    assert!(
        message.contains("spec.cpu: this Database needs") && message.contains(r#"the plan "free" cpu limit of 2"#),
        "{message}"
    );
    assert_eq!(dbs.get("orders").await.unwrap().spec.cpu, Some(Quantity("750m".into())));
}

#[tokio::test]
async fn an_env_var_with_both_a_value_and_a_secret_key_is_denied_at_admission() {
    let (_, apps) = tenant_apps("env", "free").await;
    let mut both = app("web", Some(1));
    both.spec.env = serde_json::from_value(serde_json::json!([
        {"name": "DATABASE_URL", "value": "postgres://x", "valueFrom": {"secretKeyRef": {"name": "orders-credentials", "key": "uri"}}}
    ]))
    .unwrap();
    let message = validation_denial(apps.create(&PostParams::default(), &both).await);
    assert!(message.ends_with(r#"spec.env[0]: "DATABASE_URL" sets both value and valueFrom: keep one"#), "{message}");
    let mut secret_only = both.clone();
    secret_only.spec.env[0].value.clear();
    apps.create(&PostParams::default(), &secret_only).await.expect("a Secret reference alone is admitted");
}

/// A ledger whose namespace is missing fails a reservation at once, saying so, instead of
/// retrying 64 times as if each 404 were a lost race. That took about 11 s per request, so the
/// admission bench, run again while its previous run's namespace was still being deleted,
/// seemed to hang.
#[tokio::test]
async fn a_missing_ledger_namespace_fails_the_reservation_and_names_it() {
    use slipway_webhook::{Claim, Ledger, Observed};
    let namespace = support::unique("no-such-namespace");
    let ledger = Ledger::new(kube_admin().await, &namespace, std::time::Duration::from_secs(15));
    let mut tenant = slipway_crds::Tenant::new(
        &support::unique("ledgerless"),
        slipway_crds::TenantSpec {
            owners: vec![slipway_crds::TenantOwner { email: "owner@example.com".into() }],
            members: vec![],
            plan: "free".into(),
            limits: None,
        },
    );
    tenant.metadata.uid = Some(uuid::Uuid::new_v4().to_string());
    let claim = Claim {
        kind: slipway_crds::Kind::App,
        name: "web".into(),
        uid: Some(uuid::Uuid::new_v4().to_string()),
        generation: 1,
        footprint: Default::default(),
    };
    let nothing_observed: Observed = std::sync::Arc::new(|_, _, _| false);
    let mut judged = 0;
    let reserved = ledger
        .reserve(&tenant, &claim, false, nothing_observed, |_| {
            judged += 1;
            (true, ())
        })
        .await;
    let error = reserved.expect_err("a ledger cannot be written in a namespace that does not exist").to_string();
    assert!(error.contains(&format!("namespace {namespace:?} of the reservation ledgers does not exist")), "{error}");
    assert_eq!(judged, 1, "judged once: nothing to retry");
}

/// What kube-apiserver counts of the mutating webhook's match condition (`lacks-defaults`,
/// `slipway_webhook::configurations`) keeping CREATEs from it:
/// `apiserver_admission_match_condition_exclusions_total` for `mutate.slipway.dev`.
async fn creates_kept_from_mutation() -> u64 {
    let request = http::Request::get("/metrics").body(vec![]).unwrap();
    let metrics = kube_admin().await.request_text(request).await.expect("kube-apiserver serves /metrics to an admin");
    let labels = [("name", "mutate.slipway.dev"), ("operation", "CREATE")];
    support::metric_sum(&metrics, "apiserver_admission_match_condition_exclusions_total", &labels) as u64
}

/// A create that already carries what the mutating webhook adds (the tenant label, every field
/// the plan defaults, the requester as author) is not sent to the webhook at all (issue 13: its
/// round trip was the largest part of what admission added to a create), and is stored as
/// sent:
/// - labelled `slipway.dev/defaults: filled`, as Slipway's API sends its creates, by the
///   webhook's object selector. The proof that kube-apiserver skipped the webhook: such an
///   object that lacks anything is refused, saying what, instead of being filled in;
/// - unlabelled, by its match condition, which kube-apiserver counts.
///
/// A create without the label that lacks any of it, or names someone else as its author, is
/// still mutated.
#[tokio::test]
async fn a_create_that_carries_the_defaults_skips_the_mutating_webhook() {
    use slipway_crds::{DEFAULTS_FILLED, DEFAULTS_LABEL, revision::CHANGED_BY_ANNOTATION};
    let (owner, email) = Client::new_user("carry").await;
    let tenant = owner.create_tenant("carry", "pro").await;
    let apps: Api<App> = member_api(&email, &tenant).await;
    let pro = slipway_policies::PlanCatalog::embedded().effective("pro", None).unwrap();
    let carrying = |name: &str, author: &str| {
        let mut app = app(name, None);
        app.spec = pro.default_app(&app.spec);
        app.labels_mut().insert(TENANT_LABEL.into(), tenant.clone());
        app.annotations_mut().insert(CHANGED_BY_ANNOTATION.into(), author.into());
        app
    };
    let labelled = |name: &str, author: &str| {
        let mut app = carrying(name, author);
        app.labels_mut().insert(DEFAULTS_LABEL.into(), DEFAULTS_FILLED.into());
        app
    };

    let sent = labelled("labelled", &email);
    let stored = apps.create(&PostParams::default(), &sent).await.expect("a complete labelled App is admitted");
    assert_eq!(stored.spec, sent.spec, "stored as sent");
    let mut lacking = labelled("labelled-lacking", &email);
    lacking.spec.resources.as_mut().unwrap().requests = None;
    lacking.labels_mut().remove(TENANT_LABEL);
    let message = validation_denial(apps.create(&PostParams::default(), &lacking).await);
    assert!(
        message.ends_with(&format!(
            r#"metadata.labels.slipway.dev/defaults: "filled" says the object carries the plan's defaults and its author, but it lacks spec.resources.requests.cpu, spec.resources.requests.memory, metadata.labels.slipway.dev/tenant: "{tenant}"; set them, or drop the label to have them filled in"#
        )),
        "{message}"
    );
    let message =
        validation_denial(apps.create(&PostParams::default(), &labelled("forged", "mallory@example.com")).await);
    assert!(
        message.contains(&format!(r#"it lacks metadata.annotations.slipway.dev/changed-by: "{email}";"#)),
        "{message}"
    );

    let before = creates_kept_from_mutation().await;
    let sent = carrying("carried", &email);
    let stored = apps.create(&PostParams::default(), &sent).await.expect("a complete App is admitted");
    let after = creates_kept_from_mutation().await;
    assert!(after > before, "kube-apiserver kept no create from the mutating webhook ({before} → {after})");
    assert_eq!(stored.spec, sent.spec, "stored as sent");
    assert_eq!(stored.annotations()[CHANGED_BY_ANNOTATION], email);

    // Someone else named as the author: the webhook is called and names the requester.
    let forged = apps.create(&PostParams::default(), &carrying("forged", "mallory@example.com")).await.unwrap();
    assert_eq!(forged.annotations()[CHANGED_BY_ANNOTATION], email, "the requester is the author");
    // A field left to the plan: the webhook fills it (a request takes the App's own limit).
    let mut partial = carrying("partial", &email);
    partial.spec.resources.as_mut().unwrap().requests = None;
    let stored = apps.create(&PostParams::default(), &partial).await.unwrap();
    let resources = stored.spec.resources.expect("resources are kept");
    let requests = resources.requests.expect("requests are filled in");
    assert_eq!(requests.cpu, resources.limits.and_then(|l| l.cpu));
    // No tenant label: the webhook adds it.
    let mut unlabelled = carrying("unlabelled", &email);
    unlabelled.labels_mut().remove(TENANT_LABEL);
    let stored = apps.create(&PostParams::default(), &unlabelled).await.unwrap();
    assert_eq!(stored.labels()[TENANT_LABEL], tenant);

    // Slipway's API sends its creates complete, and labelled so (had it missed anything, the
    // create would have been refused, as above).
    let body = json!({"name": "through-the-api", "spec": {"image": "nginx", "port": 8080}});
    owner.created(&format!("/tenants/{tenant}/apps"), body).await;
    let stored = apps.get("through-the-api").await.unwrap();
    assert_eq!(stored.spec, pro.default_app(&stored.spec), "the plan's defaults are stored");
    assert_eq!(stored.labels()[TENANT_LABEL], tenant);
    assert_eq!(stored.labels()[DEFAULTS_LABEL], DEFAULTS_FILLED);
    assert_eq!(stored.annotations()[CHANGED_BY_ANNOTATION], email);
    // Its updates carry the defaults and, for a change of what runs, the requester as author: a
    // new image for an App someone else made names the owner. (Whether kube-apiserver called the
    // webhook for it cannot be read here: its counters moved for this PATCH either way, and
    // concurrent tests' updates move them too.)
    let others: Api<App> =
        Api::namespaced(support::role_client("ops@example.com", &tenant, "admin").await, &format!("tenant-{tenant}"));
    others.create(&PostParams::default(), &app("by-someone-else", None)).await.unwrap();
    let body = json!({"spec": {"image": "nginx:1.27", "port": 8080}});
    let updated = owner.put(&format!("/tenants/{tenant}/apps/by-someone-else"), body).await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    let stored = apps.get("by-someone-else").await.unwrap();
    assert_eq!(stored.spec.image, "nginx:1.27");
    assert_eq!(stored.spec, pro.default_app(&stored.spec), "the plan's defaults are stored");
    assert_eq!(stored.annotations()[CHANGED_BY_ANNOTATION], email, "the owner made the change");
    // So are its Databases' (other fields are defaulted).
    let body = json!({"name": "orders", "spec": {"engine": "postgres", "version": "17", "storage": "1Gi"}});
    owner.created(&format!("/tenants/{tenant}/databases"), body).await;
    let stored = admin_api::<Database>(&tenant).await.get("orders").await.unwrap();
    assert_eq!(stored.spec, pro.default_database(&stored.spec), "the plan's defaults are stored");
    assert_eq!(stored.labels()[DEFAULTS_LABEL], DEFAULTS_FILLED);
}

/// The reservation ledger of the tenant with UID `tenant_uid` as stored: the keys of its Apps
/// (`apps.<name>`, sorted) and its lease.
async fn stored_ledger(tenant_uid: &str) -> (Vec<String>, Option<slipway_webhook::Lease>) {
    let configmaps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(kube_admin().await, "slipway-system");
    let data = configmaps.get(&format!("slipway-reservations-{tenant_uid}")).await.unwrap().data.unwrap_or_default();
    let lease = data.get("lease").map(|l| serde_json::from_str(l).unwrap());
    (data.keys().filter(|k| k.starts_with("apps.")).cloned().collect(), lease)
}

/// The Apps' keys of a stored ledger and its lease holder's address.
async fn stored_ledger_holder(tenant_uid: &str) -> (Vec<String>, Option<String>) {
    let (apps, lease) = stored_ledger(tenant_uid).await;
    (apps, lease.map(|l| l.address))
}

/// A real tenant whose reservation ledger the lease tests drive through `Ledger`s, as webhook
/// replicas do. No object is ever stored, so nothing a ledger holds is covered by a cache; the
/// judge admits every App and says which Apps it counted besides the claim.
struct LeaseTenant {
    tenant: slipway_crds::Tenant,
    admin: kube::Client,
}

impl LeaseTenant {
    /// The replicas' reservation lifetime.
    const TTL: std::time::Duration = std::time::Duration::from_secs(10);

    /// A new tenant on the plan `free`, named after `prefix`.
    async fn new(prefix: &str) -> Self {
        let (tenant, _) = new_tenant(prefix, "free").await;
        let admin = kube_admin().await;
        let tenant = Api::all(admin.clone()).get(&tenant).await.unwrap();
        Self { tenant, admin }
    }

    /// A replica that takes the tenant's lease, reached by the others at `address`.
    fn replica(&self, address: &str) -> slipway_webhook::Ledger {
        slipway_webhook::Ledger::new(self.admin.clone(), "slipway-system", Self::TTL).holding_leases_at(address.into())
    }

    /// `replica` reserves room for a new App `name`: the Apps it counted, or who must judge.
    fn reserve(
        &self,
        replica: &slipway_webhook::Ledger,
        name: &str,
    ) -> impl Future<Output = Result<slipway_webhook::Reserved<Vec<String>>, kube::Error>> + 'static {
        let claim = slipway_webhook::Claim {
            kind: slipway_crds::Kind::App,
            name: name.into(),
            uid: Some(uuid::Uuid::new_v4().to_string()),
            generation: 1,
            footprint: Default::default(),
        };
        let (replica, tenant) = (replica.clone(), self.tenant.clone());
        async move {
            let nothing_observed: slipway_webhook::Observed = std::sync::Arc::new(|_, _, _| false);
            let counted = |inventory: slipway_policies::Inventory| {
                (true, inventory.names().map(|(_, name)| name.to_string()).collect::<Vec<_>>())
            };
            replica.reserve(&tenant, &claim, false, nothing_observed, counted).await
        }
    }

    /// The ledger as stored: its Apps' keys and its lease.
    async fn stored(&self) -> (Vec<String>, Option<slipway_webhook::Lease>) {
        stored_ledger(&self.tenant.uid().unwrap()).await
    }
}

/// Two replicas' ledgers of one real tenant, as the webhook uses them (the replicas' addresses
/// are never dialled here: forwarding is the racing tests' part).
///
/// - The first to reserve takes the tenant's lease with the write of its first reservation,
///   then admits from memory: its second reservation is not in the ledger.
/// - The other replica is sent to the holder, and never judges the tenant's growth itself.
/// - Killed while holding the lease (dropped, nothing returned), the holder blocks the tenant's
///   growth: the other replica admits nothing until the lease has ended plus the reservations'
///   lifetime, when everything the dead holder admitted would be in its caches.
/// - Shut down (`release_leases`), the holder writes what it admitted from memory and returns
///   the lease: a third replica takes over at once and counts those admissions.
/// - A holder started again at its address is not sent its own reviews.
#[tokio::test]
async fn a_tenants_lease_admits_from_memory_on_one_replica_and_outlives_a_killed_holder() {
    use slipway_webhook::Reserved;
    let fixture = LeaseTenant::new("lease").await;
    let (ttl, stored) = (LeaseTenant::TTL, || fixture.stored());
    let replica = |address| fixture.replica(address);
    let (first, second) = (replica("192.0.2.1:8443"), replica("192.0.2.2:8443"));

    assert_eq!(fixture.reserve(&first, "a").await.unwrap(), Reserved::Judged(vec![]));
    let (written, lease) = stored().await;
    assert_eq!(written, ["apps.a"], "the first reservation is written, with the lease");
    let lease = lease.expect("the first write takes the lease");
    assert_eq!(lease.address, "192.0.2.1:8443");
    assert_eq!(fixture.reserve(&first, "b").await.unwrap(), Reserved::Judged(vec!["a".to_string()]));
    assert_eq!(stored().await.0, ["apps.a"], "the holder admits from memory: b is not written");
    assert_eq!(fixture.reserve(&second, "c").await.unwrap(), Reserved::HeldBy("192.0.2.1:8443".into()));

    // Killed: its lease stays in the ledger, b is known to nobody else.
    drop(first);
    let lease = stored().await.1.expect("a killed holder returns nothing");
    let lapses = lease.until + u64::try_from(ttl.as_millis()).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let (mut sent_to_holder, mut told_to_retry) = (0, 0);
    let counted = loop {
        assert!(std::time::Instant::now() < deadline, "the second replica never took over");
        match fixture.reserve(&second, "c").await {
            Ok(Reserved::Judged(counted)) => break counted,
            Ok(Reserved::HeldBy(holder)) => {
                assert_eq!(holder, "192.0.2.1:8443");
                sent_to_holder += 1;
            }
            Err(e) => {
                let message = e.to_string();
                assert!(message.contains("stopped renewing its lease") && message.contains("retry"), "{message}");
                told_to_retry += 1;
            }
        }
        // Polled: the lease ends on the wall clock, which nothing can be waited on for.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let taken_at =
        u64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap();
    assert!(taken_at >= lapses, "taken over {} ms before the dead holder's admissions lapsed", lapses - taken_at);
    assert!(sent_to_holder > 0 && told_to_retry > 0, "sent {sent_to_holder}, retry {told_to_retry}");
    assert!(counted.is_empty(), "a and b lapsed with the dead holder's lease: {counted:?}");
    assert_eq!(stored().await.1.map(|l| l.address), Some("192.0.2.2:8443".into()), "the second holds it now");

    // Shut down: what it admitted from memory is written, the lease returned.
    assert_eq!(fixture.reserve(&second, "d").await.unwrap(), Reserved::Judged(vec!["c".to_string()]));
    second.release_leases().await;
    let (written, lease) = stored().await;
    assert_eq!(lease, None, "the lease is returned");
    assert_eq!(written, ["apps.c", "apps.d"], "d, admitted from memory, is written on the way out");
    let third = replica("192.0.2.3:8443");
    assert_eq!(
        fixture.reserve(&third, "e").await.unwrap(),
        Reserved::Judged(vec!["c".to_string(), "d".to_string()]),
        "a third replica takes over at once, counting what the second admitted"
    );

    // Killed and started again at the same address: the earlier process is known to be gone, so
    // nothing is sent to it (nor to itself); what it admitted still counts for the TTL.
    drop(third);
    let restarted = replica("192.0.2.3:8443");
    let message = fixture.reserve(&restarted, "f").await.expect_err("not taken while e may be unseen").to_string();
    assert!(message.contains("stopped renewing its lease") && message.contains("retry"), "{message}");
}

/// A holder asked to stop returns its lease while it still serves, as `Server::serve` does, so
/// that reviews sent to it meanwhile are not lost, and the others take over at once:
///
/// - `release_leases` writes what the holder admitted from memory and removes the lease;
/// - another replica that still knows the old lease sends the tenant's reviews there until it
///   reads the ledger again (`distrust_holder`, what it does when the holder does not answer),
///   then judges them itself and takes the lease;
/// - the stopping replica, still judging what reaches it, is sent on to the new holder, and once
///   the lease is free again it writes what it admits and takes no lease.
#[tokio::test]
async fn a_stopping_holder_returns_its_lease_while_it_still_serves_and_takes_none_again() {
    use slipway_webhook::Reserved;
    let fixture = LeaseTenant::new("handover").await;
    let uid = fixture.tenant.uid().unwrap();
    let stored = || stored_ledger_holder(&uid);
    let (stopping, other) = (fixture.replica("192.0.2.11:8443"), fixture.replica("192.0.2.12:8443"));
    let sent_to = |address: &str| Reserved::HeldBy(address.to_string());
    let counting = |names: &[&str]| Reserved::Judged(names.iter().map(ToString::to_string).collect::<Vec<_>>());

    assert_eq!(fixture.reserve(&stopping, "a").await.unwrap(), counting(&[]));
    assert_eq!(fixture.reserve(&stopping, "b").await.unwrap(), counting(&["a"]));
    assert_eq!(fixture.reserve(&other, "c").await.unwrap(), sent_to("192.0.2.11:8443"));

    stopping.release_leases().await;
    assert_eq!(stored().await, (vec!["apps.a".into(), "apps.b".into()], None), "b written, the lease returned");
    assert_eq!(
        fixture.reserve(&other, "c").await.unwrap(),
        sent_to("192.0.2.11:8443"),
        "nothing tells the other replica: it still sends the tenant's reviews to the stopping one"
    );
    other.distrust_holder("192.0.2.11:8443");
    assert_eq!(fixture.reserve(&other, "c").await.unwrap(), counting(&["a", "b"]), "read again, it judges, counting b");
    assert_eq!(stored().await.1.as_deref(), Some("192.0.2.12:8443"), "and holds the lease");

    assert_eq!(
        fixture.reserve(&stopping, "d").await.unwrap(),
        sent_to("192.0.2.12:8443"),
        "the stopping replica sends on what still reaches it"
    );
    other.release_leases().await;
    stopping.distrust_holder("192.0.2.12:8443");
    assert_eq!(fixture.reserve(&stopping, "d").await.unwrap(), counting(&["a", "b", "c"]));
    let (written, lease) = stored().await;
    assert_eq!(
        written,
        ["apps.a", "apps.b", "apps.c", "apps.d"],
        "d is written: nothing is held by a stopping replica"
    );
    assert_eq!(lease, None, "and it takes no lease");
}

/// End to end, over HTTPS, with two webhook replicas on the real API server: a replica that
/// still knows a stopped holder's lease sends it the next review, finds nobody there, reads the
/// ledger again and judges the review itself, instead of answering 503. The holder returned
/// its lease before it stopped serving (`Server::serve`), writing what it admitted from memory.
#[tokio::test]
async fn a_review_for_a_holder_that_stopped_is_judged_by_the_replica_it_reached() {
    use http_body_util::{BodyExt, Full};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use slipway_webhook::tls::{ReloadingCert, same_certificate_client};
    slipway();
    let (tenant, email) = new_tenant("stopped", "pro").await;
    let admin = kube_admin().await;
    let tenant_uid = Api::<slipway_crds::Tenant>::all(admin.clone()).get(&tenant).await.unwrap().uid().unwrap();
    let certs = slipway_webhook::certs::generate(&["127.0.0.1".into()]).unwrap();
    let dir = std::env::temp_dir().join(format!("slipway-it-handover-{}", uuid::Uuid::new_v4().simple()));
    slipway_webhook::certs::write(&dir, &certs).unwrap();
    let plans = std::sync::Arc::new(slipway_policies::PlanCatalog::embedded());
    let start = |shutdown: tokio::sync::oneshot::Receiver<()>| {
        let (admin, plans, dir) = (admin.clone(), plans.clone(), dir.clone());
        async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            let config = slipway_webhook::WebhookConfig {
                tls_cert: dir.join("tls.crt"),
                tls_key: dir.join("tls.key"),
                namespace: "slipway-system".into(),
                platform: support::platform(),
                reservation_ttl: support::RESERVATION_TTL,
                advertise: Some(address),
            };
            let server = slipway_webhook::Server::start(admin, plans, &config, None).await.unwrap();
            let served = tokio::spawn(server.serve(listener, async move { shutdown.await.unwrap_or_default() }));
            (address, served)
        }
    };
    let (stop_holder, holder_stops) = tokio::sync::oneshot::channel();
    let (_keep_other, other_stops) = tokio::sync::oneshot::channel();
    let (holder, holder_served) = start(holder_stops).await;
    let (other, _) = start(other_stops).await;

    // A CREATE of App `name` in the tenant, with the plan's defaults, posted to `replica`.
    let tls = tokio_rustls::TlsConnector::from(
        same_certificate_client(ReloadingCert::load(dir.join("tls.crt"), dir.join("tls.key")).unwrap()).unwrap(),
    );
    let review = |replica: std::net::SocketAddr, name: &str| {
        let policy = plans.effective("pro", None).unwrap();
        let spec = policy.default_app(&serde_json::from_value(json!({"image": "nginx:1.27", "port": 80})).unwrap());
        let namespace = slipway_crds::tenant_namespace(&tenant);
        let object = json!({
            "apiVersion": "slipway.dev/v1alpha1", "kind": "App",
            "metadata": {
                "name": name, "namespace": namespace, "uid": uuid::Uuid::new_v4().to_string(), "generation": 1,
                "labels": {TENANT_LABEL: tenant},
                "annotations": {(slipway_crds::revision::CHANGED_BY_ANNOTATION): email},
            },
            "spec": spec,
        });
        let body = json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": uuid::Uuid::new_v4().to_string(),
                "kind": {"group": "slipway.dev", "version": "v1alpha1", "kind": "App"},
                "resource": {"group": "slipway.dev", "version": "v1alpha1", "resource": "apps"},
                "name": name, "namespace": namespace, "operation": "CREATE",
                "userInfo": {"username": email, "groups": ["system:authenticated"]},
                "object": object, "dryRun": false,
            }
        });
        let tls = tls.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(replica).await.unwrap();
            let name = rustls::pki_types::ServerName::try_from("replica.slipway.invalid").unwrap();
            let stream = tls.connect(name, tcp).await.unwrap();
            let (mut sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                .handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(connection);
            let request = hyper::Request::post(format!("https://{replica}/validate"))
                .header(hyper::header::CONTENT_TYPE, "application/json")
                .body(Full::new(axum::body::Bytes::from(body.to_string())))
                .unwrap();
            let answer = sender.send_request(request).await.unwrap().into_body().collect().await.unwrap();
            let answer: serde_json::Value = serde_json::from_slice(&answer.to_bytes()).unwrap();
            answer["response"].clone()
        }
    };
    let ledger = || stored_ledger_holder(&tenant_uid);

    let answer = review(holder, "one").await;
    assert_eq!(answer["allowed"], true, "{answer}");
    assert_eq!(ledger().await.1, Some(holder.to_string()), "the first replica reached takes the lease");
    let answer = review(other, "two").await;
    assert_eq!(answer["allowed"], true, "sent to the holder and admitted there: {answer}");
    assert_eq!(ledger().await.0, ["apps.one"], "the holder admitted two from memory");

    stop_holder.send(()).unwrap();
    holder_served.await.unwrap().unwrap();
    assert_eq!(
        ledger().await,
        (vec!["apps.one".to_string(), "apps.two".to_string()], None),
        "the stopped holder wrote two and returned its lease"
    );
    let answer = review(other, "three").await;
    assert_eq!(answer["allowed"], true, "judged by the replica reached, not answered 503: {answer}");
    let (written, lease) = ledger().await;
    assert_eq!(written, ["apps.one", "apps.three", "apps.two"], "three admitted, counting two");
    assert_eq!(lease, Some(other.to_string()), "the replica reached holds the lease now");
    std::fs::remove_dir_all(&dir).ok();
}
