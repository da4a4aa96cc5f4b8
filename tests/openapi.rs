//! The API against its own OpenAPI document: schemathesis (from PyPI, installed by
//! hack/schemathesis.sh, which hack/test.sh runs and names in `SLIPWAY_SCHEMATHESIS`) reads
//! `GET /api/v1/openapi.json` and sends every operation generated requests, valid and
//! invalid, as a verified user who owns a tenant with an App, a Database and a Workspace. It
//! must find no 5xx, no answer the document does not describe (status, content type, headers,
//! body), and no crash. A missing schemathesis fails the test.

mod support;

/// The SQL backend of this binary's Slipway.
const DATABASE: &str = "postgres";
/// The cluster of this binary's Slipway: the kwok one.
const CLUSTER: support::Cluster = support::Cluster::Kwok;

use serde_json::{Value, json};
use std::time::Instant;
use support::Client;

const ED25519: &str = include_str!("../policies/tests/ssh-keys/ed25519.pub");

/// Requests per operation in each phase: enough to reach every branch of the schemas, little
/// enough that the run takes a couple of minutes on two cores.
const MAX_EXAMPLES: &str = "25";

/// The run's stages, in order, each `(filter, operation ids, warnings that fail it)`. What ends
/// what the run stands on comes after the rest, in stages of its own: the deletions remove the
/// tenant and the objects the other operations are sent to, and `logout-all` ends the session
/// whose token the run sends. Every operation is tested; no check is left out.
///
/// Warnings that fail a stage: `missing_auth` (operations answered only 401/403: the token did
/// not work), `missing_test_data` (only 404: the requests never reached past the lookups), and
/// those that say the document is not what schemathesis can use.
const STAGES: [(&str, &str, &[&str]); 3] = [
    (
        "--exclude-operation-id-regex",
        "^(delete_app|delete_database|delete_workspace|delete_tenant|logout_all)$",
        &[
            "missing_auth",
            "missing_test_data",
            "base_url_mismatch",
            "unresolvable_reference",
            "unsupported_regex",
            "method_not_allowed",
            "unused_openapi_auth",
        ],
    ),
    (
        "--include-operation-id-regex",
        "^(delete_app|delete_database|delete_workspace|delete_tenant)$",
        &["missing_auth", "unresolvable_reference", "unsupported_regex"],
    ),
    ("--include-operation-id-regex", "^logout_all$", &["unresolvable_reference"]),
];

/// A stage's configuration, failing on the warnings `fail_on`. Path parameters name the owner's tenant and objects, so requests
/// reach past the membership check; bodies, queries and other values are generated.
///
/// `positive_data_acceptance` sends requests the document admits and expects them taken. The
/// API also refuses, with 422 (or 400 for an unknown emailed token), what JSON Schema cannot
/// express: a guessable password (zxcvbn), an address that is not `local@domain.tld`, an image
/// reference outside the plan's registries, an SSH key that does not parse, an engine version
/// or size the plan does not offer. Those two statuses are added to what it expects; every
/// other check runs as schemathesis defines it.
fn config_text(tenant: &str, user: &str, fail_on: &[&str]) -> String {
    format!(
        r#"[warnings]
fail-on = {fail_on:?}

[parameters]
"path.tenant" = "{tenant}"
"path.app" = "web"
"path.db" = "orders"
"path.ws" = "box"
"path.user" = "{user}"

[checks.positive_data_acceptance]
expected-statuses = ["2xx", "400", "401", "403", "404", "409", "422", "429"]
"#
    )
}

/// Runs schemathesis with `args` (after `run`), returning whether it passed and its output.
async fn schemathesis(config: &std::path::Path, args: &[&str]) -> (bool, String) {
    let program = support::required_env("SLIPWAY_SCHEMATHESIS");
    let started = Instant::now();
    // In the run's directory: schemathesis keeps its example database in the current one.
    let out = tokio::process::Command::new(&program)
        .current_dir(config.parent().expect("the configuration is in the run's directory"))
        .arg("--config-file")
        .arg(config)
        .arg("run")
        .args(args)
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    let text = format!(
        "schemathesis {} ({:?}, exit {:?}):\n{}{}",
        args.join(" "),
        started.elapsed(),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_the_document_does_not_describe() {
    support::required_env("SLIPWAY_SCHEMATHESIS");
    // The platform admin, so that the admin endpoints get past their check too; `{user}` is
    // its own account (suspending it answers 409, demoting it, the tenant's last owner, too).
    let owner = Client::admin().await;
    let email = support::slipway().admin_email.clone();
    let tenant = owner.create_tenant("schema", "free").await;
    let user = owner.get("/me").await.body["id"].as_str().unwrap().to_string();
    // Room for the tenants schemathesis creates: at the default one tenant, POST /tenants
    // would answer only 403 ("owns as many tenants as it may"), which reads as failed auth.
    let room = json!({"max_tenants": 1000, "plans": ["free", "standard", "pro"]});
    let granted = owner.put(&format!("/admin/users/{user}/entitlements"), room).await;
    assert_eq!(granted.status, 200, "{}", granted.body);
    let base = format!("/tenants/{tenant}");
    owner
        .created(&format!("{base}/apps"), json!({"name": "web", "spec": {"image": "nginxinc/nginx-unprivileged:1.27"}}))
        .await;
    owner
        .created(
            &format!("{base}/databases"),
            json!({"name": "orders", "spec": {"engine": "postgres", "version": "17"}}),
        )
        .await;
    owner.created(&format!("{base}/workspaces"), json!({"name": "box", "spec": {"sshKeys": [ED25519.trim()]}})).await;

    // The document is served to anyone.
    let api = &support::slipway().base_url;
    let url = format!("{api}/openapi.json");
    let served = reqwest::get(&url).await.unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["content-type"], "application/json");
    let doc: Value = served.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");

    // A session of its own for the run (its token is what logout-all ends).
    let login =
        Client::anonymous().post("/auth/login", json!({"email": email, "password": "correct horse battery"})).await;
    assert_eq!(login.status, 200, "{}", login.body);
    let bearer = format!("Authorization: Bearer {}", login.body["access_token"].as_str().unwrap());

    let dir = std::env::temp_dir().join(format!("slipway-schemathesis-{}", support::unique("run")));
    std::fs::create_dir_all(&dir).unwrap();
    let common = [
        url.as_str(),
        "--header",
        bearer.as_str(),
        "--checks",
        "all",
        "--max-examples",
        MAX_EXAMPLES,
        // One worker: with two (threads), generating from the Database spec crashed the tool
        // itself in CPython's `ast.parse` ("AST constructor recursion depth mismatch", under
        // hypothesis' strategy descriptions), before any request.
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--no-color",
    ];
    let mut failed = Vec::new();
    for (stage, (filter, operations, fail_on)) in STAGES.into_iter().enumerate() {
        let config = dir.join(format!("stage-{stage}.toml"));
        std::fs::write(&config, config_text(&tenant, &user, fail_on)).unwrap();
        let (passed, output) = schemathesis(&config, &[&common[..], &[filter, operations]].concat()).await;
        println!("{output}");
        if !passed {
            failed.push(format!("{filter} {operations}"));
        }
        if filter.starts_with("--include") && operations.contains("delete_tenant") {
            // The deletions got past authentication and the lookups: the tenant is gone.
            let gone = owner.get(&base).await;
            assert_eq!(gone.status, 404, "schemathesis' DELETE /tenants/{tenant} did not delete it: {}", gone.body);
        }
    }
    assert!(failed.is_empty(), "schemathesis found problems in {failed:?} (its reports are above)");
    std::fs::remove_dir_all(&dir).ok();
}
