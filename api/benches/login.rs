//! Login throughput with the rate limits in place: `cargo bench -p slipway-api --bench login`.
//!
//! The API runs in process on a fresh SQLite file (no cluster or SMTP server is contacted: a
//! login needs neither). It registers `ACCOUNTS` accounts, then `CONCURRENCY` clients log
//! in, each account from its own client address (so the per-client and per-account limits
//! allow every attempt) for `SECONDS` seconds: what the API can do, bound by argon2. A second
//! run sends every attempt from one address at one account, the way a guessing attacker
//! would: it shows how fast the limits turn the excess away (429s) and what gets through.

/// The allocator `slipway` runs with (see its `src/main.rs`), so this bench measures what ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use axum::{
    Router,
    body::Body,
    extract::ConnectInfo,
    http::{Request, StatusCode},
};
use slipway_api::{ApiConfig, Application, Cluster, LimitsConfig, TokenConfig};
use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};
use tower::ServiceExt;

const ACCOUNTS: usize = 256;
const CONCURRENCY: usize = 8;
const SECONDS: u64 = 10;
const PASSWORD: &str = "correct horse battery";

async fn app() -> Router {
    let file = std::env::temp_dir().join(format!("slipway-login-bench-{}.db", std::process::id()));
    let config = ApiConfig {
        database_url: format!("sqlite://{}?mode=rwc", file.display()).into(),
        tokens: TokenConfig {
            key: vec![1; 32],
            previous_keys: vec![],
            issuer: "slipway".into(),
            audience: "slipway-api".into(),
            ttl_seconds: 900,
        },
        max_body_bytes: 64 * 1024,
        platform: slipway_policies::Platform::new("apps.slipway.test", [""; 0]),
        // Registration mails in the background; nothing listens here, so they only fail.
        mail: slipway_mail::MailerConfig { smtp_url: "smtp://127.0.0.1:9".into(), from: "bench@slipway.test".into() },
        public_url: "http://127.0.0.1:8080".into(),
        limits: LimitsConfig::default(),
        entitlements: Default::default(),
    };
    let cluster = Cluster::new(kube::Config::new("https://127.0.0.1:9".parse().unwrap())).unwrap();
    let plans = Arc::new(slipway_policies::PlanCatalog::embedded());
    Application::build(&config, cluster, plans).await.unwrap().router()
}

async fn post(app: &Router, client: SocketAddr, path: &str, body: serde_json::Value) -> StatusCode {
    let request = Request::post(path)
        .header("content-type", "application/json")
        .extension(ConnectInfo(client))
        .body(Body::from(body.to_string()))
        .unwrap();
    app.clone().oneshot(request).await.unwrap().status()
}

fn client(i: usize) -> SocketAddr {
    SocketAddr::from(([198, 18, (i / 250) as u8, (i % 250) as u8 + 1], 40000))
}

/// `CONCURRENCY` workers log in for `SECONDS`; worker `w`'s `n`th attempt uses the account
/// and client address `pick(w, n)` gives. Prints the answers per status and the latencies.
async fn run(app: &Router, name: &str, pick: fn(usize, usize) -> (usize, SocketAddr)) {
    let deadline = Instant::now() + Duration::from_secs(SECONDS);
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..CONCURRENCY {
        let app = app.clone();
        workers.spawn(async move {
            let mut seen = Vec::new();
            let mut n = 0;
            while Instant::now() < deadline {
                let (account, client) = pick(w, n);
                let body = serde_json::json!({"email": format!("user{account}@example.com"), "password": PASSWORD});
                let start = Instant::now();
                let status = post(&app, client, "/api/v1/auth/login", body).await;
                seen.push((status, start.elapsed()));
                n += 1;
            }
            seen
        });
    }
    let mut all: Vec<(StatusCode, Duration)> = workers.join_all().await.into_iter().flatten().collect();
    all.sort_by_key(|(_, latency)| *latency);
    let count = |status: StatusCode| all.iter().filter(|(s, _)| *s == status).count();
    let percentile = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)].1;
    println!(
        "{name}: {} attempts in {SECONDS} s at {CONCURRENCY} concurrent: {:.1} logins/s (200: {}), 429: {}, other: {}; latency p50 {:?} p99 {:?}",
        all.len(),
        count(StatusCode::OK) as f64 / SECONDS as f64,
        count(StatusCode::OK),
        count(StatusCode::TOO_MANY_REQUESTS),
        all.len() - count(StatusCode::OK) - count(StatusCode::TOO_MANY_REQUESTS),
        percentile(0.5),
        percentile(0.99),
    );
}

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        // `cargo test --all-targets` runs it too: measuring is for `cargo bench` only.
        eprintln!("login bench: run `cargo bench -p slipway-api --bench login`");
        return;
    }
    let app = app().await;
    for i in 0..ACCOUNTS {
        let body = serde_json::json!({"email": format!("user{i}@example.com"), "password": PASSWORD, "name": "Bench"});
        assert_eq!(post(&app, client(10_000 + i), "/api/v1/auth/register", body).await, StatusCode::ACCEPTED);
    }
    println!("cores: {}", std::thread::available_parallelism().map_or(0, |n| n.get()));
    // Spread: successive attempts of a worker go to successive accounts, each from its own
    // address, so no limit is reached within the run (256 accounts, 10 attempts a minute each).
    run(&app, "spread over 256 accounts and addresses", |w, n| {
        let account = (w + n * CONCURRENCY) % ACCOUNTS;
        (account, client(account))
    })
    .await;
    // Hammering: one address, one account.
    run(&app, "one address at one account", |_, _| (0, client(5_000))).await;
}
