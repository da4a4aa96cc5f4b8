//! A controller restart that changes nothing costs the API server nothing about the tenants it
//! finds (issue 13: "a reconcile that changes nothing makes no write and no uncached read"):
//! a second controller, started as after a restart with an empty memory, reconciles a Ready
//! tenant and App through a client that records every request it makes.

mod support;

/// The SQL backend of this binary's Slipway.
const DATABASE: &str = "sqlite";
/// The cluster of this binary's Slipway: the kwok one (pods become Ready, nothing runs).
const CLUSTER: support::Cluster = support::Cluster::Kwok;

use kube::Api;
use serde_json::json;
use slipway_crds::App;
use std::{
    fmt::Write as _,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};
use support::{Client, eventually, kube_admin, kube_config, wait_ready};
use tracing::{Instrument as _, Subscriber, span};
use tracing_subscriber::{
    layer::{Context, SubscriberExt as _},
    registry::LookupSpan,
};

/// The span the second controller runs in: its reconciles are told apart by it.
const SECOND: &str = "second-controller";

/// Records each finished `reconcile` span (see `slipway_controller::metrics`) of the second
/// controller as its fields, `kind=… tenant=… name=…`.
#[derive(Clone, Default)]
struct Reconciles(Arc<Mutex<Vec<String>>>);

/// The fields of a `reconcile` span, kept in its extensions until it closes.
struct Fields(String);

impl<S: Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Reconciles {
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if attrs.metadata().name() != "reconcile" || !span.scope().skip(1).any(|s| s.name() == SECOND) {
            return;
        }
        let mut fields = String::new();
        attrs.record(&mut |field: &tracing::field::Field, value: &dyn std::fmt::Debug| {
            let _ = write!(fields, "{}={value:?} ", field.name());
        });
        span.extensions_mut().insert(Fields(fields.trim_end().replace('"', "")));
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        if let Some(fields) = ctx.span(&id).and_then(|s| s.extensions().get::<Fields>().map(|f| f.0.clone())) {
            self.0.lock().unwrap().push(fields);
        }
    }
}

/// The reconciles the second controller has finished, from the binary's only subscriber.
fn second_controller_reconciles() -> &'static Reconciles {
    static RECONCILES: OnceLock<Reconciles> = OnceLock::new();
    RECONCILES.get_or_init(|| {
        let reconciles = Reconciles::default();
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(reconciles.clone()))
            .expect("this binary sets its subscriber first");
        reconciles
    })
}

#[tokio::test]
async fn a_restarted_controller_finds_a_ready_tenant_and_app_current_and_writes_nothing() {
    let reconciles = second_controller_reconciles();
    let (owner, _) = Client::new_user("restart").await;
    let tenant = owner.create_tenant("restart", "free").await;
    let body = json!({"name": "web", "spec": {"image": "nginxinc/nginx-unprivileged:1.27", "port": 8080,
                                              "replicas": 2, "expose": {"type": "NodePort"}}});
    assert_eq!(owner.post(&format!("/tenants/{tenant}/apps"), body).await.status, 201);
    wait_ready(&owner, &format!("/tenants/{tenant}/apps/web")).await;
    // The running controller's last write for it: the "ready" email's claim.
    let apps: Api<App> = Api::namespaced(kube_admin().await, &slipway_crds::tenant_namespace(&tenant));
    eventually(Duration::from_secs(60), "the ready email claimed", || async {
        apps.get("web").await.unwrap().status.and_then(|s| s.ready_notified_at).map(|_| ())
    })
    .await;

    // A second controller with an empty memory, as after a restart, whose every request is
    // written down.
    let requests = Arc::new(Mutex::new(Vec::<String>::new()));
    let recorder = requests.clone();
    let record = tower::util::MapRequestLayer::new(move |request: http::Request<kube::client::Body>| {
        recorder.lock().unwrap().push(format!("{} {}", request.method(), request.uri()));
        request
    });
    let client = kube::client::ClientBuilder::try_from(kube_config().await).unwrap().with_layer(&record).build();
    let (trigger, shutdown) = slipway::Shutdown::manual();
    let config = support::second_controller_config();
    let plans = Arc::new(slipway_policies::PlanCatalog::embedded());
    let second = tokio::spawn(
        slipway_controller::run(client, plans, config, shutdown.wait()).instrument(tracing::info_span!(SECOND)),
    );

    let wanted = [format!("kind=tenant tenant={tenant} name={tenant}"), format!("kind=app tenant={tenant} name=web")];
    eventually(Duration::from_secs(120), "the second controller's reconciles of the Tenant and the App", || async {
        let done = reconciles.0.lock().unwrap();
        wanted.iter().all(|w| done.contains(w)).then_some(())
    })
    .await;
    trigger.fire();
    let stopped = tokio::time::timeout(Duration::from_secs(120), second).await;
    stopped.expect("the second controller did not stop within 120 s of its shutdown signal").unwrap().unwrap();

    // Its watches list and watch whole kinds; nothing it asks about names this tenant.
    let requests = requests.lock().unwrap();
    assert!(requests.iter().any(|r| r.contains("watch=true")), "the recorder saw the watches: {requests:#?}");
    let about_tenant: Vec<&String> = requests.iter().filter(|r| r.contains(&tenant)).collect();
    assert!(about_tenant.is_empty(), "a restart that changes nothing made these requests: {about_tenant:#?}");
}
