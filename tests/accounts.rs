//! Accounts against the real control plane: entitlements (self-service plans, tenants per
//! account) and what platform admins do (grant, suspend, reactivate, change a plan).

mod support;

/// The SQL backend of this binary's Slipway: PostgreSQL, where concurrent creates really run
/// side by side (SQLite takes writes one at a time).
const DATABASE: &str = "postgres";
/// The cluster of this binary's Slipway: the kwok one.
const CLUSTER: support::Cluster = support::Cluster::Kwok;

use k8s_openapi::api::{apps::v1::Deployment, core::v1::ResourceQuota};
use kube::Api;
use serde_json::{Value, json};
use slipway_crds::Tenant;
use std::time::Duration;
use support::{Client, eventually, kube_admin, unique, wait_ready};

fn detail(body: &Value) -> &str {
    body["detail"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn an_account_chooses_self_service_plans_and_owns_one_tenant_until_an_admin_grants_more() {
    let (ada, email) = Client::new_user("entitled").await;
    let me = ada.get("/me").await.body;
    assert_eq!(me["entitlements"], json!({"max_tenants": 1, "plans": ["free"]}));
    assert_eq!(me["platform_admin"], false);

    let pro = ada.post("/tenants", json!({"name": unique("big"), "plan": "pro"})).await;
    assert_eq!(pro.status, 403, "{}", pro.body);
    assert!(
        detail(&pro.body).contains(r#"the plan "pro" is not available to your account (yours: free)"#),
        "{}",
        pro.body
    );
    let first = ada.post("/tenants", json!({"name": unique("first"), "plan": "free"})).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let first = first.body["name"].as_str().unwrap().to_string();
    let second = ada.post("/tenants", json!({"name": unique("second"), "plan": "free"})).await;
    assert_eq!(second.status, 403, "{}", second.body);
    assert!(
        detail(&second.body).contains(&format!("your account may own 1 tenant(s) and owns 1 ({first})")),
        "{}",
        second.body
    );

    // Only platform admins administer.
    assert_eq!(ada.get("/admin/users").await.status, 403);
    let id = me["id"].as_str().unwrap();
    let grant = json!({"max_tenants": 2, "plans": ["pro"]});
    let refused = ada.put(&format!("/admin/users/{id}/entitlements"), grant.clone()).await;
    assert_eq!(refused.status, 403, "{}", refused.body);

    let admin = Client::admin().await;
    assert_eq!(admin.get("/me").await.body["platform_admin"], true);
    let bad = admin.put(&format!("/admin/users/{id}/entitlements"), json!({"max_tenants": 2, "plans": ["gold"]})).await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert_eq!(bad.body["errors"][0]["field"], "plans[0]", "{}", bad.body);
    let granted = admin.put(&format!("/admin/users/{id}/entitlements"), grant).await;
    assert_eq!(granted.status, 200, "{}", granted.body);
    assert_eq!(granted.body["entitlements"], json!({"max_tenants": 2, "plans": ["free", "pro"]}));
    assert_eq!(granted.body["owned_tenants"], json!([first]));
    assert_eq!(ada.get("/me").await.body["entitlements"]["plans"], json!(["free", "pro"]));
    let big = ada.post("/tenants", json!({"name": unique("big"), "plan": "pro"})).await;
    assert_eq!(big.status, 201, "{}", big.body);
    let third = ada.post("/tenants", json!({"name": unique("third"), "plan": "free"})).await;
    assert_eq!(third.status, 403, "two is the new limit: {}", third.body);

    // The admin finds the account by paging through every account, one at a time.
    let (mut cursor, mut seen) = (None::<String>, Vec::new());
    loop {
        let path = match &cursor {
            Some(c) => format!("/admin/users?limit=1&cursor={c}"),
            None => "/admin/users?limit=1".to_string(),
        };
        let page = admin.get(&path).await;
        assert_eq!(page.status, 200, "{}", page.body);
        seen.extend(page.body["items"].as_array().unwrap().iter().map(|u| u["email"].as_str().unwrap().to_string()));
        match page.body["next"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert!(seen.contains(&email), "{seen:?}");
    assert!(seen.is_sorted(), "by email: {seen:?}");
    assert_eq!(admin.get("/admin/users?limit=0").await.status, 400);
    assert_eq!(admin.get("/admin/users?cursor=%25").await.status, 400);
    assert_eq!(admin.get("/admin/users/not-a-uuid").await.status, 400);
    let ghost = admin.get(&format!("/admin/users/{}", uuid::Uuid::new_v4())).await;
    assert_eq!(ghost.status, 404, "{}", ghost.body);

    let tenants = admin.get("/admin/tenants?limit=500").await.body;
    let listed = tenants["items"].as_array().unwrap().iter().find(|t| t["name"] == first.as_str()).cloned();
    let listed = listed.expect("the admin sees every tenant");
    assert_eq!((listed["plan"].clone(), listed["owners"].clone()), (json!("free"), json!([email])));
}

#[tokio::test]
async fn a_platform_admin_moves_a_tenant_to_another_plan_and_the_quota_follows() {
    let (owner, _) = Client::new_user("mover").await;
    let tenant = owner.create_tenant("mover", "free").await;
    let admin = Client::admin().await;
    let bad = admin.put(&format!("/admin/tenants/{tenant}/plan"), json!({"plan": "gold"})).await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    let missing = admin.put(&format!("/admin/tenants/{}/plan", unique("nobody")), json!({"plan": "pro"})).await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert_eq!(owner.put(&format!("/admin/tenants/{tenant}/plan"), json!({"plan": "pro"})).await.status, 403);

    let moved = admin.put(&format!("/admin/tenants/{tenant}/plan"), json!({"plan": "standard"})).await;
    assert_eq!(moved.status, 204, "{}", moved.body);
    let stored = Api::<Tenant>::all(kube_admin().await).get(&tenant).await.unwrap();
    assert_eq!(stored.spec.plan, "standard");
    assert_eq!(owner.get(&format!("/tenants/{tenant}")).await.body["plan"], "standard");
    let standard = slipway_policies::PlanCatalog::embedded().plan("standard").unwrap().limits.cpu.to_quantity();
    let quotas = Api::<ResourceQuota>::namespaced(kube_admin().await, &format!("tenant-{tenant}"));
    eventually(Duration::from_secs(60), "the quota to follow the new plan", || async {
        let quota = quotas.get("slipway-plan").await.ok()?;
        (quota.spec?.hard?.get("limits.cpu") == Some(&standard)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn racing_creates_never_take_an_account_past_its_tenants() {
    let (racer, _) = Client::new_user("racer").await;
    let attempts = (0..6).map(|_| {
        let racer = racer.clone();
        async move { racer.post("/tenants", json!({"name": unique("race"), "plan": "free"})).await }
    });
    let replies = futures::future::join_all(attempts).await;
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| [201, 403].contains(s)), "{statuses:?}");
    assert_eq!(racer.get("/tenants").await.body["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_suspended_account_is_locked_out_at_once_while_its_tenants_keep_running() {
    let anon = Client::anonymous();
    let (mallory, email) = Client::new_user("suspect").await;
    let tenant = mallory.create_tenant("suspect", "free").await;
    let app = json!({"name": "web", "spec": {"image": "nginxinc/nginx-unprivileged:1.27", "port": 8080}});
    mallory.created(&format!("/tenants/{tenant}/apps"), app).await;
    wait_ready(&mallory, &format!("/tenants/{tenant}/apps/web")).await;
    let login = json!({"email": email, "password": "correct horse battery"});
    let session = anon.post("/auth/login", login.clone()).await.body;
    let id = mallory.get("/me").await.body["id"].as_str().unwrap().to_string();

    let admin = Client::admin().await;
    let admin_id = admin.get("/me").await.body["id"].as_str().unwrap().to_string();
    let own = admin.post(&format!("/admin/users/{admin_id}/suspend"), json!({})).await;
    assert_eq!(own.status, 409, "an admin cannot lock themself out: {}", own.body);
    let suspended = admin.post(&format!("/admin/users/{id}/suspend"), json!({})).await;
    assert_eq!(suspended.status, 200, "{}", suspended.body);
    assert_eq!(suspended.body["suspended"], true);

    // At once: this is the replica that suspended it.
    let me = mallory.get("/me").await;
    assert_eq!(me.status, 403, "{}", me.body);
    assert!(detail(&me.body).contains("suspended"), "{}", me.body);
    assert_eq!(mallory.get(&format!("/tenants/{tenant}/apps")).await.status, 403);
    let refresh = anon.post("/auth/refresh", json!({"refresh_token": session["refresh_token"]})).await;
    assert_eq!(refresh.status, 401, "suspending ended the sessions: {}", refresh.body);
    let again = anon.post("/auth/login", login.clone()).await;
    assert_eq!(again.status, 403, "{}", again.body);
    assert!(detail(&again.body).contains("suspended"), "{}", again.body);
    let wrong = anon.post("/auth/login", json!({"email": email, "password": "not the password at all"})).await;
    assert_eq!(wrong.status, 401, "a wrong password still learns nothing: {}", wrong.body);

    // The tenant keeps running.
    let deployments = Api::<Deployment>::namespaced(kube_admin().await, &format!("tenant-{tenant}"));
    assert!(deployments.get_opt("web").await.unwrap().is_some());
    let listed = admin.get(&format!("/admin/users/{id}")).await.body;
    assert_eq!((listed["suspended"].clone(), listed["owned_tenants"].clone()), (json!(true), json!([tenant])));

    let back = admin.post(&format!("/admin/users/{id}/reactivate"), json!({})).await;
    assert_eq!(back.status, 200, "{}", back.body);
    assert_eq!(back.body["suspended"], false);
    let fresh = anon.post("/auth/login", login).await;
    assert_eq!(fresh.status, 200, "{}", fresh.body);
}
