//! The main end-to-end test: drives the HTTP API only (plus looks behind it with an admin
//! client), against the real control plane, kwok nodes and the SMTP catcher.

mod support;

/// The SQL backend of this binary's Slipway (tenancy.rs runs on PostgreSQL).
const DATABASE: &str = "sqlite";
/// The cluster of this binary's Slipway: the kwok one (pods become Ready, nothing runs).
const CLUSTER: support::Cluster = support::Cluster::Kwok;

use k8s_openapi::api::{apps::v1::Deployment, core::v1::Service};
use kube::Api;
use serde_json::json;
use std::time::Duration;
use support::{Client, eventually, kube_admin, mails_to};

#[tokio::test]
async fn sign_up_to_ready_app_to_cleanup() {
    let (alice, alice_email) = Client::new_user("alice").await;
    let tenant = alice.create_tenant("shop", "free").await;
    let ns = format!("tenant-{tenant}");
    let t = alice.get(&format!("/tenants/{tenant}")).await;
    assert_eq!(t.status, 200);
    assert_eq!(t.body["namespace"], ns);
    assert_eq!(t.body["plan"], "free");
    let ready = t.body["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap();
    assert_eq!(ready["status"], "True", "the tenant is usable as soon as POST /tenants answers: {}", t.body);

    let apps = format!("/tenants/{tenant}/apps");
    let created = alice
        .post(
            &apps,
            json!({"name": "web", "spec": {"image": "nginxinc/nginx-unprivileged:1.27", "port": 8080, "replicas": 2, "expose": {"type": "NodePort"}}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["spec"]["replicas"], 2);

    // Within 60 s the App is Ready with 2 available replicas and a node port.
    let app_path = format!("{apps}/web");
    let status = eventually(Duration::from_secs(60), "the App to become Ready", || async {
        let r = alice.get(&app_path).await;
        (r.body["status"]["phase"] == "Ready").then_some(r.body["status"].clone())
    })
    .await;
    assert_eq!(status["availableReplicas"], 2);
    let node_port = status["nodePort"].as_i64().expect("a NodePort App reports its node port");
    assert!((30000..=32767).contains(&node_port), "{node_port}");
    assert!(status["url"].as_str().unwrap().ends_with(&format!(":{node_port}")), "{status}");
    let ready = status["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap();
    assert_eq!(ready["status"], "True");
    assert!(ready["observedGeneration"].as_i64().is_some());

    let admin = kube_admin().await;
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), &ns);
    let deployment = deployments.get("web").await.unwrap();
    assert_eq!(deployment.status.unwrap().available_replicas, Some(2));

    // The owner's email with the node port arrives.
    let (subject, body) = eventually(Duration::from_secs(30), "the ready email", || async {
        mails_to(&alice_email).await.into_iter().next()
    })
    .await;
    assert_eq!(subject, "Your app \"web\" is ready on Slipway");
    assert!(body.contains(&format!("node port {node_port}")), "{body}");

    // Another user with a valid token sees neither the tenant nor its App.
    let (mallory, _) = Client::new_user("mallory").await;
    assert_eq!(mallory.get(&format!("/tenants/{tenant}")).await.status, 404);
    assert_eq!(mallory.get(&app_path).await.status, 404);
    assert_eq!(mallory.delete(&app_path).await.status, 404);
    assert_eq!(mallory.get("/tenants").await.body["items"], json!([]));

    // Deleting the App removes its Deployment and Service.
    assert_eq!(alice.delete(&app_path).await.status, 204);
    let services: Api<Service> = Api::namespaced(admin, &ns);
    eventually(Duration::from_secs(60), "the Deployment and Service to be garbage-collected", || async {
        let gone =
            deployments.get_opt("web").await.unwrap().is_none() && services.get_opt("web").await.unwrap().is_none();
        gone.then_some(())
    })
    .await;
    assert_eq!(alice.get(&app_path).await.status, 404);
    // Exactly one ready email, however many reconciles ran.
    assert_eq!(mails_to(&alice_email).await.len(), 1);
}
