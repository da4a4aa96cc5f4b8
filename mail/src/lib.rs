//! Slipway's outgoing email: plain-text messages over SMTP with lettre, connecting lazily.
//! The controller mails owners what it provisioned; the API mails account links.

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, header::ContentType},
};
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

/// How long one message may take to hand over, connection included: lettre's blocking
/// transport gives each SMTP command 60 s, its async one bounds only the connect, so a server
/// that accepts and then stalls would hold a reconcile (and a controller's shutdown) forever.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// Why mail could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The SMTP URL or the From address does not parse.
    #[error("{0}")]
    Config(String),
    /// A recipient is invalid, or the SMTP server refused the message or did not take it
    /// within the send timeout ([`SEND_TIMEOUT`] unless set by [`Mailer::with_timeout`]).
    #[error("{0}")]
    Send(String),
}

/// SMTP settings.
#[derive(Clone, Debug)]
pub struct MailerConfig {
    /// `smtp://host:port` (plain, for a local catcher), `smtp://host:port?tls=required`
    /// (STARTTLS) or `smtps://host:port`; credentials as `smtp://user:pass@host`, hence
    /// secret: `Debug` and errors never show it.
    pub smtp_url: SecretString,
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

/// Emails handed to the SMTP server, by result (`sent`, `failed`), one per recipient.
pub const EMAILS: &str = "slipway_emails_total";

/// Describes the mail metrics to the installed recorder (see the `slipway` binary).
pub fn describe_metrics() {
    metrics::describe_counter!(EMAILS, "Emails handed to the SMTP server, by result, one per recipient");
}

/// Sends [`Email`]s over SMTP.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    timeout: Duration,
}

impl Mailer {
    /// Builds a mailer; connects lazily on the first send.
    ///
    /// # Errors
    /// [`MailError::Config`] for an SMTP URL or From address that does not parse.
    pub fn new(config: &MailerConfig) -> Result<Self, MailError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(config.smtp_url.expose_secret())
            .map_err(|e| MailError::Config(format!("the SMTP URL does not parse: {e}")))?
            .build();
        let from = config.from.parse().map_err(|e| MailError::Config(format!("mail From {:?}: {e}", config.from)))?;
        Ok(Self { transport, from, timeout: SEND_TIMEOUT })
    }

    /// The same mailer giving up on a message after `timeout` instead of [`SEND_TIMEOUT`].
    #[must_use]
    pub fn with_timeout(self, timeout: Duration) -> Self {
        Self { timeout, ..self }
    }

    /// Sends `email` to each recipient separately (owners do not see each other's addresses).
    ///
    /// # Errors
    /// [`MailError::Send`] when an address is invalid or the SMTP server refuses the message.
    pub async fn send(&self, recipients: &[&str], email: &Email) -> Result<(), MailError> {
        for to in recipients {
            let to: Mailbox = to.parse().map_err(|e| MailError::Send(format!("recipient {to:?}: {e}")))?;
            let message = Message::builder()
                .from(self.from.clone())
                .to(to)
                .subject(&email.subject)
                .message_id(email.message_id.clone())
                .header(ContentType::TEXT_PLAIN)
                .body(email.body.clone())
                .map_err(|e| MailError::Send(e.to_string()))?;
            let sent = match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
                Ok(sent) => sent.map_err(|e| MailError::Send(e.to_string())),
                Err(_) => {
                    Err(MailError::Send(format!("the SMTP server did not take the message within {:?}", self.timeout)))
                }
            };
            metrics::counter!(EMAILS, "result" => if sent.is_ok() { "sent" } else { "failed" }).increment(1);
            sent?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_smtp_urls_and_from_addresses_are_config_errors() {
        let secret = "smtp://user:hunter2@[bad";
        let config = MailerConfig { smtp_url: secret.into(), from: "a@b.c".into() };
        assert!(!format!("{config:?}").contains("hunter2"), "{config:?}");
        let Err(MailError::Config(e)) = Mailer::new(&config) else { panic!("a bad SMTP URL is a configuration error") };
        assert!(e.contains("SMTP URL") && !e.contains("hunter2"), "{e}");
        let from = Mailer::new(&MailerConfig { smtp_url: "smtp://127.0.0.1:25".into(), from: "not an address".into() });
        assert!(matches!(from, Err(MailError::Config(e)) if e.contains("mail From")));
    }

    /// A server that accepts the connection and never greets: the send gives up with an error
    /// instead of waiting for ever (it once held a controller's shutdown for 15 minutes).
    #[tokio::test]
    async fn a_stalled_smtp_server_fails_the_send_after_the_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let silent = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            std::future::pending::<()>().await;
            drop(socket);
        });
        let config = MailerConfig { smtp_url: format!("smtp://127.0.0.1:{port}").into(), from: "a@b.c".into() };
        let mailer = Mailer::new(&config).unwrap().with_timeout(Duration::from_millis(300));
        let email = Email { subject: "s".into(), body: "b".into(), message_id: None };
        let sent = mailer.send(&["owner@example.com"], &email).await;
        assert!(
            matches!(&sent, Err(MailError::Send(e)) if e.contains("did not take the message within 300ms")),
            "{sent:?}"
        );
        silent.abort();
    }
}
