//! Owner emails: composing them (pure); slipway-mail sends them.

use slipway_crds::{AppSpec, AppStatus, DatabaseSpec, DatabaseStatus, ExposeType, WorkspaceSpec, WorkspaceStatus};
pub use slipway_mail::{Email, Mailer, MailerConfig};

/// The "your App is ready" email: where it answers and how to reach it.
pub fn app_ready(app: &str, tenant: &str, spec: &AppSpec, status: &AppStatus, uid: Option<&str>) -> Email {
    let url = status.url.clone().unwrap_or_else(|| "(not known yet)".into());
    let how = match (spec.expose_type(), status.node_port) {
        (ExposeType::NodePort, Some(port)) => format!(
            "It is exposed on node port {port}: any node of the cluster answers on that port.\nTry it:\n\n    curl {url}\n"
        ),
        (ExposeType::Ingress, _) => format!(
            "It is served by the cluster's ingress at {url}\nPoint the host's DNS record at the ingress controller, then try:\n\n    curl {url}\n"
        ),
        _ => format!(
            "It is reachable inside the cluster at {url}\nTo reach it from outside, set spec.expose.type to NodePort or Ingress.\n"
        ),
    };
    let node_port = status.node_port.map(|p| format!("  Node port: {p}\n")).unwrap_or_default();
    Email {
        subject: format!("Your app \"{app}\" is ready on Slipway"),
        body: format!(
            "Hello,\n\nYour app \"{app}\" in tenant \"{tenant}\" is ready: {} of {} replicas are available.\n\n  Image:     {}\n  URL:       {url}\n{node_port}\n{how}\nSee it any time with GET /api/v1/tenants/{tenant}/apps/{app}.\n\n-- Slipway\n",
            status.available_replicas,
            status.replicas.unwrap_or(status.available_replicas),
            spec.image,
        ),
        message_id: uid.map(|uid| format!("<{uid}.app-ready@slipway>")),
    }
}

/// What was done about a failed rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Undo {
    /// The App's spec went back to revision `to` (running `image`).
    RolledBack {
        /// The revision gone back to.
        to: i64,
        /// Its image.
        image: String,
    },
    /// Automatic rollback is off for the App.
    NotAsked,
    /// No revision before the failed one became healthy.
    NoHealthyRevision,
    /// The admission webhook refused going back to revision `to`, saying `why`.
    Refused {
        /// The revision it would have gone back to.
        to: i64,
        /// The webhook's message.
        why: String,
    },
    /// The App changed meanwhile; the newer change is rolling out instead.
    Superseded,
}

impl Undo {
    /// One sentence on what was done after revision `failed` failed, for Events and emails.
    pub fn describe(&self, failed: i64) -> String {
        match self {
            Undo::RolledBack { to, image } => {
                format!("revision {failed} failed; rolled back to revision {to} (image {image}), the last healthy one")
            }
            Undo::NotAsked => format!(
                "revision {failed} failed; automatic rollback is off (spec.rollout.autoRollback): roll back with POST .../rollback"
            ),
            Undo::NoHealthyRevision => {
                format!(
                    "revision {failed} failed; no earlier revision became healthy, so there is nothing to roll back to"
                )
            }
            Undo::Refused { to, why } => {
                format!("revision {failed} failed; rolling back to revision {to} was refused: {why}")
            }
            Undo::Superseded => format!("revision {failed} failed; a newer change is rolling out instead"),
        }
    }
}

/// What the "your App's rollout failed" email says.
pub struct RolloutFailure<'a> {
    /// The App's name.
    pub app: &'a str,
    /// Its tenant.
    pub tenant: &'a str,
    /// The revision that failed.
    pub revision: i64,
    /// The image it ran.
    pub image: &'a str,
    /// Why, as the App's Ready condition says: its reason (`ProgressDeadlineExceeded`) and
    /// message (the Deployment's and the pods' words).
    pub message: &'a str,
    /// What was done about it; `None` when the attempt itself failed (it is retried).
    pub undo: Option<&'a Undo>,
    /// The App's uid, for a stable Message-ID.
    pub uid: Option<&'a str>,
}

/// The "your App's rollout failed" email, sent once per failed revision: what failed, why, and
/// what Slipway did about it.
pub fn rollout_failed(f: &RolloutFailure<'_>) -> Email {
    let (app, tenant, revision) = (f.app, f.tenant, f.revision);
    let done = match f.undo {
        Some(undo) => undo.describe(revision),
        None => "Slipway could not roll back yet and keeps trying.".into(),
    };
    Email {
        subject: format!("The rollout of your app \"{app}\" failed (revision {revision})"),
        body: format!(
            "Hello,\n\nRevision {revision} of your app \"{app}\" in tenant \"{tenant}\" (image {}) did not become available:\n\n  {}\n\nWhat happened next: {done}.\n\nIts revisions: GET /api/v1/tenants/{tenant}/apps/{app}/revisions\nRoll back:     POST /api/v1/tenants/{tenant}/apps/{app}/rollback\n\n-- Slipway\n",
            f.image, f.message,
        ),
        message_id: f.uid.map(|uid| format!("<{uid}.rollout-failed-{revision}@slipway>")),
    }
}

/// What the "your Database is ready" email says.
pub struct DatabaseReady<'a> {
    /// The Database's name.
    pub name: &'a str,
    /// Its tenant.
    pub tenant: &'a str,
    /// Its spec.
    pub spec: &'a DatabaseSpec,
    /// Its status (host, port, node port, Secret).
    pub status: &'a DatabaseStatus,
    /// A node's address, for the node port.
    pub node_address: Option<&'a str>,
    /// Its uid, for a stable Message-ID.
    pub uid: Option<&'a str>,
}

/// The "your Database is ready" email: engine, host, port, user, database name, and where to
/// read the password. Never the password itself: email is stored and forwarded in clear.
pub fn database_ready(d: &DatabaseReady<'_>) -> Email {
    let (name, tenant, status) = (d.name, d.tenant, d.status);
    let profile = crate::database::connection_profile(d.spec.engine);
    let host = status.host.clone().unwrap_or_default();
    let port = status.port.unwrap_or_default();
    let secret = status.secret_name.clone().unwrap_or_default();
    let outside = match (status.node_port, d.node_address) {
        (Some(p), Some(addr)) => {
            format!("\nFrom outside the cluster it answers on node port {p} of any node, e.g. {addr}:{p}.\n")
        }
        (Some(p), None) => format!("\nFrom outside the cluster it answers on node port {p} of any node.\n"),
        _ => String::new(),
    };
    Email {
        subject: format!("Your database \"{name}\" is ready on Slipway"),
        body: format!(
            "Hello,\n\nYour {engine} {version} database \"{name}\" in tenant \"{tenant}\" is ready.\n\n  \
             Engine:    {engine} {version}\n  Host:      {host}\n  Port:      {port}\n  User:      {user}\n  \
             Database:  {dbname}\n  Storage:   {storage}\n{outside}\n\
             The password is not in this email. Read it, with a ready-made connection URI, from\n\n    \
             GET /api/v1/tenants/{tenant}/databases/{name}/credentials\n\n\
             or, inside the cluster, from the keys username, password, host, port, dbname and uri of\n\
             the Secret \"{secret}\" in namespace {namespace}, e.g. as environment variables of an App.\n\n\
             Deleting the Database {policy}.\n\n-- Slipway\n",
            engine = d.spec.engine,
            version = d.spec.version,
            user = profile.0,
            dbname = profile.1,
            storage = d.spec.storage.0,
            namespace = slipway_crds::tenant_namespace(tenant),
            policy = match d.spec.deletion_policy {
                slipway_crds::DeletionPolicy::Retain => "keeps its data and this Secret (deletionPolicy: Retain)",
                slipway_crds::DeletionPolicy::Delete => "deletes its data (deletionPolicy: Delete)",
            },
        ),
        message_id: d.uid.map(|uid| format!("<{uid}.database-ready@slipway>")),
    }
}

/// The "your Workspace is ready" email: the ssh command, the resources granted, and how to add
/// a key.
pub fn workspace_ready(
    name: &str,
    tenant: &str,
    spec: &WorkspaceSpec,
    status: &WorkspaceStatus,
    uid: Option<&str>,
) -> Email {
    let command = status.ssh_command.clone().unwrap_or_default();
    let amount = |q: &Option<k8s_openapi::apimachinery::pkg::api::resource::Quantity>| {
        q.as_ref().map_or_else(|| "the plan's default".to_string(), |q| q.0.clone())
    };
    Email {
        subject: format!("Your workspace \"{name}\" is ready on Slipway"),
        body: format!(
            "Hello,\n\nYour workspace \"{name}\" in tenant \"{tenant}\" is ready. Connect with\n\n    {command}\n\n\
             using the private key that belongs to one of the {keys} public key(s) you gave.\n\n  \
             CPU:       {cpu}\n  Memory:    {memory}\n  Storage:   {storage} (your home directory, kept across restarts)\n  \
             Node port: {port}\n\n\
             To add or replace a key, send the whole new list of public keys:\n\n    \
             PUT /api/v1/tenants/{tenant}/workspaces/{name}\n    \
             {{\"spec\": {{\"sshKeys\": [\"ssh-ed25519 AAAA... you@laptop\", \"...\"]}}}}\n\n\
             The running workspace picks the keys up within a minute; your files stay.\n\n-- Slipway\n",
            keys = spec.ssh_keys.len(),
            cpu = amount(&spec.cpu),
            memory = amount(&spec.memory),
            storage = spec.storage.0,
            port = status.node_port.map(|p| p.to_string()).unwrap_or_default(),
        ),
        message_id: uid.map(|uid| format!("<{uid}.workspace-ready@slipway>")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_crds::Expose;

    #[test]
    fn node_port_email_says_where_and_how() {
        let spec = AppSpec {
            image: "nginx:1.27".into(),
            port: 8080,
            replicas: Some(2),
            env: vec![],
            resources: None,
            expose: Some(Expose { type_: ExposeType::NodePort, host: None }),
            autoscaling: None,
            rollout: None,
            revision_history_limit: None,
        };
        let status = AppStatus {
            replicas: Some(2),
            available_replicas: 2,
            node_port: Some(31234),
            url: Some("http://192.0.2.5:31234".into()),
            ..Default::default()
        };
        let email = app_ready("web", "acme", &spec, &status, Some("abc"));
        assert_eq!(email.subject, "Your app \"web\" is ready on Slipway");
        assert!(email.body.contains("node port 31234"), "{}", email.body);
        assert!(email.body.contains("curl http://192.0.2.5:31234"), "{}", email.body);
        assert!(email.body.contains("2 of 2 replicas"), "{}", email.body);
        assert_eq!(email.message_id.as_deref(), Some("<abc.app-ready@slipway>"));
    }

    #[test]
    fn a_failed_rollout_email_says_why_and_what_was_done() {
        let undo = Undo::RolledBack { to: 1, image: "nginx:1.27".into() };
        let email = rollout_failed(&RolloutFailure {
            app: "web",
            tenant: "acme",
            revision: 2,
            image: "nginx:bad",
            message: "ProgressDeadlineExceeded: pod web-6b7-a: ImagePullBackOff",
            undo: Some(&undo),
            uid: Some("u1"),
        });
        assert_eq!(email.subject, r#"The rollout of your app "web" failed (revision 2)"#);
        for needle in [
            "(image nginx:bad)",
            "ProgressDeadlineExceeded: pod web-6b7-a: ImagePullBackOff",
            "rolled back to revision 1 (image nginx:1.27), the last healthy one",
            "POST /api/v1/tenants/acme/apps/web/rollback",
        ] {
            assert!(email.body.contains(needle), "{needle}: {}", email.body);
        }
        assert_eq!(email.message_id.as_deref(), Some("<u1.rollout-failed-2@slipway>"));
        assert!(Undo::NotAsked.describe(2).contains("automatic rollback is off"));
    }

    #[test]
    fn database_email_says_where_and_never_the_password() {
        use slipway_crds::{DatabaseEngine, DeletionPolicy};
        let spec = DatabaseSpec {
            engine: DatabaseEngine::Postgres,
            version: "17".into(),
            storage: k8s_openapi::apimachinery::pkg::api::resource::Quantity("1Gi".into()),
            cpu: None,
            memory: None,
            expose: None,
            deletion_policy: DeletionPolicy::Retain,
        };
        let status = DatabaseStatus {
            host: Some("orders.tenant-acme.svc.cluster.local".into()),
            port: Some(5432),
            node_port: Some(31000),
            secret_name: Some("orders-credentials".into()),
            ..Default::default()
        };
        let email = database_ready(&DatabaseReady {
            name: "orders",
            tenant: "acme",
            spec: &spec,
            status: &status,
            node_address: Some("192.0.2.5"),
            uid: Some("u1"),
        });
        for needle in [
            "postgres 17",
            "orders.tenant-acme.svc.cluster.local",
            "5432",
            "User:      app",
            "192.0.2.5:31000",
            "/databases/orders/credentials",
            "orders-credentials",
        ] {
            assert!(email.body.contains(needle), "{needle} missing from {}", email.body);
        }
        assert!(!email.body.to_lowercase().contains("password:"), "{}", email.body);
    }

    #[test]
    fn workspace_email_has_the_ssh_command() {
        let spec = WorkspaceSpec {
            owner: "ada@example.com".into(),
            cpu: Some(k8s_openapi::apimachinery::pkg::api::resource::Quantity("1".into())),
            memory: None,
            storage: k8s_openapi::apimachinery::pkg::api::resource::Quantity("5Gi".into()),
            ssh_keys: vec!["ssh-ed25519 AAAA".into()],
            image: None,
        };
        let status = WorkspaceStatus {
            node_port: Some(30022),
            ssh_command: Some("ssh -p 30022 dev@192.0.2.5".into()),
            ..Default::default()
        };
        let email = workspace_ready("box", "acme", &spec, &status, None);
        assert!(email.body.contains("    ssh -p 30022 dev@192.0.2.5\n"), "{}", email.body);
        assert!(email.body.contains("CPU:       1\n"), "{}", email.body);
        assert!(email.body.contains("PUT /api/v1/tenants/acme/workspaces/box"), "{}", email.body);
    }
}
