//! Slipway as an operator installs it: the Helm chart `charts/slipway` checked (lint,
//! kubeconform, server-side dry-run: hack/chart.sh) and installed with `helm install` on the
//! cluster with the real node, its image built offline (hack/images.sh `slipway`, imported by
//! hack/test.sh). The installed Slipway is then used only the way its users and operator
//! reach it: the API through its Service's node port, emails from the mail catcher that
//! hack/test.sh starts on the node's address, kubectl as a member; and a crash of the
//! controllers' leader, killed on the node.

mod support;

/// The SQL backend of this binary's in-process Slipway, which its tests never start.
const DATABASE: &str = "sqlite";
/// The cluster of this binary: the one with the real node.
const CLUSTER: support::Cluster = support::Cluster::Real;

use k8s_openapi::api::{
    coordination::v1::Lease,
    core::v1::{Pod, Service},
};
use kube::{
    Api,
    api::{ListParams, PostParams},
};
use serde_json::json;
use slipway_crds::App;
use std::{
    process::Command,
    time::{Duration, Instant},
};
use support::{Client, cluster_env, eventually, kube_admin, mails_at, member_api, required_env, unique};

/// Release name and namespace: not `slipway-system`, which the in-process Slipways of the
/// other test binaries use for their reservation ledgers on this same cluster.
const RELEASE: &str = "slipway";
const NAMESPACE: &str = "slipway-chart";
/// The image hack/images.sh builds from this checkout's release binary.
const IMAGE: (&str, &str) = ("localhost/slipway-dev/slipway", "dev");
/// The example web App (hack/images.sh).
const HELLO: &str = "localhost/slipway-dev/hello:latest";
/// Real containers start in seconds, but CI shares two cores with everything it runs.
const START: Duration = Duration::from_secs(180);

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/slipway");

/// Runs `program args` against the real node's cluster; its stdout, or a panic with its output.
fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .env("KUBECONFIG", cluster_env("KUBECONFIG"))
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert!(out.status.success(), "{program} {args:?} failed:\n{}{}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

fn helm(args: &[&str]) -> String {
    run(&required_env("SLIPWAY_HELM"), args)
}

fn kubectl(args: &[&str]) -> String {
    run(&cluster_env("SLIPWAY_KUBECTL"), args)
}

/// The installed release; uninstalled (and its namespace deleted, with the Secret and volume
/// the chart keeps on uninstall) when dropped, even by a failing test, so the binaries that
/// run after this one find the cluster without it.
struct Release;

impl Release {
    /// `helm upgrade --install --wait` with the real node's settings; the install's duration.
    fn install() -> (Self, Duration) {
        // Webhook configurations an in-process Slipway registered earlier on this cluster:
        // Helm refuses to adopt objects another manager created.
        kubectl(&[
            "delete",
            "mutatingwebhookconfiguration,validatingwebhookconfiguration",
            "slipway",
            "--ignore-not-found",
        ]);
        let settings = [
            format!("image.repository={},image.tag={},image.pullPolicy=Never", IMAGE.0, IMAGE.1),
            format!("mail.smtpUrl={}", required_env("SLIPWAY_CHART_SMTP_URL")),
            "api.service.type=NodePort".into(),
            // Every test here registers from the node's address.
            "api.rateLimits.authRequestsPerMinute=10000,api.rateLimits.loginAttemptsPerMinute=10000".into(),
            format!("controller.nodeAddress={}", cluster_env("SLIPWAY_NODE_ADDRESS")),
            format!("controller.ingressClass={}", cluster_env("SLIPWAY_INGRESS_CLASS")),
            format!("controller.workspaceImage={}", cluster_env("SLIPWAY_WORKSPACE_IMAGE")),
            format!("controller.databaseImages={{{}}}", cluster_env("SLIPWAY_DATABASE_IMAGES")),
            "logFormat=text".into(),
        ];
        let plans = format!("plans={}", cluster_env("SLIPWAY_PLANS"));
        let mut args = vec!["upgrade", "--install", RELEASE, CHART, "--namespace", NAMESPACE];
        args.extend(["--create-namespace", "--wait", "--timeout", "5m", "--set-file", &plans]);
        for s in &settings {
            args.extend(["--set", s]);
        }
        let started = Instant::now();
        helm(&args);
        (Self, started.elapsed())
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        let uninstall = Command::new(required_env("SLIPWAY_HELM"))
            .args(["uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", "--timeout", "2m"])
            .env("KUBECONFIG", cluster_env("KUBECONFIG"))
            .status();
        let namespace = Command::new(cluster_env("SLIPWAY_KUBECTL"))
            .args(["delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=false"])
            .env("KUBECONFIG", cluster_env("KUBECONFIG"))
            .status();
        eprintln!("helm uninstall: {uninstall:?}; namespace deleted: {namespace:?}");
    }
}

/// The API's URL through its Service's node port, once it answers there.
async fn api_base() -> String {
    let services: Api<Service> = Api::namespaced(kube_admin().await, NAMESPACE);
    let service = services.get(&format!("{RELEASE}-api")).await.unwrap();
    let port = service.spec.unwrap().ports.unwrap()[0].node_port.expect("a NodePort Service");
    let base = format!("http://{}:{port}", cluster_env("SLIPWAY_NODE_ADDRESS"));
    eventually(Duration::from_secs(60), "the API to answer on its node port", || async {
        let ready = reqwest::get(format!("{base}/readyz")).await.ok()?;
        ready.status().is_success().then_some(())
    })
    .await;
    format!("{base}/api/v1")
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

/// The sum of the samples of `metric` (Prometheus text format) whose labels include every
/// `labels` pair.
fn sample(text: &str, metric: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| line.strip_prefix(metric).is_some_and(|rest| rest.starts_with(['{', ' '])))
        .filter(|line| labels.iter().all(|(k, v)| line.contains(&format!("{k}=\"{v}\""))))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
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
    let (_release, install_time) = Release::install();
    eprintln!("helm upgrade --install --wait: {install_time:?}");
    let base = api_base().await;
    let mail_api = required_env("SLIPWAY_CHART_MAIL_API");

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
    let tenant = unique("chart");
    let r = user.post("/tenants", json!({"name": tenant, "plan": "free"})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let path = format!("/tenants/{tenant}/apps/web");
    let spec = json!({"image": HELLO, "port": 8080, "replicas": 1, "expose": {"type": "NodePort"}});
    user.created(&format!("/tenants/{tenant}/apps"), json!({"name": "web", "spec": spec})).await;
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
    assert_eq!(sample(&api[0].1, "slipway_api_requests_total", &created), 1.0, "{}", api[0].1);
    assert!(sample(&api[0].1, "slipway_api_request_duration_seconds_count", &created[..2]) >= 1.0);
    assert!(sample(&api[0].1, "slipway_emails_total", &[("result", "sent")]) >= 1.0, "the verification email");
    let webhooks = scrape("webhook").await;
    let reviews = |labels: &[(&str, &str)]| -> f64 {
        webhooks.iter().map(|(_, text)| sample(text, "slipway_admission_requests_total", labels)).sum()
    };
    assert!(reviews(&[("phase", "validate"), ("kind", "App"), ("verdict", "denied")]) >= 1.0, "the 4-replica App");
    assert!(reviews(&[("phase", "mutate"), ("kind", "App"), ("operation", "CREATE"), ("verdict", "allowed")]) >= 1.0);
    let controllers = scrape("controller").await;
    let leaders: Vec<_> =
        controllers.iter().filter(|(_, text)| sample(text, "slipway_controller_leader", &[]) == 1.0).collect();
    assert_eq!(leaders.len(), 1, "one controller reports leading: {controllers:?}");
    let (leader_pod, leader_metrics) = leaders[0];
    assert!(successor.starts_with(&format!("{leader_pod}_")), "{successor} leads, {leader_pod} says it does");
    let reconciled = sample(leader_metrics, "slipway_reconciles_total", &[("kind", "app"), ("result", "ok")]);
    assert!(reconciled >= 1.0, "the new leader reconciled the App: {leader_metrics}");

    // The owner deletes the tenant; its namespace goes with it.
    assert_eq!(user.delete(&format!("/tenants/{tenant}")).await.status, 204);
    eventually(START, "the tenant's namespace to be gone", || async {
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(kube_admin().await);
        namespaces.get_opt(&format!("tenant-{tenant}")).await.unwrap().is_none().then_some(())
    })
    .await;
}
