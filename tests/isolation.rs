//! Isolation holes found by attacking Slipway as a hostile tenant and a careless user would
//! (issue 8), each kept as a regression test through the real kube-apiserver: tenant names
//! re-used at once, racing UPDATEs, reservations that outlived their objects, ledgers that
//! outlived their tenants, Workspaces taken over by other members, rules only the API knew,
//! hostile quantities, malformed images and names, and workloads blocked by the quota.

mod support;

/// The SQL backend of this binary's Slipway.
const DATABASE: &str = "sqlite";
/// The cluster of this binary's Slipway: the kwok one (pods become Ready, nothing runs).
const CLUSTER: support::Cluster = support::Cluster::Kwok;

use futures::future::join_all;
use k8s_openapi::api::{
    core::v1::{ConfigMap, Namespace, PersistentVolumeClaim, Pod, ResourceQuota, Secret},
    rbac::v1::RoleBinding,
};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use slipway_crds::{App, Database, Tenant, Workspace};
use std::time::Duration;
use support::{
    Client, admin_api, eventually, kube_admin, member_api, refusal, slipway, unique, validation_denial, wait_ready,
};

const ED25519: &str = include_str!("../policies/tests/ssh-keys/ed25519.pub");

/// Where the webhook keeps its reservation ledgers.
const LEDGER_NAMESPACE: &str = "slipway-system";

fn detail(body: &Value) -> &str {
    body["detail"].as_str().unwrap_or_default()
}

/// Finding 1: deleting a tenant and at once creating another of the same name must never hand
/// the old namespace (Apps, Database, volume, credentials) to the new owner. The name stays
/// reserved until the old namespace is really gone, and the new tenant starts empty.
#[tokio::test]
async fn a_tenant_name_reused_at_once_never_inherits_the_old_namespace() {
    let (alice, _) = Client::new_user("reuse-a").await;
    let tenant = alice.create_tenant("reuse", "free").await;
    let base = format!("/tenants/{tenant}");
    alice.created(&format!("{base}/apps"), json!({"name": "web", "spec": {"image": "nginx"}})).await;
    let retained = json!({"engine": "postgres", "version": "17", "deletionPolicy": "Retain"});
    alice.created(&format!("{base}/databases"), json!({"name": "pg", "spec": retained})).await;
    let credentials = format!("{base}/databases/pg/credentials");
    eventually(Duration::from_secs(60), "the Database's credentials", || async {
        (alice.get(&credentials).await.status == 200).then_some(())
    })
    .await;
    let ns = format!("tenant-{tenant}");
    let namespaces = Api::<Namespace>::all(kube_admin().await);
    let old = namespaces.get(&ns).await.unwrap().uid().unwrap();

    assert_eq!(alice.delete(&base).await.status, 204);
    let (bob, _) = Client::new_user("reuse-b").await;
    let claim = json!({"name": tenant, "plan": "free"});
    let first = bob.post("/tenants", claim.clone()).await;
    assert_eq!(first.status, 409, "the name is still held by the old tenant: {}", first.body);
    assert!(detail(&first.body).contains("is being released, try again in a few seconds"), "{}", first.body);
    eventually(Duration::from_secs(120), "the name to be released", || async {
        let r = bob.post("/tenants", claim.clone()).await;
        match r.status {
            201 => Some(()),
            409 => {
                assert!(detail(&r.body).contains("is being released"), "{}", r.body);
                None
            }
            other => panic!("unexpected {other}: {}", r.body),
        }
    })
    .await;

    let fresh = namespaces.get(&ns).await.unwrap();
    assert_ne!(fresh.uid().unwrap(), old, "a new tenant gets a new namespace");
    assert_eq!(bob.get(&format!("{base}/apps")).await.body["items"], json!([]));
    assert_eq!(bob.get(&format!("{base}/databases")).await.body["items"], json!([]));
    assert_eq!(bob.get(&credentials).await.status, 404);
    let admin = kube_admin().await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(admin.clone(), &ns);
    assert!(claims.get_opt("data-pg-0").await.unwrap().is_none(), "the old volume went with its tenant");
    let secrets: Api<Secret> = Api::namespaced(admin, &ns);
    assert!(secrets.get_opt("pg-credentials").await.unwrap().is_none(), "the old password went with its tenant");
}

/// Finding 1: a namespace that exists without belonging to the Tenant (left behind, or made by
/// someone else) is never adopted: the Tenant reports the conflict and grants nothing in it.
#[tokio::test]
async fn a_namespace_that_is_not_the_tenants_own_is_never_adopted() {
    slipway();
    let admin = kube_admin().await;
    let name = unique("squat");
    let ns = format!("tenant-{name}");
    let namespaces = Api::<Namespace>::all(admin.clone());
    let squatted: Namespace = serde_json::from_value(json!({
        "metadata": {"name": ns, "labels": {"slipway.dev/tenant": name}}
    }))
    .unwrap();
    namespaces.create(&PostParams::default(), &squatted).await.unwrap();
    let tenants = Api::<Tenant>::all(admin.clone());
    let tenant: Tenant = serde_json::from_value(json!({
        "apiVersion": "slipway.dev/v1alpha1", "kind": "Tenant",
        "metadata": {"name": name},
        "spec": {"owners": [{"email": "owner@example.com"}], "plan": "free"}
    }))
    .unwrap();
    let tenant = tenants.create(&PostParams::default(), &tenant).await.unwrap();

    let ready = eventually(Duration::from_secs(60), "the conflict to be reported", || async {
        let t = tenants.get(&name).await.unwrap();
        let ready = t.status?.conditions.into_iter().find(|c| c.type_ == "Ready")?;
        (ready.reason == "NamespaceConflict").then_some(ready)
    })
    .await;
    assert_eq!(ready.status, "False");
    assert!(ready.message.contains(&format!("namespace {ns} exists and does not belong to")), "{}", ready.message);
    let kept = namespaces.get(&ns).await.unwrap();
    assert!(kept.owner_references().iter().all(|o| Some(&o.uid) != tenant.uid().as_ref()), "never adopted");
    let bindings: Api<RoleBinding> = Api::namespaced(admin, &ns);
    assert!(bindings.get_opt("slipway-tenant-members").await.unwrap().is_none(), "no member gets rights in it");

    tenants.delete(&name, &DeleteParams::default()).await.unwrap();
    namespaces.delete(&ns, &DeleteParams::default()).await.unwrap();
}

/// Three Apps of 1 x 500m on "free" (2 CPUs): 1500m used, room for exactly one more pod.
async fn three_half_cpu_apps(owner: &Client, tenant: &str) -> Vec<String> {
    let names: Vec<String> = ["a", "b", "c"].iter().map(|n| format!("half-{n}")).collect();
    for name in &names {
        let spec = json!({"image": "nginx", "replicas": 1, "resources": {"limits": {"cpu": "500m"}}});
        owner.created(&format!("/tenants/{tenant}/apps"), json!({"name": name, "spec": spec})).await;
    }
    for name in &names {
        wait_ready(owner, &format!("/tenants/{tenant}/apps/{name}")).await;
    }
    names
}

/// The CPU the tenant's stored Apps may use, in millicores.
async fn app_cpu_millis(tenant: &str) -> i64 {
    let apps: Api<App> = admin_api(tenant).await;
    apps.list(&ListParams::default()).await.unwrap().iter().map(|a| i64::from(a.spec.replicas.unwrap_or(1)) * 500).sum()
}

/// Finding 2: UPDATEs that grow a footprint reserve their growth as CREATEs do, so racing
/// scale-ups through the API never exceed the plan's CPU total.
#[tokio::test]
async fn racing_scale_ups_through_the_api_never_exceed_the_plan() {
    let (owner, _) = Client::new_user("race-up").await;
    let tenant = owner.create_tenant("race-up", "free").await;
    let names = three_half_cpu_apps(&owner, &tenant).await;
    let puts = names.iter().map(|name| {
        let (owner, path) = (owner.clone(), format!("/tenants/{tenant}/apps/{name}"));
        async move {
            let mut spec = owner.get(&path).await.body["spec"].clone();
            spec["replicas"] = json!(2);
            owner.put(&path, json!({"spec": spec})).await
        }
    });
    let replies = join_all(puts).await;
    let admitted = replies.iter().filter(|r| r.status == 200).count();
    for r in replies.iter().filter(|r| r.status != 200) {
        assert_eq!(r.status, 422, "{}", r.body);
        assert!(detail(&r.body).contains(r#"the plan "free" cpu limit of 2"#), "{}", r.body);
    }
    assert_eq!(admitted, 1, "room for exactly one more 500m pod");
    assert_eq!(app_cpu_millis(&tenant).await, 2000, "the tenant's Apps use exactly the plan's total");
}

/// Finding 2, through Kubernetes: racing `kubectl scale`-like patches by a member.
#[tokio::test]
async fn racing_scale_ups_through_kubectl_never_exceed_the_plan() {
    let (owner, email) = Client::new_user("race-kc").await;
    let tenant = owner.create_tenant("race-kc", "free").await;
    let names = three_half_cpu_apps(&owner, &tenant).await;
    let apps: Api<App> = member_api(&email, &tenant).await;
    let patches = names.iter().map(|name| {
        let apps = apps.clone();
        async move { apps.patch(name, &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 2}}))).await }
    });
    let results = join_all(patches).await;
    let admitted = results.iter().filter(|r| r.is_ok()).count();
    for result in results.into_iter().filter(Result::is_err) {
        let message = validation_denial(result);
        assert!(message.contains(r#"the plan "free" cpu limit of 2"#), "{message}");
    }
    assert_eq!(admitted, 1, "room for exactly one more 500m pod");
    assert_eq!(app_cpu_millis(&tenant).await, 2000);
}

fn workspace(name: &str, owner: &str, storage: &str) -> Workspace {
    serde_json::from_value(json!({
        "apiVersion": "slipway.dev/v1alpha1", "kind": "Workspace", "metadata": {"name": name},
        "spec": {"owner": owner, "storage": storage, "sshKeys": [ED25519.trim()]}
    }))
    .unwrap()
}

fn database(name: &str, spec: Value) -> Database {
    serde_json::from_value(json!({
        "apiVersion": "slipway.dev/v1alpha1", "kind": "Database", "metadata": {"name": name}, "spec": spec
    }))
    .unwrap()
}

/// Finding 3: a deleted object stops counting as soon as the webhook has seen it go, not when
/// its reservation runs out (the test webhooks' reservations last longer than this waits).
#[tokio::test]
async fn a_deleted_object_frees_its_room_at_once() {
    let (owner, email) = Client::new_user("free-room").await;
    let tenant = owner.create_tenant("free-room", "free").await;
    let wss: Api<Workspace> = admin_api(&tenant).await;
    let dbs: Api<Database> = admin_api(&tenant).await;
    let big =
        database("pg", json!({"engine": "postgres", "version": "17", "storage": "3Gi", "deletionPolicy": "Delete"}));

    wss.create(&PostParams::default(), &workspace("box", &email, "3Gi")).await.expect("3Gi of 5Gi");
    let message = validation_denial(dbs.create(&PostParams::default(), &big).await);
    assert!(message.contains("spec.storage: this Database needs 3Gi but the tenant already uses 3Gi"), "{message}");
    wss.delete("box", &DeleteParams::default()).await.unwrap();
    eventually(Duration::from_secs(30), "the 3Gi Database to be admitted", || async {
        dbs.create(&PostParams::default(), &big).await.ok()
    })
    .await;
}

/// Finding 4: a ledger keeps what counting needs and nothing else (never an App's environment),
/// and goes with its tenant.
#[tokio::test]
async fn reservation_ledgers_hold_no_specs_and_go_with_their_tenant() {
    let (owner, _) = Client::new_user("ledger").await;
    let tenant = owner.create_tenant("ledger", "free").await;
    let secret = unique("hunter2");
    let spec = json!({"image": "nginx", "env": [{"name": "DB_PASSWORD", "value": secret}]});
    owner.created(&format!("/tenants/{tenant}/apps"), json!({"name": "web", "spec": spec})).await;

    let ledgers: Api<ConfigMap> = Api::namespaced(kube_admin().await, LEDGER_NAMESPACE);
    let mine = ListParams::default().labels(&format!("slipway.dev/tenant={tenant}"));
    let found = ledgers.list(&mine).await.unwrap().items;
    assert_eq!(found.len(), 1, "one ledger per tenant");
    let text = serde_json::to_string(&found[0].data).unwrap();
    assert!(!text.contains(&secret), "the ledger must not keep environment values: {text}");
    assert!(!text.contains("nginx"), "the ledger keeps footprints, not specs: {text}");

    assert_eq!(owner.delete(&format!("/tenants/{tenant}")).await.status, 204);
    eventually(Duration::from_secs(120), "the ledger to go with its tenant", || async {
        ledgers.list(&mine).await.unwrap().items.is_empty().then_some(())
    })
    .await;
}

/// A "standard" tenant with two owners, alice and bob: its name and their emails.
async fn two_owner_tenant(prefix: &str) -> (Client, String, Client, String, String) {
    let (alice, alice_email) = Client::new_user(&format!("{prefix}-alice")).await;
    let (bob, bob_email) = Client::new_user(&format!("{prefix}-bob")).await;
    let tenant = alice.create_tenant(prefix, "standard").await;
    let tenants: Api<Tenant> = Api::all(kube_admin().await);
    let owners = Patch::Merge(json!({"spec": {"owners": [{"email": alice_email}, {"email": bob_email}]}}));
    tenants.patch(&tenant, &PatchParams::default(), &owners).await.expect("a second owner");
    (alice, alice_email, bob, bob_email, tenant)
}

/// Finding 5: only a Workspace's owner (or an operator) changes anything in its spec; another
/// member changing its image or size with kubectl would take over its home directory.
#[tokio::test]
async fn only_its_owner_changes_a_workspace() {
    let (_, alice, _, bob, tenant) = two_owner_tenant("ws-own").await;
    let as_alice: Api<Workspace> = member_api(&alice, &tenant).await;
    let as_bob: Api<Workspace> = member_api(&bob, &tenant).await;
    as_alice.create(&PostParams::default(), &workspace("alices", &alice, "1Gi")).await.expect("alice's own");

    for change in [json!({"image": "ghcr.io/mallory/backdoor:1"}), json!({"cpu": "300m"}), json!({"memory": "512Mi"})] {
        let patch = Patch::Merge(json!({"spec": change}));
        let message = refusal(403, as_bob.patch("alices", &PatchParams::default(), &patch).await);
        assert!(
            message.contains(&format!(r#"only its owner "{alice}" may change this Workspace; you are "{bob}""#)),
            "{message}"
        );
    }
    let stored = as_alice.get("alices").await.unwrap();
    assert_eq!(
        (stored.spec.image, stored.spec.cpu),
        (None, Some(k8s_openapi::apimachinery::pkg::api::resource::Quantity("500m".into())))
    );
    let cpu = Patch::Merge(json!({"spec": {"cpu": "300m"}}));
    as_alice.patch("alices", &PatchParams::default(), &cpu).await.expect("the owner resizes");
    let admin: Api<Workspace> = admin_api(&tenant).await;
    admin
        .patch("alices", &PatchParams::default(), &Patch::Merge(json!({"spec": {"cpu": "400m"}})))
        .await
        .expect("an operator may");
}

/// Finding 6: the rules that lived only in the API (email domains of Workspace owners, name
/// lengths) hold for kubectl users too, with the same words.
#[tokio::test]
async fn rules_the_api_knew_hold_for_kubectl_users() {
    let (outsider, email) = Client::new_user_at("gmail", "gmail.test").await;
    let tenant = outsider.create_tenant("gmail", "standard").await;
    let wss: Api<Workspace> = member_api(&email, &tenant).await;
    let message = refusal(403, wss.create(&PostParams::default(), &workspace("box", &email, "1Gi")).await);
    assert!(
        message.contains(&format!("workspaces are available to accounts at example.com only; {email} is not")),
        "{message}"
    );
    let r = outsider
        .post(&format!("/tenants/{tenant}/workspaces"), json!({"name": "box", "spec": {"sshKeys": [ED25519.trim()]}}))
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(detail(&r.body).contains("workspaces are available to accounts at example.com only"), "{}", r.body);

    // A Database's StatefulSet cannot start a pod with a name over 52 characters.
    let long = "d".repeat(60);
    let dbs: Api<Database> = member_api(&email, &tenant).await;
    let message = validation_denial(
        dbs.create(&PostParams::default(), &database(&long, json!({"engine": "postgres", "version": "17"}))).await,
    );
    assert!(
        message.contains(&format!(r#"metadata.name: "{long}" is not a valid Database name: use 1 to 52"#)),
        "{message}"
    );
    let r = outsider
        .post(
            &format!("/tenants/{tenant}/databases"),
            json!({"name": long, "spec": {"engine": "postgres", "version": "17"}}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.body["errors"][0]["field"], "metadata.name");
}

/// Finding 7: a quantity with a huge negative exponent is refused with a clear message, by the
/// API and by the webhook, instead of crashing either.
#[tokio::test]
async fn hostile_exponents_are_refused_not_crashed_on() {
    let (owner, email) = Client::new_user("expo").await;
    let tenant = owner.create_tenant("expo", "free").await;
    for cpu in ["1e-400", "9e-999", "1E-40"] {
        let spec = json!({"image": "nginx", "resources": {"limits": {"cpu": cpu}}});
        let r = owner.post(&format!("/tenants/{tenant}/apps"), json!({"name": "tiny", "spec": spec})).await;
        assert_eq!(r.status, 422, "{cpu}: {}", r.body);
        let fields: Vec<_> = r.body["errors"].as_array().unwrap().iter().map(|e| e["field"].clone()).collect();
        assert!(fields.contains(&json!("spec.resources.limits.cpu")), "{}", r.body);
    }
    let apps: Api<App> = member_api(&email, &tenant).await;
    let app: App = serde_json::from_value(json!({
        "apiVersion": "slipway.dev/v1alpha1", "kind": "App", "metadata": {"name": "tiny"},
        "spec": {"image": "nginx", "resources": {"limits": {"cpu": "1e-400"}}}
    }))
    .unwrap();
    let message = validation_denial(apps.create(&PostParams::default(), &app).await);
    assert!(
        message.contains("spec.resources.limits.cpu: 1e-400 is below the plan \"free\" minimum of 10m"),
        "{message}"
    );
}

/// Finding 8: image references follow the reference grammar, and amounts have the plan's
/// minimum; both through the API and through Kubernetes.
#[tokio::test]
async fn malformed_images_and_tiny_amounts_are_refused() {
    let (owner, email) = Client::new_user("shape").await;
    let tenant = owner.create_tenant("shape", "free").await;
    let apps = format!("/tenants/{tenant}/apps");
    for image in
        [" nginx", "nginx ", "ngi nx", "nginx\n", "nginx:1.27\nx", "ngïnx", "nginx:tägg", "NGINX", "nginx@sha256:abc"]
    {
        let r = owner.post(&apps, json!({"name": "img", "spec": {"image": image}})).await;
        assert_eq!(r.status, 422, "{image:?}: {}", r.body);
        assert_eq!(r.body["errors"][0]["field"], "spec.image", "{image:?}: {}", r.body);
    }
    let r = owner
        .post(
            &format!("/tenants/{tenant}/databases"),
            json!({"name": "pg", "spec": {"engine": "postgres", "version": "17", "memory": "1"}}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(detail(&r.body), r#"spec.memory: 1 is below the plan "free" minimum of 32Mi"#, "{}", r.body);

    let kubectl: Api<App> = member_api(&email, &tenant).await;
    let app: App = serde_json::from_value(json!({
        "apiVersion": "slipway.dev/v1alpha1", "kind": "App", "metadata": {"name": "img"},
        "spec": {"image": "nginx\n"}
    }))
    .unwrap();
    let message = validation_denial(kubectl.create(&PostParams::default(), &app).await);
    assert!(message.contains(r#"spec.image: "nginx\n" is not a valid image reference"#), "{message}");
}

/// Finding 9: names in URL paths are checked before anything else: a name carrying a query
/// string or control characters is a 400, never a call Kubernetes reads differently.
#[tokio::test]
async fn odd_names_in_paths_are_client_errors() {
    let (owner, _) = Client::new_user("paths").await;
    let tenant = owner.create_tenant("paths", "free").await;
    let apps = format!("/tenants/{tenant}/apps");
    owner.created(&apps, json!({"name": "web", "spec": {"image": "nginx"}})).await;

    let r = owner.delete(&format!("{apps}/web%3FdryRun%3DAll")).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(detail(&r.body).contains("is not a valid name"), "{}", r.body);
    assert_eq!(owner.get(&format!("{apps}/web")).await.status, 200, "web must survive");
    for odd in ["a%00b", "a%0D%0Ab", "a%20b", "a%3Fb", "A", "a_b"] {
        for path in [format!("{apps}/{odd}"), format!("/tenants/{odd}"), format!("/tenants/{odd}/databases/x")] {
            let r = owner.get(&path).await;
            assert_eq!(r.status, 400, "{path}: {}", r.body);
            assert_eq!(r.body["status"], 400, "problem details: {}", r.body);
        }
    }
}

/// Finding 9: the token of an account deleted behind the API's back is refused with 401, not
/// a 500 on the first write that names the account.
#[tokio::test]
async fn a_deleted_accounts_token_is_unauthorized() {
    let (ghost, email) = Client::new_user("ghost").await;
    sqlx::any::install_default_drivers();
    let mut db = <sqlx::AnyConnection as sqlx::Connection>::connect(&slipway().database_url).await.unwrap();
    sqlx::query("DELETE FROM users WHERE email = $1").bind(&email).execute(&mut db).await.unwrap();
    let r = ghost.post("/tenants", json!({"name": unique("ghost"), "plan": "free"})).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(detail(&r.body).contains("no longer exists"), "{}", r.body);
}

/// Finding 10: when the namespace's ResourceQuota refuses an App's pods, the App says so in
/// the quota's own words.
#[tokio::test]
async fn an_app_the_quota_blocks_says_why() {
    let (owner, _) = Client::new_user("blocked").await;
    let tenant = owner.create_tenant("blocked", "free").await;
    let path = format!("/tenants/{tenant}/apps/web");
    owner.created(&format!("/tenants/{tenant}/apps"), json!({"name": "web", "spec": {"image": "nginx"}})).await;
    wait_ready(&owner, &path).await;

    // An operator shrinks the tenant below what runs; its pod is then deleted and cannot return.
    let admin = kube_admin().await;
    let shrink = Patch::Merge(json!({"spec": {"limits": {"cpu": "100m"}}}));
    Api::<Tenant>::all(admin.clone()).patch(&tenant, &PatchParams::default(), &shrink).await.unwrap();
    let quotas: Api<ResourceQuota> = admin_api(&tenant).await;
    eventually(Duration::from_secs(30), "the quota to shrink", || async {
        let q = quotas.get("slipway-plan").await.unwrap();
        (q.spec?.hard?.get("limits.cpu")?.0 == "100m").then_some(())
    })
    .await;
    let pods: Api<Pod> = admin_api(&tenant).await;
    pods.delete_collection(&DeleteParams::default(), &ListParams::default().labels("slipway.dev/app=web"))
        .await
        .unwrap();

    let ready = eventually(Duration::from_secs(90), "the quota's refusal on the App", || async {
        let body = owner.get(&path).await.body;
        let ready = body["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == "Ready")?.clone();
        ready["message"].as_str()?.contains("exceeded quota").then_some(ready)
    })
    .await;
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "FailedCreate", "{ready}");
    assert!(ready["message"].as_str().unwrap().contains("slipway-plan"), "{ready}");
}
