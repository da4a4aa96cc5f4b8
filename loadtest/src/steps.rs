//! The scenarios' transactions: what a Slipway user does, one step at a time.

use crate::session::{Call, Session, Step, failed, session};
use crate::settings;
use crate::setup::{PASSWORD, PATIENCE, POLL, app_spec, client, is_ready, unique};
use goose::goose::{GooseUser, TransactionResult};
use serde_json::json;

/// Gives the user its prepared session (crate::setup) and a client of its own, from its own
/// loopback address when [`crate::Settings::spread_sources`] is set.
pub async fn connect(user: &mut GooseUser) -> TransactionResult {
    let index = user.weighted_users_index;
    if let Some(session) = crate::prepared(index) {
        user.set_session_data(session);
    }
    Ok(user.set_client_builder(client(settings(), index)).await?)
}

async fn register(user: &mut GooseUser, email: &str) -> Step {
    let body = json!({"email": email, "password": PASSWORD, "name": "Load Test"});
    Call::post("/auth/register", "/auth/register".into(), body, 202).send(user).await.map(drop)
}

async fn log_in_as(user: &mut GooseUser, email: &str) -> Step<String> {
    let body = json!({"email": email, "password": PASSWORD});
    let answer = Call::post("/auth/login", "/auth/login".into(), body, 200).send(user).await?;
    answer["access_token"].as_str().map(str::to_string).ok_or_else(|| failed("login answered no access_token"))
}

/// Sign-up and login storm: a new account, registered and logged in.
pub async fn register_and_log_in(user: &mut GooseUser) -> TransactionResult {
    let email = format!("storm-{}@example.com", unique());
    register(user, &email).await?;
    log_in_as(user, &email).await?;
    Ok(())
}

/// Logs in again with the user's account (a returning visitor).
pub async fn log_in(user: &mut GooseUser) -> TransactionResult {
    let email = session(user)?.email;
    let access_token = log_in_as(user, &email).await?;
    let renewed = Session { access_token, ..session(user)? };
    user.set_session_data(renewed);
    Ok(())
}

/// The first user probes `/healthz` (what a load balancer or kubelet asks); every other one
/// logs in again ([`log_in`]).
pub async fn log_in_or_probe(user: &mut GooseUser) -> TransactionResult {
    if user.weighted_users_index == 0 {
        Call::get("/healthz", "/healthz".into()).unversioned().send(user).await.map(drop)
    } else {
        log_in(user).await
    }
}

fn tenant_of(user: &GooseUser) -> Step<String> {
    session(user)?.tenant.ok_or_else(|| failed("the user has no tenant"))
}

/// A tenant's whole life: create, Ready, delete, gone (its name and the owner's tenant
/// allowance free again).
pub async fn tenant_cycle(user: &mut GooseUser) -> TransactionResult {
    let tenant = format!("lt{}", unique());
    Call::post("/tenants", "/tenants".into(), json!({"name": tenant, "plan": "free"}), 201).send(user).await?;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !is_ready(&Call::get("/tenants/{tenant}", format!("/tenants/{tenant}")).send(user).await?) {
        if tokio::time::Instant::now() > deadline {
            return Err(failed(format!("tenant {tenant} not Ready within {PATIENCE:?}")));
        }
        tokio::time::sleep(POLL).await;
    }
    Call::delete("/tenants/{tenant}", format!("/tenants/{tenant}"), 204).send(user).await?;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    // Until it is gone the tenant still counts against the owner's allowance of one.
    while Call::get("/tenants (until gone)", "/tenants".into()).send(user).await?["items"]
        .as_array()
        .is_some_and(|items| items.iter().any(|t| t["name"] == tenant))
    {
        if tokio::time::Instant::now() > deadline {
            return Err(failed(format!("tenant {tenant} still there {PATIENCE:?} after its deletion")));
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(())
}

/// App churn: create an App, scale it to two replicas, delete it.
pub async fn app_churn(user: &mut GooseUser) -> TransactionResult {
    let tenant = tenant_of(user)?;
    let app = format!("c{}", unique());
    let body = json!({"name": app, "spec": app_spec(settings())});
    Call::post("/tenants/{tenant}/apps", format!("/tenants/{tenant}/apps"), body, 201).send(user).await?;
    let scale = format!("/tenants/{tenant}/apps/{app}/scale");
    Call::put("/tenants/{tenant}/apps/{app}/scale", scale, json!({"replicas": 2})).send(user).await?;
    Call::delete("/tenants/{tenant}/apps/{app}", format!("/tenants/{tenant}/apps/{app}"), 204).send(user).await?;
    Ok(())
}

pub async fn read_me(user: &mut GooseUser) -> TransactionResult {
    Call::get("/me", "/me".into()).send(user).await.map(drop)
}

pub async fn read_tenants(user: &mut GooseUser) -> TransactionResult {
    Call::get("/tenants", "/tenants".into()).send(user).await.map(drop)
}

pub async fn read_apps(user: &mut GooseUser) -> TransactionResult {
    let tenant = tenant_of(user)?;
    Call::get("/tenants/{tenant}/apps", format!("/tenants/{tenant}/apps")).send(user).await.map(drop)
}

pub async fn read_app(user: &mut GooseUser) -> TransactionResult {
    let (tenant, app) = (tenant_of(user)?, session(user)?.app.ok_or_else(|| failed("the user has no App"))?);
    Call::get("/tenants/{tenant}/apps/{app}", format!("/tenants/{tenant}/apps/{app}")).send(user).await.map(drop)
}
