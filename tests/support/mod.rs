//! Shared harness of the cluster tests: one Slipway (`serve`, exactly what `slipway all`
//! runs) per test binary, on its own thread and runtime so it outlives each `#[tokio::test]`;
//! HTTP, mail and polling helpers. Components come from hack/test.sh; a missing one fails.
//!
//! Each test binary picks its SQL backend with a crate-level `const DATABASE: &str`
//! (`"sqlite"` or `"postgres"`), so the cluster flows run against both, and its cluster with
//! `const CLUSTER: Cluster`.
//!
//! With `SLIPWAY_UNDER_TEST=chart`, a binary on the real node's cluster drives Slipway
//! installed by its Helm chart instead (see [`chart`]): hack/test.sh runs the real node's
//! end-to-end tests a second time that way.
#![allow(dead_code)]

pub mod chart;
mod review_proxy;

use serde_json::{Value, json};
use slipway::Shutdown;
use std::{collections::HashMap, future::Future, sync::OnceLock, time::Duration};

pub fn required_env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the suite with hack/test.sh, which starts the components"))
}

/// The sum of the samples of `metric` in Prometheus text `text` (a counter's, a gauge's, or a
/// histogram's `_sum` or `_count`) whose labels include every `labels` pair.
pub fn metric_sum(text: &str, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|line| Ok(line.to_owned())))
        .expect("reading lines from a string cannot fail");
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .filter_map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => Some(v),
            _ => None,
        })
        .sum()
}

/// The clusters hack/test.sh starts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Cluster {
    /// Control plane with kwok's simulated nodes: pods become Ready at once, nothing runs.
    /// Its settings are the process's environment.
    Kwok,
    /// Control plane with the real node `real-0` (hack/node.sh): containers run, node ports
    /// answer on `SLIPWAY_NODE_ADDRESS`. Its settings are in the env file that
    /// `SLIPWAY_REAL_ENV` names (`export NAME='VALUE'` lines, written by hack/cluster.sh).
    Real,
}

/// A setting of this binary's cluster (see [`Cluster`]); a missing one fails the test.
pub fn cluster_env(name: &str) -> String {
    match crate::CLUSTER {
        Cluster::Kwok => required_env(name),
        Cluster::Real => {
            static FILE: OnceLock<HashMap<String, String>> = OnceLock::new();
            let vars = FILE.get_or_init(|| {
                let path = required_env("SLIPWAY_REAL_ENV");
                let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
                text.lines()
                    .filter_map(|line| line.strip_prefix("export ")?.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
                    .collect()
            });
            vars.get(name).cloned().unwrap_or_else(|| panic!("{name} is missing from the real cluster's env file"))
        }
    }
}

/// Sends the in-process Slipway's warnings (failed reconciles, emails that could not be sent,
/// denied writes: `RUST_LOG` overrides the level) to `$SLIPWAY_TEST_LOGS/<test binary>.log`,
/// which hack/test.sh prints the tail of when the suite fails: a test's captured output
/// holds only what the test itself printed, and CI keeps only the suite's output.
fn log_to_file() {
    let Ok(dir) = std::env::var("SLIPWAY_TEST_LOGS") else { return };
    let binary = std::env::current_exe().expect("the test binary has a path");
    let stem = binary.file_stem().expect("the test binary has a name").to_string_lossy().into_owned();
    // Cargo names test binaries <name>-<hash>: one file per test file, across runs of the suite.
    let name = stem.rsplit_once('-').map_or(stem.as_str(), |(name, _)| name);
    let path = std::path::Path::new(&dir).join(format!("{name}.log"));
    let file = std::fs::OpenOptions::new().create(true).append(true).open(&path).unwrap_or_else(|e| {
        panic!("SLIPWAY_TEST_LOGS: opening {}: {e}", path.display());
    });
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let writer = std::sync::Mutex::new(file);
    // Another subscriber set by the binary itself wins: then this one is not needed.
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_writer(writer).try_init();
}

/// The admin connection to this binary's cluster.
pub async fn kube_config() -> kube::Config {
    let kubeconfig =
        kube::config::Kubeconfig::read_from(cluster_env("KUBECONFIG")).expect("the kubeconfig is readable");
    kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.expect("the kubeconfig is valid")
}

/// A unique DNS-label-safe name: `prefix-<8 hex>`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// A running Slipway: API base URL and the components' addresses.
pub struct Slipway {
    pub base_url: String,
    pub mail_api: String,
    /// The API's SQL database (sqlx URL), for tests that change accounts behind its back.
    pub database_url: String,
    /// The address of this binary's platform admin (`SLIPWAY_ADMIN_EMAILS`); see [`admin`].
    pub admin_email: String,
}

/// The only email domain whose users may request Workspaces in the tests.
pub const WORKSPACE_DOMAIN: &str = "example.com";

/// Base domain of tenants' Ingress hosts in the tests.
pub const INGRESS_DOMAIN: &str = "apps.slipway.test";

/// The tests' platform: Ingress hosts under [`INGRESS_DOMAIN`]; Workspaces only for accounts
/// at [`WORKSPACE_DOMAIN`] (test users are; `Client::new_user_at` makes outsiders).
pub fn platform() -> slipway_policies::Platform {
    slipway_policies::Platform::new(INGRESS_DOMAIN, [WORKSPACE_DOMAIN])
}

/// Lifetime of the test webhooks' reservations: longer than the product's default (15 s) and
/// than any deadline a test waits for room to be freed, so a test passes only when room is
/// released by what the webhook observes, never by a reservation running out.
pub const RESERVATION_TTL: Duration = Duration::from_secs(120);

/// Two webhook replicas behind a proxy that sends each review to the next ([`review_proxy`]), registered with the API server, auditing
/// into the API's database at `database_url`.
async fn start_webhooks(
    client: &kube::Client,
    plans: &std::sync::Arc<slipway_policies::PlanCatalog>,
    database_url: &str,
) {
    let certs = slipway_webhook::certs::generate(&["127.0.0.1".into()]).unwrap();
    let dir = std::env::temp_dir().join(format!("slipway-it-webhook-{}", uuid::Uuid::new_v4().simple()));
    slipway_webhook::certs::write(&dir, &certs).unwrap();
    let mut backends = Vec::new();
    for _ in 0..2 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        backends.push(listener.local_addr().unwrap());
        // Each replica takes tenants' leases; the other sends it those tenants' reviews.
        let config = slipway_webhook::WebhookConfig {
            tls_cert: dir.join("tls.crt"),
            tls_key: dir.join("tls.key"),
            namespace: "slipway-system".into(),
            platform: platform(),
            reservation_ttl: RESERVATION_TTL,
            advertise: Some(listener.local_addr().unwrap()),
        };
        let audit = slipway::SqlAudit::connect(database_url).await.unwrap();
        let server = slipway_webhook::Server::start(client.clone(), plans.clone(), &config, Some(audit)).await.unwrap();
        tokio::spawn(server.serve(listener, std::future::pending()));
    }
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = slipway_webhook::WebhookTarget::Url(format!("https://{}", proxy.local_addr().unwrap()));
    tokio::spawn(review_proxy::run(proxy, backends, dir.join("tls.crt"), dir.join("tls.key")));
    slipway_webhook::register(client, &target, &certs.ca_pem).await.unwrap();
}

/// A fresh, empty database of `kind` (`sqlite` or `postgres`), as a sqlx URL.
pub async fn fresh_database(kind: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    match kind {
        "sqlite" => format!("sqlite://{}/slipway-it-{id}.db?mode=rwc", std::env::temp_dir().display()),
        "postgres" => {
            let admin = required_env("SLIPWAY_TEST_POSTGRES_URL");
            let (mut conn, name) = (sqlx_connect(&admin).await, format!("slipway_it_{id}"));
            sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.unwrap();
            format!("{}/{name}", admin.rsplit_once('/').expect("URL has a database path").0)
        }
        other => panic!("unknown database kind {other}"),
    }
}

async fn sqlx_connect(url: &str) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    <sqlx::AnyConnection as sqlx::Connection>::connect(url).await.expect("PostgreSQL is reachable")
}

/// A controller's configuration on the kwok cluster, where nothing runs (no node address, no
/// ingress class, images never pulled), mailing with `mail`.
pub fn kwok_controller_config(mail: slipway_controller::MailerConfig) -> slipway_controller::ControllerConfig {
    slipway_controller::ControllerConfig {
        node_address: None,
        ingress_class: None,
        mail,
        workspace_image: "ghcr.io/slipway-dev/workspace:0.1".into(),
        database_images: Default::default(),
    }
}

/// The configuration of a second controller on the kwok cluster, as after a restart or with
/// two replicas: the binary's own mail catcher, from `second@slipway.test`.
pub fn second_controller_config() -> slipway_controller::ControllerConfig {
    kwok_controller_config(slipway_controller::MailerConfig {
        smtp_url: required_env("SLIPWAY_SMTP_URL").into(),
        from: "second@slipway.test".into(),
    })
}

/// Starts Slipway once for this test binary: CRDs, two webhook replicas behind a proxy,
/// controllers, the API on a free port with a fresh database of kind `crate::DATABASE`, the
/// test cluster and the test SMTP catcher. With `SLIPWAY_UNDER_TEST=chart`, installs it with
/// its chart instead (see [`installed_by_the_chart`]).
pub fn slipway() -> &'static Slipway {
    static SLIPWAY: OnceLock<Slipway> = OnceLock::new();
    SLIPWAY.get_or_init(|| {
        match std::env::var("SLIPWAY_UNDER_TEST").as_deref() {
            Ok("chart") => return installed_by_the_chart(),
            Ok("in-process") | Err(_) => {}
            Ok(other) => panic!("SLIPWAY_UNDER_TEST={other}: expected `in-process` (the default) or `chart`"),
        }
        // Fail here, at once, when the cluster is missing: not in Slipway's thread.
        cluster_env("KUBECONFIG");
        log_to_file();
        let smtp_url = required_env("SLIPWAY_SMTP_URL");
        let mail_api = required_env("SLIPWAY_MAIL_API");
        let (tx, rx) = std::sync::mpsc::channel();
        let server = std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let database_url = fresh_database(crate::DATABASE).await;
                // Unique per binary: the binaries share the mail catcher.
                let admin_email = format!("{}@{WORKSPACE_DOMAIN}", unique("admin"));
                tx.send((listener.local_addr().unwrap(), database_url.clone(), admin_email.clone())).unwrap();
                let (_trigger, shutdown) = Shutdown::manual();
                let api = slipway_api::ApiConfig {
                    database_url: database_url.clone().into(),
                    tokens: slipway_api::TokenConfig {
                        key: vec![9; 32],
                        previous_keys: vec![],
                        issuer: "slipway".into(),
                        audience: "slipway-api".into(),
                        ttl_seconds: 3600,
                    },
                    max_body_bytes: 64 * 1024,
                    platform: platform(),
                    public_url: format!("http://{}", listener.local_addr().unwrap()),
                    // Every test registers and logs in from 127.0.0.1: budgets beyond the
                    // suite's (api/tests/accounts.rs tests the limits themselves).
                    limits: slipway_api::LimitsConfig {
                        per_client_per_minute: std::num::NonZeroU32::new(100_000).unwrap(),
                        login_per_account_per_minute: std::num::NonZeroU32::new(100_000).unwrap(),
                    },
                    entitlements: slipway_api::EntitlementsConfig {
                        default_max_tenants: 1,
                        admin_emails: vec![admin_email],
                    },
                    mail: slipway_controller::MailerConfig {
                        smtp_url: smtp_url.clone().into(),
                        from: "Slipway <noreply@slipway.test>".into(),
                    },
                };
                let mail = slipway_controller::MailerConfig {
                    smtp_url: smtp_url.into(),
                    from: "Slipway <noreply@slipway.test>".into(),
                };
                let (controller, plans) = match crate::CLUSTER {
                    Cluster::Kwok => (kwok_controller_config(mail), slipway_policies::PlanCatalog::embedded()),
                    // What `slipway` reads from the same variables (see src/cli.rs).
                    Cluster::Real => (
                        slipway_controller::ControllerConfig {
                            node_address: Some(cluster_env("SLIPWAY_NODE_ADDRESS")),
                            ingress_class: Some(cluster_env("SLIPWAY_INGRESS_CLASS")),
                            mail,
                            workspace_image: cluster_env("SLIPWAY_WORKSPACE_IMAGE"),
                            database_images: slipway_controller::DatabaseImages::with(
                                cluster_env("SLIPWAY_DATABASE_IMAGES").split(',').map(|o| o.parse().unwrap()),
                            ),
                        },
                        slipway_policies::PlanCatalog::from_yaml(
                            &std::fs::read_to_string(cluster_env("SLIPWAY_PLANS")).unwrap(),
                        )
                        .unwrap(),
                    ),
                };
                let plans = std::sync::Arc::new(plans);
                let config = kube_config().await;
                let client = kube::Client::try_from(config.clone()).unwrap();
                slipway_crds::install(&client).await.unwrap();
                start_webhooks(&client, &plans, &database_url).await;
                let parts = slipway::Components {
                    api: Some((api, listener)),
                    controller: Some((controller, None)),
                    webhook: None,
                    install_crds: false,
                };
                slipway::serve(config, plans, parts, shutdown).await.unwrap();
            });
        });
        let (addr, database_url, admin_email) = rx.recv().unwrap();
        let slipway = Slipway { base_url: format!("http://{addr}/api/v1"), mail_api, database_url, admin_email };
        // The API answers once CRDs are installed and migrations ran.
        let ready = format!("http://{addr}/readyz");
        for _ in 0..600 {
            if probe_ok(&ready) {
                return slipway;
            }
            assert!(!server.is_finished(), "Slipway stopped while starting (its panic is above)");
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("Slipway did not become ready within 60 s");
    })
}

/// Slipway installed by `helm upgrade --install` on the real node's cluster with two replicas
/// of every component, the API on PostgreSQL and reached through its node port. The release
/// stays installed after the binary's tests (hack/test.sh removes the whole cluster): run one
/// binary at a time this way.
fn installed_by_the_chart() -> Slipway {
    assert_eq!(
        crate::CLUSTER,
        Cluster::Real,
        "SLIPWAY_UNDER_TEST=chart: the chart is installed on the real node's cluster"
    );
    // On a runtime of its own: the caller may be inside a test's runtime.
    let install = std::thread::spawn(|| {
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let (release, took) = chart::Release::install(chart::Topology::HighlyAvailable).await;
            eprintln!("Slipway under test: installed by its chart in {took:?}");
            let slipway = Slipway {
                base_url: chart::api_base().await,
                mail_api: required_env("SLIPWAY_CHART_MAIL_API"),
                database_url: release.database_url.clone().expect("the API's PostgreSQL database"),
                admin_email: release.admin_email.clone(),
            };
            // Not uninstalled when this thread ends: the binary's tests use it.
            std::mem::forget(release);
            slipway
        })
    });
    install.join().expect("installing the chart (the panic is above)")
}

/// A minimal readiness probe without an async runtime (std TCP + HTTP/1.0).
fn probe_ok(url: &str) -> bool {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let Ok(mut s) = std::net::TcpStream::connect(host) else {
        return false;
    };
    let _ = write!(s, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.starts_with("HTTP/1.0 200") || out.starts_with("HTTP/1.1 200")
}

/// An HTTP client of the API, optionally with an access token.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    mail_api: String,
    token: Option<String>,
}

/// Status and JSON body of a response.
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Client {
    /// An anonymous client of this binary's Slipway.
    pub fn anonymous() -> Self {
        Self::at(&slipway().base_url, &slipway().mail_api)
    }

    /// An anonymous client of the Slipway whose API is at `base` (`http://host:port/api/v1`)
    /// and whose emails reach the MailHog API at `mail_api`.
    pub fn at(base: &str, mail_api: &str) -> Self {
        Self { http: reqwest::Client::new(), base: base.into(), mail_api: mail_api.into(), token: None }
    }

    /// This client with a new connection for every request (no idle connection kept).
    pub fn without_keep_alive(self) -> Self {
        let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("an HTTP client");
        Self { http, ..self }
    }

    /// Registers a new user with a unique @example.com email and logs in. Returns the client and email.
    pub async fn new_user(prefix: &str) -> (Self, String) {
        Self::new_user_at(prefix, WORKSPACE_DOMAIN).await
    }

    /// Registers a new user with a unique address at `domain`, logs in and confirms the
    /// address with the link mailed to it, which it then deletes from the catcher: the
    /// mailbox holds only what Slipway sends afterwards.
    pub async fn new_user_at(prefix: &str, domain: &str) -> (Self, String) {
        let email = format!("{}@{domain}", unique(prefix));
        (Self::registered(&email, prefix).await, email)
    }

    /// This binary's platform admin (registered and verified on first use).
    pub async fn admin() -> Self {
        static TOKEN: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
        let token = TOKEN
            .get_or_init(|| async { Self::registered(&slipway().admin_email, "admin").await.token.unwrap() })
            .await;
        Self { token: Some(token.clone()), ..Self::anonymous() }
    }

    /// Registers `email`, logs in and confirms the address with the link mailed to it, which
    /// it then deletes from the catcher.
    async fn registered(email: &str, name: &str) -> Self {
        Self::anonymous().register(email, name).await
    }

    /// As [`Client::registered`], on this anonymous client's Slipway.
    pub async fn register(&self, email: &str, name: &str) -> Self {
        let anon = self.clone();
        let r = anon
            .post("/auth/register", json!({"email": email, "password": "correct horse battery", "name": name}))
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
        let r = anon.post("/auth/login", json!({"email": email, "password": "correct horse battery"})).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let user = Self { token: Some(r.body["access_token"].as_str().unwrap().to_string()), ..anon };
        let (id, body) = eventually(Duration::from_secs(60), "the verification email", || async {
            let mails = mail_items(&user.mail_api, email).await.into_iter();
            mails
                .filter(|(_, subject, _)| subject.starts_with("Confirm your email"))
                .map(|(id, _, body)| (id, body))
                .next()
        })
        .await;
        let link = body.split_whitespace().find(|w| w.contains("/auth/verify?token=")).expect("a verification link");
        let token = link.rsplit_once("token=").unwrap().1;
        let r = user.post("/auth/verify", json!({"token": token})).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let delete = format!("{}/api/v1/messages/{id}", user.mail_api);
        reqwest::Client::new().delete(delete).send().await.unwrap().error_for_status().unwrap();
        user
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        self.try_send(req).await.expect("the API answers")
    }

    /// The reply, or the transport error (refused connection, reset, ...) that stopped it.
    async fn try_send(&self, req: reqwest::RequestBuilder) -> Result<Reply, reqwest::Error> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let res = req.send().await?;
        let status = res.status().as_u16();
        let text = res.text().await?;
        Ok(Reply { status, body: serde_json::from_str(&text).unwrap_or(Value::String(text)) })
    }

    /// `method path` with an optional JSON body, without panicking on transport errors: for
    /// tests that count them.
    pub async fn try_request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Reply, reqwest::Error> {
        let req = self.http.request(method, format!("{}{path}", self.base));
        self.try_send(match body {
            Some(body) => req.json(&body),
            None => req,
        })
        .await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(self.http.post(format!("{}{path}", self.base)).json(&body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.send(self.http.put(format!("{}{path}", self.base)).json(&body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.send(self.http.patch(format!("{}{path}", self.base)).json(&body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(self.http.delete(format!("{}{path}", self.base))).await
    }

    /// POSTs `body` to `path`, asserting 201 Created; returns the created object.
    pub async fn created(&self, path: &str, body: Value) -> Value {
        let r = self.post(path, body).await;
        assert_eq!(r.status, 201, "POST {path}: {}", r.body);
        r.body
    }

    /// Has the platform admin grant this account `plan` and room for one more tenant, when it
    /// lacks either (accounts choose only `free` by themselves, and own one tenant).
    pub async fn entitle(&self, plan: &str) {
        let me = self.get("/me").await.body;
        let entitled = &me["entitlements"];
        let owned = me["tenants"].as_array().unwrap().iter().filter(|t| t["role"] == "owner").count() as u64;
        let max = entitled["max_tenants"].as_u64().unwrap();
        let mut plans: Vec<Value> = entitled["plans"].as_array().unwrap().clone();
        if plans.contains(&json!(plan)) && owned < max {
            return;
        }
        plans.push(json!(plan));
        let grant = json!({"max_tenants": max.max(owned + 1), "plans": plans});
        let path = format!("/admin/users/{}/entitlements", me["id"].as_str().unwrap());
        let r = Self::admin().await.put(&path, grant).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }

    /// Creates a tenant on `plan` (entitled by the platform admin if need be), asserting 201,
    /// and waits (up to 120 s) until it is Ready: the API answers a tenant that took over its
    /// own wait as it is, and a client then waits as this one does.
    pub async fn create_tenant(&self, prefix: &str, plan: &str) -> String {
        self.entitle(plan).await;
        let name = unique(prefix);
        let r = self.post("/tenants", json!({"name": name, "plan": plan})).await;
        assert_eq!(r.status, 201, "{}", r.body);
        if !tenant_is_ready(&r.body) {
            let path = format!("/tenants/{name}");
            eventually(Duration::from_secs(120), &format!("tenant {name} to become Ready"), || async {
                tenant_is_ready(&self.get(&path).await.body).then_some(())
            })
            .await;
        }
        name
    }
}

/// Whether a tenant as the API shows it has the condition `Ready` `True`.
fn tenant_is_ready(tenant: &Value) -> bool {
    tenant["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// Emails MailHog holds for `to`, as `(subject, body)`.
pub async fn mails_to(to: &str) -> Vec<(String, String)> {
    mails_at(&slipway().mail_api, to).await
}

/// Emails the MailHog at `mail_api` holds for `to`, as `(subject, body)`.
pub async fn mails_at(mail_api: &str, to: &str) -> Vec<(String, String)> {
    mail_items(mail_api, to).await.into_iter().map(|(_, subject, body)| (subject, body)).collect()
}

/// The (MailHog id, subject, decoded body) of every email to `to`.
async fn mail_items(mail_api: &str, to: &str) -> Vec<(String, String, String)> {
    let url = format!("{mail_api}/api/v2/search?kind=to&query={to}");
    let found: Value = reqwest::get(url).await.expect("MailHog answers").json().await.unwrap();
    found["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let id = m["ID"].as_str().unwrap_or_default().to_string();
            let subject = m["Content"]["Headers"]["Subject"][0].as_str().unwrap_or_default().to_string();
            // lettre picks quoted-printable (RFC 2045 §6.7) for long lines.
            let raw = m["Content"]["Body"].as_str().unwrap_or_default();
            let decoded = quoted_printable::decode(raw, quoted_printable::ParseMode::Robust).unwrap();
            (id, subject, String::from_utf8_lossy(&decoded).replace("\r\n", "\n"))
        })
        .collect()
}

/// Polls `check` every 250 ms until it returns `Some`, or panics after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits (up to 90 s) until the object at the API path `path` is Ready with an observed
/// generation, and returns its `status`.
pub async fn wait_ready(client: &Client, path: &str) -> Value {
    eventually(Duration::from_secs(90), &format!("{path} to become Ready"), || async {
        let r = client.get(path).await;
        let status = &r.body["status"];
        (status["phase"] == "Ready" && status["observedGeneration"].is_i64()).then(|| status.clone())
    })
    .await
}

/// An admin client of the test cluster, for looking behind the API.
pub async fn kube_admin() -> kube::Client {
    kube::Client::try_from(kube_config().await).expect("the test cluster is reachable")
}

/// An admin client's objects of kind `K` in `tenant`'s namespace.
pub async fn admin_api<K>(tenant: &str) -> kube::Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    kube::Api::namespaced(kube_admin().await, &format!("tenant-{tenant}"))
}

/// Objects of kind `K` in `tenant`'s namespace as its member `email` reaches them with kubectl:
/// impersonated with the tenant's group, exactly as the API calls Kubernetes for them.
pub async fn member_api<K>(email: &str, tenant: &str) -> kube::Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    kube::Api::namespaced(member_client(email, tenant).await, &format!("tenant-{tenant}"))
}

/// A Kubernetes client that acts as `email`, a member of `tenant` (see [`member_api`]).
pub async fn member_client(email: &str, tenant: &str) -> kube::Client {
    role_client(email, tenant, "member").await
}

/// A Kubernetes client that acts as `email` with `role` (`owner`, `admin`, `member`) in
/// `tenant`: their kubectl, with the groups the API impersonates them with.
pub async fn role_client(email: &str, tenant: &str, role: &str) -> kube::Client {
    // As kubectl would: the groups of the role, without the API's `slipway.dev/via` extra.
    let mut config = kube_config().await;
    config.auth_info.impersonate = Some(email.to_string());
    config.auth_info.impersonate_groups = Some(vec![
        slipway_crds::tenant_group(tenant),
        slipway_crds::role_group(tenant, role),
        "system:authenticated".into(),
    ]);
    kube::Client::try_from(config).unwrap()
}

/// The real kubectl of this binary's cluster run as `email`, a member of `tenant`, in its
/// namespace (impersonated with the same groups as [`member_client`]): its exit status and
/// what it printed on stdout and stderr.
pub async fn kubectl_as_member(email: &str, tenant: &str, args: &[&str]) -> (bool, String) {
    let groups = [slipway_crds::tenant_group(tenant), slipway_crds::role_group(tenant, "member")];
    let output = tokio::process::Command::new(cluster_env("SLIPWAY_KUBECTL"))
        .arg(format!("--kubeconfig={}", cluster_env("KUBECONFIG")))
        .arg(format!("--as={email}"))
        .args(groups.iter().map(|g| format!("--as-group={g}")))
        .arg("--as-group=system:authenticated")
        .arg(format!("--namespace=tenant-{tenant}"))
        .args(args)
        .output()
        .await
        .expect("kubectl runs");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// The message of a denied request, asserting it was refused with `code`.
pub fn refusal<K: std::fmt::Debug>(code: u16, result: Result<K, kube::Error>) -> String {
    match result {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, code, "{s:?}");
            s.message
        }
        other => panic!("expected a refusal with {code}, got {other:?}"),
    }
}

/// The message of a request the webhook denied with 422.
pub fn denial<K: std::fmt::Debug>(result: Result<K, kube::Error>) -> String {
    refusal(422, result)
}

/// The message of a request the validating webhook denied (a 422 with its prefix).
pub fn validation_denial<K: std::fmt::Debug>(result: Result<K, kube::Error>) -> String {
    let message = denial(result);
    assert!(
        message.starts_with(r#"admission webhook "validate.slipway.dev" denied the request: "#),
        "not the validating webhook's denial: {message}"
    );
    message
}
