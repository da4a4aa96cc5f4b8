//! Scaling through an App's scale subresource (`kubectl scale app/NAME --replicas=N`, the
//! API's `PUT .../apps/{a}/scale`, a HorizontalPodAutoscaler aimed at the App).
//!
//! The API server sends such a change as an `autoscaling/v1` Scale of the `apps/scale`
//! subresource, not as the App: a webhook registered for `apps` alone never sees it, which
//! would let any member scale past the plan. So the validating webhook also registers for
//! `apps/scale` and judges the App as it will be stored, the current App with the Scale's
//! `spec.replicas`, through exactly the path of an UPDATE of the App (the plan's rules, and
//! the reservation ledger when it grows), so racing scale-ups never overflow a tenant.

use crate::{
    Webhook,
    admit::admit,
    answer::{Phase, Verdict, deny},
};
use k8s_openapi::api::autoscaling::v1::Scale;
use kube::{
    Api,
    core::{
        DynamicObject, GroupVersionKind, GroupVersionResource,
        admission::{AdmissionRequest, AdmissionResponse, Operation},
    },
};
use slipway_crds::App;

/// The subresource name the API server gives scale requests.
pub const SUBRESOURCE: &str = "scale";

/// Judges a change of `request`'s App through its scale subresource. The mutating phase has
/// nothing to add to a Scale and allows it.
pub async fn admit_scale(
    webhook: &Webhook,
    request: &AdmissionRequest<DynamicObject>,
    phase: Phase,
    base: AdmissionResponse,
) -> Verdict {
    if phase == Phase::Mutate || request.operation != Operation::Update {
        return base.into();
    }
    let Some(replicas) = request.object.as_ref().map(replicas_of) else {
        return deny(base, 400, "the scale request carries no Scale").into();
    };
    let replicas = match replicas {
        Ok(r) => r,
        Err(e) => return deny(base, 400, format!("the object is not a valid Scale: {e}")).into(),
    };
    let Some(ns) = request.namespace.as_deref() else {
        return deny(base, 400, "a Scale of an App must be namespaced").into();
    };
    // The App itself, read from the API server (a quorum read, never older than the Scale's
    // base): the Scale carries only the replica count. Should the App change in between, the
    // API server's write of this Scale conflicts and it asks again with the newer App.
    let current = match Api::<App>::namespaced(webhook.client.clone(), ns).get_opt(&request.name).await {
        Ok(Some(app)) => app,
        Ok(None) => return deny(base, 404, format!("App {:?} does not exist (any more)", request.name)).into(),
        Err(e) => {
            return deny(base, 503, format!("cannot read App {:?} to judge its scale, retry: {e}", request.name))
                .into();
        }
    };
    let as_update = match app_update(request, &current, replicas) {
        Ok(r) => r,
        Err(e) => return deny(base, 500, format!("cannot restate the scale as an update of the App: {e}")).into(),
    };
    admit::<App>(webhook, &as_update, Phase::Validate, base).await
}

/// `spec.replicas` of a Scale (unset means 0, as for a Deployment's Scale).
fn replicas_of(object: &DynamicObject) -> Result<i32, serde_json::Error> {
    let scale: Scale = serde_json::to_value(object).and_then(serde_json::from_value)?;
    Ok(scale.spec.and_then(|s| s.replicas).unwrap_or(0))
}

/// `request` restated as the UPDATE of the App it amounts to: from `current` to `current` with
/// `replicas`, one generation later when that changes the spec (as the API server will store
/// it), by the same requester, dry run or not.
fn app_update(
    request: &AdmissionRequest<DynamicObject>,
    current: &App,
    replicas: i32,
) -> Result<AdmissionRequest<DynamicObject>, serde_json::Error> {
    let mut scaled = current.clone();
    if scaled.spec.replicas != Some(replicas) {
        scaled.spec.replicas = Some(replicas);
        scaled.metadata.generation = Some(current.metadata.generation.unwrap_or(0) + 1);
    }
    let dynamic = |app: &App| serde_json::to_value(app).and_then(serde_json::from_value::<DynamicObject>);
    let gvk = GroupVersionKind::gvk(slipway_crds::GROUP, "v1alpha1", "App");
    let gvr = GroupVersionResource::gvr(slipway_crds::GROUP, "v1alpha1", "apps");
    let mut update = request.clone();
    update.kind = gvk.clone();
    update.request_kind = Some(gvk);
    update.resource = gvr.clone();
    update.request_resource = Some(gvr);
    update.sub_resource = None;
    update.request_sub_resource = None;
    update.object = Some(dynamic(&scaled)?);
    update.old_object = Some(dynamic(current)?);
    Ok(update)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use slipway_crds::AppSpec;

    fn scale_request(replicas: serde_json::Value) -> AdmissionRequest<DynamicObject> {
        serde_json::from_value(json!({
            "uid": "1",
            "kind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
            "resource": {"group": "slipway.dev", "version": "v1alpha1", "resource": "apps"},
            "subResource": "scale",
            "name": "web",
            "namespace": "tenant-acme",
            "operation": "UPDATE",
            "userInfo": {"username": "bob@example.com", "groups": ["slipway:tenant:acme"]},
            "object": {"apiVersion": "autoscaling/v1", "kind": "Scale",
                       "metadata": {"name": "web", "namespace": "tenant-acme"}, "spec": {"replicas": replicas}},
            "oldObject": {"apiVersion": "autoscaling/v1", "kind": "Scale",
                          "metadata": {"name": "web", "namespace": "tenant-acme"}, "spec": {"replicas": 1}},
            "dryRun": true,
        }))
        .unwrap()
    }

    fn stored_app() -> App {
        let mut app = App::new(
            "web",
            AppSpec {
                image: "nginx".into(),
                port: 8080,
                replicas: Some(1),
                env: vec![],
                resources: None,
                expose: None,
                autoscaling: None,
                rollout: None,
                revision_history_limit: None,
            },
        );
        app.metadata.namespace = Some("tenant-acme".into());
        app.metadata.uid = Some("u-1".into());
        app.metadata.generation = Some(4);
        app
    }

    #[test]
    fn a_scale_is_judged_as_the_update_of_the_app_it_makes() {
        let request = scale_request(json!(3));
        let replicas = replicas_of(request.object.as_ref().unwrap()).unwrap();
        let update = app_update(&request, &stored_app(), replicas).unwrap();
        assert_eq!((update.kind.kind.as_str(), update.resource.resource.as_str()), ("App", "apps"));
        assert_eq!(update.sub_resource, None);
        assert_eq!(update.operation, Operation::Update);
        assert!(update.dry_run, "a dry run stays one");
        assert_eq!(update.user_info.username.as_deref(), Some("bob@example.com"));
        let new: App = serde_json::to_value(update.object.unwrap()).and_then(serde_json::from_value).unwrap();
        let old: App = serde_json::to_value(update.old_object.unwrap()).and_then(serde_json::from_value).unwrap();
        assert_eq!((new.spec.replicas, new.metadata.generation), (Some(3), Some(5)));
        assert_eq!((old.spec.replicas, old.metadata.generation), (Some(1), Some(4)));
        assert_eq!(new.metadata.uid.as_deref(), Some("u-1"), "the reservation names the App's UID");
        assert_eq!(new.spec.image, "nginx", "the rest of the spec is the stored one");
    }

    #[test]
    fn an_unchanged_count_keeps_the_generation_and_a_missing_one_means_zero() {
        let update = app_update(&scale_request(json!(1)), &stored_app(), 1).unwrap();
        let new: App = serde_json::to_value(update.object.unwrap()).and_then(serde_json::from_value).unwrap();
        assert_eq!(new.metadata.generation, Some(4));
        assert_eq!(replicas_of(scale_request(json!(null)).object.as_ref().unwrap()).unwrap(), 0);
        assert!(replicas_of(scale_request(json!("many")).object.as_ref().unwrap()).is_err());
    }
}
