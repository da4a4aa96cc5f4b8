//! `slipway-loadtest KIND [--mail-api URL] [--image IMAGE] -- [goose options]`: runs one of
//! Slipway's load tests (loadtest/README.md) and exits non-zero when a threshold fails.

use clap::Parser;
use goose::config::GooseConfiguration;
use slipway_loadtest::{Kind, Settings, run};
use std::process::ExitCode;

/// Runs one of Slipway's load tests against a running Slipway.
#[derive(Parser)]
#[command(after_help = "Goose's options follow `--`, e.g. -- --host http://127.0.0.1:8080 --users 8 \
    --increase-rate 4 --run-time 60s --report-file report.html (goose --help lists them).")]
struct Cli {
    /// The load test: signup, logins, tenants, apps, dashboard, reads or mixed.
    kind: Kind,
    /// MailHog's HTTP API, where sign-ups find their confirmation link.
    #[arg(long, env = "SLIPWAY_MAIL_API")]
    mail_api: String,
    /// Image of the Apps the load test deploys (one the tenants' plan allows).
    #[arg(long, env = "SLIPWAY_LOADTEST_IMAGE", default_value = "docker.io/library/nginx:1.27")]
    image: String,
    /// Connect each virtual user from its own loopback address (default: when --host is on
    /// loopback), so the API's per-client limits see separate clients.
    #[arg(long, env = "SLIPWAY_LOADTEST_SPREAD_SOURCES")]
    spread_sources: Option<bool>,
    /// Goose's own options.
    #[arg(last = true)]
    goose: Vec<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let configuration = match GooseConfiguration::parse_args_default(&cli.goose) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("slipway-loadtest: goose options: {e:?}");
            return ExitCode::from(2);
        }
    };
    let host = configuration.host.as_deref().unwrap_or_default();
    let on_loopback = host.contains("://127.") || host.contains("://localhost");
    let settings = Settings {
        mail_api: cli.mail_api,
        image: cli.image,
        spread_sources: cli.spread_sources.unwrap_or(on_loopback),
    };
    match run(cli.kind, settings, configuration).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("slipway-loadtest: {} failed: {e}", cli.kind);
            ExitCode::FAILURE
        }
    }
}
