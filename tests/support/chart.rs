//! Slipway as an operator installs it: the Helm chart `charts/slipway` installed with
//! `helm upgrade --install` on the cluster with the real node, from the image hack/images.sh
//! builds out of this checkout (imported into the node by hack/test.sh), with the mail catcher
//! and the PostgreSQL server hack/test.sh starts on the node's address, where pods reach them.

use super::{cluster_env, eventually, required_env, unique};
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::json;
use std::{
    process::Command,
    time::{Duration, Instant},
};

/// Release name and namespace: not `slipway-system`, which the in-process Slipways of the
/// other test binaries use for their reservation ledgers on this same cluster.
pub const RELEASE: &str = "slipway";
pub const NAMESPACE: &str = "slipway-chart";
/// The image hack/images.sh builds from this checkout's release binary.
pub const IMAGE: (&str, &str) = ("localhost/slipway-dev/slipway", "dev");
const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/slipway");

/// Runs `program args` against the real node's cluster; its stdout, or a panic with its output.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .env("KUBECONFIG", cluster_env("KUBECONFIG"))
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert!(out.status.success(), "{program} {args:?} failed:\n{}{}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

pub fn helm(args: &[&str]) -> String {
    run(&required_env("SLIPWAY_HELM"), args)
}

pub fn kubectl(args: &[&str]) -> String {
    run(&cluster_env("SLIPWAY_KUBECTL"), args)
}

/// How many API replicas the release runs, on which database.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Topology {
    /// The chart's defaults: one API replica on SQLite in a volume.
    Single,
    /// Two API replicas on PostgreSQL (a fresh database on hack/test.sh's server, its URL in
    /// a Secret), rolled one pod at a time.
    HighlyAvailable,
}

/// The installed release; uninstalled (and its namespace deleted, with the Secret and volume
/// the chart keeps on uninstall) when dropped, even by a failing test, so the binaries that
/// run after this one find the cluster without it.
pub struct Release {
    /// The platform admin (`api.adminEmails`), not yet registered.
    pub admin_email: String,
    /// The API's database as this machine reaches it (sqlx URL); none on SQLite.
    pub database_url: Option<String>,
}

impl Release {
    /// `helm upgrade --install --wait` with the real node's settings and the tests' platform
    /// (see [`super::platform`]); the release and the install's duration.
    pub async fn install(topology: Topology) -> (Self, Duration) {
        // The namespace of a release uninstalled just before is deleted in the background.
        let namespaces: Api<Namespace> = Api::all(super::kube_admin().await);
        eventually(Duration::from_secs(180), "the namespace of an uninstalled release to be gone", || async {
            let namespace = namespaces.get_opt(NAMESPACE).await.unwrap();
            namespace.is_none_or(|n| n.metadata.deletion_timestamp.is_none()).then_some(())
        })
        .await;
        // Webhook configurations an in-process Slipway registered earlier on this cluster:
        // Helm refuses to adopt objects another manager created.
        kubectl(&[
            "delete",
            "mutatingwebhookconfiguration,validatingwebhookconfiguration",
            "slipway",
            "--ignore-not-found",
        ]);
        let admin_email = format!("{}@{}", unique("admin"), super::WORKSPACE_DOMAIN);
        let mut settings = vec![
            format!("image.repository={},image.tag={},image.pullPolicy=Never", IMAGE.0, IMAGE.1),
            format!("mail.smtpUrl={}", required_env("SLIPWAY_CHART_SMTP_URL")),
            format!("ingressDomain={},workspaceEmailDomains={{{}}}", super::INGRESS_DOMAIN, super::WORKSPACE_DOMAIN),
            "api.service.type=NodePort".into(),
            format!("api.adminEmails={{{admin_email}}}"),
            // Every test here registers from the node's address.
            "api.rateLimits.authRequestsPerMinute=10000,api.rateLimits.loginAttemptsPerMinute=10000".into(),
            format!("controller.nodeAddress={}", cluster_env("SLIPWAY_NODE_ADDRESS")),
            format!("controller.ingressClass={}", cluster_env("SLIPWAY_INGRESS_CLASS")),
            format!("controller.workspaceImage={}", cluster_env("SLIPWAY_WORKSPACE_IMAGE")),
            format!("controller.databaseImages={{{}}}", cluster_env("SLIPWAY_DATABASE_IMAGES")),
            format!("webhook.reservationTtlSeconds={}", super::RESERVATION_TTL.as_secs()),
            "logFormat=text".into(),
            // Six pods of Slipway beside the tests' workloads on a node of two cores: the
            // scheduler counts requests, not use.
            "api.resources.requests.cpu=20m,controller.resources.requests.cpu=20m,webhook.resources.requests.cpu=20m"
                .into(),
        ];
        let database_url = match topology {
            Topology::Single => None,
            Topology::HighlyAvailable => {
                let url = database_secret().await;
                settings.push(format!("api.replicas=2,api.database.existingSecret={RELEASE}-database"));
                Some(url)
            }
        };
        let plans = format!("plans={}", cluster_env("SLIPWAY_PLANS"));
        let mut args = vec!["upgrade", "--install", RELEASE, CHART, "--namespace", NAMESPACE];
        args.extend(["--create-namespace", "--wait", "--timeout", "5m", "--set-file", &plans]);
        for s in &settings {
            args.extend(["--set", s]);
        }
        let started = Instant::now();
        helm(&args);
        (Self { admin_email, database_url }, started.elapsed())
    }

    /// `helm upgrade --reuse-values --wait` with `settings` changed; its duration. Blocking:
    /// call it from a blocking thread when requests must flow meanwhile.
    pub fn upgrade(&self, settings: &[&str]) -> Duration {
        let mut args = vec!["upgrade", RELEASE, CHART, "--namespace", NAMESPACE, "--reuse-values"];
        args.extend(["--wait", "--timeout", "5m"]);
        for s in settings {
            args.extend(["--set", s]);
        }
        let started = Instant::now();
        helm(&args);
        started.elapsed()
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

/// A fresh database on the PostgreSQL server the pods reach (`SLIPWAY_CHART_POSTGRES_URL`,
/// on the node's address) and the Secret `<release>-database` in the release's namespace
/// holding its URL; the URL.
async fn database_secret() -> String {
    let server = required_env("SLIPWAY_CHART_POSTGRES_URL");
    let name = format!("slipway_chart_{}", uuid::Uuid::new_v4().simple());
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&server).await.expect("PostgreSQL is reachable");
    sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.unwrap();
    let url = format!("{}/{name}", server.rsplit_once('/').expect("URL has a database path").0);
    let admin = super::kube_admin().await;
    let apply = PatchParams::apply("slipway-tests").force();
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}});
    Api::<Namespace>::all(admin.clone()).patch(NAMESPACE, &apply, &Patch::Apply(namespace)).await.unwrap();
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": format!("{RELEASE}-database")},
        "stringData": {"database-url": url},
    });
    let secrets: Api<Secret> = Api::namespaced(admin, NAMESPACE);
    secrets.patch(&format!("{RELEASE}-database"), &apply, &Patch::Apply(secret)).await.unwrap();
    url
}

/// The API's URL through its Service's node port (`http://ADDRESS:PORT/api/v1`), once it
/// answers there.
pub async fn api_base() -> String {
    let services: Api<Service> = Api::namespaced(super::kube_admin().await, NAMESPACE);
    let service = services.get(&format!("{RELEASE}-api")).await.unwrap();
    let port = service.spec.unwrap().ports.unwrap()[0].node_port.expect("a NodePort Service");
    let base = format!("http://{}:{port}", cluster_env("SLIPWAY_NODE_ADDRESS"));
    eventually(Duration::from_secs(60), "the API to answer on its node port", || async {
        let ready = reqwest::get(format!("{base}/readyz")).await.ok()?;
        ready.status().is_success().then_some(())
    })
    .await;
    // kube-apiserver (on this machine) dials the webhook's Service address, which kube-proxy
    // routes only a moment after the pods are Ready: until then it refuses connections, and
    // every write of Slipway's kinds fails (`helm --wait` does not wait for that).
    let webhook = services.get(&format!("{RELEASE}-webhook")).await.unwrap();
    let address = (webhook.spec.unwrap().cluster_ip.expect("a ClusterIP Service"), 443);
    eventually(Duration::from_secs(60), "the webhook's Service to accept connections", || async {
        tokio::net::TcpStream::connect((address.0.as_str(), address.1)).await.ok().map(drop)
    })
    .await;
    format!("{base}/api/v1")
}
