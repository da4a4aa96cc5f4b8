//! What the users of a load test need before it starts (confirmed accounts, tenants, an App),
//! made before goose starts measuring, so that the figures are the load test's steps alone.

use crate::session::Session;
use crate::{Failure, Kind, Settings};
use futures::{StreamExt, TryStreamExt};
use rand::Rng;
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// The password of every load-test account (long enough for the API's strength check).
pub const PASSWORD: &str = "correct horse battery staple";

/// How long set-up waits for Slipway to finish something asynchronous (an email, a tenant
/// becoming Ready or going away) before it fails; generous, the machine is loaded.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// How often such a wait looks again.
pub const POLL: Duration = Duration::from_millis(250);

/// Users set up at once: enough to overlap their waits, few enough not to queue on argon2.
const AT_ONCE: usize = 4;

/// A random lowercase name part, so that users and iterations never collide.
pub fn unique() -> String {
    format!("{:08x}", rand::rng().random::<u32>())
}

/// The loopback address virtual user `index` (from 0) connects from when
/// [`Settings::spread_sources`] is set: 127.1.0.1, 127.1.0.2, ...
pub fn source_address(index: usize) -> IpAddr {
    let n = u32::try_from(index).unwrap_or(0) % 0xffff + 1;
    IpAddr::V4(Ipv4Addr::from(0x7f01_0000 + n))
}

/// An HTTP client for user `index`, from its own address if the settings say so.
pub fn client(settings: &Settings, index: usize) -> reqwest::ClientBuilder {
    let builder = Client::builder().timeout(Duration::from_secs(60));
    if settings.spread_sources { builder.local_address(source_address(index)) } else { builder }
}

/// The sessions of `users` users of load test `kind`, made `AT_ONCE` at a time.
///
/// # Errors
/// [`Failure::Steps`] with the first step that failed.
pub async fn prepare(kind: Kind, settings: &Settings, host: &str, users: usize) -> Result<Vec<Session>, Failure> {
    if kind == Kind::Signup {
        return Ok(vec![Session::default(); users]);
    }
    futures::stream::iter(0..users)
        .map(|index| prepare_one(kind, settings, host, index))
        .buffered(AT_ONCE)
        .try_collect()
        .await
        .map_err(|why| Failure::Steps(vec![format!("set-up: {why}")]))
}

async fn prepare_one(kind: Kind, settings: &Settings, host: &str, index: usize) -> Result<Session, String> {
    let http = client(settings, index).build().map_err(|e| e.to_string())?;
    let mut user = SetupUser { http, base: format!("{host}/api/v1"), session: Session::default() };
    user.sign_up(&settings.mail_api).await?;
    if matches!(kind, Kind::Apps | Kind::Dashboard | Kind::Reads | Kind::Mixed) {
        let tenant = format!("lt{}", unique());
        user.call(Method::POST, "/tenants", Some(json!({"name": tenant, "plan": "free"})), StatusCode::CREATED).await?;
        user.until_ready(&tenant).await?;
        user.session.tenant = Some(tenant);
    }
    if matches!(kind, Kind::Dashboard | Kind::Reads | Kind::Mixed) {
        let tenant = user.session.tenant.clone().unwrap_or_default();
        let body = json!({"name": "web", "spec": app_spec(settings)});
        user.call(Method::POST, &format!("/tenants/{tenant}/apps"), Some(body), StatusCode::CREATED).await?;
        user.session.app = Some("web".into());
    }
    Ok(user.session)
}

/// The spec of the Apps the load tests deploy: one small replica of the settings' image.
pub fn app_spec(settings: &Settings) -> Value {
    json!({"image": settings.image, "port": 8080, "replicas": 1})
}

/// Whether a tenant view says Ready (`status.conditions[type=Ready].status == "True"`).
pub fn is_ready(tenant: &Value) -> bool {
    tenant["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// A user being set up, outside goose.
struct SetupUser {
    http: Client,
    base: String,
    session: Session,
}

impl SetupUser {
    async fn call(&self, method: Method, path: &str, body: Option<Value>, expect: StatusCode) -> Result<Value, String> {
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.base));
        if !self.session.access_token.is_empty() {
            request = request.bearer_auth(&self.session.access_token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| format!("{method} {path}: {e}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status != expect {
            return Err(format!("{method} {path}: {status} {text}"));
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn sign_up(&mut self, mail_api: &str) -> Result<(), String> {
        let email = format!("load-{}@example.com", unique());
        let body = json!({"email": email, "password": PASSWORD, "name": "Load Test"});
        self.call(Method::POST, "/auth/register", Some(body), StatusCode::ACCEPTED).await?;
        let body = json!({"email": email, "password": PASSWORD});
        let answer = self.call(Method::POST, "/auth/login", Some(body), StatusCode::OK).await?;
        let token = answer["access_token"].as_str().ok_or("login answered no access_token")?;
        self.session = Session { email: email.clone(), access_token: token.into(), ..Session::default() };
        let token = verification_token(&self.http, mail_api, &email).await?;
        self.call(Method::POST, "/auth/verify", Some(json!({"token": token})), StatusCode::OK).await.map(drop)
    }

    async fn until_ready(&self, tenant: &str) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let answer = self.call(Method::GET, &format!("/tenants/{tenant}"), None, StatusCode::OK).await?;
            if is_ready(&answer) {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!("tenant {tenant} not Ready within {PATIENCE:?}: {answer}"));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// The token of the confirmation link MailHog (its API at `mail_api`) received for `email`.
async fn verification_token(http: &Client, mail_api: &str, email: &str) -> Result<String, String> {
    let url = format!("{mail_api}/api/v2/search?kind=to&query={email}");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let found: Value = match http.get(&url).send().await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(e) => return Err(format!("MailHog at {url}: {e}")),
        };
        for mail in found["items"].as_array().into_iter().flatten() {
            // lettre picks quoted-printable (RFC 2045 §6.7) for long lines.
            let raw = mail["Content"]["Body"].as_str().unwrap_or_default();
            let body = quoted_printable::decode(raw, quoted_printable::ParseMode::Robust).unwrap_or_default();
            let body = String::from_utf8_lossy(&body);
            if let Some(link) = body.split_whitespace().find(|w| w.contains("/auth/verify?token=")) {
                return Ok(link.rsplit_once("token=").map(|(_, t)| t.to_string()).unwrap_or_default());
            }
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("no confirmation email for {email} within {PATIENCE:?}"));
        }
        tokio::time::sleep(POLL).await;
    }
}
