//! Command-line flags. Every flag can also be set by the environment variable it names.
//! Flags that may hold credentials (the JWT key, the database and SMTP URLs) are
//! [`SecretString`]s: `Debug` shows them redacted and `--help` hides their variables' values.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};
use slipway_api::{ApiConfig, TokenConfig};
use slipway_controller::{ControllerConfig, DatabaseImages, MailerConfig, RepositoryOverride};
use slipway_policies::{PlanCatalog, Platform};
use slipway_webhook::WebhookConfig;
use std::{net::SocketAddr, path::PathBuf};

/// Slipway: sign up, get an isolated tenant on Kubernetes, run Apps in it.
#[derive(Parser, Debug)]
#[command(name = "slipway", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// What to run.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the REST API.
    Api(ApiArgs),
    /// Run the Tenant and App controllers.
    Controller {
        #[command(flatten)]
        controller: ControllerArgs,
        /// Install or update the CRDs at start-up.
        #[arg(long, env = "SLIPWAY_INSTALL_CRDS", default_value_t = false)]
        install_crds: bool,
        /// Address of /healthz and /readyz.
        #[arg(long, env = "SLIPWAY_HEALTH_LISTEN", default_value = "127.0.0.1:8081")]
        health_listen: SocketAddr,
        #[command(flatten)]
        election: ElectionArgs,
    },
    /// API, controllers and admission webhook in one process, CRDs installed and the webhook
    /// registered (with a development certificate) first: Slipway on a single machine.
    All {
        #[command(flatten)]
        api: ApiArgs,
        #[command(flatten)]
        controller: ControllerArgs,
        #[command(flatten)]
        webhook: WebhookArgs,
    },
    /// Serve the admission webhook over HTTPS (`certs`: make a development CA and certificate).
    #[command(args_conflicts_with_subcommands = true)]
    Webhook {
        #[command(subcommand)]
        action: Option<WebhookAction>,
        #[command(flatten)]
        webhook: WebhookArgs,
        /// PEM certificate chain to serve; reloaded when it changes.
        #[arg(long, env = "SLIPWAY_WEBHOOK_TLS_CERT", default_value = "webhook-certs/tls.crt")]
        tls_cert: PathBuf,
        /// PEM private key; reloaded when it changes.
        #[arg(long, env = "SLIPWAY_WEBHOOK_TLS_KEY", default_value = "webhook-certs/tls.key")]
        tls_key: PathBuf,
        /// Register the webhook configurations at this base URL (e.g. https://127.0.0.1:8443)
        /// trusting --ca-cert. Unset: registration is left to the deployment (Helm chart).
        #[arg(long, env = "SLIPWAY_WEBHOOK_REGISTER_URL", requires = "ca_cert")]
        register_url: Option<String>,
        /// PEM CA certificate that signed --tls-cert (the registration's caBundle).
        #[arg(long, env = "SLIPWAY_WEBHOOK_CA_CERT")]
        ca_cert: Option<PathBuf>,
        /// The API's database, where changes made through Kubernetes (kubectl) to Slipway's
        /// kinds join the audit trail. Unset: they are not audited.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: Option<SecretString>,
        /// Keep the CA and serving certificate in this Secret of the webhook's namespace:
        /// issued when missing, renewed 120 days before expiry, written to --tls-cert and
        /// --tls-key, its CA patched into the installed webhook configurations `slipway`.
        #[arg(long, env = "SLIPWAY_WEBHOOK_CERTIFICATE_SECRET", requires = "service", conflicts_with = "register_url")]
        certificate_secret: Option<String>,
        /// Name of the Service in front of the webhook (the certificate's host name is
        /// `<service>.<namespace>.svc`).
        #[arg(long, env = "SLIPWAY_WEBHOOK_SERVICE", requires = "certificate_secret")]
        service: Option<String>,
    },
    /// Print the CustomResourceDefinitions as YAML (the content of crds/slipway.dev.yaml).
    Crds,
    /// Print the Helm chart's webhook configurations (charts/slipway/templates/webhook-configurations.yaml).
    #[command(hide = true)]
    ChartWebhooks,
}

/// `slipway webhook` subcommands.
#[derive(Subcommand, Debug)]
pub enum WebhookAction {
    /// Write a development CA and a serving certificate (ca.crt, tls.crt, tls.key) and print
    /// the caBundle for a webhook configuration.
    Certs {
        /// Directory to write into.
        #[arg(long, default_value = "webhook-certs")]
        out: PathBuf,
        /// Host names or IP addresses the certificate is valid for.
        #[arg(long = "host", default_values = ["127.0.0.1", "localhost"])]
        hosts: Vec<String>,
    },
}

/// Flags of the admission webhook.
#[derive(Args, Debug)]
pub struct WebhookArgs {
    /// Address the webhook serves HTTPS on.
    #[arg(long, env = "SLIPWAY_WEBHOOK_LISTEN", default_value = "127.0.0.1:8443")]
    pub webhook_listen: SocketAddr,
    /// Namespace of the webhook's reservation ledgers (created if missing).
    #[arg(long, env = "SLIPWAY_WEBHOOK_NAMESPACE", default_value = "slipway-system")]
    pub webhook_namespace: String,
    /// Seconds a reservation holds room at most: it is released as soon as the webhook's watch
    /// has seen its object, so this only bounds the room of requests a later step refused.
    #[arg(long, env = "SLIPWAY_RESERVATION_TTL_SECONDS", default_value_t = 15)]
    pub reservation_ttl_seconds: u64,
    /// IP address at which the other webhook replicas reach this one (the pod's IP, from the
    /// downward API), on the port of --webhook-listen. With it, or with a listen address that
    /// names one IP, this replica takes tenants' leases and admits their growing changes from
    /// memory.
    #[arg(long, env = "SLIPWAY_WEBHOOK_POD_IP")]
    pub webhook_pod_ip: Option<std::net::IpAddr>,
}

impl WebhookArgs {
    /// The webhook configuration these flags describe, serving `cert` and `key`.
    pub fn config(&self, tls_cert: PathBuf, tls_key: PathBuf, platform: Platform) -> WebhookConfig {
        WebhookConfig {
            tls_cert,
            tls_key,
            namespace: self.webhook_namespace.clone(),
            platform,
            reservation_ttl: std::time::Duration::from_secs(self.reservation_ttl_seconds),
            advertise: self.advertise(),
        }
    }

    /// Where the other replicas reach this one: the pod IP on the listen port, else the listen
    /// address when it names one IP (not `0.0.0.0` or `::`).
    fn advertise(&self) -> Option<SocketAddr> {
        let listen = self.webhook_listen;
        match self.webhook_pod_ip {
            Some(ip) => Some(SocketAddr::new(ip, listen.port())),
            None => Some(listen).filter(|l| !l.ip().is_unspecified()),
        }
    }
}

/// Flags of every command.
#[derive(Args, Debug)]
pub struct CommonArgs {
    /// Plan catalogue (YAML, shape of policies/plans.yaml); the embedded one when unset.
    #[arg(long, env = "SLIPWAY_PLANS", global = true)]
    pub plans: Option<PathBuf>,
    /// Base domain of tenants' Ingress hosts: tenant `acme` may use `acme.<domain>` and names
    /// under it (checked by the webhook and previewed by the API).
    #[arg(long, env = "SLIPWAY_INGRESS_DOMAIN", default_value = "apps.slipway.localhost", global = true)]
    pub ingress_domain: String,
    /// Email domains whose accounts may own Workspaces, comma-separated (e.g.
    /// `university.example,uni.example`); the webhook refuses others and the API answers 403.
    /// Unset: every account may.
    #[arg(long, env = "SLIPWAY_WORKSPACE_EMAIL_DOMAINS", value_delimiter = ',', global = true)]
    pub workspace_email_domains: Vec<String>,
    /// SMTP server for account and owner emails: `smtp://HOST:PORT` (plain), `?tls=required`
    /// for STARTTLS, `smtps://` for TLS; the default is a local catcher (hack/mail.sh).
    #[arg(
        long,
        env = "SLIPWAY_SMTP_URL",
        default_value = "smtp://127.0.0.1:1025",
        hide_env_values = true,
        global = true
    )]
    pub smtp_url: SecretString,
    /// From address of Slipway's emails.
    #[arg(long, env = "SLIPWAY_MAIL_FROM", default_value = "Slipway <noreply@slipway.local>", global = true)]
    pub mail_from: String,
    /// Log format: `text` for people, `json` for log pipelines. Filter with RUST_LOG.
    #[arg(long, env = "SLIPWAY_LOG_FORMAT", default_value = "text", global = true, value_parser = ["text", "json"])]
    pub log_format: String,
    /// Address of `GET /metrics` (Prometheus text format) for whatever the command runs, e.g.
    /// 0.0.0.0:9090. Unset: no metrics listener.
    #[arg(long, env = "SLIPWAY_METRICS_LISTEN", global = true)]
    pub metrics_listen: Option<SocketAddr>,
}

/// Flags of the API.
#[derive(Args, Debug)]
pub struct ApiArgs {
    /// Address the API listens on.
    #[arg(long, env = "SLIPWAY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Database: `sqlite://FILE?mode=rwc` (created if missing) or `postgres://USER@HOST/DB`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://slipway.db?mode=rwc", hide_env_values = true)]
    pub database_url: SecretString,
    /// HMAC key for access tokens, at least 32 bytes. Unset: a random key per process, so
    /// tokens do not survive a restart (fine for development only).
    #[arg(long, env = "SLIPWAY_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<SecretString>,
    /// Keys that signed before SLIPWAY_JWT_SECRET, comma-separated: they still verify the
    /// access tokens they signed (the JWT header's `kid` names the key). To rotate, move the
    /// old key here, set the new one, and drop the old one a token lifetime later.
    #[arg(long, env = "SLIPWAY_JWT_PREVIOUS_SECRETS", hide_env_values = true, value_delimiter = ',')]
    pub jwt_previous_secrets: Vec<SecretString>,
    /// `iss` of access tokens.
    #[arg(long, env = "SLIPWAY_JWT_ISSUER", default_value = "slipway")]
    pub jwt_issuer: String,
    /// `aud` of access tokens.
    #[arg(long, env = "SLIPWAY_JWT_AUDIENCE", default_value = "slipway-api")]
    pub jwt_audience: String,
    /// Lifetime of access tokens, in seconds (short-lived per OWASP's JWT cheat sheet).
    #[arg(long, env = "SLIPWAY_TOKEN_TTL_SECONDS", default_value_t = 900)]
    pub token_ttl_seconds: u64,
    /// Largest request body, in bytes.
    #[arg(long, env = "SLIPWAY_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,
    /// Base URL at which people reach this API, for the links in account emails
    /// (`<URL>/api/v1/auth/verify?token=...`).
    #[arg(long, env = "SLIPWAY_PUBLIC_URL", default_value = "http://127.0.0.1:8080")]
    pub public_url: String,
    /// Requests a minute one client address may make to each of register, login and
    /// verification (429 with Retry-After beyond).
    #[arg(long, env = "SLIPWAY_AUTH_REQUESTS_PER_MINUTE", default_value = "30")]
    pub auth_requests_per_minute: std::num::NonZeroU32,
    /// Login attempts a minute on one account from one client address.
    #[arg(long, env = "SLIPWAY_LOGIN_ATTEMPTS_PER_MINUTE", default_value = "10")]
    pub login_attempts_per_minute: std::num::NonZeroU32,
    /// Tenants an account may own unless a platform admin grants it more.
    #[arg(long, env = "SLIPWAY_DEFAULT_MAX_TENANTS", default_value_t = 1)]
    pub default_max_tenants: u32,
    /// Addresses of the platform admins, comma-separated: once verified, these accounts may
    /// list accounts and tenants, grant plans and tenants, suspend accounts and change plans.
    #[arg(long, env = "SLIPWAY_ADMIN_EMAILS", value_delimiter = ',')]
    pub admin_emails: Vec<String>,
}

/// Leader election of `slipway controller` (kube-controller-manager's flag names).
#[derive(Args, Debug)]
pub struct ElectionArgs {
    /// Reconcile only while holding the Lease, so replicas never both write: on by default;
    /// `--leader-elect=false` for a single replica that should not wait for a Lease.
    #[arg(long, env = "SLIPWAY_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Namespace of the Lease (created if missing).
    #[arg(long, env = "SLIPWAY_LEADER_ELECT_RESOURCE_NAMESPACE", default_value = "slipway-system")]
    pub leader_elect_resource_namespace: String,
    /// Name of the Lease.
    #[arg(long, env = "SLIPWAY_LEADER_ELECT_RESOURCE_NAME", default_value = "slipway-controller")]
    pub leader_elect_resource_name: String,
    /// Seconds the Lease holds without renewal: the longest the controllers go without a leader
    /// after the leader's pod is killed.
    #[arg(long, env = "SLIPWAY_LEADER_ELECT_LEASE_DURATION", default_value_t = 15)]
    pub leader_elect_lease_duration: u64,
}

impl ElectionArgs {
    /// The election these flags ask for, with this replica's identity: `HOSTNAME` (the pod's
    /// name) and a random UUID, as client-go's components name theirs (a restarted container
    /// has the same name and process id 1, and must not pass for the process that died holding
    /// the Lease), or `None` with `--leader-elect=false`.
    pub fn election(&self) -> Option<slipway_controller::LeaderElection> {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "slipway".into());
        self.leader_elect.then(|| slipway_controller::LeaderElection {
            namespace: self.leader_elect_resource_namespace.clone(),
            lease: self.leader_elect_resource_name.clone(),
            identity: format!("{host}_{}", uuid::Uuid::new_v4()),
            duration_seconds: self.leader_elect_lease_duration,
            grace_seconds: (self.leader_elect_lease_duration / 3).max(1),
        })
    }
}

/// Flags of the controllers.
#[derive(Args, Debug)]
pub struct ControllerArgs {
    /// Address in NodePort URLs; unset: the first node's ExternalIP, else InternalIP.
    #[arg(long, env = "SLIPWAY_NODE_ADDRESS")]
    pub node_address: Option<String>,
    /// IngressClass of the Ingresses of Apps exposed by Ingress (`spec.ingressClassName`);
    /// unset: the cluster's default class.
    #[arg(long, env = "SLIPWAY_INGRESS_CLASS")]
    pub ingress_class: Option<String>,
    /// Image of Workspaces that name none: must run sshd on port 2222 as uid 1000 (`dev`),
    /// reading keys from /etc/slipway/ssh/authorized_keys (built from controller/workspace-image).
    #[arg(long, env = "SLIPWAY_WORKSPACE_IMAGE", default_value = "ghcr.io/slipway-dev/workspace:0.1")]
    pub workspace_image: String,
    /// Where an engine's images come from instead of Docker Hub's official ones:
    /// `ENGINE=REPOSITORY`, repeated or comma-separated (e.g.
    /// `postgres=registry.example/postgres`); the Database's version is the tag. The image
    /// must follow the official image's contract (environment, data directory, uid 999).
    #[arg(long = "database-image", env = "SLIPWAY_DATABASE_IMAGES", value_delimiter = ',')]
    pub database_images: Vec<RepositoryOverride>,
}

impl CommonArgs {
    /// Where and as whom Slipway's emails are sent.
    pub fn mail(&self) -> MailerConfig {
        MailerConfig { smtp_url: self.smtp_url.clone(), from: self.mail_from.clone() }
    }

    /// The platform's settings the rules need, normalized.
    pub fn platform(&self) -> Platform {
        Platform::new(&self.ingress_domain, &self.workspace_email_domains)
    }

    /// Loads the plan catalogue named by `--plans`, or the embedded one.
    ///
    /// # Errors
    /// The file cannot be read or fails validation (the message names the field).
    pub fn plans(&self) -> anyhow::Result<PlanCatalog> {
        match &self.plans {
            None => Ok(PlanCatalog::embedded()),
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                PlanCatalog::from_yaml(&text).with_context(|| format!("loading plans from {}", path.display()))
            }
        }
    }
}

impl ApiArgs {
    /// The API configuration these flags describe, sending mail with `mail`.
    pub fn config(&self, platform: Platform, mail: MailerConfig) -> ApiConfig {
        let key = match &self.jwt_secret {
            Some(secret) => secret.expose_secret().as_bytes().to_vec(),
            None => {
                tracing::warn!("SLIPWAY_JWT_SECRET is unset: using a random key; tokens end with this process");
                rand::random::<[u8; 32]>().to_vec()
            }
        };
        ApiConfig {
            database_url: self.database_url.clone(),
            tokens: TokenConfig {
                key,
                previous_keys: self
                    .jwt_previous_secrets
                    .iter()
                    .map(|k| k.expose_secret().as_bytes().to_vec())
                    .collect(),
                issuer: self.jwt_issuer.clone(),
                audience: self.jwt_audience.clone(),
                ttl_seconds: self.token_ttl_seconds,
            },
            max_body_bytes: self.max_body_bytes,
            platform,
            mail,
            public_url: self.public_url.clone(),
            limits: slipway_api::LimitsConfig {
                per_client_per_minute: self.auth_requests_per_minute,
                login_per_account_per_minute: self.login_attempts_per_minute,
            },
            entitlements: slipway_api::EntitlementsConfig {
                default_max_tenants: self.default_max_tenants,
                admin_emails: self
                    .admin_emails
                    .iter()
                    .map(|e| e.trim().to_ascii_lowercase())
                    .filter(|e| !e.is_empty())
                    .collect(),
            },
        }
    }
}

impl ControllerArgs {
    /// The controller configuration these flags describe, sending mail with `mail`.
    pub fn config(&self, mail: MailerConfig) -> ControllerConfig {
        ControllerConfig {
            node_address: self.node_address.clone(),
            ingress_class: self.ingress_class.clone(),
            mail,
            workspace_image: self.workspace_image.clone(),
            database_images: DatabaseImages::with(self.database_images.iter().cloned()),
        }
    }
}
