//! Attacks a hostile tenant tried that Slipway held (issue 8), kept as regression tests
//! through the real kube-apiserver: a member acts with kubectl exactly as the API acts for
//! them (impersonated, with the tenant's group) and Kubernetes itself must refuse; forged
//! tokens must not get past the API.

mod support;

/// The SQL backend of this binary's Slipway.
const DATABASE: &str = "sqlite";
/// The cluster of this binary's Slipway: the kwok one (pods become Ready, nothing runs).
const CLUSTER: support::Cluster = support::Cluster::Kwok;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        core::v1::{ConfigMap, Endpoints, Namespace, Pod, ResourceQuota, Service},
        discovery::v1::EndpointSlice,
        networking::v1::NetworkPolicy,
        rbac::v1::RoleBinding,
    },
    serde::de::DeserializeOwned,
};
use kube::{
    Api,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use slipway_crds::App;
use std::fmt::Debug;
use support::{Client, member_client};

/// A tenant on "free" and a Kubernetes client acting as its owner (a member, through the
/// tenant's group).
async fn member(prefix: &str) -> (String, kube::Client) {
    let (owner, email) = Client::new_user(prefix).await;
    let tenant = owner.create_tenant(prefix, "free").await;
    let client = member_client(&email, &tenant).await;
    (tenant, client)
}

/// Asserts that Kubernetes RBAC refused `result` (403).
fn forbidden<T: Debug>(what: &str, result: Result<T, kube::Error>) {
    assert!(matches!(&result, Err(kube::Error::Api(s)) if s.code == 403), "{what} must be forbidden: {result:?}");
}

/// Creates `object` (JSON) as `client` in `ns`, asserting that RBAC refuses it.
async fn create_forbidden<K>(client: &kube::Client, ns: &str, what: &str, object: Value)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + DeserializeOwned
        + serde::Serialize
        + Clone
        + Debug,
{
    let object: K = serde_json::from_value(object).unwrap();
    forbidden(what, Api::<K>::namespaced(client.clone(), ns).create(&PostParams::default(), &object).await);
}

#[tokio::test]
async fn a_member_creates_no_workloads_network_objects_or_bindings_directly() {
    let (tenant, client) = member("atk-wl").await;
    let ns = format!("tenant-{tenant}");
    let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    create_forbidden::<Pod>(&client, &ns, "a Pod", pod).await;
    let deployment = json!({"metadata": {"name": "d"}, "spec": {
        "selector": {"matchLabels": {"a": "b"}},
        "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    }});
    create_forbidden::<Deployment>(&client, &ns, "a Deployment", deployment).await;
    let external = json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}], "externalIPs": ["192.0.2.10"]}});
    create_forbidden::<Service>(&client, &ns, "a Service with externalIPs", external).await;
    let endpoints =
        json!({"metadata": {"name": "e"}, "subsets": [{"addresses": [{"ip": "192.0.2.11"}], "ports": [{"port": 80}]}]});
    create_forbidden::<Endpoints>(&client, &ns, "Endpoints", endpoints).await;
    let slice =
        json!({"metadata": {"name": "es"}, "addressType": "IPv4", "endpoints": [{"addresses": ["192.0.2.12"]}]});
    create_forbidden::<EndpointSlice>(&client, &ns, "an EndpointSlice", slice).await;
    let binding = json!({"metadata": {"name": "mine"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": format!("slipway:tenant:{tenant}")}]});
    create_forbidden::<RoleBinding>(&client, &ns, "a RoleBinding", binding).await;
}

#[tokio::test]
async fn a_member_cannot_loosen_the_tenants_guard_rails() {
    let (tenant, client) = member("atk-rails").await;
    let ns = format!("tenant-{tenant}");
    let privileged =
        Patch::Merge(json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "privileged"}}}));
    forbidden(
        "labelling the namespace",
        Api::<Namespace>::all(client.clone()).patch(&ns, &PatchParams::default(), &privileged).await,
    );
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &ns);
    forbidden(
        "deleting the default-deny policy",
        policies.delete("slipway-default-deny", &DeleteParams::default()).await,
    );
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), &ns);
    forbidden("deleting the plan's quota", quotas.delete("slipway-plan", &DeleteParams::default()).await);
    let raise = Patch::Merge(json!({"spec": {"hard": {"limits.cpu": "1000"}}}));
    forbidden("raising the plan's quota", quotas.patch("slipway-plan", &PatchParams::default(), &raise).await);

    // Status is the controller's: a member cannot mark an App Ready or give it a URL.
    let apps: Api<App> = Api::namespaced(client.clone(), &ns);
    let app: App = serde_json::from_value(json!({
        "apiVersion": "slipway.dev/v1alpha1", "kind": "App", "metadata": {"name": "web"}, "spec": {"image": "nginx"}
    }))
    .unwrap();
    apps.create(&PostParams::default(), &app).await.expect("a member creates Apps");
    let fake = Patch::Merge(json!({"status": {"phase": "Ready", "url": "http://phish.example.com/"}}));
    forbidden("patching apps/status", apps.patch_status("web", &PatchParams::default(), &fake).await);
}

#[tokio::test]
async fn a_member_cannot_touch_the_reservation_ledgers() {
    let (tenant, client) = member("atk-ledger").await;
    let ledgers: Api<ConfigMap> = Api::namespaced(client, "slipway-system");
    forbidden("listing ledgers", ledgers.list(&ListParams::default()).await);
    let mine = ListParams::default().labels(&format!("slipway.dev/tenant={tenant}"));
    forbidden("listing the tenant's own ledger", ledgers.list(&mine).await);
    forbidden("deleting ledgers", ledgers.delete_collection(&DeleteParams::default(), &ListParams::default()).await);
    let forged: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "slipway-reservations-forged"}})).unwrap();
    forbidden("writing a ledger", ledgers.create(&PostParams::default(), &forged).await);
}

#[tokio::test]
async fn members_create_slipway_objects_only_in_their_own_tenant() {
    let (_, client) = member("atk-where").await;
    let (other, _) = member("atk-other").await;
    let app = json!({"apiVersion": "slipway.dev/v1alpha1", "kind": "App", "metadata": {"name": "web"}, "spec": {"image": "nginx"}});
    for ns in ["default", "kube-system", "slipway-system", &format!("tenant-{other}")] {
        create_forbidden::<App>(&client, ns, &format!("an App in {ns}"), app.clone()).await;
    }
}

/// A JWT over `claims` with `header`, signed with HS256 and `key`.
fn signed(header: &jsonwebtoken::Header, claims: &Value, key: &[u8]) -> String {
    jsonwebtoken::encode(header, claims, &jsonwebtoken::EncodingKey::from_secret(key)).unwrap()
}

#[tokio::test]
async fn forged_expired_and_foreign_tokens_are_refused() {
    let (user, email) = Client::new_user("atk-jwt").await;
    // The header the API writes (HS256, `kid` naming its key), from a real login.
    let login = user.post("/auth/login", json!({"email": email, "password": "correct horse battery"})).await;
    let ours = jsonwebtoken::decode_header(login.body["access_token"].as_str().unwrap()).unwrap();
    let unknown_kid = jsonwebtoken::Header { kid: Some("0123456789abcdef".into()), ..ours.clone() };
    let signed = |claims: &Value, key: &[u8]| signed(&ours, claims, key);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    // The test API's key, issuer and audience (tests/support).
    let key = [9_u8; 32];
    let claims = |iss: &str, aud: &str, exp: u64| json!({"sub": "someone", "email": email, "sid": "s", "iss": iss, "aud": aud, "iat": now, "exp": exp});
    let valid = claims("slipway", "slipway-api", now + 600);
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(valid.to_string())
    );
    // Each refused for its own reason, before anything else is looked at.
    let tokens = [
        ("alg none", unsigned, "malformed"),
        ("another key", signed(&valid, &[8; 32]), "signature is invalid"),
        ("a key the API does not know", self::signed(&unknown_kid, &valid, &[8; 32]), "does not know"),
        ("expired", signed(&claims("slipway", "slipway-api", now - 60), &key), "expired"),
        ("wrong audience", signed(&claims("slipway", "someone-else", now + 600), &key), "not issued for this API"),
        ("wrong issuer", signed(&claims("evil", "slipway-api", now + 600), &key), "not issued for this API"),
    ];
    let http = reqwest::Client::new();
    for (what, token, why) in tokens {
        let r = http.get(format!("{}/tenants", support::slipway().base_url)).bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{what}");
        let body: Value = r.json().await.unwrap();
        assert!(body["detail"].as_str().unwrap().contains(why), "{what}: {body}");
    }
}
