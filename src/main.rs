//! `slipway`: see `slipway --help`.

use anyhow::Context;
use clap::Parser;
use secrecy::ExposeSecret;
use slipway::{
    Components, Shutdown, SqlAudit, WebhookRun,
    cli::{Cli, Command, WebhookAction},
};
use slipway_webhook::{ManagedCertificate, WebhookTarget, certs};
use std::sync::Arc;
use tokio::net::TcpListener;
use tracing_subscriber::{EnvFilter, fmt};

/// The process's allocator: mimalloc (Microsoft's, through the `mimalloc` crate) instead of
/// glibc's malloc.
///
/// Why (issue 13): under `perf`, glibc's `malloc`, `free` and `malloc_consolidate` took about a
/// fifth of the CPU of each admission review at 8 connections, with its arena locks contended
/// across the runtime's threads (`__lll_lock_wait_private`). With mimalloc's per-thread free
/// lists, the admission bench's scale-up UPDATEs went from 12,955 and 13,737 to 18,560 and
/// 17,972 reviews/s (interleaved runs of `SLIPWAY_BENCH_PHASES=webhook
/// SLIPWAY_BENCH_REQUESTS=200000 SLIPWAY_BENCH_CONCURRENCY=8 hack/bench-webhook.sh`).
/// The price is resident memory that mimalloc keeps for reuse. `slipway all` holds 119–123 MB
/// after bursts of 60 logins (82–85 MB with glibc; issue 13 allows 300 MB), 141–147 MB after
/// `loadtest/run.sh reads` (98 MB) and 191–202 MB after `loadtest/run.sh tenants` at 8 users
/// (151 MB).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,kube=warn,tower_http=info"));
    let logs = fmt().with_env_filter(filter);
    if cli.common.log_format == "json" {
        logs.json().init()
    } else {
        logs.init()
    }

    let plans = Arc::new(cli.common.plans()?);
    let bind = |addr| async move { TcpListener::bind(addr).await.with_context(|| format!("binding {addr}")) };
    let mut parts = Components { api: None, controller: None, webhook: None, install_crds: false };
    match &cli.command {
        Command::Crds => {
            print!("{}", slipway_crds::render_yaml());
            return Ok(());
        }
        Command::ChartWebhooks => {
            print!("{}", slipway::chart::webhook_configurations_template());
            return Ok(());
        }
        Command::Webhook { action: Some(WebhookAction::Certs { out, hosts }), .. } => {
            let generated = certs::generate(hosts)?;
            certs::write(out, &generated)?;
            eprintln!("wrote {}/ca.crt, tls.crt and tls.key; caBundle:", out.display());
            println!("{}", certs::ca_bundle(&generated.ca_pem));
            return Ok(());
        }
        Command::Webhook {
            action: None,
            webhook,
            tls_cert,
            tls_key,
            register_url,
            ca_cert,
            database_url,
            certificate_secret,
            service,
        } => {
            let register = match (register_url, ca_cert) {
                (Some(url), Some(ca)) => {
                    let pem = std::fs::read_to_string(ca).with_context(|| format!("reading {}", ca.display()))?;
                    Some((WebhookTarget::Url(url.clone()), pem))
                }
                _ => None,
            };
            let config = webhook.config(tls_cert.clone(), tls_key.clone(), cli.common.platform());
            let audit = match database_url {
                Some(url) => Some(SqlAudit::connect(url.expose_secret()).await?),
                None => {
                    tracing::warn!("no --database-url: changes made through Kubernetes are not audited");
                    None
                }
            };
            let certificate =
                certificate_secret.as_ref().zip(service.as_ref()).map(|(secret, service)| ManagedCertificate {
                    namespace: webhook.webhook_namespace.clone(),
                    secret: secret.clone(),
                    service: service.clone(),
                    tls_cert: tls_cert.clone(),
                    tls_key: tls_key.clone(),
                });
            let listener = bind(webhook.webhook_listen).await?;
            parts.webhook = Some(WebhookRun { config, listener, register, audit, certificate });
        }
        Command::Api(api) => {
            parts.api = Some((api.config(cli.common.platform(), cli.common.mail()), bind(api.listen).await?));
        }
        Command::Controller { controller, install_crds, election, .. } => {
            parts.controller = Some((controller.config(cli.common.mail()), election.election()));
            parts.install_crds = *install_crds;
        }
        Command::All { api, controller, webhook } => {
            // A fresh development CA per start, registered with the API server below.
            let dir = std::env::temp_dir().join(format!("slipway-webhook-{}", std::process::id()));
            let host = webhook.webhook_listen.ip().to_string();
            let generated = certs::generate(&[host, "localhost".into()])?;
            certs::write(&dir, &generated)?;
            let target = WebhookTarget::Url(format!("https://{}", webhook.webhook_listen));
            parts.webhook = Some(WebhookRun {
                config: webhook.config(dir.join("tls.crt"), dir.join("tls.key"), cli.common.platform()),
                listener: bind(webhook.webhook_listen).await?,
                register: Some((target, generated.ca_pem)),
                audit: Some(SqlAudit::connect(api.database_url.expose_secret()).await?),
                certificate: None,
            });
            parts.api = Some((api.config(cli.common.platform(), cli.common.mail()), bind(api.listen).await?));
            // One process on one machine: nobody to compete with.
            parts.controller = Some((controller.config(cli.common.mail()), None));
            parts.install_crds = true;
        }
    }
    if let Some(addr) = cli.common.metrics_listen {
        let handle = slipway::metrics::install()?;
        let listener = bind(addr).await?;
        tokio::spawn(async move {
            if let Err(error) = slipway::metrics::serve(listener, handle).await {
                tracing::error!(%error, "the metrics listener stopped");
            }
        });
    }
    let kube_config = kube::Config::infer()
        .await
        .context("finding a Kubernetes configuration (KUBECONFIG, ~/.kube/config or in-cluster)")?;
    if let Command::Controller { health_listen, .. } = &cli.command {
        let client = kube::Client::try_from(kube_config.clone())?;
        tokio::spawn(slipway::serve_health(bind(*health_listen).await?, client));
    }
    slipway::serve(kube_config, plans, parts, Shutdown::on_signals()).await
}
