//! The one "ready" email of a resource, sent at most once per resource lifetime, for every
//! kind that has `status.readyNotifiedAt`.

use crate::{Context, Result, notify::Email};
use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::events::EventType,
};
use serde::de::DeserializeOwned;
use std::fmt::Debug;

/// Field manager that owns `status.readyNotifiedAt`, apart from the status the controller
/// recomputes on every reconcile, so applying that status never clears the marker.
const NOTIFIER: &str = "slipway-notifier";

/// Emails `recipients` once per resource lifetime, even across controller restarts and replicas.
///
/// First claims the notification by writing `status.readyNotifiedAt` with the resource's
/// current `resourceVersion` as a precondition: of two racing reconciles only one claim
/// succeeds (the other gets 409 Conflict and requeues, then sees the marker). Then sends; if
/// sending fails the claim is withdrawn so a retry sends again. A crash between claim and send
/// loses that one email (at most once), which we prefer over duplicates.
///
/// Returns `false` when the claim lost to a concurrent change (409): nothing was sent.
pub async fn notify_once<K>(ctx: &Context, api: &Api<K>, obj: &K, recipients: &[&str], email: &Email) -> Result<bool>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
{
    let name = obj.name_any();
    let claim = serde_json::json!({
        "metadata": { "resourceVersion": obj.resource_version() },
        "status": { "readyNotifiedAt": Time(Timestamp::now()) },
    });
    let params = PatchParams { field_manager: Some(NOTIFIER.into()), ..Default::default() };
    match api.patch_status(&name, &params, &Patch::Merge(&claim)).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    if let Err(e) = ctx.mailer.send(recipients, email).await {
        let unclaim = serde_json::json!({ "status": { "readyNotifiedAt": null } });
        api.patch_status(&name, &params, &Patch::Merge(&unclaim)).await?;
        return Err(e.into());
    }
    let kind = K::kind(&());
    let note = format!("emailed {} recipient(s) that the {kind} is ready", recipients.len());
    ctx.publish(obj, EventType::Normal, "OwnersNotified", note).await;
    Ok(true)
}
