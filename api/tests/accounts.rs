//! The API's HTTP contract for accounts and input handling, run against SQLite and against
//! PostgreSQL (`SLIPWAY_TEST_POSTGRES_URL`, started by hack/test.sh). Each test gets its own
//! database. These tests do not need the controller; tenant creation needs the cluster
//! (`KUBECONFIG`) only where noted.

use axum::{
    Router,
    body::Body,
    http::{Request, StatusCode, header},
};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use slipway_api::{ApiConfig, Application, Cluster, TokenConfig};
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

async fn app(kind: &str) -> Router {
    let config = ApiConfig {
        database_url: fresh_database(kind).await.into(),
        tokens: TokenConfig {
            key: KEY.to_vec(),
            issuer: "slipway".into(),
            audience: "slipway-api".into(),
            ttl_seconds: 600,
        },
        max_body_bytes: 4096,
        platform: slipway_policies::Platform::new("apps.slipway.test", [""; 0]),
    };
    required_env("KUBECONFIG");
    let cluster = Cluster::new(kube::Config::infer().await.unwrap()).unwrap();
    Application::build(&config, cluster, Arc::new(slipway_policies::PlanCatalog::embedded())).await.unwrap().router()
}

struct Reply {
    status: StatusCode,
    content_type: String,
    body: Value,
}

async fn call(app: &Router, method: &str, uri: &str, token: Option<&str>, body: Option<(&str, Vec<u8>)>) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
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
    let content_type =
        res.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    Reply { status, content_type, body }
}

async fn post(app: &Router, uri: &str, token: Option<&str>, body: Value) -> Reply {
    call(app, "POST", uri, token, Some(("application/json", body.to_string().into_bytes()))).await
}

fn assert_problem(reply: &Reply, status: u16, detail_contains: &str) {
    assert_eq!(reply.status.as_u16(), status, "{:?}", reply.body);
    assert_eq!(reply.content_type, "application/problem+json");
    assert_eq!(reply.body["status"], status);
    let detail = reply.body["detail"].as_str().unwrap();
    assert!(detail.contains(detail_contains), "detail {detail:?} lacks {detail_contains:?}");
}

async fn register_and_login(app: &Router, email: &str) -> String {
    let reply = post(
        app,
        "/api/v1/auth/register",
        None,
        json!({"email": email, "password": "correct horse battery", "name": "Ada"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let reply =
        post(app, "/api/v1/auth/login", None, json!({"email": email, "password": "correct horse battery"})).await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.body["access_token"].as_str().unwrap().to_string()
}

async fn accounts_contract(kind: &str) {
    let app = app(kind).await;
    let reply = post(
        &app,
        "/api/v1/auth/register",
        None,
        json!({"email": "Ada@Example.com", "password": "correct horse battery", "name": "Ada"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.body["email"], "ada@example.com");
    assert!(reply.body.get("password_hash").is_none());

    let dup = post(
        &app,
        "/api/v1/auth/register",
        None,
        json!({"email": "ada@example.com", "password": "another long password", "name": "A"}),
    )
    .await;
    assert_problem(&dup, 409, "already exists");

    let login = post(
        &app,
        "/api/v1/auth/login",
        None,
        json!({"email": "ada@example.com", "password": "correct horse battery"}),
    )
    .await;
    assert_eq!(login.status, StatusCode::OK);
    assert_eq!(login.body["token_type"], "Bearer");
    assert_eq!(login.body["expires_in"], 600);
    let token = login.body["access_token"].as_str().unwrap();

    let me = call(&app, "GET", "/api/v1/me", Some(token), None).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["email"], "ada@example.com");
    assert_eq!(me.body["tenants"], json!([]));

    let wrong =
        post(&app, "/api/v1/auth/login", None, json!({"email": "ada@example.com", "password": "wrong password!!"}))
            .await;
    assert_problem(&wrong, 401, "invalid email or password");
    let unknown = post(
        &app,
        "/api/v1/auth/login",
        None,
        json!({"email": "bob@example.com", "password": "correct horse battery"}),
    )
    .await;
    assert_eq!(unknown.body["detail"], wrong.body["detail"], "unknown users and wrong passwords must look alike");
}

async fn token_checks(kind: &str) {
    let app = app(kind).await;
    let token = register_and_login(&app, "tok@example.com").await;
    assert_problem(&call(&app, "GET", "/api/v1/me", None, None).await, 401, "Authorization: Bearer");
    assert_problem(&call(&app, "GET", "/api/v1/me", Some("not.a.jwt"), None).await, 401, "malformed");

    // Same claims, other key: forged.
    let claims: Value = {
        let payload = token.split('.').nth(1).unwrap();
        use base64::Engine;
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    };
    let sign = |claims: &Value, key: &[u8]| {
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), claims, &jsonwebtoken::EncodingKey::from_secret(key))
            .unwrap()
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

    let token = register_and_login(&app, "names@example.com").await;
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

on_both_databases!(accounts_contract, token_checks, bad_input_is_4xx);
