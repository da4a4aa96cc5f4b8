//! Load benchmark of the admission webhook against a real control plane.
//!
//! ```sh
//! hack/bench-webhook.sh                      # starts the `bench` stack, runs this, tears it down
//! eval "$(hack/stack.sh up bench)" && cargo bench -p slipway-webhook --bench admission
//! ```
//!
//! Phase 1, the webhook alone: a [`slipway_webhook::Server`] on 127.0.0.1 (real TLS with a
//! certificate from [`slipway_webhook::certs::generate`]) is driven with AdmissionReview POSTs
//! over keep-alive HTTP/1.1 connections (rustls client trusting the generated CA), a fixed
//! number in flight (one request at a time per connection), for `/mutate` and `/validate`:
//! UPDATE (a scale-up from 1 to 3 replicas: it grows, so it reserves room, in memory under the
//! tenant's lease), UPDATE "same size" (a new image: it grows nothing, so it is judged without a
//! reservation), CREATE with `dryRun: true` (judged against the ledger version the replica
//! remembers, reserves nothing) and real CREATE (the first takes the tenant's lease with a write
//! of its ledger, the rest are held in memory; as no object is ever stored, none is released, so
//! every review counts all those before it).
//!
//! Phase 2, the overhead through kube-apiserver: Apps created with a Kubernetes client,
//! sequentially and concurrently, without Slipway's webhooks, with the validating one alone, with
//! the validating one and a MutatingAdmissionPolicy doing the defaults (an experiment: what CEL
//! in kube-apiserver costs against the mutating webhook's round trip), and with both webhooks
//! (pointing at the server above), first with bare Apps (as kubectl users send them) and then
//! with Apps as Slipway's API sends them (label, defaults and author already in place, so
//! the label that says so keeps the mutating webhook from them; also with the validating webhook
//! alone, which tells the skipped webhook's cost from the larger object's, and without webhooks, the
//! like-for-like floor); the Apps of the sequential batch then get a new
//! image (an UPDATE that reserves nothing: the webhooks' round trips alone, so each webhook's
//! round trip is a difference of two rows); last as many ConfigMaps of a small ledger's size,
//! the floor of a ledger write, which an admitted create pays only when it takes or renews its
//! tenant's lease (the batches show 0 or 1 per batch). Each create batch also prints what it
//! cost, from kube-apiserver's `/metrics` and the webhook's own, scraped before and after it:
//! every request kube-apiserver served (so a write per create would show), its own time per
//! create, each webhook's calls as kube-apiserver timed them, and the same reviews as the
//! webhook timed them; the difference of the last two is the wire, TLS and encoding.
//!
//! Tuning by environment: `SLIPWAY_BENCH_REQUESTS` (requests per phase-1 scenario, 20000),
//! `SLIPWAY_BENCH_CREATES` (real CREATEs per concurrency, 1000), `SLIPWAY_BENCH_CONCURRENCY`
//! (comma-separated in-flight counts, `8,32`), `SLIPWAY_BENCH_SEED_APPS` (Apps stored in the
//! tenant before phase 1, 20), `SLIPWAY_BENCH_APPS` (Apps per phase-2 batch, 200),
//! `SLIPWAY_BENCH_ROUNDS` (phase-2 rounds, 2: the modes run forwards, then backwards, and each
//! mode's batches are pooled, so the cluster's slowing down over a run is shared fairly),
//! `SLIPWAY_BENCH_PHASES` (`webhook,apiserver`).
//!
//! Run by `cargo test --all-targets` (without `--bench`) it only prints how to run it.

/// The allocator `slipway` runs with (see its `src/main.rs`), so this bench measures what ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use k8s_openapi::{
    api::{
        admissionregistration::v1::{
            MutatingAdmissionPolicy, MutatingAdmissionPolicyBinding, MutatingWebhookConfiguration,
            ValidatingWebhookConfiguration,
        },
        core::v1::{ConfigMap, Namespace},
    },
    apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::ObjectMeta},
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, ListParams, PostParams},
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::{Value, json};
use slipway_crds::{
    App, AppSpec, DEFAULTS_FILLED, DEFAULTS_LABEL, Expose, ExposeType, LimitOverrides, TENANT_LABEL, Tenant,
    TenantOwner, TenantSpec, revision::CHANGED_BY_ANNOTATION,
};
use slipway_policies::PlanCatalog;
use std::{
    collections::BTreeMap,
    net::SocketAddr,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};
use tokio::sync::Barrier;

#[path = "support/scrape.rs"]
mod scrape;
use scrape::{Growth, Metrics};

/// Namespace of the bench's webhook (its reservation ledgers); deleted at the end.
const WEBHOOK_NAMESPACE: &str = "slipway-bench";
/// Base domain of Ingress hosts.
const INGRESS_DOMAIN: &str = "apps.bench.test";
/// Name of both webhook configurations (as [`slipway_webhook::register`] names them).
const CONFIGURATION: &str = "slipway";
/// Label on every App the bench creates, so batches can be deleted at once.
const BATCH_LABEL: &str = "bench.slipway.dev/batch";
/// Reservation lifetime of the bench's webhook (the tests use the same).
const RESERVATION_TTL: Duration = Duration::from_secs(15);

/// What to run, from the environment.
struct Settings {
    requests: usize,
    creates: usize,
    concurrency: Vec<usize>,
    seed_apps: usize,
    apps: usize,
    rounds: usize,
    phases: String,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().map_err(|_| anyhow::anyhow!("{name}={v:?} is not a valid number")),
        Err(_) => Ok(default),
    }
}

impl Settings {
    fn from_env() -> anyhow::Result<Self> {
        let concurrency = std::env::var("SLIPWAY_BENCH_CONCURRENCY").unwrap_or_else(|_| "8,32".into());
        let concurrency = concurrency
            .split(',')
            .map(|c| c.trim().parse::<usize>().ok().filter(|c| *c > 0))
            .collect::<Option<Vec<_>>>()
            .with_context(|| format!("SLIPWAY_BENCH_CONCURRENCY={concurrency:?}: expected e.g. 8,32"))?;
        Ok(Self {
            requests: env_or("SLIPWAY_BENCH_REQUESTS", 20_000)?,
            creates: env_or("SLIPWAY_BENCH_CREATES", 1_000)?,
            concurrency,
            seed_apps: env_or("SLIPWAY_BENCH_SEED_APPS", 20)?,
            apps: env_or("SLIPWAY_BENCH_APPS", 200)?,
            rounds: env_or("SLIPWAY_BENCH_ROUNDS", 2)?,
            phases: std::env::var("SLIPWAY_BENCH_PHASES").unwrap_or_else(|_| "webhook,apiserver".into()),
        })
    }
}

fn main() -> ExitCode {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!(
            "admission bench: needs a cluster; run `hack/bench-webhook.sh` or `cargo bench -p slipway-webhook --bench admission`"
        );
        return ExitCode::SUCCESS;
    }
    if std::env::var_os("KUBECONFIG").is_none() {
        eprintln!(
            "KUBECONFIG is not set: start a control plane first, e.g. `eval \"$(hack/stack.sh up bench)\"`, or run hack/bench-webhook.sh"
        );
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("admission bench failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A short random suffix for names, so reruns against one cluster never collide.
fn suffix() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    format!("{:08x}", (nanos ^ (u128::from(std::process::id()) << 32)) as u32)
}

async fn run() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let client = Client::try_default().await.context("connecting to the cluster from KUBECONFIG")?;
    slipway_crds::install(&client).await.context("installing the CRDs")?;
    let id = suffix();
    // The webhook records to the process-wide recorder; histograms with buckets (not the
    // exporter's default summaries), so their `_sum` and `_count` only ever grow.
    let recorder = PrometheusBuilder::new()
        .set_buckets(&[0.001, 0.01, 0.1, 1.0])?
        .install_recorder()
        .context("installing a metrics recorder")?;
    let bench = Bench { client: client.clone(), id: id.clone(), recorder };
    let result = bench.run(&settings).await;
    eprintln!("cleaning up");
    bench.cleanup(&settings).await;
    result
}

/// One bench run: its cluster client, the id in every name it creates, and the metrics
/// recorder the in-process webhook records to.
struct Bench {
    client: Client,
    id: String,
    recorder: PrometheusHandle,
}

/// A started webhook: where it listens and the CA its certificate chains to.
struct Running {
    addr: SocketAddr,
    ca_pem: String,
    _dir: tempfile::TempDir,
}

impl Bench {
    fn tenant(&self, role: &str) -> String {
        format!("bench-{}-{role}", self.id)
    }

    fn tenant_names(&self, settings: &Settings) -> Vec<String> {
        let mut names = vec![self.tenant("main"), self.tenant("k8s")];
        names.extend(settings.concurrency.iter().map(|c| self.tenant(&format!("c{c}"))));
        names
    }

    async fn run(&self, settings: &Settings) -> anyhow::Result<()> {
        // Tenants exist before the webhook starts, so they are in its caches from the first list.
        for tenant in self.tenant_names(settings) {
            self.create_tenant(&tenant).await?;
        }
        let main = self.tenant("main");
        let apps: Api<App> = Api::namespaced(self.client.clone(), &slipway_crds::tenant_namespace(&main));
        for i in 0..settings.seed_apps {
            apps.create(&PostParams::default(), &seed_app(&main, i)).await.context("creating a seed App")?;
        }
        let running = self.start_webhook().await?;
        println!(
            "\nSlipway admission bench (id {}): 2 shared cores run kube-apiserver, etcd, the webhook and this client",
            self.id
        );
        if settings.phases.contains("webhook") {
            self.phase_webhook(settings, &running).await?;
        }
        if settings.phases.contains("apiserver") {
            self.phase_apiserver(settings, &running).await?;
        }
        Ok(())
    }

    async fn create_tenant(&self, name: &str) -> anyhow::Result<()> {
        // Plan `pro` with room for every App the bench creates (reservations count too).
        let limits = LimitOverrides {
            max_apps: Some(1_000_000),
            cpu: Some(Quantity("10000000".into())),
            memory: Some(Quantity("100000Ti".into())),
            ..Default::default()
        };
        let spec = TenantSpec {
            owners: vec![TenantOwner { email: "bench@example.com".into() }],
            members: vec![],
            plan: "pro".into(),
            limits: Some(limits),
        };
        let tenant = Api::<Tenant>::all(self.client.clone())
            .create(&PostParams::default(), &Tenant::new(name, spec))
            .await
            .context("creating a Tenant")?;
        // The namespace is the Tenant's own, as the controller would make it (the webhook
        // admits only in a namespace bound to its Tenant by a controller owner reference).
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(slipway_crds::tenant_namespace(name)),
                labels: Some([(TENANT_LABEL.to_string(), name.to_string())].into()),
                owner_references: tenant.controller_owner_ref(&()).map(|o| vec![o]),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .context("creating a tenant namespace")?;
        Ok(())
    }

    async fn start_webhook(&self) -> anyhow::Result<Running> {
        // A previous run deletes the ledgers' namespace as it ends: let that finish, or the
        // webhook would find it still there and then lose it (every reservation then fails).
        let namespaces = Api::<Namespace>::all(self.client.clone());
        let not_terminating = |ns: Option<&Namespace>| {
            ns.is_none_or(|ns| ns.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Terminating"))
        };
        let settled = kube::runtime::wait::await_condition(namespaces, WEBHOOK_NAMESPACE, not_terminating);
        tokio::time::timeout(Duration::from_secs(120), settled)
            .await
            .with_context(|| format!("namespace {WEBHOOK_NAMESPACE} still terminating after 120 s"))??;
        let certs = slipway_webhook::certs::generate(&["127.0.0.1".into()])?;
        let dir = tempfile::tempdir()?;
        slipway_webhook::certs::write(dir.path(), &certs)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let config = slipway_webhook::WebhookConfig {
            tls_cert: dir.path().join(slipway_webhook::certs::CERT_FILE),
            tls_key: dir.path().join(slipway_webhook::certs::KEY_FILE),
            namespace: WEBHOOK_NAMESPACE.into(),
            platform: slipway_policies::Platform::new(INGRESS_DOMAIN, [""; 0]),
            reservation_ttl: RESERVATION_TTL,
            advertise: Some(addr),
        };
        let plans = Arc::new(PlanCatalog::embedded());
        let server = slipway_webhook::Server::start(self.client.clone(), plans, &config, None).await?;
        tokio::spawn(server.serve(listener, std::future::pending()));
        Ok(Running { addr, ca_pem: certs.ca_pem, _dir: dir })
    }

    /// Phase 1: AdmissionReviews straight to the webhook.
    async fn phase_webhook(&self, settings: &Settings, running: &Running) -> anyhow::Result<()> {
        let tls = tls_connector(&running.ca_pem)?;
        let main = self.tenant("main");
        let ns = slipway_crds::tenant_namespace(&main);
        let stored = defaulted(&bare_spec());
        let mut scaled = stored.clone();
        scaled.replicas = Some(3);
        let update = review(
            "UPDATE",
            &ns,
            "seed-0",
            false,
            app_object(&main, "seed-0", &scaled),
            Some(app_object(&main, "seed-0", &stored)),
        );
        // A change that grows nothing (a new image at the same size): judged, never reserved.
        let mut reimaged = stored.clone();
        reimaged.image = "nginx:1.27".into();
        let same_size = review(
            "UPDATE",
            &ns,
            "seed-0",
            false,
            app_object(&main, "seed-0", &reimaged),
            Some(app_object(&main, "seed-0", &stored)),
        );
        let create_dry = review("CREATE", &ns, "fresh", true, app_object(&main, "fresh", &bare_spec()), None);
        let mut table = vec![];
        for &concurrency in &settings.concurrency {
            let cases: [(&str, &str, &Bytes); 5] = [
                ("mutate UPDATE", "/mutate", &update),
                ("validate UPDATE", "/validate", &update),
                ("validate UPDATE same size", "/validate", &same_size),
                ("mutate CREATE", "/mutate", &create_dry),
                ("validate CREATE dryRun", "/validate", &create_dry),
            ];
            for (name, path, body) in cases {
                let body = body.clone();
                let make = move |_: usize| body.clone();
                // Warm-up (connections, caches, allocator), then the measured run.
                drive(&tls, running.addr, path, concurrency, settings.requests / 20, &make).await?;
                let result = drive(&tls, running.addr, path, concurrency, settings.requests, &make).await?;
                eprintln!("  {name:<26} c={concurrency:<3} {:>8.0} req/s", result.rate());
                table.push((name.to_string(), concurrency, result));
            }
        }
        // Real CREATEs reserve room: each concurrency gets a fresh tenant, so no run pays for
        // the reservations of another.
        for &concurrency in &settings.concurrency {
            let tenant = self.tenant(&format!("c{concurrency}"));
            let ns = slipway_crds::tenant_namespace(&tenant);
            let bodies: Arc<Vec<Bytes>> = Arc::new(
                (0..settings.creates)
                    .map(|i| {
                        let name = format!("create-{i}");
                        review("CREATE", &ns, &name, false, app_object(&tenant, &name, &defaulted(&bare_spec())), None)
                    })
                    .collect(),
            );
            let make = move |i: usize| bodies[i].clone();
            let result = drive(&tls, running.addr, "/validate", concurrency, settings.creates, &make).await?;
            eprintln!("  validate CREATE (ledger)   c={concurrency:<3} {:>8.0} req/s", result.rate());
            table.push(("validate CREATE (ledger)".into(), concurrency, result));
        }
        println!(
            "\nPhase 1: the webhook alone, HTTPS keep-alive, HTTP/1.1, one request at a time per connection, tenant with {} Apps",
            settings.seed_apps
        );
        println!(
            "{:<26} {:>5} {:>8} {:>8} {:>7} {:>7} {:>9} {:>8} {:>8} {:>8} {:>8}",
            "scenario",
            "conc",
            "requests",
            "allowed",
            "denied",
            "errors",
            "req/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms"
        );
        for (name, concurrency, r) in &table {
            println!(
                "{:<26} {:>5} {:>8} {:>8} {:>7} {:>7} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
                name,
                concurrency,
                r.requests,
                r.allowed,
                r.denied,
                r.errors,
                r.rate(),
                ms(r.latency.value_at_quantile(0.50)),
                ms(r.latency.value_at_quantile(0.90)),
                ms(r.latency.value_at_quantile(0.99)),
                ms(r.latency.max()),
            );
        }
        if let Some((name, _, r)) = table.iter().find(|(_, _, r)| r.first_denial.is_some()) {
            println!("first denial ({name}): {}", r.first_denial.as_deref().unwrap_or_default());
        }
        Ok(())
    }

    /// [`create_batch`] of `count` Apps named `batch`, with kube-apiserver's CPU profile taken
    /// during it at 8 in flight ([`profile_apiserver`]); logs the batch's wall-clock window as
    /// `mode`, so a system-wide profile can be cut to it (hack/profile-admission.sh), and what
    /// the batch cost ([`BatchCosts`]). How long the creates took, and the latency of each.
    async fn profiled_batch<F>(
        &self,
        apps: &Api<App>,
        mode: &str,
        batch: &str,
        count: usize,
        concurrency: usize,
        make: F,
    ) -> anyhow::Result<(Duration, Histogram<u64>)>
    where
        F: Fn(&str) -> App + Clone + Send + 'static,
    {
        let profile = if concurrency == 8 { profile_apiserver(&self.client, batch) } else { None };
        let before = self.scrape().await?;
        let (started, from) = (Instant::now(), unix_seconds());
        let latency = create_batch(apps, batch, count, concurrency, make).await?;
        let (elapsed, to) = (started.elapsed(), unix_seconds());
        let after = self.scrape().await?;
        if let Some(profile) = profile {
            profile.await?.with_context(|| format!("profiling kube-apiserver during {batch}"))?;
        }
        eprintln!(
            "  {mode:<18} c={concurrency}: {count} Apps in {:.1} s (window {from:.3},{to:.3})",
            elapsed.as_secs_f64()
        );
        eprint!("{}", BatchCosts::between(&before, &after));
        Ok((elapsed, latency))
    }

    /// kube-apiserver's metrics and the in-process webhook's, now.
    async fn scrape(&self) -> anyhow::Result<(Metrics, Metrics)> {
        let request = hyper::Request::get("/metrics").body(Vec::new())?;
        let apiserver = self.client.request_text(request).await.context("scraping kube-apiserver's /metrics")?;
        Ok((Metrics::parse(&apiserver)?, Metrics::parse(&self.recorder.render())?))
    }

    /// Phase 2: Apps created through kube-apiserver without Slipway's webhooks, with the
    /// validating one alone, and with both.
    async fn phase_apiserver(&self, settings: &Settings, running: &Running) -> anyhow::Result<()> {
        let tenant = self.tenant("k8s");
        let apps: Api<App> = Api::namespaced(self.client.clone(), &slipway_crds::tenant_namespace(&tenant));
        let target = slipway_webhook::WebhookTarget::Url(format!("https://{}", running.addr));
        // Apps as Slipway's API creates them: carrying the labels, the defaults and their author,
        // so the mutating webhook's object selector keeps them from it.
        let complete = complete_app(&tenant, &username(&self.client).await?);
        let mut rows = Rows::default();
        let modes =
            [Registered::Neither, Registered::ValidatingOnly, Registered::ValidatingAndPolicy, Registered::Both];
        // Rounds run the modes forwards, then backwards (A B C D, D C B A, …): the cluster slows
        // down as a run goes on (etcd's history and kube-apiserver's heap grow with every batch),
        // and a mode always measured after the floor would be charged for that drift.
        let schedule = (0..settings.rounds).flat_map(|round| {
            let order: Vec<Registered> =
                if round % 2 == 0 { modes.to_vec() } else { modes.iter().rev().copied().collect() };
            order.into_iter().map(move |registered| (round, registered))
        });
        for (round, registered) in schedule {
            if registered == Registered::Neither {
                self.unregister().await?;
            } else {
                slipway_webhook::register(&self.client, &target, &running.ca_pem).await?;
            }
            if matches!(registered, Registered::ValidatingOnly | Registered::ValidatingAndPolicy) {
                let dp = DeleteParams::default();
                Api::<MutatingWebhookConfiguration>::all(self.client.clone()).delete(CONFIGURATION, &dp).await?;
            }
            set_defaults_policy(&self.client, registered == Registered::ValidatingAndPolicy).await?;
            wait_for_webhooks(&apps, registered).await?;
            let (mode, label, update_mode) = registered.names();
            let label = format!("{label}-r{round}");
            create_batch(&apps, &format!("{label}-warm"), 20, 1, bare_app).await?;
            for concurrency in [1, 8] {
                let batch = format!("{label}-c{concurrency}");
                let (elapsed, latency) =
                    self.profiled_batch(&apps, mode, &batch, settings.apps, concurrency, bare_app).await?;
                rows.add(mode, concurrency, elapsed, &latency)?;
            }
            if let Some(complete_mode) = registered.complete_mode() {
                for concurrency in [1, 8] {
                    let batch = format!("{label}-complete-c{concurrency}");
                    let make = complete.clone();
                    let (elapsed, latency) =
                        self.profiled_batch(&apps, complete_mode, &batch, settings.apps, concurrency, make).await?;
                    rows.add(complete_mode, concurrency, elapsed, &latency)?;
                }
            }
            // The same Apps given a new image: the webhooks are called, no reservation is
            // written (the change grows nothing), so this is their round trips alone.
            for concurrency in [1, 8] {
                let started = Instant::now();
                let image = format!("nginx:1.27-c{concurrency}");
                let latency = update_batch(&apps, &format!("{label}-c1"), settings.apps, concurrency, &image).await?;
                rows.add(update_mode, concurrency, started.elapsed(), &latency)?;
            }
            let lp = ListParams::default().labels(BATCH_LABEL);
            apps.delete_collection(&DeleteParams::default(), &lp).await?;
            wait_until_empty(&apps).await?;
        }
        self.unregister().await?;
        // The floor of a ledger write (a create that takes or renews its tenant's lease pays
        // one): the same number of plain ConfigMap writes.
        let config_maps: Api<ConfigMap> =
            Api::namespaced(self.client.clone(), &slipway_crds::tenant_namespace(&tenant));
        for concurrency in [1, 8] {
            let started = Instant::now();
            let batch = format!("ledger-c{concurrency}");
            let latency =
                create_batch(&config_maps, &batch, settings.apps, concurrency, ledger_sized_config_map).await?;
            rows.add("ConfigMap alone", concurrency, started.elapsed(), &latency)?;
        }
        config_maps.delete_collection(&DeleteParams::default(), &ListParams::default().labels(BATCH_LABEL)).await?;
        println!(
            "\nPhase 2: App creates through kube-apiserver (kube client), {} per batch, {} rounds pooled",
            settings.apps, settings.rounds
        );
        println!(
            "{:<18} {:>5} {:>8} {:>10} {:>8} {:>8} {:>8}",
            "mode", "conc", "Apps", "creates/s", "p50 ms", "p90 ms", "p99 ms"
        );
        for (mode, concurrency, elapsed, latency) in rows.iter() {
            println!(
                "{:<18} {:>5} {:>8} {:>10.1} {:>8.2} {:>8.2} {:>8.2}",
                mode,
                concurrency,
                latency.len(),
                latency.len() as f64 / elapsed.as_secs_f64(),
                ms(latency.value_at_quantile(0.50)),
                ms(latency.value_at_quantile(0.90)),
                ms(latency.value_at_quantile(0.99)),
            );
        }
        for concurrency in [1, 8] {
            let find = |mode: &str| rows.iter().find(|r| r.0 == mode && r.1 == concurrency).map(|r| &r.3);
            if let (Some(without), Some(with)) = (find("without webhook"), find("with webhook")) {
                // How many times slower than without the webhooks, at quantile `q`.
                let times = |h: &Histogram<u64>, q: f64| ratio(h, without, q);
                println!(
                    "ratio with/without, c={concurrency}: p50 x{:.2}, p99 x{:.2}",
                    times(with, 0.5),
                    times(with, 0.99)
                );
                if let (Some(without), Some(with)) = (find("UPDATE without"), find("UPDATE with")) {
                    let added = |q: f64| slower_ms(with, without, q);
                    println!(
                        "  added by the webhooks to an UPDATE that reserves nothing (their round trips), c={concurrency}: p50 {:.2} ms, p99 {:.2} ms",
                        added(0.5),
                        added(0.99)
                    );
                }
                if let (Some(validating), Some(update), Some(update_validating), Some(update_without)) =
                    (find("validating only"), find("UPDATE with"), find("UPDATE validating"), find("UPDATE without"))
                {
                    println!(
                        "  validating webhook alone, c={concurrency}: create p50 x{:.2}, p99 x{:.2}; p50 round trips: validating {:.2} ms, mutating {:.2} ms",
                        times(validating, 0.5),
                        times(validating, 0.99),
                        slower_ms(update_validating, update_without, 0.5),
                        slower_ms(update, update_validating, 0.5),
                    );
                }
                if let (Some(policy), Some(update_policy), Some(update_validating)) =
                    (find("validating + MAP"), find("UPDATE valid.+MAP"), find("UPDATE validating"))
                {
                    println!(
                        "  defaults by a MutatingAdmissionPolicy instead of the mutating webhook, c={concurrency}: create p50 x{:.2}, p99 x{:.2}; p50 cost of the policy on an UPDATE {:.2} ms",
                        times(policy, 0.5),
                        times(policy, 0.99),
                        slower_ms(update_policy, update_validating, 0.5),
                    );
                }
                if let (Some(complete), Some(validating), Some(floor)) =
                    (find("complete, both"), find("complete, valid."), find("complete, without"))
                {
                    println!(
                        "  both webhooks, Apps created as the API sends them (the mutating webhook skipped), c={concurrency}: create p50 x{:.2}, p99 x{:.2}; against the same Apps without webhooks p50 x{:.2}, p99 x{:.2}; p50 cost of the skipped webhook (its object selector) {:.2} ms",
                        times(complete, 0.5),
                        times(complete, 0.99),
                        ratio(complete, floor, 0.5),
                        ratio(complete, floor, 0.99),
                        slower_ms(complete, validating, 0.5),
                    );
                }
                if let Some(write) = find("ConfigMap alone") {
                    let added = |q: f64| slower_ms(with, without, q);
                    println!(
                        "  added by the webhooks, c={concurrency}: p50 {:.2} ms, p99 {:.2} ms; a ledger-sized ConfigMap write (what taking a lease adds) p50 {:.2} ms, p99 {:.2} ms",
                        added(0.5),
                        added(0.99),
                        ms(write.value_at_quantile(0.5)),
                        ms(write.value_at_quantile(0.99)),
                    );
                }
            }
        }
        Ok(())
    }

    async fn unregister(&self) -> anyhow::Result<()> {
        let dp = DeleteParams::default();
        let gone = |r: Result<(), kube::Error>| match r {
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            other => other,
        };
        gone(Api::<MutatingWebhookConfiguration>::all(self.client.clone()).delete(CONFIGURATION, &dp).await.map(drop))?;
        gone(
            Api::<ValidatingWebhookConfiguration>::all(self.client.clone()).delete(CONFIGURATION, &dp).await.map(drop),
        )?;
        Ok(())
    }

    /// Best effort: webhook configurations, the tenants, their namespaces and the ledgers.
    async fn cleanup(&self, settings: &Settings) {
        let _ = self.unregister().await;
        let _ = set_defaults_policy(&self.client, false).await;
        let dp = DeleteParams::background();
        for tenant in self.tenant_names(settings) {
            let _ = Api::<Tenant>::all(self.client.clone()).delete(&tenant, &dp).await;
            let ns = slipway_crds::tenant_namespace(&tenant);
            let _ = Api::<Namespace>::all(self.client.clone()).delete(&ns, &dp).await;
        }
        let _ = Api::<Namespace>::all(self.client.clone()).delete(WEBHOOK_NAMESPACE, &dp).await;
    }
}

/// Name of the bench's MutatingAdmissionPolicy and of its binding.
const DEFAULTS_POLICY: &str = "slipway-bench-defaults";

/// A MutatingAdmissionPolicy doing what the mutating webhook does to the bench's Apps (the tenant
/// label from the namespace, the author annotation, replicas, exposure and resources where the
/// spec is silent), with the `pro` plan's defaults written in: what its CEL costs kube-apiserver,
/// to set against the mutating webhook's round trip. Not Slipway's: a product policy would take
/// each tenant's defaults from the policies crate.
fn defaults_policy() -> anyhow::Result<(MutatingAdmissionPolicy, MutatingAdmissionPolicyBinding)> {
    let expression = format!(
        r#"Object{{
          metadata: Object.metadata{{
            labels: {{"{TENANT_LABEL}": namespaceObject.metadata.labels["{TENANT_LABEL}"]}},
            annotations: {{"{CHANGED_BY_ANNOTATION}": request.userInfo.username}}
          }},
          spec: Object.spec{{
            replicas: has(object.spec.replicas) ? object.spec.replicas : 1,
            expose: has(object.spec.expose) ? object.spec.expose : Object.spec.expose{{type: "ClusterIP"}},
            resources: has(object.spec.resources) ? object.spec.resources : Object.spec.resources{{
              limits: Object.spec.resources.limits{{cpu: "500m", memory: "512Mi"}},
              requests: Object.spec.resources.requests{{cpu: "500m", memory: "512Mi"}}
            }}
          }}
        }}"#
    );
    let policy = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingAdmissionPolicy",
        "metadata": { "name": DEFAULTS_POLICY },
        "spec": {
            "matchConstraints": { "resourceRules": [{
                "apiGroups": ["slipway.dev"], "apiVersions": ["v1alpha1"],
                "operations": ["CREATE", "UPDATE"], "resources": ["apps"],
            }]},
            "failurePolicy": "Fail",
            "reinvocationPolicy": "Never",
            "mutations": [{ "patchType": "ApplyConfiguration", "applyConfiguration": { "expression": expression } }],
        },
    }))?;
    let binding = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingAdmissionPolicyBinding",
        "metadata": { "name": DEFAULTS_POLICY },
        "spec": { "policyName": DEFAULTS_POLICY },
    }))?;
    Ok((policy, binding))
}

/// Installs [`defaults_policy`] and its binding, or removes them.
async fn set_defaults_policy(client: &Client, installed: bool) -> anyhow::Result<()> {
    let policies = Api::<MutatingAdmissionPolicy>::all(client.clone());
    let bindings = Api::<MutatingAdmissionPolicyBinding>::all(client.clone());
    if installed {
        let (policy, binding) = defaults_policy()?;
        let params = kube::api::PatchParams::apply("slipway-bench").force();
        policies.patch(DEFAULTS_POLICY, &params, &kube::api::Patch::Apply(&policy)).await?;
        bindings.patch(DEFAULTS_POLICY, &params, &kube::api::Patch::Apply(&binding)).await?;
    } else {
        let gone = |r: Result<(), kube::Error>| match r {
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            other => other,
        };
        gone(bindings.delete(DEFAULTS_POLICY, &DeleteParams::default()).await.map(drop))?;
        gone(policies.delete(DEFAULTS_POLICY, &DeleteParams::default()).await.map(drop))?;
    }
    Ok(())
}

/// Seconds of kube-apiserver's CPU profile taken at the start of each batch at 8 in flight.
const APISERVER_PROFILE_SECONDS: u32 = 4;

/// With `SLIPWAY_BENCH_APISERVER_PROFILE_DIR` set (and kube-apiserver serving `/debug/pprof`:
/// `SLIPWAY_APISERVER_PROFILING=true`), a task that writes a CPU profile of kube-apiserver over
/// the next [`APISERVER_PROFILE_SECONDS`] to `<dir>/<batch>.pb.gz` (hack/profile-admission.sh
/// prints it by category). Batches should last longer than that (`SLIPWAY_BENCH_APPS`).
fn profile_apiserver(client: &Client, batch: &str) -> Option<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let dir = std::env::var_os("SLIPWAY_BENCH_APISERVER_PROFILE_DIR")?;
    let (client, path) = (client.clone(), std::path::Path::new(&dir).join(format!("{batch}.pb.gz")));
    Some(tokio::spawn(async move {
        let uri = format!("/debug/pprof/profile?seconds={APISERVER_PROFILE_SECONDS}");
        let request = hyper::Request::get(uri).body(kube::client::Body::from(Vec::new()))?;
        let response = client.send(request).await?;
        anyhow::ensure!(response.status().is_success(), "kube-apiserver answered {}", response.status());
        std::fs::write(path, response.into_body().collect().await?.to_bytes())?;
        Ok(())
    }))
}

/// Each mode's creates or updates at each concurrency, in the order first seen, with the time
/// they took and their latencies pooled over the rounds.
#[derive(Default)]
struct Rows(Vec<(&'static str, usize, Duration, Histogram<u64>)>);

impl Rows {
    /// Pools a batch of `mode` at `concurrency` into its row.
    fn add(
        &mut self,
        mode: &'static str,
        concurrency: usize,
        took: Duration,
        latency: &Histogram<u64>,
    ) -> anyhow::Result<()> {
        match self.0.iter_mut().find(|row| row.0 == mode && row.1 == concurrency) {
            Some(row) => {
                row.2 += took;
                row.3.add(latency)?;
            }
            None => self.0.push((mode, concurrency, took, latency.clone())),
        }
        Ok(())
    }

    fn iter(&self) -> impl Iterator<Item = &(&'static str, usize, Duration, Histogram<u64>)> {
        self.0.iter()
    }
}

/// What one batch cost, from [`Metrics`] scraped before and after it.
struct BatchCosts {
    /// kube-apiserver's `apiserver_request_total`, by `VERB resource[/subresource]`: every
    /// request it served during the batch, whoever sent it (the creates, the webhook's ledger
    /// and lease writes, kube-controller-manager's watches and writes).
    requests: Growth,
    /// kube-apiserver's own time per App create (`apiserver_request_duration_seconds`, POST
    /// of `apps`): `(creates, mean seconds)`.
    create: Option<(f64, f64)>,
    /// Each webhook's calls as kube-apiserver timed them
    /// (`apiserver_admission_webhook_admission_duration_seconds`, which includes encoding the
    /// review, the HTTPS round trip and decoding the answer), by webhook name.
    calls: BTreeMap<String, (f64, f64)>,
    /// The same reviews as the webhook timed them (`slipway_admission_duration_seconds`, from
    /// the decoded review to the answer), by phase.
    reviews: BTreeMap<String, (f64, f64)>,
}

impl BatchCosts {
    fn between(before: &(Metrics, Metrics), after: &(Metrics, Metrics)) -> Self {
        let ((apiserver_before, webhook_before), (apiserver, webhook)) = (before, after);
        let request = |l: &prometheus_parse::Labels| {
            let resource = l.get("resource").filter(|r| !r.is_empty())?;
            let subresource = l.get("subresource").filter(|s| !s.is_empty()).map(|s| format!("/{s}"));
            Some(format!("{} {resource}{}", l.get("verb")?, subresource.unwrap_or_default()))
        };
        let apps_post = |l: &prometheus_parse::Labels| {
            (l.get("verb") == Some("POST")
                && l.get("resource") == Some("apps")
                && l.get("subresource").is_none_or(str::is_empty))
            .then(|| "POST apps".to_string())
        };
        let label = |name: &'static str| move |l: &prometheus_parse::Labels| l.get(name).map(str::to_owned);
        Self {
            requests: apiserver.growth_by(apiserver_before, "apiserver_request_total", request),
            create: apiserver
                .mean_by(apiserver_before, "apiserver_request_duration_seconds", apps_post)
                .remove("POST apps"),
            calls: apiserver.mean_by(
                apiserver_before,
                "apiserver_admission_webhook_admission_duration_seconds",
                label("name"),
            ),
            reviews: webhook.mean_by(webhook_before, slipway_webhook::metrics::DURATION, label("phase")),
        }
    }
}

impl std::fmt::Display for BatchCosts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "    kube-apiserver served: {}", self.requests.describe())?;
        if let Some((creates, mean)) = self.create {
            writeln!(f, "    kube-apiserver's time per create: {:.3} ms over {creates}", mean * 1e3)?;
        }
        for (name, (calls, mean)) in &self.calls {
            writeln!(f, "    {name}: {calls} calls, {:.3} ms each as kube-apiserver times them", mean * 1e3)?;
        }
        for (phase, (reviews, mean)) in &self.reviews {
            writeln!(
                f,
                "    webhook /{phase}: {reviews} reviews, {:.3} ms each as the webhook times them",
                mean * 1e3
            )?;
        }
        Ok(())
    }
}

/// Now, in seconds since the Unix epoch (the clock `perf record -k CLOCK_REALTIME` stamps samples with).
fn unix_seconds() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// How many times slower `a` is than `b` at quantile `q`.
fn ratio(a: &Histogram<u64>, b: &Histogram<u64>, q: f64) -> f64 {
    a.value_at_quantile(q) as f64 / b.value_at_quantile(q).max(1) as f64
}

/// How much slower `a` is than `b` at quantile `q`, in milliseconds; negative when it is faster
/// (run-to-run noise), never clamped to zero.
fn slower_ms(a: &Histogram<u64>, b: &Histogram<u64>, q: f64) -> f64 {
    ms(a.value_at_quantile(q)) - ms(b.value_at_quantile(q))
}

fn bare_spec() -> AppSpec {
    AppSpec {
        image: "nginx".into(),
        port: 8080,
        replicas: None,
        env: vec![],
        resources: None,
        expose: None,
        autoscaling: None,
        rollout: None,
        revision_history_limit: None,
    }
}

/// A spec as the mutating webhook leaves it: the plan `pro` defaults filled in.
fn defaulted(spec: &AppSpec) -> AppSpec {
    let policy = PlanCatalog::embedded().effective("pro", None).expect("the embedded plan pro exists");
    policy.default_app(spec)
}

/// Seed App `i` of `tenant`, defaulted; every fourth one on an Ingress host.
fn seed_app(tenant: &str, i: usize) -> App {
    let mut spec = defaulted(&bare_spec());
    if i % 4 == 1 {
        spec.expose =
            Some(Expose { type_: ExposeType::Ingress, host: Some(format!("s{i}.{tenant}.{INGRESS_DOMAIN}")) });
    }
    let mut app = App::new(&format!("seed-{i}"), spec);
    app.labels_mut().insert(TENANT_LABEL.into(), tenant.into());
    app
}

/// An App object as the API server sends it in a review: metadata filled in by the server
/// (uid, resourceVersion, managedFields), the tenant label, the spec.
fn app_object(tenant: &str, name: &str, spec: &AppSpec) -> Value {
    json!({
        "apiVersion": "slipway.dev/v1alpha1",
        "kind": "App",
        "metadata": {
            "name": name,
            "namespace": slipway_crds::tenant_namespace(tenant),
            "uid": "6f1c2f7e-3d5b-4c43-9a4e-0d6b1f0c9a11",
            "resourceVersion": "123456",
            "generation": 1,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": { TENANT_LABEL: tenant, "app.kubernetes.io/part-of": "shop" },
            "annotations": { "example.com/owner": "team-a" },
            "managedFields": [{
                "manager": "slipway", "operation": "Update", "apiVersion": "slipway.dev/v1alpha1",
                "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1",
                "fieldsV1": { "f:spec": { ".": {}, "f:image": {}, "f:port": {}, "f:replicas": {} } }
            }]
        },
        "spec": spec,
    })
}

/// An AdmissionReview (admission.k8s.io/v1) of an App, as JSON bytes.
fn review(operation: &str, ns: &str, name: &str, dry_run: bool, object: Value, old: Option<Value>) -> Bytes {
    let options_kind = if operation == "CREATE" { "CreateOptions" } else { "UpdateOptions" };
    let body = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0f5b7c1e-8d7a-4a4e-b4b4-2d3c9a1e5f00",
            "kind": { "group": "slipway.dev", "version": "v1alpha1", "kind": "App" },
            "resource": { "group": "slipway.dev", "version": "v1alpha1", "resource": "apps" },
            "requestKind": { "group": "slipway.dev", "version": "v1alpha1", "kind": "App" },
            "requestResource": { "group": "slipway.dev", "version": "v1alpha1", "resource": "apps" },
            "name": name,
            "namespace": ns,
            "operation": operation,
            "userInfo": { "username": "alice@example.com", "groups": ["slipway:tenant:bench", "system:authenticated"] },
            "object": object,
            "oldObject": old,
            "dryRun": dry_run,
            "options": { "apiVersion": "meta.k8s.io/v1", "kind": options_kind }
        }
    });
    Bytes::from(serde_json::to_vec(&body).expect("a review serializes"))
}

/// A rustls client trusting only the webhook's CA, speaking HTTP/1.1.
fn tls_connector(ca_pem: &str) -> anyhow::Result<tokio_rustls::TlsConnector> {
    use rustls::pki_types::{CertificateDer, pem::PemObject as _};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca_pem.as_bytes())?)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// What one scenario measured.
struct Outcome {
    requests: usize,
    allowed: usize,
    denied: usize,
    errors: usize,
    elapsed: Duration,
    latency: Histogram<u64>,
    first_denial: Option<String>,
}

impl Outcome {
    /// No requests yet.
    fn empty() -> Self {
        Self {
            requests: 0,
            allowed: 0,
            denied: 0,
            errors: 0,
            elapsed: Duration::ZERO,
            latency: histogram(),
            first_denial: None,
        }
    }

    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds")
}

/// Sends `count` POSTs to `path`, `concurrency` at a time, each over its own keep-alive TLS
/// connection (opened before the clock starts). `body(i)` is the body of request `i`.
async fn drive(
    tls: &tokio_rustls::TlsConnector,
    addr: SocketAddr,
    path: &'static str,
    concurrency: usize,
    count: usize,
    body: &(impl Fn(usize) -> Bytes + Send + Sync + Clone + 'static),
) -> anyhow::Result<Outcome> {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(concurrency + 1));
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let stream = tls.connect(rustls::pki_types::ServerName::try_from("127.0.0.1")?, tcp).await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let (next, start, body) = (next.clone(), start.clone(), body.clone());
        workers.push(tokio::spawn(async move {
            let mut out = Outcome::empty();
            start.wait().await;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let request = hyper::Request::post(path)
                    .header(hyper::header::HOST, "127.0.0.1")
                    .header(hyper::header::CONTENT_TYPE, "application/json")
                    .body(Full::new(body(i)))
                    .expect("a valid request");
                let began = Instant::now();
                let answer = async {
                    sender.ready().await?;
                    let response = sender.send_request(request).await?;
                    let status = response.status();
                    let bytes = response.into_body().collect().await?.to_bytes();
                    anyhow::Ok((status, bytes))
                }
                .await;
                let took = u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX);
                out.latency.saturating_record(took.max(1));
                out.requests += 1;
                match answer {
                    Ok((status, bytes)) if status.is_success() => {
                        if contains(&bytes, b"\"allowed\":true") {
                            out.allowed += 1;
                        } else {
                            out.denied += 1;
                            if out.first_denial.is_none() {
                                out.first_denial = Some(String::from_utf8_lossy(&bytes).into_owned());
                            }
                        }
                    }
                    Ok(_) | Err(_) => {
                        out.errors += 1;
                        if sender.is_closed() {
                            break;
                        }
                    }
                }
            }
            out
        }));
    }
    start.wait().await;
    let began = Instant::now();
    let mut total = Outcome::empty();
    for worker in workers {
        let out = worker.await?;
        total.requests += out.requests;
        total.allowed += out.allowed;
        total.denied += out.denied;
        total.errors += out.errors;
        total.latency.add(&out.latency)?;
        total.first_denial = total.first_denial.or(out.first_denial);
    }
    total.elapsed = began.elapsed();
    if total.requests < count {
        bail!("{path}: only {} of {count} requests were sent (connections closed)", total.requests);
    }
    Ok(total)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Which of Slipway's webhooks kube-apiserver calls during a phase-2 batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Registered {
    Neither,
    ValidatingOnly,
    /// The validating webhook, with defaults by a MutatingAdmissionPolicy (CEL in
    /// kube-apiserver, [`defaults_policy`]) in place of the mutating webhook.
    ValidatingAndPolicy,
    Both,
}

impl Registered {
    /// Its create mode, batch label and update mode, as the table prints them.
    fn names(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Registered::Neither => ("without webhook", "without", "UPDATE without"),
            Registered::ValidatingOnly => ("validating only", "validating", "UPDATE validating"),
            Registered::ValidatingAndPolicy => ("validating + MAP", "policy", "UPDATE valid.+MAP"),
            Registered::Both => ("with webhook", "with", "UPDATE with"),
        }
    }

    /// The create mode of Apps as Slipway's API sends them (see [`complete_app`]), where the
    /// bench creates them: with both webhooks (the mutating one skipped by its object selector),
    /// with the validating one alone (to tell the skipped webhook's cost from the larger object's),
    /// and without webhooks (the like-for-like floor: the same objects stored).
    fn complete_mode(self) -> Option<&'static str> {
        match self {
            Registered::Neither => Some("complete, without"),
            Registered::ValidatingOnly => Some("complete, valid."),
            Registered::Both => Some("complete, both"),
            Registered::ValidatingAndPolicy => None,
        }
    }
}

/// Waits until dry-run creates show exactly the webhooks of `registered`: the mutating one by
/// its tenant label, the validating one by its denial of an App over the plan's replicas. The
/// API server picks configuration changes up from a watch, a moment after they are written.
async fn wait_for_webhooks(apps: &Api<App>, registered: Registered) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let params = PostParams { dry_run: true, ..Default::default() };
    let oversized = AppSpec { replicas: Some(1000), ..bare_spec() };
    loop {
        let mutated = apps.create(&params, &App::new("probe", bare_spec())).await?.labels().contains_key(TENANT_LABEL);
        let validated = match apps.create(&params, &App::new("probe", oversized.clone())).await {
            Ok(_) => false,
            Err(kube::Error::Api(s)) if s.code == 422 || s.code == 403 => true,
            Err(e) => return Err(e.into()),
        };
        let mutates = matches!(registered, Registered::Both | Registered::ValidatingAndPolicy);
        if (mutated, validated) == (mutates, registered != Registered::Neither) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the API server did not pick up the webhooks ({registered:?}) within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Creates `count` Apps labelled `batch`, `concurrency` at a time; the latency of each create.
async fn create_batch<K, F>(
    api: &Api<K>,
    batch: &str,
    count: usize,
    concurrency: usize,
    make: F,
) -> anyhow::Result<Histogram<u64>>
where
    K: Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    F: Fn(&str) -> K + Clone + Send + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (api, next, batch, make) = (api.clone(), next.clone(), batch.to_string(), make.clone());
        workers.push(tokio::spawn(async move {
            let mut latency = histogram();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return anyhow::Ok(latency);
                }
                let name = format!("{batch}-{i}");
                let mut object = make(&name);
                object.labels_mut().insert(BATCH_LABEL.into(), batch.clone());
                let began = Instant::now();
                api.create(&PostParams::default(), &object).await.with_context(|| format!("creating {name}"))?;
                latency.saturating_record(u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX).max(1));
            }
        }));
    }
    let mut total = histogram();
    for worker in workers {
        total.add(&worker.await??)?;
    }
    Ok(total)
}

/// Patches the image of Apps `<batch>-0` to `<batch>-<count - 1>` to `image`, `concurrency`
/// at a time, and returns each patch's latency in microseconds.
async fn update_batch(
    apps: &Api<App>,
    batch: &str,
    count: usize,
    concurrency: usize,
    image: &str,
) -> anyhow::Result<Histogram<u64>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (apps, next, batch, image) = (apps.clone(), next.clone(), batch.to_string(), image.to_string());
        workers.push(tokio::spawn(async move {
            let mut latency = histogram();
            let patch = kube::api::Patch::Merge(json!({"spec": {"image": image}}));
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return anyhow::Ok(latency);
                }
                let name = format!("{batch}-{i}");
                let began = Instant::now();
                apps.patch(&name, &kube::api::PatchParams::default(), &patch)
                    .await
                    .with_context(|| format!("patching App {name}"))?;
                latency.saturating_record(u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX).max(1));
            }
        }));
    }
    let mut total = histogram();
    for worker in workers {
        total.add(&worker.await??)?;
    }
    Ok(total)
}

/// An App of the bench's bare spec.
fn bare_app(name: &str) -> App {
    App::new(name, bare_spec())
}

/// Apps of `tenant` as Slipway's API creates them for `author`: the plan's defaults filled in,
/// the tenant label and the author annotation, everything the mutating webhook would add, and
/// the label that says so (kube-apiserver skips that webhook for them).
fn complete_app(tenant: &str, author: &str) -> impl Fn(&str) -> App + Clone + Send + 'static {
    let (tenant, author) = (tenant.to_string(), author.to_string());
    move |name| {
        let mut app = App::new(name, defaulted(&bare_spec()));
        app.labels_mut().insert(TENANT_LABEL.into(), tenant.clone());
        app.labels_mut().insert(DEFAULTS_LABEL.into(), DEFAULTS_FILLED.into());
        app.annotations_mut().insert(CHANGED_BY_ANNOTATION.into(), author.clone());
        app
    }
}

/// The bench client's user name, as kube-apiserver authenticates it (a SelfSubjectReview).
async fn username(client: &Client) -> anyhow::Result<String> {
    use k8s_openapi::api::authentication::v1::SelfSubjectReview;
    let review = Api::<SelfSubjectReview>::all(client.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await?;
    review.status.and_then(|s| s.user_info?.username).context("kube-apiserver named no user")
}

/// A ConfigMap the size of a small reservation ledger: one etcd write each, the cost every
/// admitted create adds by writing its tenant's ledger.
fn ledger_sized_config_map(name: &str) -> ConfigMap {
    let entry = r#"{"uid":"6f1c2a9e-0000-4000-8000-000000000000","generation":1,"footprint":{"cpu":"250m","memory":"128Mi","storage":"0"},"expires":1800000000}"#;
    ConfigMap {
        metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
        data: Some((0..3).map(|i| (format!("apps.bench-{i}"), entry.to_string())).collect()),
        ..Default::default()
    }
}

async fn wait_until_empty(apps: &Api<App>) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !apps.list(&ListParams::default().labels(BATCH_LABEL)).await?.items.is_empty() {
        if Instant::now() > deadline {
            bail!("the bench's Apps were not deleted within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}
