//! Databases and Workspaces end to end, through the HTTP API against the real control plane:
//! kwok runs their pods, the hostPath provisioner binds their volumes, MailHog receives the
//! access emails. An admin client looks behind the API at what Kubernetes holds.

mod support;

/// The SQL backend of this binary's Slipway.
const DATABASE: &str = "sqlite";
/// The cluster of this binary's Slipway: the kwok one (pods become Ready, nothing runs).
const CLUSTER: support::Cluster = support::Cluster::Kwok;

use k8s_openapi::api::{
    apps::v1::StatefulSet,
    core::v1::{PersistentVolumeClaim, Pod, Secret, Service},
    events::v1::Event,
};
use kube::{Api, ResourceExt, api::ListParams};
use serde_json::json;
use std::time::Duration;
use support::{Client, eventually, kube_admin, mails_to, wait_ready};

const ED25519: &str = include_str!("../policies/tests/ssh-keys/ed25519.pub");
const ECDSA: &str = include_str!("../policies/tests/ssh-keys/ecdsa-p256.pub");

async fn bound(claims: &Api<PersistentVolumeClaim>, name: &str) -> PersistentVolumeClaim {
    eventually(Duration::from_secs(30), &format!("PVC {name} to be Bound"), || async {
        let pvc = claims.get_opt(name).await.unwrap()?;
        (pvc.status.as_ref()?.phase.as_deref() == Some("Bound")).then_some(pvc)
    })
    .await
}

async fn gone<K>(api: &Api<K>, name: &str)
where
    K: kube::Resource + Clone + std::fmt::Debug + for<'de> k8s_openapi::serde::Deserialize<'de>,
{
    eventually(Duration::from_secs(60), &format!("{name} to be deleted"), || async {
        api.get_opt(name).await.unwrap().is_none().then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_database_is_provisioned_explained_and_cleaned_up_by_its_policy() {
    let (alice, alice_email) = Client::new_user("dba").await;
    let tenant = alice.create_tenant("data", "standard").await;
    let ns = format!("tenant-{tenant}");
    let dbs = format!("/tenants/{tenant}/databases");

    let created = alice
        .post(
            &dbs,
            json!({"name": "orders", "spec": {"engine": "postgres", "version": "17", "storage": "1Gi", "expose": {"type": "NodePort"}, "deletionPolicy": "Delete"}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["spec"]["cpu"], "500m", "the plan's default CPU limit is filled in");
    let cache = alice.post(&dbs, json!({"name": "cache", "spec": {"engine": "redis", "version": "7"}})).await;
    assert_eq!(cache.status, 201, "{}", cache.body);
    assert_eq!(cache.body["spec"]["deletionPolicy"], "Retain", "Retain is the default");

    let status = wait_ready(&alice, &format!("{dbs}/orders")).await;
    assert_eq!(status["host"], format!("orders.{ns}.svc.cluster.local"));
    assert_eq!(status["port"], 5432);
    assert_eq!(status["secretName"], "orders-credentials");
    let node_port = status["nodePort"].as_i64().expect("a NodePort Database reports its node port");
    wait_ready(&alice, &format!("{dbs}/cache")).await;

    let admin = kube_admin().await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(admin.clone(), &ns);
    let pvc = bound(&claims, "data-orders-0").await;
    assert_eq!(pvc.spec.unwrap().resources.unwrap().requests.unwrap()["storage"].0, "1Gi");
    bound(&claims, "data-cache-0").await;
    let sets: Api<StatefulSet> = Api::namespaced(admin.clone(), &ns);
    assert_eq!(sets.get("orders").await.unwrap().owner_references()[0].name, "orders");
    let services: Api<Service> = Api::namespaced(admin.clone(), &ns);
    let headless = services.get("orders-headless").await.unwrap();
    assert_eq!(headless.spec.unwrap().cluster_ip.as_deref(), Some("None"));

    // Members read the credentials through the API; never cached.
    let creds = alice.get(&format!("{dbs}/orders/credentials")).await;
    assert_eq!(creds.status, 200, "{}", creds.body);
    let password = creds.body["password"].as_str().unwrap().to_string();
    assert_eq!(password.len(), 32);
    assert_eq!(creds.body["username"], "app");
    assert_eq!(creds.body["dbname"], "app");
    assert_eq!(creds.body["port"], 5432);
    assert_eq!(creds.body["uri"], format!("postgresql://app:{password}@orders.{ns}.svc.cluster.local:5432/app"));

    // The email says where and how, with the node port, and never the password.
    let mails = eventually(Duration::from_secs(30), "both ready emails", || async {
        let mails = mails_to(&alice_email).await;
        (mails.len() >= 2).then_some(mails)
    })
    .await;
    let (_, body) =
        mails.iter().find(|(s, _)| s == "Your database \"orders\" is ready on Slipway").expect("orders mail");
    assert!(body.contains(&format!("orders.{ns}.svc.cluster.local")), "{body}");
    assert!(body.contains("Port:      5432"), "{body}");
    assert!(body.contains(&format!("node port {node_port}")), "{body}");
    assert!(body.contains(&format!("/tenants/{tenant}/databases/orders/credentials")), "{body}");
    assert!(!body.contains(&password), "the password must never be emailed");
    let events: Api<Event> = Api::namespaced(admin.clone(), &ns);
    eventually(Duration::from_secs(30), "Events on the Database", || async {
        let reasons: Vec<String> = events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("orders"))
            .filter_map(|e| e.reason)
            .collect();
        (reasons.iter().any(|r| r == "Ready") && reasons.iter().any(|r| r == "OwnersNotified")).then_some(())
    })
    .await;
    let cache_password = alice.get(&format!("{dbs}/cache/credentials")).await.body["password"].clone();
    assert!(mails.iter().all(|(_, b)| !b.contains(cache_password.as_str().unwrap())));

    // Another tenant's member can read neither through the API nor through Kubernetes.
    let (mallory, mallory_email) = Client::new_user("mallory").await;
    let theirs = mallory.create_tenant("snoop", "free").await;
    assert_eq!(mallory.get(&format!("{dbs}/orders/credentials")).await.status, 404);
    assert_eq!(mallory.get(&format!("{dbs}/orders")).await.status, 404);
    let as_mallory = support::role_client(&mallory_email, &theirs, "owner").await;
    let stolen = Api::<Secret>::namespaced(as_mallory, &ns).get("orders-credentials").await;
    assert!(matches!(&stolen, Err(kube::Error::Api(s)) if s.code == 403), "RBAC must refuse: {stolen:?}");

    // Plans decide engines and node ports.
    let free = format!("/tenants/{theirs}/databases");
    let r = mallory
        .post(
            &free,
            json!({"name": "pg", "spec": {"engine": "postgres", "version": "17", "expose": {"type": "NodePort"}}}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body["detail"].as_str().unwrap().contains("NodePort is not allowed for Databases by the plan \"free\""));
    let r = mallory.post(&free, json!({"name": "my", "spec": {"engine": "mysql", "version": "8.4"}})).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body["detail"].as_str().unwrap().contains(r#""mysql" is not offered by the plan "free""#), "{}", r.body);

    // Delete: the data and the Secret go. Retain: they stay for a Database of the same name.
    assert_eq!(alice.delete(&format!("{dbs}/orders")).await.status, 204);
    assert_eq!(alice.delete(&format!("{dbs}/cache")).await.status, 204);
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), &ns);
    gone(&sets, "orders").await;
    gone(&sets, "cache").await;
    gone(&claims, "data-orders-0").await;
    gone(&secrets, "orders-credentials").await;
    gone(&services, "orders").await;
    let kept = claims.get_opt("data-cache-0").await.unwrap().expect("Retain keeps the data volume");
    assert!(secrets.get_opt("cache-credentials").await.unwrap().is_some(), "Retain keeps the credentials");

    // A Database created again under the same name finds its data and the password that opens it.
    let again = alice.post(&dbs, json!({"name": "cache", "spec": {"engine": "redis", "version": "7"}})).await;
    assert_eq!(again.status, 201, "{}", again.body);
    wait_ready(&alice, &format!("{dbs}/cache")).await;
    assert_eq!(bound(&claims, "data-cache-0").await.uid(), kept.uid(), "the same volume");
    let creds = alice.get(&format!("{dbs}/cache/credentials")).await;
    assert_eq!(creds.body["password"], cache_password, "the same password");

    // Another engine is never started on retained data: the Database waits for a decision.
    assert_eq!(alice.delete(&format!("{dbs}/cache")).await.status, 204);
    gone(&sets, "cache").await;
    let other = alice.post(&dbs, json!({"name": "cache", "spec": {"engine": "postgres", "version": "17"}})).await;
    assert_eq!(other.status, 201, "{}", other.body);
    let condition = eventually(Duration::from_secs(30), "the mismatch to be reported", || async {
        let r = alice.get(&format!("{dbs}/cache")).await;
        let ready = r.body["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == "Ready")?.clone();
        (ready["reason"] == "RetainedDataMismatch").then_some(ready)
    })
    .await;
    assert_eq!(condition["status"], "False");
    assert!(condition["message"].as_str().unwrap().contains("hold redis 7 data, not postgres 17"), "{condition}");
    assert!(sets.get_opt("cache").await.unwrap().is_none(), "no StatefulSet on foreign data");
    assert_eq!(alice.delete(&format!("{dbs}/cache")).await.status, 204);
    assert_eq!(alice.get(&format!("{dbs}/orders")).await.status, 404);
    let mails = eventually(Duration::from_secs(30), "the re-created Database's email", || async {
        let mails = mails_to(&alice_email).await;
        (mails.len() >= 3).then_some(mails)
    })
    .await;
    assert_eq!(mails.len(), 3, "one email per Database object");
}

#[tokio::test]
async fn a_workspace_is_reachable_over_ssh_and_keeps_its_home_across_key_rotation() {
    let (ada, ada_email) = Client::new_user("ada").await;
    let tenant = ada.create_tenant("lab", "free").await;
    let ns = format!("tenant-{tenant}");
    let wss = format!("/tenants/{tenant}/workspaces");

    let bad = ada.post(&wss, json!({"name": "box", "spec": {"sshKeys": ["ssh-dss AAAAB3NzaC1kc3M="]}})).await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert_eq!(bad.body["errors"][0]["field"], "spec.sshKeys[0]");

    let created = ada
        .post(&wss, json!({"name": "box", "spec": {"cpu": "500m", "memory": "256Mi", "storage": "2Gi", "sshKeys": [ED25519.trim()]}}))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["spec"]["owner"], ada_email);
    let path = format!("{wss}/box");
    let status = wait_ready(&ada, &path).await;
    let node_port = status["nodePort"].as_i64().unwrap();
    assert!((30000..=32767).contains(&node_port), "{node_port}");
    let host = status["host"].as_str().unwrap();
    assert_eq!(status["sshCommand"], format!("ssh -p {node_port} dev@{host}"));

    let admin = kube_admin().await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(admin.clone(), &ns);
    let home = bound(&claims, "home-box-0").await;
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
    let pod = pods.get("box-0").await.unwrap();
    let security = pod.spec.as_ref().unwrap().security_context.clone().unwrap();
    assert_eq!(security.run_as_non_root, Some(true), "admitted under the restricted Pod Security Standard");

    let (subject, body) = eventually(Duration::from_secs(30), "the workspace email", || async {
        mails_to(&ada_email).await.into_iter().next()
    })
    .await;
    assert_eq!(subject, "Your workspace \"box\" is ready on Slipway");
    assert!(body.contains(&format!("ssh -p {node_port} dev@{host}")), "{body}");
    assert!(body.contains("CPU:       500m") && body.contains("Memory:    256Mi"), "{body}");
    assert!(body.contains(&format!("PUT /api/v1/tenants/{tenant}/workspaces/box")), "{body}");

    // Rotating keys rewrites authorized_keys in place: same pod, same home volume.
    let rotated = ada.put(&path, json!({"spec": {"cpu": "500m", "memory": "256Mi", "sshKeys": [ECDSA.trim()]}})).await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), &ns);
    eventually(Duration::from_secs(30), "the new key in authorized_keys", || async {
        let s = secrets.get("box-ssh-keys").await.unwrap();
        let keys = String::from_utf8(s.data?.get("authorized_keys")?.0.clone()).ok()?;
        (keys == format!("{}\n", ECDSA.trim())).then_some(())
    })
    .await;
    wait_ready(&ada, &path).await;
    assert_eq!(pods.get("box-0").await.unwrap().uid(), pod.uid(), "rotation must not restart the workspace");
    assert_eq!(claims.get("home-box-0").await.unwrap().uid(), home.uid(), "the home volume stays");

    // The plan allows one Workspace; other email domains are refused.
    let second = ada.post(&wss, json!({"name": "box2", "spec": {"sshKeys": [ED25519.trim()]}})).await;
    assert_eq!(second.status, 422, "{}", second.body);
    assert!(second.body["detail"].as_str().unwrap().contains("allows 1"), "{}", second.body);
    let (outsider, _) = Client::new_user_at("eve", "elsewhere.test").await;
    let theirs = outsider.create_tenant("eve", "free").await;
    let refused = outsider
        .post(&format!("/tenants/{theirs}/workspaces"), json!({"name": "box", "spec": {"sshKeys": [ED25519.trim()]}}))
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body["detail"].as_str().unwrap().contains("example.com"), "{}", refused.body);

    // Deleting removes everything, the home volume included.
    assert_eq!(ada.delete(&path).await.status, 204);
    gone(&Api::<StatefulSet>::namespaced(admin.clone(), &ns), "box").await;
    gone(&Api::<Service>::namespaced(admin.clone(), &ns), "box").await;
    gone(&secrets, "box-ssh-keys").await;
    gone(&claims, "home-box-0").await;
    assert_eq!(mails_to(&ada_email).await.len(), 1, "exactly one workspace email");
}
