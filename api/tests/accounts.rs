//! The API's HTTP contract for accounts and input handling, run against SQLite and against
//! PostgreSQL (`SLIPWAY_TEST_POSTGRES_URL`, started by hack/test.sh), with account emails
//! through the test SMTP catcher (`SLIPWAY_SMTP_URL`, read back through `SLIPWAY_MAIL_API`).
//! Each test gets its own database and addresses. These tests do not need the controller;
//! tenant creation needs the cluster (`KUBECONFIG`) only where noted.

use axum::{
    Router,
    body::Body,
    http::{HeaderMap, Request, StatusCode, header},
};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use slipway_api::{ApiConfig, Application, Cluster, LimitsConfig, TokenConfig};
use std::sync::Arc;
use tower::ServiceExt;

const KEY: [u8; 32] = [42; 32];

fn required_env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the suite with hack/test.sh, which starts the components"))
}

/// A fresh, empty database of the given kind.
async fn fresh_database(kind: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    match kind {
        "sqlite" => format!("sqlite://{}/slipway-test-{id}.db?mode=rwc", std::env::temp_dir().display()),
        "postgres" => {
            let admin = required_env("SLIPWAY_TEST_POSTGRES_URL");
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(&admin).await.expect("PostgreSQL is reachable");
            let name = format!("slipway_test_{id}");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&pool).await.unwrap();
            let base = admin.rsplit_once('/').expect("URL has a database path").0;
            format!("{base}/{name}")
        }
        other => unreachable!("{other}"),
    }
}

/// An address no other test uses, for `name`.
fn unique_email(name: &str) -> String {
    format!("{name}-{}@example.com", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// The API over a fresh database of `kind`.
async fn app(kind: &str) -> Router {
    app_and_database(kind).await.0
}

/// The API over a fresh database of `kind`, and that database's URL.
async fn app_and_database(kind: &str) -> (Router, String) {
    app_with_limits(kind, LimitsConfig::default()).await
}

/// The API with rate limits `limits` over a fresh database of `kind`, and that database's URL.
async fn app_with_limits(kind: &str, limits: LimitsConfig) -> (Router, String) {
    let database_url = fresh_database(kind).await;
    let config = ApiConfig {
        database_url: database_url.clone().into(),
        tokens: TokenConfig {
            key: KEY.to_vec(),
            previous_keys: vec![],
            issuer: "slipway".into(),
            audience: "slipway-api".into(),
            ttl_seconds: 600,
        },
        max_body_bytes: 4096,
        platform: slipway_policies::Platform::new("apps.slipway.test", [""; 0]),
        mail: slipway_mail::MailerConfig {
            smtp_url: required_env("SLIPWAY_SMTP_URL").into(),
            from: "Slipway <noreply@slipway.test>".into(),
        },
        public_url: "https://slipway.test".into(),
        limits,
        entitlements: Default::default(),
    };
    required_env("KUBECONFIG");
    let cluster = Cluster::new(kube::Config::infer().await.unwrap()).unwrap();
    let app = Application::build(&config, cluster, Arc::new(slipway_policies::PlanCatalog::embedded())).await.unwrap();
    (app.router(), database_url)
}

/// The (subject, body) of every email the SMTP catcher holds for `to`, oldest first.
async fn mails_to(to: &str) -> Vec<(String, String)> {
    let url = format!("{}/api/v2/search?kind=to&query={to}", required_env("SLIPWAY_MAIL_API"));
    let found: Value = reqwest::get(url).await.expect("MailHog answers").json().await.unwrap();
    let mut items: Vec<&Value> = found["items"].as_array().unwrap().iter().collect();
    items.sort_by_key(|m| chrono::DateTime::parse_from_rfc3339(m["Created"].as_str().unwrap()).unwrap());
    items
        .into_iter()
        .map(|m| {
            let subject = m["Content"]["Headers"]["Subject"][0].as_str().unwrap_or_default().to_string();
            (subject, quoted_printable(m["Content"]["Body"].as_str().unwrap_or_default()))
        })
        .collect()
}

/// The text of a mail body: lettre picks quoted-printable (RFC 2045 §6.7) for long lines.
fn quoted_printable(body: &str) -> String {
    let decoded = quoted_printable::decode(body, quoted_printable::ParseMode::Robust).expect("a quoted-printable body");
    String::from_utf8_lossy(&decoded).replace("\r\n", "\n")
}

/// Waits (up to 30 s: mail is sent in the background) for `count` emails to `to`.
async fn wait_for_mails(to: &str, count: usize) -> Vec<(String, String)> {
    for _ in 0..120 {
        let mails = mails_to(to).await;
        if mails.len() >= count {
            return mails;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    panic!("no {count} email(s) to {to} within 30 s: {:?}", mails_to(to).await);
}

/// The token of the newest verification link mailed to `to`, once there are `count` emails.
async fn verification_token(to: &str, count: usize) -> String {
    link_token(to, count, "Confirm your email address for Slipway", "/api/v1/auth/verify").await
}

struct Reply {
    status: StatusCode,
    content_type: String,
    headers: HeaderMap,
    body: Value,
}

/// The client address of requests that name none.
const CLIENT: &str = "198.18.0.1:40000";

async fn call(app: &Router, method: &str, uri: &str, token: Option<&str>, body: Option<(&str, Vec<u8>)>) -> Reply {
    call_from(app, CLIENT, method, uri, token, body).await
}

/// A request from the client at `client` (`IP:PORT`), as `axum::serve` would pass it on.
async fn call_from(
    app: &Router,
    client: &str,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<(&str, Vec<u8>)>,
) -> Reply {
    let peer: std::net::SocketAddr = client.parse().unwrap();
    let mut req = Request::builder().method(method).uri(uri).extension(axum::extract::ConnectInfo(peer));
    if let Some(token) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let req = match body {
        Some((content_type, bytes)) => req.header(header::CONTENT_TYPE, content_type).body(Body::from(bytes)),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let content_type =
        res.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    Reply { status, content_type, headers, body }
}

async fn post(app: &Router, uri: &str, token: Option<&str>, body: Value) -> Reply {
    post_from(app, CLIENT, uri, token, body).await
}

async fn post_from(app: &Router, client: &str, uri: &str, token: Option<&str>, body: Value) -> Reply {
    call_from(app, client, "POST", uri, token, Some(("application/json", body.to_string().into_bytes()))).await
}

fn assert_problem(reply: &Reply, status: u16, detail_contains: &str) {
    assert_eq!(reply.status.as_u16(), status, "{:?}", reply.body);
    assert_eq!(reply.content_type, "application/problem+json");
    assert_eq!(reply.body["status"], status);
    let detail = reply.body["detail"].as_str().unwrap();
    assert!(detail.contains(detail_contains), "detail {detail:?} lacks {detail_contains:?}");
}

/// Registers `email` and logs in, without verifying: the access token.
async fn register_unverified(app: &Router, email: &str) -> String {
    let reply = post(
        app,
        "/api/v1/auth/register",
        None,
        json!({"email": email, "password": "correct horse battery", "name": "Ada"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    let reply =
        post(app, "/api/v1/auth/login", None, json!({"email": email, "password": "correct horse battery"})).await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.body["access_token"].as_str().unwrap().to_string()
}

/// Registers `email`, logs in and follows the verification link: the access token.
async fn register_and_login(app: &Router, email: &str) -> String {
    let before = mails_to(email).await.len();
    let token = register_unverified(app, email).await;
    let link = verification_token(email, before + 1).await;
    let reply = post(app, "/api/v1/auth/verify", Some(&token), json!({"token": link})).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    token
}

async fn accounts_contract(kind: &str) {
    let app = app(kind).await;
    let ada = unique_email("ada");
    let reply = post(
        &app,
        "/api/v1/auth/register",
        None,
        json!({"email": ada.to_uppercase(), "password": "correct horse battery", "name": "Ada"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    assert!(reply.body["detail"].as_str().unwrap().contains(&ada), "normalized: {:?}", reply.body);

    let login =
        post(&app, "/api/v1/auth/login", None, json!({"email": ada, "password": "correct horse battery"})).await;
    assert_eq!(login.status, StatusCode::OK);
    assert_eq!(login.body["token_type"], "Bearer");
    assert_eq!(login.body["expires_in"], 600);
    let token = login.body["access_token"].as_str().unwrap();

    let me = call(&app, "GET", "/api/v1/me", Some(token), None).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["email"], ada.as_str());
    assert_eq!(me.body["email_verified"], false);
    assert_eq!(me.body["tenants"], json!([]));
    assert!(me.body.get("password_hash").is_none());

    let wrong = post(&app, "/api/v1/auth/login", None, json!({"email": ada, "password": "wrong password!!"})).await;
    assert_problem(&wrong, 401, "invalid email or password");
    let unknown = post(
        &app,
        "/api/v1/auth/login",
        None,
        json!({"email": unique_email("bob"), "password": "correct horse battery"}),
    )
    .await;
    assert_eq!(unknown.body["detail"], wrong.body["detail"], "unknown users and wrong passwords must look alike");
}

async fn token_checks(kind: &str) {
    let app = app(kind).await;
    let token = register_and_login(&app, &unique_email("tok")).await;
    assert_problem(&call(&app, "GET", "/api/v1/me", None, None).await, 401, "Authorization: Bearer");
    assert_problem(&call(&app, "GET", "/api/v1/me", Some("not.a.jwt"), None).await, 401, "malformed");

    // Same claims, other key: forged.
    let claims: Value = {
        let payload = token.split('.').nth(1).unwrap();
        use base64::Engine;
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    };
    // Signed as the API signs: HS256 with the header naming the API's key.
    let header = jsonwebtoken::decode_header(&token).unwrap();
    let sign = |claims: &Value, key: &[u8]| {
        jsonwebtoken::encode(&header, claims, &jsonwebtoken::EncodingKey::from_secret(key)).unwrap()
    };
    let forged = sign(&claims, &[7; 32]);
    assert_problem(&call(&app, "GET", "/api/v1/me", Some(&forged), None).await, 401, "signature is invalid");
    let mut expired = claims.clone();
    expired["exp"] = json!(1);
    assert_problem(&call(&app, "GET", "/api/v1/me", Some(&sign(&expired, &KEY)), None).await, 401, "expired");
    let mut foreign = claims.clone();
    foreign["aud"] = json!("someone-else");
    assert_problem(
        &call(&app, "GET", "/api/v1/me", Some(&sign(&foreign, &KEY)), None).await,
        401,
        "not issued for this API",
    );
    assert_eq!(call(&app, "GET", "/api/v1/me", Some(&sign(&claims, &KEY)), None).await.status, StatusCode::OK);
}

async fn bad_input_is_4xx(kind: &str) {
    let app = app(kind).await;
    let reg = "/api/v1/auth/register";
    assert_problem(
        &call(&app, "POST", reg, None, Some(("application/json", b"{\"email\":".to_vec()))).await,
        400,
        "not valid JSON",
    );
    assert_problem(&call(&app, "POST", reg, None, Some(("text/plain", b"{}".to_vec()))).await, 415, "application/json");
    let huge = json!({"email": "a@example.com", "password": "x".repeat(10_000), "name": "A"}).to_string().into_bytes();
    assert_problem(&call(&app, "POST", reg, None, Some(("application/json", huge))).await, 413, "too large");
    // schemathesis sent this: a NUL in the name once reached PostgreSQL and answered 500.
    let nul = json!({"email": "bob@example.com", "password": "correct horse battery", "name": "\u{97}U\u{0}\u{bb}"});
    assert_problem(
        &post(&app, reg, None, nul).await,
        422,
        "name: enter a name of 1 to 100 characters, without control",
    );
    let unknown = post(
        &app,
        reg,
        None,
        json!({"email": "a@example.com", "password": "correct horse battery", "name": "A", "admin": true}),
    )
    .await;
    assert_problem(&unknown, 422, "unknown field(s): admin");
    let wrong_type = post(&app, reg, None, json!({"email": 5, "password": "correct horse battery", "name": "A"})).await;
    assert_problem(&wrong_type, 422, "email: invalid type");
    let invalid = post(&app, reg, None, json!({"email": "nope", "password": "short", "name": ""})).await;
    assert_problem(&invalid, 422, "password: use 12 to 128 characters");
    let fields: Vec<_> =
        invalid.body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["email", "password", "name"]);
    for weak in ["aaaaaaaaaaaa", "password1234", "weak@example.com"] {
        let reply = post(&app, reg, None, json!({"email": "weak@example.com", "password": weak, "name": "W"})).await;
        assert_problem(&reply, 422, "password: choose a harder password");
    }
    assert_problem(&call(&app, "GET", "/api/v2/nothing", None, None).await, 404, "under /api/v1");
    assert_problem(&call(&app, "PATCH", reg, None, None).await, 405, "method");

    let token = register_and_login(&app, &unique_email("names")).await;
    let bad_name = post(&app, "/api/v1/tenants", Some(&token), json!({"name": "Bad_Name", "plan": "free"})).await;
    assert_problem(&bad_name, 422, "is not a valid tenant name");
    let bad_plan = post(&app, "/api/v1/tenants", Some(&token), json!({"name": "fine", "plan": "gold"})).await;
    assert_problem(&bad_plan, 422, "unknown plan \"gold\"; available plans: free, pro, standard");
    assert_problem(&call(&app, "GET", "/api/v1/tenants/someone-elses", Some(&token), None).await, 404, "not found");
}

macro_rules! on_both_databases {
    ($($name:ident),*) => {
        mod sqlite { $( #[tokio::test] async fn $name() { super::$name("sqlite").await } )* }
        mod postgres { $( #[tokio::test] async fn $name() { super::$name("postgres").await } )* }
    };
}

/// An unverified account logs in and verifies, nothing else; links are single-use, expire,
/// work for their own account only, and are resent at most once a minute.
async fn verification(kind: &str) {
    let (app, database_url) = app_and_database(kind).await;
    let ada = unique_email("ada");
    let token = register_unverified(&app, &ada).await;
    let refused = post(&app, "/api/v1/tenants", Some(&token), json!({"name": "early", "plan": "free"})).await;
    assert_problem(&refused, 403, "confirm your email address first");
    assert_eq!(call(&app, "GET", "/api/v1/tenants", Some(&token), None).await.status, StatusCode::FORBIDDEN);

    // The mail holds the link and nothing the registrant wrote (their name "Ada" included).
    let mails = wait_for_mails(&ada, 1).await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(!mails[0].1.contains("Ada"), "{}", mails[0].1);
    let link = verification_token(&ada, 1).await;
    // Fetching the link (as a mail scanner would) explains, and uses nothing.
    let fetched = call(&app, "GET", &format!("/api/v1/auth/verify?token={link}"), None, None).await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert!(fetched.body["detail"].as_str().unwrap().contains(&link), "{:?}", fetched.body);

    // Resending within a minute of the first link is refused with Retry-After.
    let again = post(&app, "/api/v1/auth/verify/resend", Some(&token), json!(null)).await;
    assert_problem(&again, 429, "ask again in");
    let retry: u64 = again.headers[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");

    // Another account cannot use Ada's link, even knowing it.
    let bob = register_unverified(&app, &unique_email("bob")).await;
    let stolen = post(&app, "/api/v1/auth/verify", Some(&bob), json!({"token": link})).await;
    assert_problem(&stolen, 400, "invalid, used or expired");
    assert_problem(&post(&app, "/api/v1/auth/verify", None, json!({"token": link})).await, 401, "Bearer");

    let verified = post(&app, "/api/v1/auth/verify", Some(&token), json!({"token": link})).await;
    assert_eq!(verified.status, StatusCode::OK, "{:?}", verified.body);
    assert_eq!(verified.body, json!({"email": ada, "email_verified": true}));
    let reused = post(&app, "/api/v1/auth/verify", Some(&token), json!({"token": link})).await;
    assert_problem(&reused, 400, "invalid, used or expired");
    assert_eq!(call(&app, "GET", "/api/v1/me", Some(&token), None).await.body["email_verified"], true);
    // Past the verification gate: the tenant request now fails on its own merits.
    let bad_name = post(&app, "/api/v1/tenants", Some(&token), json!({"name": "Bad_Name", "plan": "free"})).await;
    assert_problem(&bad_name, 422, "is not a valid tenant name");
    let resend = post(&app, "/api/v1/auth/verify/resend", Some(&token), json!(null)).await;
    assert_problem(&resend, 409, "already verified");

    // An expired link is refused like a used one.
    let carol = unique_email("carol");
    let carol_token = register_unverified(&app, &carol).await;
    let carol_link = verification_token(&carol, 1).await;
    sqlx::any::install_default_drivers();
    let mut db = <sqlx::AnyConnection as sqlx::Connection>::connect(&database_url).await.unwrap();
    sqlx::query("UPDATE email_tokens SET expires_at = '2000-01-01T00:00:00Z'").execute(&mut db).await.unwrap();
    let expired = post(&app, "/api/v1/auth/verify", Some(&carol_token), json!({"token": carol_link})).await;
    assert_problem(&expired, 400, "invalid, used or expired");
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT token_hash FROM email_tokens").fetch_all(&mut db).await.unwrap();
    assert!(!stored.iter().any(|h| h == &carol_link), "only hashes are stored");
}

/// Registering an address that has an account answers exactly as for a new one; the holder
/// is told instead, and nothing changes. A squatter's unverified account does not survive the
/// real owner's registration.
async fn registration_reveals_nothing(kind: &str) {
    let app = app(kind).await;
    let ada = unique_email("ada");
    register_and_login(&app, &ada).await;
    let fresh = unique_email("fresh");
    let body = |email: &str, password: &str| json!({"email": email, "password": password, "name": "Eve"});
    let new = post(&app, "/api/v1/auth/register", None, body(&fresh, "violet kettle marathon")).await;
    let taken = post(&app, "/api/v1/auth/register", None, body(&ada, "violet kettle marathon")).await;
    assert_eq!((new.status, taken.status), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
    assert_eq!(
        new.body["detail"].as_str().unwrap().replace(&fresh, "X"),
        taken.body["detail"].as_str().unwrap().replace(&ada, "X")
    );
    let mails = wait_for_mails(&ada, 2).await;
    assert!(mails.iter().any(|(subject, _)| subject.contains("tried to sign up")), "{mails:?}");
    let eve = post(&app, "/api/v1/auth/login", None, json!({"email": ada, "password": "violet kettle marathon"})).await;
    assert_problem(&eve, 401, "invalid email or password");

    // Mallory registers Grace's address first; Grace's own registration replaces that account.
    // The address had its one registration email this minute (Mallory's link), so Grace asks
    // for hers once logged in.
    let grace = unique_email("grace");
    let squat = post(&app, "/api/v1/auth/register", None, body(&grace, "mallory owns this one")).await;
    assert_eq!(squat.status, StatusCode::ACCEPTED);
    let grace_token = register_unverified(&app, &grace).await;
    let resent = post(&app, "/api/v1/auth/verify/resend", Some(&grace_token), json!(null)).await;
    assert_eq!(resent.status, StatusCode::ACCEPTED, "{:?}", resent.body);
    let link = verification_token(&grace, 2).await;
    let verified = post(&app, "/api/v1/auth/verify", Some(&grace_token), json!({"token": link})).await;
    assert_eq!(verified.status, StatusCode::OK, "{:?}", verified.body);
    let mallory =
        post(&app, "/api/v1/auth/login", None, json!({"email": grace, "password": "mallory owns this one"})).await;
    assert_problem(&mallory, 401, "invalid email or password");
    assert_eq!(call(&app, "GET", "/api/v1/me", Some(&grace_token), None).await.body["email_verified"], true);
}

/// Too many requests from one client answer 429 with `Retry-After`; an attacker hammering an
/// account from their address does not lock its holder out.
async fn rate_limits(kind: &str) {
    let three = std::num::NonZeroU32::new(3).unwrap();
    let limits = LimitsConfig { per_client_per_minute: three, login_per_account_per_minute: three };
    let (app, _) = app_with_limits(kind, limits).await;
    let (attacker, holder) = ("198.18.0.66:1234", "198.18.0.7:5678");
    let ada = unique_email("ada");
    let register = json!({"email": ada, "password": "correct horse battery", "name": "Ada"});
    assert_eq!(post_from(&app, holder, "/api/v1/auth/register", None, register).await.status, StatusCode::ACCEPTED);

    for _ in 0..3 {
        let body = json!({"email": unique_email("x"), "password": "correct horse battery", "name": "X"});
        assert_eq!(post_from(&app, attacker, "/api/v1/auth/register", None, body).await.status, StatusCode::ACCEPTED);
    }
    let body = json!({"email": unique_email("x"), "password": "correct horse battery", "name": "X"});
    let over = post_from(&app, attacker, "/api/v1/auth/register", None, body).await;
    assert_problem(&over, 429, "too many registrations from your address");
    let retry: u64 = over.headers[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");

    let wrong = json!({"email": ada, "password": "not the password"});
    for _ in 0..3 {
        let reply = post_from(&app, attacker, "/api/v1/auth/login", None, wrong.clone()).await;
        assert_problem(&reply, 401, "invalid email or password");
    }
    let blocked = post_from(&app, attacker, "/api/v1/auth/login", None, wrong).await;
    assert_problem(&blocked, 429, "too many login attempts");
    assert!(blocked.headers.contains_key(header::RETRY_AFTER));
    // The holder, from their own address, still gets in (after at most the failures' delay).
    let right = json!({"email": ada, "password": "correct horse battery"});
    assert_eq!(post_from(&app, holder, "/api/v1/auth/login", None, right).await.status, StatusCode::OK);
}

/// Logs `email` in: the (access token, refresh token).
async fn login(app: &Router, email: &str) -> (String, String) {
    let reply =
        post(app, "/api/v1/auth/login", None, json!({"email": email, "password": "correct horse battery"})).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let field = |name: &str| reply.body[name].as_str().unwrap().to_string();
    (field("access_token"), field("refresh_token"))
}

/// Refresh tokens rotate; a spent one presented again ends its session; logout ends one
/// session, logout-all every one, access tokens included.
async fn sessions(kind: &str) {
    let (app, database_url) = app_and_database(kind).await;
    let ada = unique_email("ada");
    register_and_login(&app, &ada).await;
    let me = |token: String| {
        let app = app.clone();
        async move { call(&app, "GET", "/api/v1/me", Some(&token), None).await }
    };
    let refresh = |token: &str| post(&app, "/api/v1/auth/refresh", None, json!({"refresh_token": token}));

    let (access1, refresh1) = login(&app, &ada).await;
    assert_eq!(refresh1.len(), 43);
    let next = refresh(&refresh1).await;
    assert_eq!(next.status, StatusCode::OK, "{:?}", next.body);
    assert_eq!((next.body["token_type"].as_str(), next.body["expires_in"].as_u64()), (Some("Bearer"), Some(600)));
    let (access2, refresh2) =
        (next.body["access_token"].as_str().unwrap().to_string(), next.body["refresh_token"].as_str().unwrap());
    assert_ne!(refresh2, refresh1);
    assert_eq!(me(access2.clone()).await.status, StatusCode::OK);

    // refresh1 was spent: presenting it again (a thief, or its owner after the thief) ends
    // the session, for both of them.
    assert_problem(&refresh(&refresh1).await, 401, "already used");
    assert_problem(&refresh(refresh2).await, 401, "session has ended");
    assert_problem(&me(access2).await, 401, "session has ended");
    assert_problem(&me(access1).await, 401, "session has ended");

    // Logout ends one session; the account's others go on.
    let (access3, refresh3) = login(&app, &ada).await;
    let (access4, refresh4) = login(&app, &ada).await;
    let logout = post(&app, "/api/v1/auth/logout", None, json!({"refresh_token": refresh3})).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT, "{:?}", logout.body);
    assert_problem(&me(access3).await, 401, "session has ended");
    assert_problem(&refresh(&refresh3).await, 401, "session has ended");
    assert_eq!(me(access4.clone()).await.status, StatusCode::OK);
    let unknown = post(&app, "/api/v1/auth/logout", None, json!({"refresh_token": "not-a-token"})).await;
    assert_problem(&unknown, 401, "not valid");

    // Logout-all ends them all.
    let (_, refresh5) = login(&app, &ada).await;
    assert_eq!(post(&app, "/api/v1/auth/logout-all", Some(&access4), json!(null)).await.status, StatusCode::NO_CONTENT);
    assert_problem(&me(access4).await, 401, "session has ended");
    assert_problem(&refresh(&refresh4).await, 401, "session has ended");
    assert_problem(&refresh(&refresh5).await, 401, "session has ended");

    // Idle refresh tokens expire; only hashes are stored.
    let (_, refresh6) = login(&app, &ada).await;
    sqlx::any::install_default_drivers();
    let mut db = <sqlx::AnyConnection as sqlx::Connection>::connect(&database_url).await.unwrap();
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT token_hash FROM refresh_tokens").fetch_all(&mut db).await.unwrap();
    assert!(!stored.iter().any(|h| h == &refresh6), "only hashes are stored");
    sqlx::query("UPDATE refresh_tokens SET expires_at = '2000-01-01T00:00:00Z'").execute(&mut db).await.unwrap();
    assert_problem(&refresh(&refresh6).await, 401, "expired");
}

/// The token of the newest link to `path` in the emails to `to` with this subject, once there
/// are `count` emails.
async fn link_token(to: &str, count: usize, subject: &str, path: &str) -> String {
    let mails = wait_for_mails(to, count).await;
    let body = mails.iter().filter(|(s, _)| s == subject).map(|(_, body)| body).next_back();
    let body = body.unwrap_or_else(|| panic!("no {subject:?} email to {to}: {mails:?}"));
    let link = body.split_whitespace().find(|w| w.starts_with("https://slipway.test/")).expect("a link");
    assert!(link.starts_with(&format!("https://slipway.test{path}?token=")), "{link}");
    link.rsplit_once("token=").unwrap().1.to_string()
}

/// A reset request answers the same for any address; its link works once, briefly, sets the
/// password through the policy and ends every session.
async fn password_reset(kind: &str) {
    let (app, database_url) = app_and_database(kind).await;
    let ada = unique_email("ada");
    register_and_login(&app, &ada).await;
    let (access, refresh) = login(&app, &ada).await;
    let request = |email: String| post(&app, "/api/v1/auth/password-reset", None, json!({"email": email}));

    let known = request(ada.clone()).await;
    let nobody = unique_email("nobody");
    let unknown = request(nobody.clone()).await;
    assert_eq!((known.status, unknown.status), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
    let same = |r: &Reply, email: &str| r.body["detail"].as_str().unwrap().replace(email, "X");
    assert_eq!(same(&known, &ada), same(&unknown, &nobody));
    let subject = "Reset your Slipway password";
    let token = link_token(&ada, 2, subject, "/api/v1/auth/password-reset").await;
    assert!(mails_to(&nobody).await.is_empty(), "an address without an account gets nothing");

    let confirm = |token: &str, password: &str| {
        post(&app, "/api/v1/auth/password-reset/confirm", None, json!({"token": token, "password": password}))
    };
    assert_problem(&confirm(&token, "password1234").await, 422, "choose a harder password");
    assert_eq!(confirm(&token, "violet kettle marathon").await.status, StatusCode::NO_CONTENT);
    assert_problem(&confirm(&token, "another violet kettle").await, 400, "invalid, used or expired");

    // The old password and every session are gone; the new password works.
    let old = post(&app, "/api/v1/auth/login", None, json!({"email": ada, "password": "correct horse battery"})).await;
    assert_problem(&old, 401, "invalid email or password");
    assert_problem(&call(&app, "GET", "/api/v1/me", Some(&access), None).await, 401, "session has ended");
    let refreshed = post(&app, "/api/v1/auth/refresh", None, json!({"refresh_token": refresh})).await;
    assert_problem(&refreshed, 401, "session has ended");
    let new = post(&app, "/api/v1/auth/login", None, json!({"email": ada, "password": "violet kettle marathon"})).await;
    assert_eq!(new.status, StatusCode::OK, "{:?}", new.body);

    // An expired link is refused.
    let grace = unique_email("grace");
    register_and_login(&app, &grace).await;
    assert_eq!(request(grace.clone()).await.status, StatusCode::ACCEPTED);
    let token = link_token(&grace, 2, subject, "/api/v1/auth/password-reset").await;
    sqlx::any::install_default_drivers();
    let mut db = <sqlx::AnyConnection as sqlx::Connection>::connect(&database_url).await.unwrap();
    sqlx::query("UPDATE email_tokens SET expires_at = '2000-01-01T00:00:00Z'").execute(&mut db).await.unwrap();
    assert_problem(&confirm(&token, "violet kettle marathon").await, 400, "invalid, used or expired");
}

/// The caller changes their name and password (the current one required; other sessions
/// end) and deletes the account, which it may not while it owns a tenant.
async fn profile(kind: &str) {
    let (app, database_url) = app_and_database(kind).await;
    let ada = unique_email("ada");
    register_and_login(&app, &ada).await;
    let (mine, _) = login(&app, &ada).await;
    let (other, _) = login(&app, &ada).await;
    let patch = |body: Value| {
        let (app, mine) = (app.clone(), mine.clone());
        async move {
            call(&app, "PATCH", "/api/v1/me", Some(&mine), Some(("application/json", body.to_string().into_bytes())))
                .await
        }
    };

    let renamed = patch(json!({"name": " Ada L. "})).await;
    assert_eq!(renamed.status, StatusCode::OK, "{:?}", renamed.body);
    assert_eq!((renamed.body["name"].as_str(), renamed.body["email"].as_str()), (Some("Ada L."), Some(ada.as_str())));
    assert_problem(&patch(json!({"name": ""})).await, 422, "name: enter a name");
    assert_problem(&patch(json!({"password": "violet kettle marathon"})).await, 422, "current_password: give");
    let wrong = patch(json!({"password": "violet kettle marathon", "current_password": "not it at all"})).await;
    assert_problem(&wrong, 422, "not your current password");
    let weak = patch(json!({"password": "password1234", "current_password": "correct horse battery"})).await;
    assert_problem(&weak, 422, "password: choose a harder password");
    let changed =
        patch(json!({"password": "violet kettle marathon", "current_password": "correct horse battery"})).await;
    assert_eq!(changed.status, StatusCode::OK, "{:?}", changed.body);
    assert_eq!(call(&app, "GET", "/api/v1/me", Some(&mine), None).await.status, StatusCode::OK, "this session goes on");
    assert_problem(&call(&app, "GET", "/api/v1/me", Some(&other), None).await, 401, "session has ended");
    let old = post(&app, "/api/v1/auth/login", None, json!({"email": ada, "password": "correct horse battery"})).await;
    assert_problem(&old, 401, "invalid email or password");

    // Deleting: the password again, and no tenant owned.
    let delete = |password: &str| {
        let body = json!({"password": password}).to_string().into_bytes();
        let (app, mine) = (app.clone(), mine.clone());
        async move { call(&app, "DELETE", "/api/v1/me", Some(&mine), Some(("application/json", body))).await }
    };
    assert_problem(&delete("correct horse battery").await, 422, "not your current password");
    sqlx::any::install_default_drivers();
    let mut db = <sqlx::AnyConnection as sqlx::Connection>::connect(&database_url).await.unwrap();
    let id = renamed.body["id"].as_str().unwrap();
    sqlx::query(
        "INSERT INTO tenants (name, plan, created_by, created_at) VALUES ('adas', 'free', $1, '2026-01-01T00:00:00Z')",
    )
    .bind(id)
    .execute(&mut db)
    .await
    .unwrap();
    let membership = "INSERT INTO memberships (tenant, user_id, role, created_at) VALUES ('adas', $1, 'owner', '2026-01-01T00:00:00Z')";
    sqlx::query(membership).bind(id).execute(&mut db).await.unwrap();
    assert_problem(&delete("violet kettle marathon").await, 409, "owns tenants (adas)");
    sqlx::query("DELETE FROM memberships").execute(&mut db).await.unwrap();
    sqlx::query("DELETE FROM tenants").execute(&mut db).await.unwrap();
    assert_eq!(delete("violet kettle marathon").await.status, StatusCode::NO_CONTENT);
    assert_problem(&call(&app, "GET", "/api/v1/me", Some(&mine), None).await, 401, "no longer exists");
    let gone =
        post(&app, "/api/v1/auth/login", None, json!({"email": ada, "password": "violet kettle marathon"})).await;
    assert_problem(&gone, 401, "invalid email or password");
}

/// Changing the address: the current password, a link to the new address that the account
/// confirms while logged in, a notice to the old one; then the account is the new address.
async fn email_change(kind: &str) {
    let app = app(kind).await;
    let (ada, new) = (unique_email("ada"), unique_email("ada-new"));
    register_and_login(&app, &ada).await;
    let (mine, _) = login(&app, &ada).await;
    let patch = |body: Value| {
        let (app, mine) = (app.clone(), mine.clone());
        async move {
            call(&app, "PATCH", "/api/v1/me", Some(&mine), Some(("application/json", body.to_string().into_bytes())))
                .await
        }
    };
    assert_problem(&patch(json!({"email": new})).await, 422, "current_password: give");
    assert_problem(&patch(json!({"email": "nope"})).await, 422, "email: enter an email address");
    let asked = patch(json!({"email": new, "current_password": "correct horse battery"})).await;
    assert_eq!(asked.status, StatusCode::OK, "{:?}", asked.body);
    assert_eq!(asked.body["email"], ada.as_str(), "nothing changes before the new address confirms");

    let notice = wait_for_mails(&ada, 2).await;
    let (_, body) = notice.iter().find(|(s, _)| s == "Your Slipway address is being changed").expect("a notice");
    assert!(body.contains(&new), "{body}");
    let token = link_token(&new, 1, "Confirm your email address for Slipway", "/api/v1/me/email/confirm").await;
    let eve = unique_email("eve");
    register_and_login(&app, &eve).await;
    let (eves, _) = login(&app, &eve).await;
    let stolen = post(&app, "/api/v1/me/email/confirm", Some(&eves), json!({"token": token})).await;
    assert_problem(&stolen, 400, "invalid, used or expired");
    let moved = post(&app, "/api/v1/me/email/confirm", Some(&mine), json!({"token": token})).await;
    assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
    assert_eq!(
        (moved.body["email"].as_str(), moved.body["email_verified"].as_bool()),
        (Some(new.as_str()), Some(true))
    );
    let again = post(&app, "/api/v1/me/email/confirm", Some(&mine), json!({"token": token})).await;
    assert_problem(&again, 400, "invalid, used or expired");
    let old = post(&app, "/api/v1/auth/login", None, json!({"email": ada, "password": "correct horse battery"})).await;
    assert_problem(&old, 401, "invalid email or password");
    login(&app, &new).await;
}

/// The median of `samples`, in milliseconds.
fn median_ms(mut samples: Vec<std::time::Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1000.0
}

/// Asserts that two medians are within noise: half the larger one plus 25 ms (a skipped
/// argon2 hash, about 50 ms here and far more on a loaded machine, stands out of both).
fn assert_same_time(what: &str, known: f64, unknown: f64) {
    let noise = known.max(unknown) / 2.0 + 25.0;
    assert!((known - unknown).abs() <= noise, "{what}: {known:.1} ms for an account, {unknown:.1} ms for none");
}

/// Register, login and reset answer an address with an account and one without with the
/// same status, the same body (but for the address) and in the same time, within noise.
/// Every sample comes from its own client address and, for login, from at most three failures
/// per account, so neither the rate limits nor the login delay take part.
async fn enumeration_timing(kind: &str) {
    let (app, database_url) = app_and_database(kind).await;
    let accounts: Vec<String> = (0..4).map(|i| unique_email(&format!("known{i}"))).collect();
    for email in &accounts {
        register_unverified(&app, email).await;
    }
    sqlx::any::install_default_drivers();
    let mut db = <sqlx::AnyConnection as sqlx::Connection>::connect(&database_url).await.unwrap();
    sqlx::query("UPDATE users SET email_verified_at = '2026-01-01T00:00:00Z'").execute(&mut db).await.unwrap();

    let mut client = 0u32;
    let mut timed = |path: &'static str, body: Value| {
        client += 1;
        let (app, from) = (app.clone(), format!("198.18.{}.{}:4000", client / 250, client % 250 + 1));
        async move {
            let started = std::time::Instant::now();
            let reply = post_from(&app, &from, path, None, body).await;
            (started.elapsed(), reply)
        }
    };
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for round in 0..12 {
        let (account, nobody) = (&accounts[round % 4], unique_email("nobody"));
        let wrong = |email: &str| json!({"email": email, "password": "not the password at all"});
        let (t1, a) = timed("/api/v1/auth/login", wrong(account)).await;
        let (t2, b) = timed("/api/v1/auth/login", wrong(&nobody)).await;
        assert_eq!((a.status, &a.body), (b.status, &b.body), "login");
        known.push(t1);
        unknown.push(t2);
    }
    assert_same_time("login", median_ms(known), median_ms(unknown));

    for (path, body) in [
        ("/api/v1/auth/register", json!({"email": "X", "password": "violet kettle marathon", "name": "Eve"})),
        ("/api/v1/auth/password-reset", json!({"email": "X"})),
    ] {
        let (mut known, mut unknown) = (Vec::new(), Vec::new());
        for round in 0..12 {
            let (account, nobody) = (&accounts[round % 4], unique_email("nobody"));
            let with = |email: &str| {
                serde_json::from_str::<Value>(&body.to_string().replace("\"X\"", &format!("{email:?}"))).unwrap()
            };
            let (t1, a) = timed(path, with(account)).await;
            let (t2, b) = timed(path, with(&nobody)).await;
            assert_eq!(a.status, b.status, "{path}");
            let detail = |r: &Reply, email: &str| r.body["detail"].as_str().unwrap().replace(email, "X");
            assert_eq!(detail(&a, account), detail(&b, &nobody), "{path}");
            known.push(t1);
            unknown.push(t2);
        }
        assert_same_time(path, median_ms(known), median_ms(unknown));
    }
}

on_both_databases!(
    enumeration_timing,
    email_change,
    profile,
    password_reset,
    sessions,
    accounts_contract,
    token_checks,
    bad_input_is_4xx,
    verification,
    registration_reveals_nothing,
    rate_limits
);
