//! Teams against the real control plane: invitations followed from the real mail, roles that
//! the API and Kubernetes RBAC both enforce (through the API and through kubectl as that
//! person), Workspaces of members, and the last owner who stays.

mod support;

/// The SQL backend of this binary's Slipway (tests/accounts.rs runs on PostgreSQL).
const DATABASE: &str = "sqlite";
/// The cluster of this binary's Slipway: the kwok one.
const CLUSTER: support::Cluster = support::Cluster::Kwok;

use k8s_openapi::api::authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec};
use kube::{Api, api::PostParams};
use serde_json::{Value, json};
use slipway_crds::{App, AppSpec, MemberRole, Tenant, TenantMember};
use std::time::Duration;
use support::{Client, eventually, kube_admin, mails_to, role_client};

const ED25519: &str = include_str!("../policies/tests/ssh-keys/ed25519.pub");

fn detail(body: &Value) -> &str {
    body["detail"].as_str().unwrap_or_default()
}

/// An audit event's actor, action and object.
fn who_did_what(event: &Value) -> (&str, &str, &str) {
    let field = |name: &str| event[name].as_str().unwrap();
    (field("actor"), field("action"), field("object"))
}

/// The token of the newest invitation mailed to `email`.
async fn invitation_token(email: &str) -> String {
    eventually(Duration::from_secs(60), "the invitation email", || async {
        let mails = mails_to(email).await;
        let (_, body) = mails.into_iter().rev().find(|(subject, _)| subject.starts_with("You are invited"))?;
        let link = body.split_whitespace().find(|w| w.contains("/invitations/accept?token="))?.to_string();
        Some(link.rsplit_once("token=").unwrap().1.to_string())
    })
    .await
}

/// `inviter` invites `email` to `tenant` as `role`, and `invitee` accepts with the mailed link.
async fn join(inviter: &Client, tenant: &str, invitee: &Client, email: &str, role: &str) {
    let r = inviter.post(&format!("/tenants/{tenant}/invitations"), json!({"email": email, "role": role})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let token = invitation_token(email).await;
    let r = invitee.post("/invitations/accept", json!({"token": token})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!({"tenant": tenant, "role": role}));
}

/// Whether `email` with `role` in `tenant` may `verb` the `resource` (Kubernetes' own answer,
/// a SelfSubjectAccessReview made as that person, as kubectl auth can-i does).
async fn can(email: &str, tenant: &str, role: &str, verb: &str, resource: &str, name: Option<&str>) -> bool {
    let (group, namespace) = match resource {
        "tenants" => ("slipway.dev", None),
        "apps" => ("slipway.dev", Some(format!("tenant-{tenant}"))),
        _ => ("", Some(format!("tenant-{tenant}"))),
    };
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                group: Some(group.into()),
                resource: Some(resource.into()),
                verb: Some(verb.into()),
                namespace,
                name: name.map(Into::into),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api = Api::<SelfSubjectAccessReview>::all(role_client(email, tenant, role).await);
    api.create(&PostParams::default(), &review).await.unwrap().status.unwrap().allowed
}

#[tokio::test]
async fn a_member_invited_by_mail_works_in_the_tenant_but_manages_nobody() {
    let (owner, owner_email) = Client::new_user("team-owner").await;
    let tenant = owner.create_tenant("team", "free").await;
    let (bob, bob_email) = Client::new_user("team-bob").await;
    let (eve, _) = Client::new_user("team-eve").await;
    assert_eq!(eve.get(&format!("/tenants/{tenant}/members")).await.status, 404, "outsiders see nothing");

    let r = owner.post(&format!("/tenants/{tenant}/invitations"), json!({"email": bob_email, "role": "member"})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let token = invitation_token(&bob_email).await;
    let stolen = eve.post("/invitations/accept", json!({"token": token})).await;
    assert_eq!(stolen.status, 403, "the link alone lets nobody in: {}", stolen.body);
    let joined = bob.post("/invitations/accept", json!({"token": token})).await;
    assert_eq!(joined.status, 200, "{}", joined.body);
    let again = bob.post("/invitations/accept", json!({"token": token})).await;
    assert_eq!(again.status, 400, "single-use: {}", again.body);

    let people = owner.get(&format!("/tenants/{tenant}/members")).await.body;
    let roles: Vec<(&str, &str)> = people["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["email"].as_str().unwrap(), m["role"].as_str().unwrap()))
        .collect();
    assert_eq!(roles, [(owner_email.as_str(), "owner"), (bob_email.as_str(), "member")]);
    let stored = Api::<Tenant>::all(kube_admin().await).get(&tenant).await.unwrap();
    assert_eq!(stored.spec.members, [TenantMember { email: bob_email.clone(), role: MemberRole::Member }]);
    assert_eq!(bob.get("/tenants").await.body["items"][0]["role"], "member");

    // A member works: Apps, and Workspaces of their own.
    let apps = format!("/tenants/{tenant}/apps");
    bob.created(&apps, json!({"name": "web", "spec": {"image": "nginxinc/nginx-unprivileged:1.27", "port": 8080}}))
        .await;
    let box_ = json!({"name": "bobs", "spec": {"sshKeys": [ED25519.trim()]}});
    let created = bob.created(&format!("/tenants/{tenant}/workspaces"), box_).await;
    assert_eq!(created["spec"]["owner"], bob_email.as_str());

    // ... and manages nobody, through the API ...
    let invite =
        bob.post(&format!("/tenants/{tenant}/invitations"), json!({"email": "x@example.com", "role": "member"})).await;
    assert_eq!(invite.status, 403, "{}", invite.body);
    assert!(detail(&invite.body).contains("members cannot manage the people"), "{}", invite.body);
    let promote = bob.patch(&format!("/tenants/{tenant}/members/{bob_email}"), json!({"role": "admin"})).await;
    assert_eq!(promote.status, 403, "{}", promote.body);
    assert_eq!(bob.delete(&format!("/tenants/{tenant}/members/{owner_email}")).await.status, 403);
    let delete = bob.delete(&format!("/tenants/{tenant}")).await;
    assert_eq!(delete.status, 403, "{}", delete.body);

    // ... and through kubectl, where RBAC gives each role its rights.
    assert!(can(&bob_email, &tenant, "member", "create", "apps", None).await);
    assert!(!can(&bob_email, &tenant, "member", "delete", "tenants", Some(&tenant)).await);
    assert!(!can(&bob_email, &tenant, "member", "delete", "persistentvolumeclaims", None).await);
    assert!(can(&bob_email, &tenant, "admin", "delete", "persistentvolumeclaims", None).await);
    assert!(!can(&bob_email, &tenant, "admin", "delete", "tenants", Some(&tenant)).await);
    assert!(can(&owner_email, &tenant, "owner", "delete", "tenants", Some(&tenant)).await);
    assert!(!can(&owner_email, &tenant, "owner", "delete", "tenants", Some("someone-else")).await);

    // Leaving takes the namespace away at once.
    assert_eq!(bob.delete(&format!("/tenants/{tenant}/members/{bob_email}")).await.status, 204);
    assert_eq!(bob.get(&apps).await.status, 404);
    let stored = Api::<Tenant>::all(kube_admin().await).get(&tenant).await.unwrap();
    assert!(stored.spec.members.is_empty(), "{:?}", stored.spec.members);
}

#[tokio::test]
async fn admins_manage_admins_and_members_and_the_last_owner_stays() {
    let (owner, owner_email) = Client::new_user("lead-owner").await;
    let tenant = owner.create_tenant("lead", "free").await;
    let (carol, carol_email) = Client::new_user("lead-carol").await;
    let (dave, dave_email) = Client::new_user("lead-dave").await;
    join(&owner, &tenant, &carol, &carol_email, "admin").await;

    let members = format!("/tenants/{tenant}/members");
    let as_owner =
        carol.post(&format!("/tenants/{tenant}/invitations"), json!({"email": dave_email, "role": "owner"})).await;
    assert_eq!(as_owner.status, 403, "admins do not make owners: {}", as_owner.body);
    join(&carol, &tenant, &dave, &dave_email, "member").await;
    let twice =
        carol.post(&format!("/tenants/{tenant}/invitations"), json!({"email": dave_email, "role": "member"})).await;
    assert_eq!(twice.status, 409, "{}", twice.body);

    let promoted = carol.patch(&format!("{members}/{dave_email}"), json!({"role": "admin"})).await;
    assert_eq!(promoted.status, 200, "{}", promoted.body);
    assert_eq!(promoted.body["role"], "admin");
    let demote_owner = carol.patch(&format!("{members}/{owner_email}"), json!({"role": "member"})).await;
    assert_eq!(demote_owner.status, 403, "{}", demote_owner.body);
    assert_eq!(carol.delete(&format!("{members}/{owner_email}")).await.status, 403);
    let dave_id = dave.get("/me").await.body["id"].as_str().unwrap().to_string();
    assert_eq!(carol.delete(&format!("{members}/{dave_id}")).await.status, 204, "by account id too");
    assert_eq!(dave.get(&format!("/tenants/{tenant}")).await.status, 404);

    let leave = owner.delete(&format!("{members}/{owner_email}")).await;
    assert_eq!(leave.status, 409, "{}", leave.body);
    assert!(detail(&leave.body).contains("is the last owner"), "{}", leave.body);
    let handover = owner.patch(&format!("{members}/{carol_email}"), json!({"role": "owner"})).await;
    assert_eq!(handover.status, 200, "{}", handover.body);
    assert_eq!(owner.delete(&format!("{members}/{owner_email}")).await.status, 204, "one owner remains");
    let alone = carol.patch(&format!("{members}/{carol_email}"), json!({"role": "admin"})).await;
    assert_eq!(alone.status, 409, "{}", alone.body);
    let stored = Api::<Tenant>::all(kube_admin().await).get(&tenant).await.unwrap();
    let owners: Vec<&str> = stored.spec.owners.iter().map(|o| o.email.as_str()).collect();
    assert_eq!(owners, [carol_email.as_str()]);
    assert!(can(&carol_email, &tenant, "owner", "delete", "tenants", Some(&tenant)).await);
    assert_eq!(carol.delete(&format!("/tenants/{tenant}")).await.status, 204, "the new owner may delete it");
}

#[tokio::test]
async fn the_audit_trail_says_who_did_what_and_only_owners_and_admins_read_it() {
    let (owner, owner_email) = Client::new_user("audit-owner").await;
    let tenant = owner.create_tenant("audit", "free").await;
    let (bob, bob_email) = Client::new_user("audit-bob").await;
    join(&owner, &tenant, &bob, &bob_email, "member").await;
    let app = json!({"name": "web", "spec": {"image": "nginxinc/nginx-unprivileged:1.27", "port": 8080}});
    bob.created(&format!("/tenants/{tenant}/apps"), app).await;
    let refused =
        bob.post(&format!("/tenants/{tenant}/invitations"), json!({"email": "z@example.com", "role": "member"})).await;
    assert_eq!(refused.status, 403);

    let audit = format!("/tenants/{tenant}/audit");
    assert_eq!(bob.get(&audit).await.status, 403, "members do not read the trail");
    let (eve, _) = Client::new_user("audit-eve").await;
    eve.create_tenant("audit-eve", "free").await;
    assert_eq!(eve.get(&audit).await.status, 404, "another tenant's owner does not even see it exists");

    let items = owner.get(&audit).await.body["items"].as_array().unwrap().clone();
    let seen: Vec<_> = items.iter().map(|e| (who_did_what(e), e["result"].as_str().unwrap())).collect();
    let invitations = format!("/api/v1/tenants/{tenant}/invitations");
    let web = format!("/api/v1/tenants/{tenant}/apps/web");
    assert_eq!(
        seen,
        [
            ((bob_email.as_str(), "POST /api/v1/tenants/{tenant}/invitations", invitations.as_str()), "failure"),
            ((bob_email.as_str(), "POST /api/v1/tenants/{tenant}/apps", web.as_str()), "success"),
            ((owner_email.as_str(), "POST /api/v1/tenants/{tenant}/invitations", invitations.as_str()), "success"),
        ],
        "newest first; the accept and the tenant's creation name no tenant in their path"
    );
    assert_eq!(items[0]["status"], 403);
    assert_eq!(items[0]["client"], "127.0.0.1");

    let bobs = owner.get(&format!("{audit}?actor={bob_email}")).await.body;
    assert_eq!(bobs["items"].as_array().unwrap().len(), 2);
    let first = owner.get(&format!("{audit}?limit=1")).await.body;
    let next = first["next"].as_str().expect("more than one page");
    let second = owner.get(&format!("{audit}?limit=1&cursor={next}")).await.body;
    assert_eq!(second["items"][0]["action"], "POST /api/v1/tenants/{tenant}/apps");
    let future = owner.get(&format!("{audit}?since=2999-01-01T00:00:00Z")).await.body;
    assert_eq!(future["items"], json!([]));
    assert_eq!(owner.get(&format!("{audit}?since=yesterday")).await.status, 400);
    // A NUL cannot reach SQL (PostgreSQL's text refuses it): 400, not 500.
    assert_eq!(owner.get(&format!("{audit}?actor=%00")).await.status, 400);
    let nul_cursor = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, "\0 x");
    assert_eq!(owner.get(&format!("{audit}?cursor={nul_cursor}")).await.status, 400);

    // Platform admins see every event, the tenant's creation included.
    let all = Client::admin().await.get(&format!("/admin/audit?actor={owner_email}&limit=500")).await.body;
    let actions: Vec<&str> = all["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"POST /api/v1/tenants"), "{actions:?}");
    assert_eq!(owner.get("/admin/audit").await.status, 403);
}

#[tokio::test]
async fn changes_made_with_kubectl_join_the_audit_trail_and_the_apis_own_are_not_doubled() {
    let (owner, owner_email) = Client::new_user("kaudit-owner").await;
    let tenant = owner.create_tenant("kaudit", "free").await;
    let (bob, bob_email) = Client::new_user("kaudit-bob").await;
    join(&owner, &tenant, &bob, &bob_email, "member").await;
    // Through the API: recorded by the API (with the client's address), not again by the webhook.
    let api_app = json!({"name": "api-web", "spec": {"image": "nginxinc/nginx-unprivileged:1.27", "port": 8080}});
    owner.created(&format!("/tenants/{tenant}/apps"), api_app).await;

    // Through kubectl as Bob: a create, one the plan refuses (4 replicas, free allows 3), a delete.
    let apps: Api<App> = Api::namespaced(role_client(&bob_email, &tenant, "member").await, &format!("tenant-{tenant}"));
    let app = |name: &str, replicas| {
        App::new(
            name,
            AppSpec {
                image: "nginx".into(),
                port: 8080,
                replicas,
                env: vec![],
                resources: None,
                expose: None,
                autoscaling: None,
                rollout: None,
                revision_history_limit: None,
            },
        )
    };
    apps.create(&PostParams::default(), &app("cli-web", None)).await.unwrap();
    support::denial(apps.create(&PostParams::default(), &app("cli-big", Some(4))).await);
    apps.delete("cli-web", &Default::default()).await.unwrap();
    // A dry run changes nothing and is not recorded.
    let dry = PostParams { dry_run: true, ..Default::default() };
    apps.create(&dry, &app("cli-dry", None)).await.unwrap();

    let audit = format!("/tenants/{tenant}/audit?limit=100");
    let through_kubernetes = eventually(Duration::from_secs(60), "kubectl's three changes in the trail", || async {
        let items = owner.get(&audit).await.body["items"].as_array().cloned().unwrap_or_default();
        let cluster: Vec<Value> =
            items.into_iter().filter(|e| e["action"].as_str().is_some_and(|a| a.ends_with(".slipway.dev"))).collect();
        (cluster.len() >= 3).then_some(cluster)
    })
    .await;
    let seen: Vec<_> = through_kubernetes.iter().map(|e| (who_did_what(e), e["status"].as_u64().unwrap())).collect();
    let object = |name: &str| format!("/apis/slipway.dev/v1alpha1/namespaces/tenant-{tenant}/apps/{name}");
    assert_eq!(
        seen,
        [
            ((bob_email.as_str(), "DELETE apps.slipway.dev", object("cli-web").as_str()), 200),
            ((bob_email.as_str(), "CREATE apps.slipway.dev", object("cli-big").as_str()), 422),
            ((bob_email.as_str(), "CREATE apps.slipway.dev", object("cli-web").as_str()), 200),
        ],
        "newest first; no dry run and nothing of the API's own create of api-web"
    );
    assert_eq!(through_kubernetes[1]["result"], "failure");
    let owners = owner.get(&format!("/tenants/{tenant}/audit?actor={owner_email}")).await.body;
    let actions: Vec<&str> =
        owners["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["POST /api/v1/tenants/{tenant}/apps", "POST /api/v1/tenants/{tenant}/invitations"]);
}
