//! What Slipway provisions really runs: Apps, Databases and Workspaces on the real node
//! `real-0` (kubelet + containerd, hack/node.sh), driven through the HTTP API only and
//! reached the way their owners are told to: the URL, the credentials and the ssh command
//! from the API and the emails. Images come from hack/images.sh (no registry is reachable).

mod support;

/// The SQL backend of this binary's Slipway.
const DATABASE: &str = "sqlite";
/// The cluster of this binary's Slipway: the one with the real node.
const CLUSTER: support::Cluster = support::Cluster::Real;

use k8s_openapi::api::{
    autoscaling::v2::HorizontalPodAutoscaler,
    core::v1::{Event, Pod},
    networking::v1::Ingress,
};
use kube::{Api, api::ListParams};
use serde_json::json;
use std::{
    sync::Arc,
    time::{Duration, Instant},
};
use support::{Client, eventually, kube_admin, mails_to};

/// The example web App: answers `hello from <pod name>` on port 8080.
const HELLO: &str = "localhost/slipway-dev/hello:latest";

/// Real containers start in seconds, but CI shares two cores with everything it runs.
const START: Duration = Duration::from_secs(180);

/// CPU of each Database and Workspace here. The real node can allocate its 2 cores only, and
/// the plans' 500m default for each of the four instances these tests run at once, with the
/// Apps, would leave a pod Pending for lack of CPU.
const SMALL_CPU: &str = "100m";

/// Waits (up to [`START`]) until the object at the API path `path` is Ready; its `status`.
async fn ready(client: &Client, path: &str, what: &str) -> serde_json::Value {
    eventually(START, &format!("{what} to become Ready"), || async {
        let r = client.get(path).await;
        (r.body["status"]["phase"] == "Ready").then(|| r.body["status"].clone())
    })
    .await
}

/// The status and body of a GET of `url`, with the `Host` header `host` when given, if it
/// answers within 2 s.
async fn fetch(url: &str, host: Option<&str>) -> Option<(reqwest::StatusCode, String)> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
    let mut request = http.get(url);
    if let Some(host) = host {
        request = request.header(reqwest::header::HOST, host);
    }
    let response = request.send().await.ok()?;
    let status = response.status();
    Some((status, response.text().await.ok()?))
}

/// The body of a GET of `url`, if it answers 200 within 2 s.
async fn page(url: &str) -> Option<String> {
    fetch(url, None).await.filter(|(status, _)| status.is_success()).map(|(_, body)| body)
}

/// The App's pods that run with every container ready.
async fn ready_pods(tenant: &str, app: &str) -> Vec<String> {
    let pods: Api<Pod> = Api::namespaced(kube_admin().await, &format!("tenant-{tenant}"));
    let list = pods.list(&ListParams::default().labels(&format!("{}={app}", slipway_crds::APP_LABEL))).await.unwrap();
    list.items
        .into_iter()
        .filter(|pod| {
            let status = pod.status.as_ref();
            let running = status.and_then(|s| s.phase.as_deref()) == Some("Running");
            let ready = status
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            running && ready && pod.metadata.deletion_timestamp.is_none()
        })
        .filter_map(|pod| pod.metadata.name)
        .collect()
}

#[tokio::test]
async fn an_app_answers_on_the_url_its_owner_is_given_and_scales_and_stops_for_real() {
    let (alice, email) = Client::new_user("alice").await;
    let tenant = alice.create_tenant("web", "standard").await;
    let apps = format!("/tenants/{tenant}/apps");
    let spec = json!({"image": HELLO, "port": 8080, "replicas": 2, "expose": {"type": "NodePort"}});
    let posted = Instant::now();
    alice.created(&apps, json!({"name": "web", "spec": spec})).await;

    let path = format!("{apps}/web");
    let status = ready(&alice, &path, "the App").await;
    assert_eq!(status["availableReplicas"], 2, "{status}");
    let url = status["url"].as_str().expect("a NodePort App has a URL").to_string();
    assert!(url.starts_with(&format!("http://{}:", support::cluster_env("SLIPWAY_NODE_ADDRESS"))), "{url}");

    // A new node port answers a moment after the pods are Ready: poll, do not sleep.
    let body = eventually(Duration::from_secs(60), "the App to answer on its node port", || page(&url)).await;
    eprintln!("POST /apps to the first HTTP 200 on the node port: {:?}", posted.elapsed());
    let served_by = body.trim().strip_prefix("hello from ").unwrap_or_else(|| panic!("unexpected page {body:?}"));
    assert!(ready_pods(&tenant, "web").await.contains(&served_by.to_string()), "served by {served_by}");

    // The "ready" email names the same URL, and it answers too.
    let (_, mail) =
        eventually(Duration::from_secs(60), "the ready email", || async { mails_to(&email).await.into_iter().next() })
            .await;
    let mailed = mail
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in the email: {mail}"));
    assert_eq!(mailed, url, "{mail}");
    assert!(page(mailed).await.is_some_and(|b| b.starts_with("hello from web-")));

    // Scaling to 3 gives 3 running pods, and the Service spreads requests over them.
    let mut scaled = spec.clone();
    scaled["replicas"] = json!(3);
    let r = alice.put(&path, json!({"spec": scaled})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let pods = eventually(START, "3 ready pods", || async {
        let pods = ready_pods(&tenant, "web").await;
        (pods.len() == 3).then_some(pods)
    })
    .await;
    eventually(START, "the App to report 3 available replicas", || async {
        let status = alice.get(&path).await.body["status"].clone();
        (status["phase"] == "Ready" && status["availableReplicas"] == 3).then_some(())
    })
    .await;
    eventually(Duration::from_secs(60), "every pod to serve through the node port", || async {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..30 {
            if let Some(body) = page(&url).await {
                seen.insert(body.trim().trim_start_matches("hello from ").to_string());
            }
        }
        pods.iter().all(|p| seen.contains(p)).then_some(())
    })
    .await;

    // Deleting the App stops its pods: nothing answers any more.
    assert_eq!(alice.delete(&path).await.status, 204);
    eventually(START, "the pods to stop", || async {
        let pods: Api<Pod> = Api::namespaced(kube_admin().await, &format!("tenant-{tenant}"));
        pods.list(&ListParams::default()).await.unwrap().items.is_empty().then_some(())
    })
    .await;
    eventually(Duration::from_secs(60), "the node port to close", || async {
        page(&url).await.is_none().then_some(())
    })
    .await;
}

/// The App at `path` once it runs revision `number` Ready; its status.
async fn ready_at(client: &Client, path: &str, number: i64) -> serde_json::Value {
    eventually(START, &format!("{path} to become Ready at revision {number}"), || async {
        let status = client.get(path).await.body["status"].clone();
        (status["phase"] == "Ready" && status["revision"] == number).then_some(status)
    })
    .await
}

/// The emails to `to` about failed rollouts.
async fn failure_emails(to: &str) -> Vec<(String, String)> {
    mails_to(to).await.into_iter().filter(|(subject, _)| subject.starts_with("The rollout of your app")).collect()
}

/// A bad image, then a bad environment variable that makes the container exit: each rollout
/// fails within its progress deadline with the pods' reason, goes back to the last healthy
/// revision by itself (image and configuration alike), the page is served by the old
/// revision's pods, and the owner gets exactly one email per failed revision.
#[tokio::test]
async fn failed_rollouts_roll_back_by_themselves_and_tell_the_owner_once() {
    let (carol, email) = Client::new_user("carol").await;
    let tenant = carol.create_tenant("undo", "standard").await;
    let rollout = json!({"progressDeadlineSeconds": 20, "autoRollback": true});
    let spec = json!({"image": HELLO, "port": 8080, "replicas": 1, "expose": {"type": "NodePort"}, "rollout": rollout});
    carol.created(&format!("/tenants/{tenant}/apps"), json!({"name": "web", "spec": spec})).await;
    let path = format!("/tenants/{tenant}/apps/web");
    let url = ready_at(&carol, &path, 1).await["url"].as_str().unwrap().to_string();
    let first = eventually(Duration::from_secs(60), "the App to answer", || page(&url)).await;
    // Pods are named <app>-<pod-template-hash>-<suffix>: the revision that serves.
    let template_hash =
        |body: &str| body.trim().trim_start_matches("hello from ").rsplit_once('-').unwrap().0.to_string();
    let healthy = template_hash(&first);

    for (number, change, why) in [
        (2, json!({"image": "localhost/slipway-dev/hello:missing"}), "ImagePull"),
        (4, json!({"env": [{"name": "PORT", "value": "not-a-port"}]}), "exit code"),
    ] {
        let mut bad = carol.get(&path).await.body["spec"].clone();
        for (field, value) in change.as_object().unwrap() {
            bad[field] = value.clone();
        }
        let started = Instant::now();
        assert_eq!(carol.put(&path, json!({"spec": bad})).await.status, 200);
        // Back to the last healthy revision, as a new one that restores it.
        let status = ready_at(&carol, &path, number + 1).await;
        eprintln!("revision {number}: PUT to the automatic rollback Ready: {:?}", started.elapsed());
        assert_eq!(status["availableReplicas"], 1, "{status}");
        let history = carol.get(&format!("{path}/revisions")).await.body["items"].clone();
        assert_eq!(history[0]["restores"], number - 1, "{history}");
        assert_ne!(history[0]["changed_by"], email.as_str(), "the controller made the rollback: {history}");
        assert_eq!(history[1]["changed_by"], email.as_str(), "{history}");
        assert_eq!(history[1]["revision"], number);
        assert_eq!(history[1]["outcome"], "Failed", "{history}");
        let restored = carol.get(&path).await.body["spec"].clone();
        assert_eq!(restored["image"], HELLO);
        assert!(restored.get("env").is_none(), "the configuration is rolled back too: {restored}");

        // One email for the failed revision, with the pods' reason and what was done.
        let expected = usize::try_from(number / 2).unwrap();
        let mails = eventually(Duration::from_secs(60), "the failed rollout's email", || async {
            let mails = failure_emails(&email).await;
            (mails.len() >= expected).then_some(mails)
        })
        .await;
        let subjects: Vec<&str> = mails.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(mails.len(), expected, "one email per failed revision: {subjects:?}");
        let (subject, body) = mails.iter().find(|(s, _)| s.ends_with(&format!("(revision {number})"))).unwrap();
        assert!(body.contains(why), "{subject}: {body}");
        assert!(body.contains(&format!("rolled back to revision {}", number - 1)), "{body}");
        assert!(body.contains("ProgressDeadlineExceeded"), "{body}");

        // The old revision's pods serve, and only they.
        eventually(START, "only the healthy revision's pods to serve", || async {
            let pods = ready_pods(&tenant, "web").await;
            let served = page(&url).await?;
            (pods.len() == 1 && template_hash(&served) == healthy).then_some(())
        })
        .await;
    }
    // Once per revision, not per reconcile.
    assert_eq!(failure_emails(&email).await.len(), 2);
}

/// Autoscaling for real: metrics-server (hack/node.sh) measures the pods, the App's
/// HorizontalPodAutoscaler scales it through its scale subresource from 1 toward
/// `maxReplicas` while `/burn` keeps its pods busy, never beyond, and back to 1 once the load
/// stops. The load is three requests a second of 100 ms of CPU each, sent on a clock, not one
/// after the other: 300m of the two cores CI shares, above the target (50 % of the pods' 100m
/// request) even spread over 3 pods (100 %), so the autoscaler reaches `maxReplicas` and
/// stays there while it lasts. (One request at a time, as before, sent less CPU the slower a
/// busy machine answered: once in CI the pods' average stayed under the target at 2 pods.)
#[tokio::test]
async fn an_autoscaled_app_grows_under_cpu_load_and_shrinks_after_it() {
    let (fred, _) = Client::new_user("fred").await;
    let tenant = fred.create_tenant("busy", "standard").await;
    let autoscaling = json!({"minReplicas": 1, "maxReplicas": 3, "targetCPUUtilizationPercentage": 50, "scaleDownStabilizationSeconds": 0});
    let spec = json!({"image": HELLO, "port": 8080, "replicas": 1, "expose": {"type": "NodePort"}, "autoscaling": autoscaling});
    fred.created(&format!("/tenants/{tenant}/apps"), json!({"name": "web", "spec": spec})).await;
    let path = format!("/tenants/{tenant}/apps/web");
    let url = ready(&fred, &path, "the App").await["url"].as_str().unwrap().to_string();
    eventually(Duration::from_secs(60), "the App to answer", || page(&url)).await;

    // The autoscaler reads the pod's CPU before there is any load: metrics flow.
    let autoscalers: Api<HorizontalPodAutoscaler> = Api::namespaced(kube_admin().await, &format!("tenant-{tenant}"));
    eventually(START, "the autoscaler to read the pods' CPU", || async {
        let hpa = autoscalers.get("web").await.ok()?;
        let metrics = hpa.status?.current_metrics?;
        metrics
            .iter()
            .any(|m| m.resource.as_ref().is_some_and(|r| r.current.average_utilization.is_some()))
            .then_some(())
    })
    .await;

    // Waits (up to `patience`) until the App's replica count satisfies `wanted`, keeping the
    // most replicas seen at any poll.
    let most = std::cell::Cell::new(1);
    let replicas_until = |what: &'static str, patience: Duration, wanted: fn(i64) -> bool| {
        let (fred, path, most) = (&fred, &path, &most);
        eventually(patience, what, move || async move {
            let now = fred.get(path).await.body["spec"]["replicas"].as_i64().unwrap();
            most.set(most.get().max(now));
            wanted(now).then_some(())
        })
    };
    let burn = format!("{url}/burn?ms=100");
    let load = tokio::spawn(async move {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
        // At most 8 in flight, so a stalled pod does not pile up requests without bound.
        let in_flight = Arc::new(tokio::sync::Semaphore::new(8));
        let mut clock = tokio::time::interval(Duration::from_millis(333));
        loop {
            clock.tick().await;
            let Ok(permit) = in_flight.clone().try_acquire_owned() else { continue };
            let (http, burn) = (http.clone(), burn.clone());
            tokio::spawn(async move {
                let _ = http.get(&burn).send().await;
                drop(permit);
            });
        }
    });
    let started = Instant::now();
    replicas_until("the App to scale up under load", START, |n| n >= 2).await;
    eprintln!("load to the first scale-up: {:?}", started.elapsed());
    replicas_until("the App to reach maxReplicas under load", START, |n| n == 3).await;
    eprintln!("load to maxReplicas (3): {:?}", started.elapsed());
    load.abort();

    let stopped = Instant::now();
    replicas_until("the App to scale back down after the load", Duration::from_secs(300), |n| n == 1).await;
    eprintln!("load stopped to 1 replica again: {:?}", stopped.elapsed());
    assert_eq!(most.get(), 3, "never beyond maxReplicas");
    eventually(START, "one pod to serve again", || async {
        (ready_pods(&tenant, "web").await.len() == 1).then_some(())
    })
    .await;
    // The node's CPU is shared by every test here.
    assert_eq!(fred.delete(&path).await.status, 204);
}

#[tokio::test]
async fn an_app_exposed_by_ingress_answers_for_its_host_through_the_ingress_controller() {
    let (carol, email) = Client::new_user("carol").await;
    let tenant = carol.create_tenant("shop", "standard").await;
    let apps = format!("/tenants/{tenant}/apps");
    let host = format!("shop.{tenant}.{}", support::INGRESS_DOMAIN);
    let spec = json!({"image": HELLO, "port": 8080, "replicas": 1, "expose": {"type": "Ingress", "host": host}});
    let posted = Instant::now();
    carol.created(&apps, json!({"name": "shop", "spec": spec})).await;

    let path = format!("{apps}/shop");
    let status = ready(&carol, &path, "the App").await;
    let url = format!("http://{host}/");
    assert_eq!(status["url"], url.as_str(), "{status}");

    // The cluster's ingress controller (Traefik on its node port) serves the host: what the
    // owner's DNS record would point at. Routes follow the Ingress a moment after it exists.
    let ingress = format!("http://{}/", support::cluster_env("SLIPWAY_CLUSTER_INGRESS"));
    let through_ingress =
        || async { fetch(&ingress, Some(&host)).await.filter(|(status, _)| status.is_success()).map(|(_, body)| body) };
    let body = eventually(Duration::from_secs(60), "the App to answer through the ingress", through_ingress).await;
    eprintln!("POST /apps to the first HTTP 200 through the ingress: {:?}", posted.elapsed());
    let served_by = body.trim().strip_prefix("hello from ").unwrap_or_else(|| panic!("unexpected page {body:?}"));
    assert!(ready_pods(&tenant, "shop").await.contains(&served_by.to_string()), "served by {served_by}");

    // Only that host reaches the App: another name under the tenant's domain is not routed.
    let other = format!("other.{tenant}.{}", support::INGRESS_DOMAIN);
    let (status, body) = fetch(&ingress, Some(&other)).await.expect("the ingress controller answers");
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND, "{other}: {body}");

    // The Ingress names the cluster's class, and its controller published where it answers.
    let ingresses: Api<Ingress> = Api::namespaced(kube_admin().await, &format!("tenant-{tenant}"));
    let published = eventually(Duration::from_secs(60), "the Ingress's status", || async {
        let ingress = ingresses.get("shop").await.unwrap();
        let class = ingress.spec.as_ref().and_then(|s| s.ingress_class_name.clone());
        assert_eq!(class, Some(support::cluster_env("SLIPWAY_INGRESS_CLASS")));
        ingress.status?.load_balancer?.ingress?.into_iter().next()?.ip
    })
    .await;
    assert_eq!(published, support::cluster_env("SLIPWAY_NODE_ADDRESS"));

    // The "ready" email gives the same URL.
    let (_, mail) =
        eventually(Duration::from_secs(60), "the ready email", || async { mails_to(&email).await.into_iter().next() })
            .await;
    assert!(mail.contains(&format!("curl {url}")), "{mail}");

    // Exposed on a node port instead, the App leaves the ingress: its host is not found there.
    let mut node_port = spec.clone();
    node_port["expose"] = json!({"type": "NodePort"});
    let r = carol.put(&path, json!({"spec": node_port})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    eventually(Duration::from_secs(60), "the route to go", || async {
        let (status, _) = fetch(&ingress, Some(&host)).await?;
        (status == reqwest::StatusCode::NOT_FOUND).then_some(())
    })
    .await;
    assert!(ingresses.get_opt("shop").await.unwrap().is_none(), "the Ingress is deleted");
}

#[tokio::test]
async fn an_app_whose_readiness_probe_fails_never_becomes_ready() {
    let (bob, _) = Client::new_user("bob").await;
    let tenant = bob.create_tenant("probe", "free").await;
    // The image listens on 8080; the App says 9090, so the TCP readiness probe fails.
    let spec = json!({"image": HELLO, "port": 9090, "replicas": 1, "expose": {"type": "NodePort"}});
    bob.created(&format!("/tenants/{tenant}/apps"), json!({"name": "deaf", "spec": spec})).await;

    let pods: Api<Pod> = Api::namespaced(kube_admin().await, &format!("tenant-{tenant}"));
    eventually(START, "the App's pod to run", || async {
        let list = pods.list(&ListParams::default()).await.unwrap();
        list.items.iter().any(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")).then_some(())
    })
    .await;
    // The kubelet reports the failed probe as an Unhealthy event of the running pod.
    let events: Api<Event> = Api::namespaced(kube_admin().await, &format!("tenant-{tenant}"));
    eventually(START, "the readiness probe to fail", || async {
        let list = events.list(&ListParams::default().fields("reason=Unhealthy")).await.unwrap();
        list.items
            .iter()
            .any(|e| e.message.as_deref().is_some_and(|m| m.contains("Readiness probe failed")))
            .then_some(())
    })
    .await;
    let app = bob.get(&format!("/tenants/{tenant}/apps/deaf")).await.body;
    assert_ne!(app["status"]["phase"], "Ready", "{app}");
    assert_eq!(app["status"]["availableReplicas"], 0, "{app}");
    assert!(ready_pods(&tenant, "deaf").await.is_empty());
}

/// A connection as `app` to the database `app` through the node `port` (`scheme` `postgres`
/// or `mysql`), if the engine accepts `password` within 5 s.
async fn connect<C: sqlx::Connection>(scheme: &str, port: i64, password: &str) -> Option<C> {
    let url = format!("{scheme}://app:{password}@{}:{port}/app", support::cluster_env("SLIPWAY_NODE_ADDRESS"));
    tokio::time::timeout(Duration::from_secs(5), C::connect(&url)).await.ok()?.ok()
}

/// A PostgreSQL connection through the node port, if the engine accepts `password` now.
async fn postgres(port: i64, password: &str) -> Option<sqlx::PgConnection> {
    connect("postgres", port, password).await
}

#[tokio::test]
async fn a_database_accepts_its_credentials_and_a_retained_one_keeps_its_data() {
    use sqlx::Executor;
    let (carol, _) = Client::new_user("carol").await;
    let tenant = carol.create_tenant("data", "standard").await;
    let databases = format!("/tenants/{tenant}/databases");
    let spec = json!({"engine": "postgres", "version": "15", "storage": "1Gi", "deletionPolicy": "Retain",
                      "cpu": SMALL_CPU, "memory": "256Mi", "expose": {"type": "NodePort"}});
    let posted = Instant::now();
    carol.created(&databases, json!({"name": "orders", "spec": spec})).await;

    let path = format!("{databases}/orders");
    let status = ready(&carol, &path, "the Database").await;
    let port = status["nodePort"].as_i64().expect("a NodePort Database reports its node port");
    let credentials = carol.get(&format!("{path}/credentials")).await;
    assert_eq!(credentials.status, 200, "{}", credentials.body);
    let password = credentials.body["password"].as_str().unwrap().to_string();
    assert_eq!(credentials.body["username"], "app");

    // Ready means the engine answers: the first connection through the new node port (which
    // answers a moment after the pod is Ready) logs in with the generated password.
    let mut db =
        eventually(Duration::from_secs(60), "PostgreSQL to accept the credentials", || postgres(port, &password)).await;
    eprintln!("POST /databases to the first accepted connection: {:?}", posted.elapsed());
    assert!(postgres(port, "not-the-password").await.is_none(), "a wrong password is refused");
    db.execute("CREATE TABLE orders (item text); INSERT INTO orders VALUES ('kept across a re-create')").await.unwrap();
    drop(db);

    // Deleted under Retain, created again with the same name: same volume, same password.
    assert_eq!(carol.delete(&path).await.status, 204);
    eventually(START, "the Database's pod to stop", || async {
        let pods: Api<Pod> = Api::namespaced(kube_admin().await, &format!("tenant-{tenant}"));
        pods.list(&ListParams::default()).await.unwrap().items.is_empty().then_some(())
    })
    .await;
    eventually(START, "the Database to be gone", || async { (carol.get(&path).await.status == 404).then_some(()) })
        .await;
    carol.created(&databases, json!({"name": "orders", "spec": spec})).await;
    let status = ready(&carol, &path, "the re-created Database").await;
    let port = status["nodePort"].as_i64().unwrap();
    let again = carol.get(&format!("{path}/credentials")).await;
    assert_eq!(again.body["password"], password.as_str(), "the retained Secret keeps the password");
    let mut db = eventually(Duration::from_secs(60), "the re-created Database to accept the credentials", || {
        postgres(port, &password)
    })
    .await;
    let (item,): (String,) = sqlx::query_as("SELECT item FROM orders").fetch_one(&mut db).await.unwrap();
    assert_eq!(item, "kept across a re-create");
}

/// An ed25519 key pair made by ssh-keygen in `dir`: (private key path, public key line).
fn key_pair(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, String) {
    let private = dir.join(name);
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&private)
        .status()
        .expect("ssh-keygen runs");
    assert!(status.success());
    let public = std::fs::read_to_string(private.with_extension("pub")).unwrap();
    (private, public.trim().to_string())
}

/// Runs `command` through `ssh_command` (as the API and the email give it) with `key`,
/// checking the host key against `known_hosts` (recorded on first use). Output on success.
async fn ssh(ssh_command: &str, key: &std::path::Path, known_hosts: &std::path::Path, command: &str) -> Option<String> {
    let mut words = ssh_command.split_whitespace();
    assert_eq!(words.next(), Some("ssh"), "{ssh_command}");
    let output = tokio::process::Command::new("ssh")
        .args(words)
        .arg("-i")
        .arg(key)
        .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5"])
        .args(["-o", "StrictHostKeyChecking=accept-new", "-o"])
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .arg(command)
        .output()
        .await
        .expect("ssh runs");
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

#[tokio::test]
async fn a_workspace_lets_its_owner_in_over_ssh_with_their_keys_and_keeps_the_home() {
    let keys = std::env::temp_dir().join(support::unique("slipway-it-ssh"));
    std::fs::create_dir_all(&keys).unwrap();
    let known_hosts = keys.join("known_hosts");
    let (first, first_public) = key_pair(&keys, "first");
    let (second, second_public) = key_pair(&keys, "second");

    let (dora, email) = Client::new_user("dora").await;
    let tenant = dora.create_tenant("dev", "free").await;
    let path = format!("/tenants/{tenant}/workspaces/box");
    dora.created(
        &format!("/tenants/{tenant}/workspaces"),
        json!({"name": "box", "spec": {"cpu": SMALL_CPU, "memory": "128Mi", "sshKeys": [first_public]}}),
    )
    .await;
    let status = ready(&dora, &path, "the Workspace").await;
    let command = status["sshCommand"].as_str().expect("a Ready Workspace has its ssh command").to_string();
    let (_, mail) =
        eventually(Duration::from_secs(60), "the ready email", || async { mails_to(&email).await.into_iter().next() })
            .await;
    assert!(mail.contains(&command), "the email gives {command:?}: {mail}");

    // The listed key gets in as `dev`; a key not on the list does not.
    let who = eventually(Duration::from_secs(60), "sshd to let the first key in", || {
        ssh(&command, &first, &known_hosts, "id -un && echo kept > ~/notes.txt && echo written")
    })
    .await;
    assert_eq!(who, "dev\nwritten");
    assert_eq!(ssh(&command, &second, &known_hosts, "true").await, None, "an unlisted key is refused");

    // Rotating keys through the API lets the new key in (once the kubelet has refreshed the
    // keys volume) and shuts the old one out; the home directory stays.
    let r = dora.put(&path, json!({"spec": {"cpu": SMALL_CPU, "memory": "128Mi", "sshKeys": [second_public]}})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let notes =
        eventually(START, "the rotated key to get in", || ssh(&command, &second, &known_hosts, "cat ~/notes.txt"))
            .await;
    assert_eq!(notes, "kept");
    assert_eq!(ssh(&command, &first, &known_hosts, "true").await, None, "the removed key is refused");

    // A new pod (after a node failure, an update) has the same home directory and host key:
    // the known_hosts entry recorded above still matches.
    let pods: Api<Pod> = Api::namespaced(kube_admin().await, &format!("tenant-{tenant}"));
    let old = pods.get("box-0").await.unwrap().metadata.uid;
    pods.delete("box-0", &Default::default()).await.unwrap();
    eventually(START, "a new pod to be Ready", || async {
        let pod = pods.get_opt("box-0").await.unwrap()?;
        let ready = pod.status.as_ref()?.conditions.as_ref()?.iter().any(|c| c.type_ == "Ready" && c.status == "True");
        (pod.metadata.uid != old && ready).then_some(())
    })
    .await;
    let notes = eventually(Duration::from_secs(60), "the new pod to let the key in", || {
        ssh(&command, &second, &known_hosts, "cat ~/notes.txt")
    })
    .await;
    assert_eq!(notes, "kept");
    std::fs::remove_dir_all(&keys).unwrap();
}

#[tokio::test]
async fn an_app_reaches_its_database_by_service_name_with_the_credentials_secret() {
    let (erin, _) = Client::new_user("erin").await;
    let tenant = erin.create_tenant("shop", "standard").await;
    let db_path = format!("/tenants/{tenant}/databases/orders");
    let spec = json!({"engine": "postgres", "version": "15", "storage": "1Gi", "cpu": SMALL_CPU, "memory": "256Mi",
                      "expose": {"type": "NodePort"}});
    erin.created(&format!("/tenants/{tenant}/databases"), json!({"name": "orders", "spec": spec})).await;
    let db = ready(&erin, &db_path, "the Database").await;
    let secret = db["secretName"].as_str().expect("a Ready Database names its credentials Secret").to_string();

    // The App's DATABASE_URL is the Secret's `uri`, whose host is the Database's Service name:
    // the App finds it through cluster DNS and logs in with the generated password.
    let database_url = json!({"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": secret, "key": "uri"}}});
    let app =
        json!({"image": HELLO, "port": 8080, "replicas": 1, "expose": {"type": "NodePort"}, "env": [database_url]});
    erin.created(&format!("/tenants/{tenant}/apps"), json!({"name": "web", "spec": app})).await;
    let status = ready(&erin, &format!("/tenants/{tenant}/apps/web"), "the App").await;
    let visits = format!("{}/visits", status["url"].as_str().unwrap());
    let count = |body: String| body.trim().strip_prefix("visits ").and_then(|n| n.parse::<i64>().ok());
    let first = eventually(Duration::from_secs(60), "the App to write a visit to its Database", || async {
        page(&visits).await.and_then(count)
    })
    .await;
    let second = page(&visits).await.and_then(count).expect("the App answers again");
    assert_eq!(second, first + 1);

    // What the App wrote is in the Database, read from the host through its node port.
    let password = erin.get(&format!("{db_path}/credentials")).await.body["password"].as_str().unwrap().to_string();
    let mut conn = eventually(Duration::from_secs(60), "PostgreSQL to accept the credentials", || {
        postgres(db["nodePort"].as_i64().unwrap(), &password)
    })
    .await;
    let rows: Vec<(String,)> = sqlx::query_as("SELECT pod FROM visits").fetch_all(&mut conn).await.unwrap();
    assert_eq!(rows.len() as i64, second);
    assert!(rows.iter().all(|(pod,)| pod.starts_with("web-")), "{rows:?}");
}

/// Redis's answers to `AUTH default <password>` then `PING` through the node port (RESP, the
/// protocol redis-cli speaks), e.g. `["+OK", "+PONG"]`; `None` while nothing answers.
async fn redis_auth_and_ping(port: i64, password: &str) -> Option<Vec<String>> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let address = format!("{}:{port}", support::cluster_env("SLIPWAY_NODE_ADDRESS"));
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
        stream.write_all(format!("AUTH default {password}\r\nPING\r\n").as_bytes()).await.ok()?;
        let mut lines = BufReader::new(stream).lines();
        let mut answers = Vec::new();
        while answers.len() < 2 {
            answers.push(lines.next_line().await.ok()??);
        }
        Some(answers)
    };
    tokio::time::timeout(Duration::from_secs(5), exchange).await.ok()?
}

/// A new user's Database `name` of `spec` (exposed on a node port) in a new "standard"
/// tenant, once Ready: the user, the Database's API path and its node port.
async fn database_on_a_node_port(user: &str, name: &str, spec: serde_json::Value) -> (Client, String, i64) {
    let (client, _) = Client::new_user(user).await;
    let tenant = client.create_tenant(user, "standard").await;
    client.created(&format!("/tenants/{tenant}/databases"), json!({"name": name, "spec": spec})).await;
    let path = format!("/tenants/{tenant}/databases/{name}");
    let port = ready(&client, &path, "the Database").await["nodePort"].as_i64().unwrap();
    (client, path, port)
}

#[tokio::test]
async fn a_redis_database_accepts_its_password_and_only_that() {
    let spec = json!({"engine": "redis", "version": "7", "storage": "1Gi", "cpu": SMALL_CPU, "memory": "128Mi",
                      "expose": {"type": "NodePort"}});
    let (fred, path, port) = database_on_a_node_port("fred", "sessions", spec).await;
    let password = fred.get(&format!("{path}/credentials")).await.body["password"].as_str().unwrap().to_string();
    let answers = eventually(Duration::from_secs(60), "Redis to answer on its node port", || {
        redis_auth_and_ping(port, &password)
    })
    .await;
    assert_eq!(answers, ["+OK", "+PONG"]);
    let refused = redis_auth_and_ping(port, "not-the-password").await.expect("Redis answers");
    assert!(refused[0].starts_with("-WRONGPASS"), "{refused:?}");
    assert!(refused[1].starts_with("-NOAUTH"), "{refused:?}");
}

#[tokio::test]
async fn a_mariadb_database_accepts_its_credentials_through_the_node_port() {
    use sqlx::Executor;
    let spec = json!({"engine": "mariadb", "version": "10.11", "storage": "1Gi", "cpu": SMALL_CPU, "memory": "256Mi",
                      "expose": {"type": "NodePort"}});
    let (gina, path, port) = database_on_a_node_port("gina", "ledger", spec).await;
    let credentials = gina.get(&format!("{path}/credentials")).await.body;
    assert_eq!(credentials["port"], 3306);
    let password = credentials["password"].as_str().unwrap().to_string();
    let mysql = |password: String| async move { connect::<sqlx::MySqlConnection>("mysql", port, &password).await };
    let mut db =
        eventually(Duration::from_secs(60), "MariaDB to accept the credentials", || mysql(password.clone())).await;
    assert!(mysql("not-the-password".into()).await.is_none(), "a wrong password is refused");
    db.execute("CREATE TABLE entries (amount INT); INSERT INTO entries VALUES (42)").await.unwrap();
    let (amount,): (i32,) = sqlx::query_as("SELECT amount FROM entries").fetch_one(&mut db).await.unwrap();
    assert_eq!(amount, 42);
}
