//! Owner emails: composing them (pure) and sending them over SMTP with lettre.

use crate::{Error, Result};
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, header::ContentType},
};
use slipway_crds::{AppSpec, AppStatus, ExposeType};

/// SMTP settings.
#[derive(Clone, Debug)]
pub struct MailerConfig {
    /// `smtp://host:port` (plain, for a local catcher), `smtp://host:port?tls=required`
    /// (STARTTLS) or `smtps://host:port`; credentials as `smtp://user:pass@host`.
    pub smtp_url: String,
    /// The From address, e.g. `Slipway <noreply@slipway.local>`.
    pub from: String,
}

/// An email ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email {
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
    /// Stable Message-ID, so a mail system can drop a duplicate delivery.
    pub message_id: Option<String>,
}

/// Sends [`Email`]s over SMTP.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// Builds a mailer; connects lazily on the first send.
    ///
    /// # Errors
    /// [`Error::Config`] for an SMTP URL or From address that does not parse.
    pub fn new(config: &MailerConfig) -> Result<Self> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&config.smtp_url)
            .map_err(|e| Error::Config(format!("SMTP URL {:?}: {e}", config.smtp_url)))?
            .build();
        let from = config.from.parse().map_err(|e| Error::Config(format!("mail From {:?}: {e}", config.from)))?;
        Ok(Self { transport, from })
    }

    /// Sends `email` to each recipient separately (owners do not see each other's addresses).
    ///
    /// # Errors
    /// [`Error::Mail`] when an address is invalid or the SMTP server refuses the message.
    pub async fn send(&self, recipients: &[&str], email: &Email) -> Result<()> {
        for to in recipients {
            let to: Mailbox = to.parse().map_err(|e| Error::Mail(format!("recipient {to:?}: {e}")))?;
            let message = Message::builder()
                .from(self.from.clone())
                .to(to)
                .subject(&email.subject)
                .message_id(email.message_id.clone())
                .header(ContentType::TEXT_PLAIN)
                .body(email.body.clone())
                .map_err(|e| Error::Mail(e.to_string()))?;
            self.transport.send(message).await.map_err(|e| Error::Mail(e.to_string()))?;
        }
        Ok(())
    }
}

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
        };
        let status = AppStatus {
            replicas: Some(2),
            available_replicas: 2,
            node_port: Some(31234),
            url: Some("http://10.0.0.5:31234".into()),
            ..Default::default()
        };
        let email = app_ready("web", "acme", &spec, &status, Some("abc"));
        assert_eq!(email.subject, "Your app \"web\" is ready on Slipway");
        assert!(email.body.contains("node port 31234"), "{}", email.body);
        assert!(email.body.contains("curl http://10.0.0.5:31234"), "{}", email.body);
        assert!(email.body.contains("2 of 2 replicas"), "{}", email.body);
        assert_eq!(email.message_id.as_deref(), Some("<abc.app-ready@slipway>"));
    }

    #[test]
    fn bad_smtp_url_is_a_config_error() {
        let err = Mailer::new(&MailerConfig { smtp_url: "nope://".into(), from: "a@b.c".into() });
        assert!(matches!(err, Err(Error::Config(_))));
    }
}
