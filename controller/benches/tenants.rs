//! Tenant creation against its floor (issue 13: "`POST /tenants` until Ready at p95 ≤ 1.5× the
//! floor of creating the same objects directly").
//!
//! ```sh
//! hack/bench-tenants.sh                       # starts the `bench-tenants` stack, runs this, tears it down
//! eval "$(hack/stack.sh up bench)" && cargo bench -p slipway-controller --bench tenants
//! ```
//!
//! - **Slipway**: the controller runs in this process (release build, the embedded plans, mail
//!   to the stack's catcher). Each tenant is a Tenant object created the way `POST /tenants`
//!   creates it, then waited on through a watch until its `Ready` condition is `True`, which is
//!   what the API waits for before it answers (the API's SQL claim and HTTP are not included).
//! - **Floor**: for each tenant, the same objects ([`slipway_controller::guard_rails`]: a
//!   namespace, ResourceQuota, LimitRange, two RoleBindings, ClusterRole, ClusterRoleBinding and
//!   NetworkPolicy, without an owner) created directly, one after another, by one client, then
//!   waited on until the quota controller has observed the quota, which `Ready` waits for too.
//!
//! Both run with 1 and with 8 tenants in flight, `SLIPWAY_BENCH_TENANTS` tenants each (40), on
//! the `free` plan, after two unmeasured tenants of each mode (warm-up: the controller's watches
//! list, connections open); the tenants and their objects are deleted at the end. Prints p50/p95/p99 per
//! mode and the ratios Slipway/floor.
//!
//! Run by `cargo test --all-targets` (without `--bench`) it only prints how to run it.

/// The allocator `slipway` runs with (see its `src/main.rs`), so this bench measures what ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context as _;
use hdrhistogram::Histogram;
use k8s_openapi::api::{
    core::v1::{Namespace, ResourceQuota},
    rbac::v1::{ClusterRole, ClusterRoleBinding},
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, ListParams, PostParams},
    runtime::wait::await_condition,
};
use slipway_crds::{TENANT_LABEL, Tenant, TenantOwner, TenantSpec};
use slipway_policies::PlanCatalog;
use std::{
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

/// How long one tenant may take before the bench gives up on it.
const PATIENCE: Duration = Duration::from_secs(120);

fn main() -> ExitCode {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!(
            "tenants bench: needs a cluster; run `hack/bench-tenants.sh` or `cargo bench -p slipway-controller --bench tenants`"
        );
        return ExitCode::SUCCESS;
    }
    if std::env::var_os("KUBECONFIG").is_none() || std::env::var_os("SLIPWAY_SMTP_URL").is_none() {
        eprintln!(
            "KUBECONFIG and SLIPWAY_SMTP_URL must be set: `eval \"$(hack/stack.sh up bench)\"`, or run hack/bench-tenants.sh"
        );
        return ExitCode::FAILURE;
    }
    // The controller's logs on standard error, when RUST_LOG asks for them.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
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
            eprintln!("tenants bench failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// How one batch of tenants is made.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Floor,
    Slipway,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Floor => "objects directly",
            Mode::Slipway => "Tenant until Ready",
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let client = Client::try_default().await.context("connecting to the cluster")?;
    slipway_crds::install(&client).await.context("installing the CRDs")?;
    let count: usize = std::env::var("SLIPWAY_BENCH_TENANTS").ok().map(|v| v.parse()).transpose()?.unwrap_or(40);
    let plans = Arc::new(PlanCatalog::embedded());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = slipway_controller::ControllerConfig {
        node_address: None,
        ingress_class: None,
        mail: slipway_controller::MailerConfig {
            smtp_url: std::env::var("SLIPWAY_SMTP_URL")?.into(),
            from: "Slipway <noreply@slipway.test>".into(),
        },
        workspace_image: "ghcr.io/slipway-dev/workspace:0.1".into(),
        database_images: Default::default(),
    };
    let controller = tokio::spawn(slipway_controller::run(client.clone(), plans.clone(), config, async {
        let _ = stopped.await;
    }));
    let run_id = format!("{:04x}", rand::random::<u16>());
    eprintln!("Slipway tenants bench (run {run_id}): {count} tenants per batch, plan \"free\"");
    let mut rows = vec![];
    let outcome = async {
        // Warm up (watches listed, connections open, code paged in); not measured.
        for mode in [Mode::Floor, Mode::Slipway] {
            let prefix = format!("b{run_id}-w{}", if mode == Mode::Floor { "f" } else { "s" });
            batch(&client, &plans, mode, &prefix, 2, 1).await?;
        }
        for concurrency in [1, 8] {
            for mode in [Mode::Floor, Mode::Slipway] {
                let prefix = format!("b{run_id}-{}{concurrency}", if mode == Mode::Floor { "f" } else { "s" });
                let started = Instant::now();
                let latency = batch(&client, &plans, mode, &prefix, count, concurrency).await?;
                eprintln!(
                    "  {:<18} c={concurrency}: {count} tenants in {:.1} s",
                    mode.name(),
                    started.elapsed().as_secs_f64()
                );
                rows.push((mode, concurrency, latency));
            }
        }
        anyhow::Ok(())
    }
    .await;
    // With the controller still running: it releases each deleted Tenant's finalizer.
    cleanup(&client, &run_id).await;
    let _ = stop.send(());
    let _ = controller.await;
    outcome?;
    println!("\nTenant creation: {count} tenants per batch, until usable (quota observed / Ready)");
    println!("{:<20} {:>5} {:>8} {:>8} {:>8} {:>8}", "mode", "conc", "tenants", "p50 ms", "p95 ms", "p99 ms");
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    for (mode, concurrency, h) in &rows {
        println!(
            "{:<20} {:>5} {:>8} {:>8.1} {:>8.1} {:>8.1}",
            mode.name(),
            concurrency,
            h.len(),
            ms(h, 0.5),
            ms(h, 0.95),
            ms(h, 0.99)
        );
    }
    for concurrency in [1, 8] {
        let find = |mode: Mode| rows.iter().find(|r| r.0 == mode && r.1 == concurrency).map(|r| &r.2);
        if let (Some(floor), Some(slipway)) = (find(Mode::Floor), find(Mode::Slipway)) {
            let ratio = |q: f64| ms(slipway, q) / ms(floor, q).max(0.001);
            println!("ratio Slipway/floor, c={concurrency}: p50 x{:.2}, p95 x{:.2}", ratio(0.5), ratio(0.95));
        }
    }
    Ok(())
}

/// Makes `count` tenants named `<prefix>-<i>` in `mode`, `concurrency` at a time, and returns
/// each one's latency in microseconds.
async fn batch(
    client: &Client,
    plans: &Arc<PlanCatalog>,
    mode: Mode,
    prefix: &str,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<Histogram<u64>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (client, plans, next, prefix) = (client.clone(), plans.clone(), next.clone(), prefix.to_string());
        workers.push(tokio::spawn(async move {
            let mut latency = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return anyhow::Ok(latency);
                }
                let name = format!("{prefix}-{i}");
                let began = Instant::now();
                let made = match mode {
                    Mode::Floor => directly(&client, &plans, &name).await,
                    Mode::Slipway => through_slipway(&client, &name).await,
                };
                made.with_context(|| format!("tenant {name}"))?;
                latency.saturating_record(u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX).max(1));
            }
        }));
    }
    let mut total = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    for worker in workers {
        total.add(&worker.await??)?;
    }
    Ok(total)
}

/// The floor: the tenant's objects created one after another, then the quota observed.
async fn directly(client: &Client, plans: &PlanCatalog, name: &str) -> anyhow::Result<()> {
    let policy = plans.effective("free", None)?;
    // Owned by nothing: an owner reference to a Tenant that does not exist would have the
    // garbage collector delete them.
    let mut rails = slipway_controller::guard_rails(name, &policy, Default::default());
    let ns = slipway_crds::tenant_namespace(name);
    let pp = PostParams::default();
    fn unowned<K: Resource>(object: &mut K) -> &mut K {
        object.meta_mut().owner_references = None;
        object
    }
    Api::<Namespace>::all(client.clone()).create(&pp, unowned(&mut rails.namespace)).await?;
    let quotas = Api::<ResourceQuota>::namespaced(client.clone(), &ns);
    quotas.create(&pp, unowned(&mut rails.quota)).await?;
    Api::namespaced(client.clone(), &ns).create(&pp, unowned(&mut rails.limit_range)).await?;
    for binding in &mut rails.bindings {
        Api::namespaced(client.clone(), &ns).create(&pp, unowned(binding)).await?;
    }
    Api::<ClusterRole>::all(client.clone()).create(&pp, unowned(&mut rails.owner_role)).await?;
    Api::<ClusterRoleBinding>::all(client.clone()).create(&pp, unowned(&mut rails.owner_binding)).await?;
    Api::namespaced(client.clone(), &ns).create(&pp, unowned(&mut rails.default_deny)).await?;
    let quota = rails.quota.name_any();
    let observed = |q: Option<&ResourceQuota>| {
        q.is_some_and(|q| {
            let hard = q.spec.as_ref().and_then(|s| s.hard.as_ref());
            let used = q.status.as_ref().and_then(|s| s.used.as_ref());
            hard.is_some_and(|h| used.is_some_and(|u| h.keys().all(|k| u.contains_key(k))))
        })
    };
    tokio::time::timeout(PATIENCE, await_condition(quotas, &quota, observed)).await??;
    Ok(())
}

/// Slipway: a Tenant as `POST /tenants` creates it, waited on until Ready.
async fn through_slipway(client: &Client, name: &str) -> anyhow::Result<()> {
    let tenants = Api::<Tenant>::all(client.clone());
    let spec = TenantSpec {
        owners: vec![TenantOwner { email: format!("{name}@bench.slipway.test") }],
        members: vec![],
        plan: "free".into(),
        limits: None,
    };
    let mut tenant = Tenant::new(name, spec);
    tenant.metadata.finalizers = Some(vec![slipway_crds::TENANT_FINALIZER.into()]);
    tenants.create(&PostParams::default(), &tenant).await?;
    let ready = |t: Option<&Tenant>| {
        t.and_then(|t| t.status.as_ref())
            .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    };
    tokio::time::timeout(PATIENCE, await_condition(tenants, name, ready)).await??;
    Ok(())
}

/// Best effort: every Tenant and object of this run (by the tenant label's prefix), waiting
/// up to [`PATIENCE`] for the Tenants to go.
async fn cleanup(client: &Client, run_id: &str) {
    let dp = DeleteParams::background();
    let ours = |labels: &std::collections::BTreeMap<String, String>| {
        labels.get(TENANT_LABEL).is_some_and(|t| t.starts_with(&format!("b{run_id}-")))
    };
    let tenants = Api::<Tenant>::all(client.clone());
    for t in tenants.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default() {
        if t.name_any().starts_with(&format!("b{run_id}-")) {
            let _ = tenants.delete(&t.name_any(), &dp).await;
        }
    }
    let left = || async {
        let all = tenants.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default();
        all.iter().filter(|t| t.name_any().starts_with(&format!("b{run_id}-"))).count()
    };
    let deadline = Instant::now() + PATIENCE;
    while left().await > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let lp = ListParams::default().labels(TENANT_LABEL);
    let namespaces = Api::<Namespace>::all(client.clone());
    for n in namespaces.list(&lp).await.map(|l| l.items).unwrap_or_default() {
        if ours(n.labels()) {
            let _ = namespaces.delete(&n.name_any(), &dp).await;
        }
    }
    let roles = Api::<ClusterRole>::all(client.clone());
    for r in roles.list(&lp).await.map(|l| l.items).unwrap_or_default() {
        if ours(r.labels()) {
            let _ = roles.delete(&r.name_any(), &dp).await;
        }
    }
    let bindings = Api::<ClusterRoleBinding>::all(client.clone());
    for b in bindings.list(&lp).await.map(|l| l.items).unwrap_or_default() {
        if ours(b.labels()) {
            let _ = bindings.delete(&b.name_any(), &dp).await;
        }
    }
}
