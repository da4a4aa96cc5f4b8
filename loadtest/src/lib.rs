//! Slipway's load tests: [goose](https://book.goose.rs) scenarios that drive the REST API the
//! way its users do, each with the thresholds (pass/fail rules on error rate and latency
//! percentiles) that say what "fast enough" means. `loadtest/README.md` says how to run them.
//!
//! Every virtual user signs up with its own address, confirms it with the link the mail
//! catcher received (MailHog's API, [`Settings::mail_api`]) and, depending on the scenario,
//! opens a tenant on the `free` plan and deploys an App. Requests are named by their route
//! template (`GET /tenants/{tenant}/apps/{app}`), so figures and thresholds are per endpoint.

mod session;
mod setup;
mod steps;

use session::Session;
use steps::{
    app_churn, connect, log_in, log_in_or_probe, read_app, read_apps, read_me, read_tenants, register_and_log_in,
    tenant_cycle,
};

use goose::config::{GooseConfiguration, GooseDefault};
use goose::metrics::GooseMetrics;
use goose::prelude::*;
use std::{
    fmt,
    str::FromStr,
    sync::{Mutex, OnceLock},
};

/// What the scenarios need beyond goose's own configuration (`--host`, `--users`, ...).
#[derive(Clone, Debug)]
pub struct Settings {
    /// MailHog's HTTP API (`SLIPWAY_MAIL_API` of `hack/mail.sh`), where sign-ups find their
    /// confirmation link.
    pub mail_api: String,
    /// Image of the Apps the scenarios deploy (any name on kwok nodes; on a real node one it
    /// has, such as `hack/images.sh`'s hello image).
    pub image: String,
    /// Each virtual user connects from its own loopback address (127.1.x.y), so the API's
    /// per-client-address limits treat them as the separate clients they stand for. Only
    /// for a Slipway on loopback.
    pub spread_sources: bool,
}

/// The settings of the running load test; set once per process by [`run`].
static SETTINGS: OnceLock<Settings> = OnceLock::new();

fn settings() -> &'static Settings {
    SETTINGS.get().expect("run() sets the settings before any user starts")
}

/// The sessions [`setup::prepare`] made for this run's users, by user index.
static PREPARED: Mutex<Vec<Session>> = Mutex::new(Vec::new());

/// The prepared session of user `index` (from 0), if the load test prepares any.
fn prepared(index: usize) -> Option<Session> {
    let sessions = PREPARED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    (!sessions.is_empty()).then(|| sessions[index % sessions.len()].clone())
}

/// The load tests there are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Sign-up and login storm: each iteration registers a new account and logs in with it.
    Signup,
    /// Logins beside a health probe: the first user asks `/healthz` in a closed loop while
    /// every other one logs in again and again (issue 13: twenty concurrent logins must not
    /// stall other requests, `/healthz` p99 within 5 ms; password hashing is the work).
    Logins,
    /// Tenant creation: each user opens a tenant, waits until it is Ready, deletes it and
    /// waits until it is gone.
    Tenants,
    /// App churn across many tenants: create an App, scale it, delete it.
    Apps,
    /// Read-heavy dashboard traffic: the account, its tenants, their Apps, one App.
    Dashboard,
    /// One App read in a closed loop, as fast as the API answers: the API read benchmark
    /// (issue 13's goal: at least 5,000 a second at 16 users, p99 within 10 ms).
    Reads,
    /// All of it at once, weighted the way a dashboard-driven platform sees it: mostly
    /// reads, some App churn, some logins.
    Mixed,
}

impl Kind {
    /// Every load test, in the order the README lists them.
    pub const ALL: [Kind; 7] =
        [Kind::Signup, Kind::Logins, Kind::Tenants, Kind::Apps, Kind::Dashboard, Kind::Reads, Kind::Mixed];

    /// The name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Signup => "signup",
            Kind::Logins => "logins",
            Kind::Tenants => "tenants",
            Kind::Apps => "apps",
            Kind::Dashboard => "dashboard",
            Kind::Reads => "reads",
            Kind::Mixed => "mixed",
        }
    }

    /// The pass/fail rules of this load test, in goose's threshold syntax, judged on the
    /// whole run. No request may fail; the latency bounds are per endpoint at p95, with room
    /// over what one 2-core machine shared by the load generator, Slipway and the control
    /// plane measured (`loadtest/README.md` gives the figures): they catch regressions.
    pub fn thresholds(self) -> &'static [&'static str] {
        match self {
            Kind::Signup => &["error-rate<=0%", "p95<1s for POST /auth/register", "p95<1s for POST /auth/login"],
            Kind::Logins => &["error-rate<=0%", "p99<5ms for GET /healthz", "p95<3s for POST /auth/login"],
            Kind::Tenants => &["error-rate<=0%", "p95<3s for POST /tenants", "p95<1s for DELETE /tenants/{tenant}"],
            Kind::Apps => &[
                "error-rate<=0%",
                "p95<1s for POST /tenants/{tenant}/apps",
                "p95<1s for PUT /tenants/{tenant}/apps/{app}/scale",
                "p95<1s for DELETE /tenants/{tenant}/apps/{app}",
            ],
            Kind::Dashboard => &[
                "error-rate<=0%",
                "p95<50ms for GET /me",
                "p95<250ms for GET /tenants",
                "p95<250ms for GET /tenants/{tenant}/apps",
                "p95<250ms for GET /tenants/{tenant}/apps/{app}",
            ],
            Kind::Reads => &["error-rate<=0%", "p99<50ms for GET /tenants/{tenant}/apps/{app}"],
            Kind::Mixed => &[
                "error-rate<=0%",
                "p95<250ms for GET /tenants/{tenant}/apps/{app}",
                "p95<1s for POST /tenants/{tenant}/apps",
                "p95<1s for PUT /tenants/{tenant}/apps/{app}/scale",
                "p95<1s for POST /auth/login",
            ],
        }
    }

    fn scenario(self) -> Scenario {
        // Every user first takes its prepared session and its own client (and address).
        let s =
            Scenario::new(self.name()).register_transaction(transaction!(connect).set_name("connect").set_on_start());
        let reads = [
            transaction!(read_me).set_name("read the account"),
            transaction!(read_tenants).set_name("list tenants"),
            transaction!(read_apps).set_name("list Apps"),
            transaction!(read_app).set_name("read an App"),
        ];
        match self {
            Kind::Signup => s.register_transaction(transaction!(register_and_log_in).set_name("register, log in")),
            Kind::Logins => s.register_transaction(transaction!(log_in_or_probe).set_name("log in, or probe")),
            Kind::Tenants => s.register_transaction(transaction!(tenant_cycle).set_name("tenant lifecycle")),
            Kind::Apps => s.register_transaction(transaction!(app_churn).set_name("App churn")),
            Kind::Dashboard => reads.into_iter().fold(s, Scenario::register_transaction),
            Kind::Reads => s.register_transaction(transaction!(read_app).set_name("read an App")),
            Kind::Mixed => reads
                .into_iter()
                .map(|t| t.set_weight(8).expect("non-zero weight"))
                .fold(s, Scenario::register_transaction)
                .register_transaction(transaction!(app_churn).set_name("App churn"))
                .register_transaction(transaction!(log_in).set_name("log in")),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Kind::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
            let names: Vec<_> = Kind::ALL.iter().map(|k| k.name()).collect();
            format!("unknown load test {s:?}; choose one of {}", names.join(", "))
        })
    }
}

/// Why a load test failed.
#[derive(Debug)]
pub enum Failure {
    /// goose's own error: [`GooseError::ThresholdsFailed`] when a threshold failed, or a bad
    /// configuration.
    Goose(GooseError),
    /// Steps (transactions) that failed, with how often: a step that could not finish (a
    /// tenant that never became Ready, a missing email) even when every request it made
    /// succeeded.
    Steps(Vec<String>),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Goose(GooseError::ThresholdsFailed { failed, .. }) => {
                let rules: Vec<_> = failed.iter().map(|r| format!("{} (observed {})", r.rule, r.observed)).collect();
                write!(f, "thresholds failed: {}", rules.join("; "))
            }
            Failure::Goose(e) => write!(f, "{e:?}"),
            Failure::Steps(steps) => write!(f, "steps failed: {}", steps.join("; ")),
        }
    }
}

impl std::error::Error for Failure {}

/// Runs the load test `kind` with goose's `configuration` (host, users, run time, reports;
/// a `--threshold` given there replaces the test's own) and returns its metrics.
///
/// # Errors
/// [`Failure::Goose`] when a threshold failed or the configuration is bad (settings can be
/// given once per process: a second run with other ones is refused as
/// [`GooseError::InvalidOption`]); [`Failure::Steps`] when a step failed.
pub async fn run(kind: Kind, settings: Settings, configuration: GooseConfiguration) -> Result<GooseMetrics, Failure> {
    let current = SETTINGS.get_or_init(|| settings.clone());
    if current.mail_api != settings.mail_api || current.image != settings.image {
        return Err(Failure::Goose(GooseError::InvalidOption {
            option: "settings".into(),
            value: format!("{settings:?}"),
            detail: "one process runs load tests against one Slipway".into(),
        }));
    }
    // The users' accounts, tenants and Apps first, outside the measured run.
    let host = configuration.host.clone().unwrap_or_default();
    let users = configuration.users.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let sessions = setup::prepare(kind, current, &host, users).await?;
    *PREPARED.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = sessions;
    let attack = GooseAttack::initialize_with_config(configuration).map_err(Failure::Goose)?;
    let attack = attack.register_scenario(kind.scenario());
    // Judged once, on the whole run: a rule checked from its first seconds would stop the run
    // on a handful of samples.
    let mut attack = *attack.set_default(GooseDefault::NoThresholdAbort, true).map_err(Failure::Goose)?;
    for rule in kind.thresholds() {
        attack = *attack.set_default(GooseDefault::Threshold, *rule).map_err(Failure::Goose)?;
    }
    let metrics = attack.execute().await.map_err(Failure::Goose)?;
    let failed: Vec<String> = metrics
        .transactions
        .iter()
        .flatten()
        .filter(|t| t.fail_count > 0)
        .map(|t| {
            format!("{:?} failed {} of {} times", t.transaction_name, t.fail_count, t.fail_count + t.success_count)
        })
        .collect();
    if failed.is_empty() { Ok(metrics) } else { Err(Failure::Steps(failed)) }
}
