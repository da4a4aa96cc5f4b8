//! Tenancy against the real control plane: the guard rails a tenant gets, isolation enforced
//! by Kubernetes RBAC itself, plan limits refused with problem details, scaling, the
//! once-only email across controller restarts, and tenant deletion.

mod support;

/// The SQL backend of this binary's Slipway (e2e.rs runs on SQLite).
const DATABASE: &str = "postgres";
/// The cluster of this binary's Slipway: the kwok one (pods become Ready, nothing runs).
const CLUSTER: support::Cluster = support::Cluster::Kwok;

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{LimitRange, Namespace, ResourceQuota, Secret},
    networking::v1::NetworkPolicy,
    rbac::v1::RoleBinding,
};
use kube::{Api, ResourceExt, api::ListParams};
use serde_json::{Value, json};
use slipway_crds::{App, Tenant};
use std::{sync::Arc, time::Duration};
use support::{Client, eventually, kube_admin, mails_to, wait_ready};

fn app_body(name: &str, replicas: i64, expose: &str) -> Value {
    json!({"name": name, "spec": {"image": "nginxinc/nginx-unprivileged:1.27", "port": 8080, "replicas": replicas, "expose": {"type": expose}}})
}

#[tokio::test]
async fn a_tenant_gets_its_guard_rails() {
    let (owner, email) = Client::new_user("rails").await;
    let tenant = owner.create_tenant("rails", "free").await;
    let ns = format!("tenant-{tenant}");
    let admin = kube_admin().await;

    let namespace = Api::<Namespace>::all(admin.clone()).get(&ns).await.unwrap();
    assert_eq!(namespace.labels()["pod-security.kubernetes.io/enforce"], "restricted");
    assert_eq!(namespace.labels()["slipway.dev/tenant"], tenant);
    assert_eq!(namespace.owner_references()[0].name, tenant);

    let quota = Api::<ResourceQuota>::namespaced(admin.clone(), &ns).get("slipway-plan").await.unwrap();
    let hard = quota.spec.unwrap().hard.unwrap();
    assert_eq!(hard["limits.cpu"].0, "2");
    assert_eq!(hard["limits.memory"].0, "2Gi");
    assert_eq!(hard["services.nodeports"].0, "4", "3 Apps and 1 Workspace on node ports");
    let limits = Api::<LimitRange>::namespaced(admin.clone(), &ns).get("slipway-defaults").await.unwrap();
    assert_eq!(limits.spec.unwrap().limits[0].default.as_ref().unwrap()["cpu"].0, "250m");
    let binding = Api::<RoleBinding>::namespaced(admin.clone(), &ns).get("slipway-tenant-members").await.unwrap();
    assert_eq!(binding.subjects.unwrap()[0].name, format!("slipway:tenant:{tenant}"));
    let deny = Api::<NetworkPolicy>::namespaced(admin.clone(), &ns).get("slipway-default-deny").await.unwrap();
    assert_eq!(deny.spec.unwrap().policy_types.unwrap(), ["Ingress", "Egress"]);

    let t = Api::<Tenant>::all(admin).get(&tenant).await.unwrap();
    assert_eq!(t.spec.owners[0].email, email);
    assert_eq!(t.status.unwrap().namespace.as_deref(), Some(ns.as_str()));
}

/// Impersonate a member the way the API does, and check that Kubernetes itself refuses
/// anything outside the member's own tenant: the second wall of isolation.
#[tokio::test]
async fn kubernetes_rbac_confines_members_to_their_tenant() {
    let (a, email) = Client::new_user("rbac-a").await;
    let (b, _) = Client::new_user("rbac-b").await;
    let tenant_a = a.create_tenant("rbac-a", "free").await;
    let tenant_b = b.create_tenant("rbac-b", "free").await;
    // As its owner: the most a person of tenant A can be.
    let as_a = support::role_client(&email, &tenant_a, "owner").await;

    let own: Api<App> = Api::namespaced(as_a.clone(), &format!("tenant-{tenant_a}"));
    assert!(own.list(&ListParams::default()).await.is_ok());
    let forbidden = |r: Result<_, kube::Error>| matches!(r, Err(kube::Error::Api(s)) if s.code == 403);
    let other: Api<App> = Api::namespaced(as_a.clone(), &format!("tenant-{tenant_b}"));
    assert!(
        forbidden(other.list(&ListParams::default()).await.map(drop)),
        "a member must not see another tenant's Apps"
    );
    let secrets: Api<Secret> = Api::namespaced(as_a.clone(), &format!("tenant-{tenant_a}"));
    assert!(forbidden(secrets.list(&ListParams::default()).await.map(drop)), "members may not list Secrets");
    let foreign: Api<Secret> = Api::namespaced(as_a.clone(), &format!("tenant-{tenant_b}"));
    assert!(
        forbidden(foreign.get("anything-credentials").await.map(drop)),
        "a member must not read another tenant's Secrets"
    );
    let deployments: Api<Deployment> = Api::namespaced(as_a, &format!("tenant-{tenant_a}"));
    let dep: Deployment = serde_json::from_value(json!({"metadata": {"name": "sneaky"}, "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}})).unwrap();
    assert!(
        forbidden(deployments.create(&Default::default(), &dep).await.map(drop)),
        "only the controller writes workloads"
    );
}

#[tokio::test]
async fn plan_limits_and_invalid_specs_are_refused_with_problem_details() {
    let (owner, _) = Client::new_user("limits").await;
    let tenant = owner.create_tenant("limits", "free").await;
    let apps = format!("/tenants/{tenant}/apps");

    let r = owner.post(&apps, app_body("big", 12, "NodePort")).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(
        r.body["detail"],
        r#"spec.replicas: 12 exceeds the plan "free" limit of 3; spec.resources.limits.cpu: 12 replicas x 250m = 3 exceeds the plan "free" cpu limit of 2"#
    );
    assert_eq!(r.body["errors"][0]["field"], "spec.replicas");
    assert_eq!(r.body["errors"][1]["field"], "spec.resources.limits.cpu");

    let r = owner
        .post(
            &apps,
            json!({"name": "ing", "spec": {"image": "nginx", "expose": {"type": "Ingress", "host": "a.example.com"}}}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.body["detail"].as_str().unwrap().contains("Ingress is not allowed by the plan \"free\""), "{}", r.body);

    // The CRD's own schema (checked by kube-apiserver) reaches the user as a 422 too.
    let r = owner.post(&apps, json!({"name": "port", "spec": {"image": "nginx", "port": 70000}})).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body["detail"].as_str().unwrap().contains("spec.port"), "{}", r.body);
    let r = owner.post(&apps, json!({"name": "typo", "spec": {"image": "nginx", "replica": 2}})).await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["detail"], "unknown field(s): spec.replica");
    let r = owner.post(&apps, json!({"name": "Bad", "spec": {"image": "nginx"}})).await;
    assert_eq!(r.status, 422);

    for name in ["one", "two", "three"] {
        assert_eq!(owner.post(&apps, app_body(name, 1, "ClusterIP")).await.status, 201);
    }
    let r = owner.post(&apps, app_body("four", 1, "ClusterIP")).await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["detail"], r#"metadata.name: the tenant already has 3 Apps; the plan "free" allows 3 (0 left)"#);
    assert_eq!(owner.post(&apps, app_body("one", 1, "ClusterIP")).await.status, 409);
}

#[tokio::test]
async fn scaling_and_the_once_only_email_survive_a_second_controller() {
    let (owner, email) = Client::new_user("scale").await;
    let tenant = owner.create_tenant("scale", "free").await;
    let path = format!("/tenants/{tenant}/apps/api");
    assert_eq!(owner.post(&format!("/tenants/{tenant}/apps"), app_body("api", 1, "NodePort")).await.status, 201);
    wait_ready(&owner, &path).await;
    eventually(Duration::from_secs(30), "the ready email", || async {
        (mails_to(&email).await.len() == 1).then_some(())
    })
    .await;

    // A second controller, as after a restart or with two replicas, reconciles the same App.
    let (trigger, shutdown) = slipway::Shutdown::manual();
    let config = support::second_controller_config();
    let second = tokio::spawn(slipway_controller::run(
        kube_admin().await,
        Arc::new(slipway_policies::PlanCatalog::embedded()),
        config,
        shutdown.wait(),
    ));

    let mut spec = owner.get(&path).await.body["spec"].clone();
    spec["replicas"] = json!(3);
    let r = owner.put(&path, json!({"spec": spec})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Two controllers without leader election (issue 11) may briefly undo each other: the second
    // one's first reconcile can apply the replicas of the App it listed before the PUT. Both are
    // level-triggered, so they converge; the test waits for the App and its Deployment to agree.
    let admin = kube_admin().await;
    let deployments = Api::<Deployment>::namespaced(admin, &format!("tenant-{tenant}"));
    eventually(Duration::from_secs(90), "the App and its Deployment at 3 available replicas", || async {
        let body = owner.get(&path).await.body;
        let app_ready = body["status"]["phase"] == "Ready"
            && body["status"]["availableReplicas"] == 3
            && body["status"]["replicas"] == 3;
        let deployment = deployments.get("api").await.unwrap();
        let available = deployment.status.and_then(|s| s.available_replicas);
        (app_ready && deployment.spec.and_then(|s| s.replicas) == Some(3) && available == Some(3)).then_some(())
    })
    .await;

    trigger.fire();
    // Once (in a CI run of the suite, 2026-12-04) the second controller never finished after
    // its shutdown signal and the suite hung until killed: fail with a message instead.
    let stopped = tokio::time::timeout(Duration::from_secs(120), second).await;
    stopped.expect("the second controller did not stop within 120 s of its shutdown signal").unwrap().unwrap();
    assert_eq!(mails_to(&email).await.len(), 1, "the ready email is sent once per App, not per controller or rollout");
}

#[tokio::test]
async fn deleting_a_tenant_removes_its_namespace_then_the_tenant() {
    let (owner, _) = Client::new_user("bye").await;
    let tenant = owner.create_tenant("bye", "free").await;
    let (stranger, _) = Client::new_user("stranger").await;
    assert_eq!(stranger.delete(&format!("/tenants/{tenant}")).await.status, 404);
    assert_eq!(owner.delete(&format!("/tenants/{tenant}")).await.status, 204);
    assert_eq!(owner.get(&format!("/tenants/{tenant}")).await.status, 404);
    let admin = kube_admin().await;
    let namespaces = Api::<Namespace>::all(admin.clone());
    let tenants = Api::<Tenant>::all(admin);
    let ns = format!("tenant-{tenant}");
    // The Tenant's finalizer holds it until its namespace is really gone; then it goes too.
    eventually(Duration::from_secs(120), "the namespace, then the Tenant, to be gone", || async {
        let namespace = namespaces.get_opt(&ns).await.unwrap();
        let held = tenants.get_opt(&tenant).await.unwrap();
        if let Some(t) = &held {
            assert!(t.finalizers().contains(&"slipway.dev/namespace".to_string()), "{:?}", t.metadata);
        }
        assert!(held.is_some() || namespace.is_none(), "the Tenant went before its namespace");
        (namespace.is_none() && held.is_none()).then_some(())
    })
    .await;
}

/// A leader's work, as [`slipway_controller::lead`] runs it: marks `leading` while it runs.
async fn lead_while(
    election: slipway_controller::LeaderElection,
    leading: Arc<std::sync::atomic::AtomicBool>,
    shutdown: slipway::Shutdown,
) -> slipway_controller::Result<()> {
    use std::sync::atomic::Ordering::SeqCst;
    slipway_controller::lead(kube_admin().await, &election, shutdown.wait(), |stop| async move {
        leading.store(true, SeqCst);
        stop.await;
        leading.store(false, SeqCst);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn one_replica_leads_and_stops_when_it_loses_the_lease_and_another_takes_over() {
    use k8s_openapi::api::coordination::v1::Lease;
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    let lease = support::unique("lease");
    let election = |identity: &str| slipway_controller::LeaderElection {
        namespace: "slipway-system".into(),
        lease: lease.clone(),
        identity: identity.into(),
        duration_seconds: 6,
        grace_seconds: 2,
    };
    let leases: Api<Lease> = Api::namespaced(kube_admin().await, "slipway-system");
    let (a_leads, b_leads) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let (_a_trigger, a_shutdown) = slipway::Shutdown::manual();
    let a = tokio::spawn(lead_while(election("a"), a_leads.clone(), a_shutdown));
    eventually(Duration::from_secs(60), "a to lead", || async { a_leads.load(SeqCst).then_some(()) }).await;
    let (b_trigger, b_shutdown) = slipway::Shutdown::manual();
    let b = tokio::spawn(lead_while(election("b"), b_leads.clone(), b_shutdown));

    // While a renews the Lease (twice, so b has had time to try), b waits.
    let renewed = |l: &Lease| l.spec.as_ref().and_then(|s| s.renew_time.clone()).map(|t| t.0);
    // (the last renewal seen, how many since b started)
    let seen = std::sync::Mutex::new((renewed(&leases.get(&lease).await.unwrap()), 0));
    eventually(Duration::from_secs(60), "a to renew the Lease twice", || async {
        assert!(!b_leads.load(SeqCst), "b leads while a holds the Lease");
        let now = renewed(&leases.get(&lease).await.unwrap());
        let mut seen = seen.lock().unwrap();
        if now != seen.0 {
            *seen = (now, seen.1 + 1);
        }
        (seen.1 >= 2).then_some(())
    })
    .await;
    assert!(a_leads.load(SeqCst) && !b_leads.load(SeqCst));

    // Someone else takes the Lease (as a replica whose renewals a missed would): a stops at
    // once and says so; b keeps waiting.
    let stolen = json!({"spec": {"holderIdentity": "intruder", "leaseDurationSeconds": 6,
        "renewTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(k8s_openapi::jiff::Timestamp::now())}});
    leases.patch(&lease, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&stolen)).await.unwrap();
    let lost = tokio::time::timeout(Duration::from_secs(60), a).await.expect("a to notice it lost the Lease").unwrap();
    assert!(matches!(lost, Err(slipway_controller::Error::LostLeadership)), "{lost:?}");
    assert!(!a_leads.load(SeqCst), "a's work stopped");

    // The intruder dies (it never renews): once its Lease expires, b takes over.
    eventually(Duration::from_secs(60), "b to take over", || async { b_leads.load(SeqCst).then_some(()) }).await;
    let held = leases.get(&lease).await.unwrap();
    assert_eq!(held.spec.and_then(|s| s.holder_identity).as_deref(), Some("b"));
    b_trigger.fire();
    tokio::time::timeout(Duration::from_secs(60), b).await.expect("b to stop on shutdown").unwrap().unwrap();
    assert!(!b_leads.load(SeqCst));
    let released = leases.get(&lease).await.unwrap();
    assert_ne!(released.spec.and_then(|s| s.holder_identity).as_deref(), Some("b"), "b released the Lease on shutdown");
}
