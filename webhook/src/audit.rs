//! The webhook's view of changes made through Kubernetes (kubectl, client libraries,
//! controllers): every real CREATE, UPDATE and DELETE of a Slipway kind reaches `/validate`
//! with the requester's identity, so the webhook hands one [`AdmissionEvent`] per decision to
//! an [`AuditSink`] (the API's audit trail, in SQL).
//!
//! Changes the API makes for its users are left out: the API records those itself, with the
//! client's address, and marks its impersonated requests with the user extra
//! [`VIA_EXTRA`]` = api`, which nobody else can set (impersonating user extras needs the
//! `impersonate` verb on `userextras`, which tenants' members never get). Dry runs change
//! nothing and are left out too.

use crate::answer::Phase;
use kube::core::{
    DynamicObject,
    admission::{AdmissionRequest, AdmissionResponse, Operation},
};
use sha2::{Digest, Sha256};
use slipway_crds::{VIA_API, VIA_EXTRA};

/// One admission decision on a change made through Kubernetes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdmissionEvent {
    /// The change's identity (64 hex digits), the same when the API server asks again about
    /// the same change: it calls admission once more for each retry of an UPDATE or DELETE
    /// that met a conflict (a controller's concurrent write), so a sink keeps one event per id.
    /// A CREATE's is its review's `uid`; an UPDATE's, the object's `uid`, the requester and the
    /// new content but its status; a DELETE's, the object's `uid` and the requester.
    pub id: String,
    /// The requester's Kubernetes user name (a member's address, `system:serviceaccount:…`).
    pub actor: String,
    /// `OPERATION resource.group`, e.g. `CREATE apps.slipway.dev` (kubectl's notation).
    pub action: String,
    /// The tenant owning the namespace, when it is one's.
    pub tenant: Option<String>,
    /// The object's API path, e.g. `/apis/slipway.dev/v1alpha1/namespaces/tenant-a/apps/web`.
    pub object: String,
    /// 200 when admitted, else the denial's code (403, 422, …; see `answer::deny`).
    pub status: u16,
}

/// Where admission events go. `record` must not block: admission waits on it.
pub trait AuditSink: Send + Sync + 'static {
    /// Takes one event.
    fn record(&self, event: AdmissionEvent);
}

/// Whether `request` seen in `phase` is one to record: a validation (the last word of
/// Slipway's admission), not a dry run, not made by the API.
pub fn is_recorded(request: &AdmissionRequest<DynamicObject>, phase: Phase) -> bool {
    phase == Phase::Validate && !request.dry_run && !made_by_the_api(request)
}

/// The event for `request` answered with `response`, in `tenant`'s namespace (`None` for a
/// CONNECT, which changes nothing).
pub fn event(
    request: &AdmissionRequest<DynamicObject>,
    response: &AdmissionResponse,
    tenant: Option<String>,
) -> Option<AdmissionEvent> {
    if request.operation == Operation::Connect {
        return None;
    }
    let operation = crate::review::operation_name(&request.operation);
    let resource = &request.resource;
    let namespace = request.namespace.as_deref().unwrap_or_default();
    let actor = request.user_info.username.clone().unwrap_or_else(|| "anonymous".into());
    // A subresource (`apps/scale`) as RBAC and kubectl name it, and its path under the object.
    let sub = request.sub_resource.as_deref().map(|s| format!("/{s}")).unwrap_or_default();
    Some(AdmissionEvent {
        id: identity(request, &actor),
        actor,
        action: format!("{operation} {}{sub}.{}", resource.resource, resource.group),
        tenant,
        object: format!(
            "/apis/{}/{}/namespaces/{namespace}/{}/{}{sub}",
            resource.group, resource.version, resource.resource, request.name
        ),
        status: if response.allowed { 200 } else { response.result.code },
    })
}

/// See [`AdmissionEvent::id`].
fn identity(request: &AdmissionRequest<DynamicObject>, actor: &str) -> String {
    let old_uid = || request.old_object.as_ref().and_then(|o| o.metadata.uid.clone()).unwrap_or_default();
    let material = match request.operation {
        Operation::Update => {
            // The content asked for, without what the API server sets on every write.
            let mut content = request.object.as_ref().map(|o| serde_json::to_value(o).unwrap_or_default());
            if let Some(metadata) = content.as_mut().and_then(|c| c.get_mut("metadata")).and_then(|m| m.as_object_mut())
            {
                for volatile in ["resourceVersion", "managedFields", "generation"] {
                    metadata.remove(volatile);
                }
            }
            // Nor the status, which nobody asks for here: the API server keeps the stored
            // status in an update of the object (the status subresource changes it), and a
            // Scale's status is the App's. A controller's status write meanwhile is what made
            // the API server retry, with the newer status in the object.
            if let Some(content) = content.as_mut().and_then(|c| c.as_object_mut()) {
                content.remove("status");
            }
            format!("UPDATE\n{}\n{actor}\n{}", old_uid(), content.unwrap_or_default())
        }
        Operation::Delete => format!("DELETE\n{}\n{actor}", old_uid()),
        Operation::Create | Operation::Connect => format!("CREATE\n{}", request.uid),
    };
    format!("{:x}", Sha256::digest(material.as_bytes()))
}

fn made_by_the_api(request: &AdmissionRequest<DynamicObject>) -> bool {
    let extra = request.user_info.extra.as_ref().and_then(|extra| extra.get(VIA_EXTRA));
    extra.is_some_and(|values| values.iter().any(|v| v == VIA_API))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(operation: &str, extra: serde_json::Value, dry_run: bool) -> AdmissionRequest<DynamicObject> {
        serde_json::from_value(json!({
            "uid": "1",
            "kind": {"group": "slipway.dev", "version": "v1alpha1", "kind": "App"},
            "resource": {"group": "slipway.dev", "version": "v1alpha1", "resource": "apps"},
            "name": "web",
            "namespace": "tenant-acme",
            "operation": operation,
            "userInfo": {"username": "bob@example.com", "groups": ["slipway:tenant:acme"], "extra": extra},
            "dryRun": dry_run,
        }))
        .unwrap()
    }

    #[test]
    fn a_kubectl_change_is_recorded_with_who_what_and_how_it_ended() {
        let create = request("CREATE", json!({}), false);
        let admitted = AdmissionResponse::from(&create);
        assert!(is_recorded(&create, Phase::Validate));
        let event = event(&create, &admitted, Some("acme".into())).unwrap();
        assert_eq!(
            event,
            AdmissionEvent {
                id: format!("{:x}", Sha256::digest(b"CREATE\n1")),
                actor: "bob@example.com".into(),
                action: "CREATE apps.slipway.dev".into(),
                tenant: Some("acme".into()),
                object: "/apis/slipway.dev/v1alpha1/namespaces/tenant-acme/apps/web".into(),
                status: 200,
            }
        );
        let denied = crate::answer::deny(AdmissionResponse::from(&create), 422, "too big");
        assert_eq!(super::event(&create, &denied, None).unwrap().status, 422);
        let delete = request("DELETE", json!({}), false);
        let deleted = super::event(&delete, &AdmissionResponse::from(&delete), None).unwrap();
        assert_eq!(deleted.action, "DELETE apps.slipway.dev");
        let mut scale = request("UPDATE", json!({}), false);
        scale.sub_resource = Some("scale".into());
        let scaled = super::event(&scale, &AdmissionResponse::from(&scale), None).unwrap();
        assert_eq!(scaled.action, "UPDATE apps/scale.slipway.dev");
        assert_eq!(scaled.object, "/apis/slipway.dev/v1alpha1/namespaces/tenant-acme/apps/web/scale");
    }

    #[test]
    fn a_change_asked_about_again_keeps_its_id_and_another_change_gets_another() {
        let with_status = |operation: &str, uid: &str, replicas: i64, resource_version: &str, running: i64| {
            let mut r = request(operation, json!({}), false);
            r.uid = uid.into();
            let object: DynamicObject = serde_json::from_value(json!({
                "apiVersion": "slipway.dev/v1alpha1", "kind": "App",
                "metadata": {"name": "web", "uid": "u1", "resourceVersion": resource_version},
                "spec": {"replicas": replicas},
                "status": {"replicas": running},
            }))
            .unwrap();
            r.old_object = Some(object.clone());
            r.object = (operation != "DELETE").then_some(object);
            let response = AdmissionResponse::from(&r);
            event(&r, &response, None).unwrap().id
        };
        let with = |operation: &str, uid: &str, replicas: i64, resource_version: &str| {
            with_status(operation, uid, replicas, resource_version, 1)
        };
        // The API server's retry after a conflict: a new review uid, a newer resourceVersion,
        // and the status the controller wrote meanwhile.
        assert_eq!(with("UPDATE", "a", 2, "10"), with("UPDATE", "b", 2, "11"));
        assert_eq!(with_status("UPDATE", "a", 2, "10", 1), with_status("UPDATE", "b", 2, "11", 2));
        assert_ne!(with("UPDATE", "a", 2, "10"), with("UPDATE", "a", 3, "10"));
        assert_eq!(with("DELETE", "a", 2, "10"), with("DELETE", "b", 2, "12"));
        assert_ne!(with("CREATE", "a", 2, "10"), with("CREATE", "b", 2, "10"));
    }

    #[test]
    fn the_apis_own_changes_dry_runs_and_mutations_are_not_recorded() {
        assert!(!is_recorded(&request("CREATE", json!({ VIA_EXTRA: [VIA_API] }), false), Phase::Validate));
        assert!(!is_recorded(&request("CREATE", json!({}), true), Phase::Validate));
        assert!(!is_recorded(&request("UPDATE", json!({}), false), Phase::Mutate));
        // Another value of the extra is no pass.
        assert!(is_recorded(&request("UPDATE", json!({ VIA_EXTRA: ["kubectl"] }), false), Phase::Validate));
    }
}
