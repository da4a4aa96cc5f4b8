//! Slipway as an operator installs it: the Helm chart `charts/slipway` checked (lint,
//! kubeconform, server-side dry-run: hack/chart.sh) and installed with `helm install` on the
//! cluster with the real node, its image built offline (hack/images.sh `slipway`, imported by
//! hack/test.sh). The installed Slipway is then used only the way its users and operator
//! reach it: the API through its Service's node port, emails from the mail catcher that
//! hack/test.sh starts on the node's address, kubectl as a member; and a crash of the
//! controllers' leader, killed on the node, or a `helm upgrade` under traffic of a release
//! with two replicas of everything (support::chart).

mod support;

/// The SQL backend of this binary's in-process Slipway, which its tests never start.
const DATABASE: &str = "sqlite";
/// The cluster of this binary: the one with the real node.
const CLUSTER: support::Cluster = support::Cluster::Real;

use k8s_openapi::api::{
    coordination::v1::Lease,
    core::v1::{Namespace, Pod},
};
use kube::{
    Api,
    api::{ListParams, PostParams},
};
use serde_json::json;
use slipway_crds::App;
use std::{
    collections::BTreeSet,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};
use support::{
    Client,
    chart::{NAMESPACE, RELEASE, Release, Topology, api_base, kubectl},
    eventually, kube_admin, mails_at, member_api, metric_sum, required_env, unique,
};

/// The example web App (hack/images.sh).
const HELLO: &str = "localhost/slipway-dev/hello:latest";
/// Real containers start in seconds, but CI shares two cores with everything it runs.
const START: Duration = Duration::from_secs(180);

/// One release at a time: its webhook configurations are cluster-wide objects.
static ONE_RELEASE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The release in `topology`, installed once no other test of this binary holds one: the
/// guard that keeps it alone, the release, its API's URL (through the node port) and the mail
/// catcher's API its pods send to. Bind them in this order, so the release is uninstalled
/// before the next test may install.
async fn install_alone(topology: Topology) -> (tokio::sync::MutexGuard<'static, ()>, Release, String, String) {
    let alone = ONE_RELEASE.lock().await;
    let (release, install_time) = Release::install(topology).await;
    eprintln!("helm upgrade --install --wait ({topology:?}): {install_time:?}");
    (alone, release, api_base().await, required_env("SLIPWAY_CHART_MAIL_API"))
}

/// The current holder of the controllers' Lease (a pod name and a process id).
async fn leader() -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(kube_admin().await, NAMESPACE);
    leases.get_opt(&format!("{RELEASE}-controller")).await.ok()??.spec?.holder_identity.filter(|h| !h.is_empty())
}

/// The `/metrics` text of each running pod of `component`, scraped at the pod's address on
/// port 9090 from this machine, which is the real node, as Prometheus would.
async fn scrape(component: &str) -> Vec<(String, String)> {
    let pods: Api<Pod> = Api::namespaced(kube_admin().await, NAMESPACE);
    let selector = format!("app.kubernetes.io/component={component}");
    let mut scraped = Vec::new();
    for pod in pods.list(&ListParams::default().labels(&selector)).await.unwrap() {
        let status = pod.status.unwrap_or_default();
        let (Some("Running"), Some(ip)) = (status.phase.as_deref(), status.pod_ip) else { continue };
        let text = reqwest::get(format!("http://{ip}:9090/metrics")).await.unwrap().text().await.unwrap();
        scraped.push((pod.metadata.name.unwrap_or_default(), text));
    }
    assert!(!scraped.is_empty(), "no running {component} pod to scrape");
    scraped
}

/// SIGKILLs the `slipway` process of `pod` on this machine, which is the real node: a crash
/// that leaves it no chance to release anything. Its container restarts.
fn crash(pod: &str) {
    let hostname = format!("HOSTNAME={pod}");
    let mut killed = Vec::new();
    for process in std::fs::read_dir("/proc").unwrap().flatten() {
        let (Ok(environ), Ok(cmdline)) =
            (std::fs::read(process.path().join("environ")), std::fs::read(process.path().join("cmdline")))
        else {
            continue;
        };
        if cmdline.starts_with(b"/usr/local/bin/slipway\0")
            && environ.split(|b| *b == 0).any(|v| v == hostname.as_bytes())
        {
            let pid = process.file_name().to_string_lossy().into_owned();
            assert!(Command::new("kill").args(["-KILL", &pid]).status().unwrap().success(), "kill -KILL {pid}");
            killed.push(pid);
        }
    }
    assert_eq!(killed.len(), 1, "one slipway process runs in pod {pod}: {killed:?}");
}

#[test]
fn the_chart_lints_renders_to_valid_objects_and_passes_a_server_side_dry_run() {
    // The kwok cluster of the process's environment: the dry-run writes nothing, but it must
    // not race the install on the real node's cluster below for the webhook configurations.
    let status = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/hack/chart.sh"))
        .arg("check")
        .env("KUBECONFIG", required_env("KUBECONFIG"))
        .status()
        .expect("hack/chart.sh runs");
    assert!(status.success(), "hack/chart.sh check failed (its output is above)");
}

#[tokio::test]
async fn slipway_installed_by_the_chart_serves_its_users_and_survives_losing_its_controller_leader() {
    let (_alone, _release, base, mail_api) = install_alone(Topology::Single).await;

    // The webhook issued its own certificate into a Secret and both configurations trust it.
    let bundle = kubectl(&[
        "get",
        "validatingwebhookconfiguration",
        "slipway",
        "-o",
        "jsonpath={.webhooks[*].clientConfig.caBundle}",
    ]);
    assert_eq!(bundle.split_whitespace().count(), 2, "both validating webhooks carry a caBundle: {bundle:?}");
    kubectl(&["get", "secret", "-n", NAMESPACE, &format!("{RELEASE}-webhook-tls")]);

    // A user signs up (verification link by email from the pods), gets a tenant and an App.
    let email = format!("{}@example.com", unique("chart"));
    let user = Client::at(&base, &mail_api).register(&email, "chart").await;
    let (tenant, path, spec) = tenant_with_web(&user, "free").await;
    let ready = |replicas: u64| {
        let user = user.clone();
        let path = path.clone();
        async move {
            eventually(START, &format!("the App to be Ready with {replicas} replicas"), || async {
                let status = user.get(&path).await.body["status"].clone();
                (status["phase"] == "Ready" && status["availableReplicas"] == replicas).then_some(status)
            })
            .await
        }
    };
    let status = ready(1).await;
    let url = status["url"].as_str().expect("a NodePort App has a URL").to_string();
    let page = eventually(Duration::from_secs(60), "the App to answer on its node port", || async {
        reqwest::get(&url).await.ok()?.text().await.ok().filter(|b| b.starts_with("hello from web-"))
    })
    .await;
    eprintln!("served: {}", page.trim());

    // The in-cluster webhook enforces the plan on a member's kubectl: 4 replicas > 3.
    let apps: Api<App> = member_api(&email, &tenant).await;
    let mut too_big: App = serde_json::from_value(json!({
        "apiVersion": "slipway.dev/v1alpha1", "kind": "App", "metadata": {"name": "big"},
        "spec": {"image": HELLO, "port": 8080, "replicas": 4}
    }))
    .unwrap();
    too_big.metadata.namespace = Some(format!("tenant-{tenant}"));
    let denied = support::validation_denial(apps.create(&PostParams::default(), &too_big).await);
    assert!(denied.contains("spec.replicas: 4 exceeds the plan \"free\" limit of 3"), "{denied}");

    // Crash the controllers' leader (SIGKILL: no graceful release of the Lease): another
    // replica, or the restarted container under a new identity, takes over once the Lease
    // expires, and reconciles a change made meanwhile.
    let holder = eventually(Duration::from_secs(60), "a controller to hold the Lease", leader).await;
    let pod = holder.rsplit_once('_').map_or(holder.as_str(), |(pod, _)| pod).to_string();
    let killed = Instant::now();
    crash(&pod);
    let mut scaled = spec.clone();
    scaled["replicas"] = json!(2);
    let r = user.put(&path, json!({"spec": scaled})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let successor = eventually(Duration::from_secs(120), "another controller to take the Lease", || async {
        leader().await.filter(|h| *h != holder)
    })
    .await;
    eprintln!("leader {holder} killed; {successor} leads after {:?}", killed.elapsed());
    ready(2).await;
    eprintln!("the change made meanwhile converged {:?} after the kill", killed.elapsed());

    // Exactly one "ready" email for the App, through the leader change.
    let ready_mails = eventually(Duration::from_secs(60), "the ready email", || async {
        let mails: Vec<_> = mails_at(&mail_api, &email)
            .await
            .into_iter()
            .filter(|(s, _)| s == "Your app \"web\" is ready on Slipway")
            .collect();
        (!mails.is_empty()).then_some(mails)
    })
    .await;
    assert_eq!(ready_mails.len(), 1, "one email about the App: {ready_mails:?}");

    // Every component's metrics tell what happened, on each pod's port 9090.
    let api = scrape("api").await;
    let created = [("method", "POST"), ("route", "/api/v1/tenants"), ("status", "201")];
    assert_eq!(metric_sum(&api[0].1, "slipway_api_requests_total", &created), 1.0, "{}", api[0].1);
    assert!(metric_sum(&api[0].1, "slipway_api_request_duration_seconds_count", &created[..2]) >= 1.0);
    assert!(metric_sum(&api[0].1, "slipway_emails_total", &[("result", "sent")]) >= 1.0, "the verification email");
    let webhooks = scrape("webhook").await;
    let reviews = |labels: &[(&str, &str)]| -> f64 {
        webhooks.iter().map(|(_, text)| metric_sum(text, "slipway_admission_requests_total", labels)).sum()
    };
    assert!(reviews(&[("phase", "validate"), ("kind", "App"), ("verdict", "denied")]) >= 1.0, "the 4-replica App");
    assert!(reviews(&[("phase", "mutate"), ("kind", "App"), ("operation", "CREATE"), ("verdict", "allowed")]) >= 1.0);
    let controllers = scrape("controller").await;
    let leaders: Vec<_> =
        controllers.iter().filter(|(_, text)| metric_sum(text, "slipway_controller_leader", &[]) == 1.0).collect();
    assert_eq!(leaders.len(), 1, "one controller reports leading: {controllers:?}");
    let (leader_pod, leader_metrics) = leaders[0];
    assert!(successor.starts_with(&format!("{leader_pod}_")), "{successor} leads, {leader_pod} says it does");
    let reconciled = metric_sum(leader_metrics, "slipway_reconciles_total", &[("kind", "app"), ("result", "ok")]);
    assert!(reconciled >= 1.0, "the new leader reconciled the App: {leader_metrics}");

    // The owner deletes the tenant; its namespace goes with it.
    assert_eq!(user.delete(&format!("/tenants/{tenant}")).await.status, 204);
    eventually(START, "the tenant's namespace to be gone", || async {
        let namespaces: Api<Namespace> = Api::all(kube_admin().await);
        namespaces.get_opt(&format!("tenant-{tenant}")).await.unwrap().is_none().then_some(())
    })
    .await;
}

/// A new tenant of `user` on `plan` with the App `web` (one replica of the example page on a
/// node port): the tenant, the App's API path and its spec.
async fn tenant_with_web(user: &Client, plan: &str) -> (String, String, serde_json::Value) {
    let tenant = unique(plan);
    let r = user.post("/tenants", json!({"name": tenant, "plan": plan})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let spec = json!({"image": HELLO, "port": 8080, "replicas": 1, "expose": {"type": "NodePort"}});
    user.created(&format!("/tenants/{tenant}/apps"), json!({"name": "web", "spec": spec})).await;
    let web = format!("/tenants/{tenant}/apps/web");
    (tenant, web, spec)
}

/// The names of the release's ready pods of `component` (`api`, `controller`, `webhook`).
async fn ready_pods(component: &str) -> BTreeSet<String> {
    let pods: Api<Pod> = Api::namespaced(kube_admin().await, NAMESPACE);
    let selector = format!("app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component={component}");
    let ready = |pod: &Pod| {
        let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
        pod.metadata.deletion_timestamp.is_none()
            && conditions.is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    };
    let listed = pods.list(&ListParams::default().labels(&selector)).await.unwrap();
    listed.into_iter().filter(ready).filter_map(|pod| pod.metadata.name).collect()
}

/// What a trickle of API traffic saw.
#[derive(Default, Debug)]
struct Traffic {
    requests: usize,
    /// `+seconds METHOD path -> status body` (or the transport error) of every answer other
    /// than the expected one, seconds since the trickle started.
    failures: Vec<String>,
}

/// Until `stop` is set, what a user of `tenant` does, one step after the other: create an App
/// (through the admission webhook), read it, list the tenant's Apps, read their account, and
/// delete the App.
async fn trickle(user: Client, tenant: String, stop: Arc<AtomicBool>) -> Traffic {
    use reqwest::Method;
    let (started, mut traffic) = (Instant::now(), Traffic::default());
    let apps = format!("/tenants/{tenant}/apps");
    for i in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let path = format!("{apps}/trickle-{i}");
        let spec = json!({"image": HELLO, "port": 8080, "replicas": 0});
        let steps = [
            (Method::POST, apps.as_str(), Some(json!({"name": format!("trickle-{i}"), "spec": spec})), 201),
            (Method::GET, path.as_str(), None, 200),
            (Method::GET, apps.as_str(), None, 200),
            (Method::GET, "/me", None, 200),
            (Method::DELETE, path.as_str(), None, 204),
        ];
        for (method, path, body, expected) in steps {
            traffic.requests += 1;
            let at = started.elapsed().as_secs_f64();
            match user.try_request(method.clone(), path, body).await {
                Ok(reply) if reply.status == expected => {}
                Ok(reply) => {
                    traffic.failures.push(format!("+{at:.1}s {method} {path} -> {} {}", reply.status, reply.body))
                }
                Err(e) => traffic.failures.push(format!("+{at:.1}s {method} {path} -> {e:?}")),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    traffic
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_rolls_every_component_under_traffic_without_a_failed_request_or_a_second_email() {
    let (_alone, release, base, mail_api) = install_alone(Topology::HighlyAvailable).await;
    assert_eq!(ready_pods("api").await.len(), 2, "two API replicas serve");

    // Requests on new connections each, as distinct users make them: a client that keeps an
    // idle connection open to a pod as it shuts down may see it closed (RFC 9112 §9.6) and
    // must retry on a new one, which the HTTP clients do for idempotent requests only.
    let anonymous = Client::at(&base, &mail_api).without_keep_alive();
    let admin = anonymous.register(&release.admin_email, "admin").await;
    let email = format!("{}@example.com", unique("upgrade"));
    let user = anonymous.register(&email, "upgrade").await;
    // Room for the trickle's Apps, deleted as fast as they come: the `pro` plan.
    let me = user.get("/me").await.body;
    let grant = json!({"max_tenants": 1, "plans": ["free", "pro"]});
    let r = admin.put(&format!("/admin/users/{}/entitlements", me["id"].as_str().unwrap()), grant).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (tenant, web, _) = tenant_with_web(&user, "pro").await;
    eventually(START, "the App to be Ready", || async {
        (user.get(&web).await.body["status"]["phase"] == "Ready").then_some(())
    })
    .await;
    let ready_subject = "Your app \"web\" is ready on Slipway";
    eventually(Duration::from_secs(60), "the ready email", || async {
        mails_at(&mail_api, &email).await.into_iter().find(|(s, _)| s == ready_subject)
    })
    .await;

    // A changed value that changes every component's pods: each Deployment rolls while the
    // trickle runs, and on until the last old pod is gone.
    let components = ["api", "webhook", "controller"];
    let mut before = BTreeSet::new();
    for component in components {
        before.extend(ready_pods(component).await);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = tokio::spawn(trickle(user.clone(), tenant.clone(), stop.clone()));
    let (release, upgrade_time) = tokio::task::spawn_blocking(move || {
        let took = release.upgrade(&["logFormat=json"]);
        (release, took)
    })
    .await
    .unwrap();
    eventually(START, "every pod of before the upgrade to be gone", || async {
        let pods: Api<Pod> = Api::namespaced(kube_admin().await, NAMESPACE);
        let listed = pods.list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={RELEASE}"))).await;
        let names: BTreeSet<String> = listed.unwrap().into_iter().filter_map(|p| p.metadata.name).collect();
        names.is_disjoint(&before).then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let traffic = traffic.await.unwrap();
    eprintln!("helm upgrade --wait: {upgrade_time:?}; {} requests meanwhile", traffic.requests);
    for component in components {
        let now = ready_pods(component).await;
        assert_eq!(now.len(), 2, "two new {component} pods are ready: {now:?}");
    }
    if !traffic.failures.is_empty() {
        // Where Services routed meanwhile: which endpoints were ready, serving or terminating.
        let seen = kubectl(&["get", "endpointslices,pods,events", "-n", NAMESPACE, "-o", "wide"]);
        panic!("requests failed during the upgrade: {:#?}\n{seen}", traffic.failures);
    }
    assert!(traffic.requests >= 50, "a trickle of requests ran through the upgrade: {traffic:?}");

    // The upgraded Slipway still serves, and nothing was mailed twice: the App's ready email
    // came once, before the upgrade, and no message was repeated.
    assert_eq!(user.get(&web).await.body["status"]["phase"], "Ready");
    let mails = mails_at(&mail_api, &email).await;
    let subjects: Vec<&String> = mails.iter().map(|(s, _)| s).collect();
    assert_eq!(subjects.iter().filter(|s| **s == ready_subject).count(), 1, "{subjects:#?}");
    let distinct: BTreeSet<&&String> = subjects.iter().collect();
    assert_eq!(distinct.len(), subjects.len(), "an email was sent twice: {subjects:#?}");

    // The tenant goes, and its pod with it: the real node's two cores serve the tests after.
    assert_eq!(user.delete(&format!("/tenants/{tenant}")).await.status, 204);
    drop(release);
}
