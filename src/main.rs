//! `slipway`: see `slipway --help`.

use anyhow::Context;
use clap::Parser;
use slipway::{
    Shutdown,
    cli::{Cli, Command},
};
use std::sync::Arc;
use tracing_subscriber::{EnvFilter, fmt};

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

    let (api, controller, install_crds) = match &cli.command {
        Command::Crds => {
            print!("{}", slipway_crds::render_yaml());
            return Ok(());
        }
        Command::Api(api) => (Some(api), None, false),
        Command::Controller { controller, install_crds, .. } => (None, Some(controller), *install_crds),
        Command::All { api, controller } => (Some(api), Some(controller), true),
    };
    let plans = Arc::new(cli.common.plans()?);
    let kube_config = kube::Config::infer()
        .await
        .context("finding a Kubernetes configuration (KUBECONFIG, ~/.kube/config or in-cluster)")?;
    if let Command::Controller { health_listen, .. } = &cli.command {
        let listener =
            tokio::net::TcpListener::bind(health_listen).await.with_context(|| format!("binding {health_listen}"))?;
        tokio::spawn(slipway::serve_health(listener, kube::Client::try_from(kube_config.clone())?));
    }
    let api = match api {
        Some(args) => {
            let listener =
                tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
            Some((args.config(), listener))
        }
        None => None,
    };
    slipway::serve(kube_config, plans, api, controller.map(|c| c.config()), install_crds, Shutdown::on_signals()).await
}
