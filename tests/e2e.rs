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
use support::{Client, eventually, kube_admin, mails_to, unique};

#[tokio::test]
async fn sign_up_to_ready_app_to_cleanup() {
    let (alice, alice_email) = Client::new_user("alice").await;
    // Not `create_tenant`, which waits for a tenant slower than the API's own wait: this test
    // holds the API to answering a usable tenant, and to reads that never go back from it.
    alice.entitle("free").await;
    let tenant = unique("shop");
    let created = alice.post("/tenants", json!({"name": tenant, "plan": "free"})).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let ns = format!("tenant-{tenant}");
    for (what, t) in [("POST /tenants", created), ("the GET after it", alice.get(&format!("/tenants/{tenant}")).await)]
    {
        assert_eq!(t.body["namespace"], ns, "{what}: {}", t.body);
        assert_eq!(t.body["plan"], "free");
        let ready = t.body["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap();
        assert_eq!(
            ready["status"], "True",
            "the tenant is usable as soon as POST /tenants answers ({what}): {}",
            t.body
        );
    }

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

/// Waits until the App at `path` runs revision `number` Ready, and returns the pod template of
/// its Deployment then.
async fn running(
    client: &Client,
    path: &str,
    deployments: &Api<Deployment>,
    number: i64,
) -> k8s_openapi::api::core::v1::PodTemplateSpec {
    eventually(Duration::from_secs(90), &format!("{path} Ready at revision {number}"), || async {
        let status = client.get(path).await.body["status"].clone();
        (status["revision"] == number && status["phase"] == "Ready").then_some(())
    })
    .await;
    deployments.get("web").await.unwrap().spec.unwrap().template
}

/// Changes of what runs are revisions (scaling is not); a rollback restores a revision's exact
/// pod template, is itself a revision, and can be undone; one the plan no longer allows is
/// refused with the plan's words.
#[tokio::test]
async fn revisions_record_what_ran_and_rollbacks_restore_it() {
    let (owner, email) = Client::new_user("rev").await;
    let tenant = owner.create_tenant("rev", "standard").await;
    let path = format!("/tenants/{tenant}/apps/web");
    let host = format!("web.{tenant}.{}", support::INGRESS_DOMAIN);
    let first =
        json!({"image": "nginxinc/nginx-unprivileged:1.27", "port": 8080, "expose": {"type": "Ingress", "host": host}});
    assert_eq!(owner.post(&format!("/tenants/{tenant}/apps"), json!({"name": "web", "spec": first})).await.status, 201);
    let deployments: Api<Deployment> = Api::namespaced(kube_admin().await, &format!("tenant-{tenant}"));
    let template_1 = running(&owner, &path, &deployments, 1).await;

    // A new image, then a new variable on a ClusterIP Service: revisions 2 and 3.
    let mut spec = owner.get(&path).await.body["spec"].clone();
    spec["image"] = json!("nginxinc/nginx-unprivileged:1.28");
    spec["expose"] = json!({"type": "ClusterIP"});
    assert_eq!(owner.put(&path, json!({"spec": spec})).await.status, 200);
    running(&owner, &path, &deployments, 2).await;
    spec["env"] = json!([{"name": "GREETING", "value": "hello"}]);
    assert_eq!(owner.put(&path, json!({"spec": spec})).await.status, 200);
    let template_3 = running(&owner, &path, &deployments, 3).await;
    // Scaling is not a revision.
    let r = owner.put(&format!("{path}/scale"), json!({"replicas": 2})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["spec"]["replicas"], 2);
    eventually(Duration::from_secs(90), "2 available replicas", || async {
        let status = owner.get(&path).await.body["status"].clone();
        (status["availableReplicas"] == 2 && status["phase"] == "Ready").then_some(())
    })
    .await;

    let history = owner.get(&format!("{path}/revisions")).await;
    assert_eq!(history.status, 200, "{}", history.body);
    let items = history.body["items"].as_array().unwrap().clone();
    let numbers: Vec<_> = items.iter().map(|r| r["revision"].as_i64().unwrap()).collect();
    assert_eq!(numbers, [3, 2, 1], "newest first, no revision for scaling");
    assert!(items.iter().all(|r| r["changed_by"] == email.as_str()), "{items:?}");
    assert!(items.iter().all(|r| r["outcome"] == "Healthy"), "{items:?}");
    assert_eq!(items[0]["current"], true);
    assert_eq!(items[0]["spec"]["env"][0]["name"], "GREETING");
    assert!(items[0]["spec"].get("replicas").is_none(), "{}", items[0]);

    // Back to revision 1: its spec and pod template exactly, the replica count kept.
    let r = owner.post(&format!("{path}/rollback"), json!({"revision": 1})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["spec"]["image"], "nginxinc/nginx-unprivileged:1.27");
    assert_eq!(r.body["spec"]["replicas"], 2);
    assert_eq!(r.body["spec"]["expose"]["type"], "Ingress");
    assert_eq!(running(&owner, &path, &deployments, 4).await, template_1);
    let newest = owner.get(&format!("{path}/revisions")).await.body["items"][0].clone();
    assert_eq!((newest["revision"].as_i64(), newest["restores"].as_i64()), (Some(4), Some(1)), "{newest}");

    // Undo the rollback: the previous healthy revision, 3.
    let r = owner.post(&format!("{path}/rollback"), json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(running(&owner, &path, &deployments, 5).await, template_3);

    // kubectl users see the same history.
    let kubectl: Api<k8s_openapi::api::apps::v1::ControllerRevision> = support::member_api(&email, &tenant).await;
    let listed = kubectl.list(&kube::api::ListParams::default().labels("slipway.dev/app=web")).await.unwrap();
    assert_eq!(listed.items.len(), 5);

    // A revision not kept, and one the plan no longer allows (Ingress, after a move to "free"),
    // are refused with what to fix.
    let r = owner.post(&format!("{path}/rollback"), json!({"revision": 42})).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.body["errors"][0]["field"], "revision", "{}", r.body);
    let r = Client::admin().await.put(&format!("/admin/tenants/{tenant}/plan"), json!({"plan": "free"})).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = owner.post(&format!("{path}/rollback"), json!({"revision": 1})).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body["detail"].as_str().unwrap().contains("spec.expose.type"), "{}", r.body);
    assert_eq!(owner.get(&path).await.body["status"]["revision"], 5, "a refused rollback changes nothing");
}
