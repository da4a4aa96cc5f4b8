//! What follows a reconcile, for every kind alike: Events on the object, per-object backoff.

use crate::{Context, Error, Result};
use kube::{
    Resource,
    runtime::{
        controller::Action,
        events::{Event, EventType},
        reflector::ObjectRef,
    },
};
use std::{future::Future, sync::Arc};

impl Context {
    /// Records a Kubernetes Event on `obj` (shown by `kubectl describe`). Failing to record
    /// is logged, never fatal: Events are best-effort by design.
    pub(crate) async fn publish<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let event =
            Event { type_, reason: reason.into(), note: Some(note), action: "Reconcile".into(), secondary: None };
        if let Err(e) = self.recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, "could not record event");
        }
    }

    /// Awaits one reconcile of `obj`, once the stores have listed (see
    /// [`crate::cache::Caches::listed`]): a success clears its backoff, a failure is recorded
    /// as a Warning Event so the owner sees it on the object.
    pub(crate) async fn track<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        reconcile: impl Future<Output = Result<Action>>,
    ) -> Result<Action> {
        self.caches.listed().await;
        let result = reconcile.await;
        match &result {
            Ok(_) => self.backoff.succeeded(&ObjectRef::from_obj(obj).to_string()),
            Err(e) => self.publish(obj, EventType::Warning, e.reason(), e.to_string()).await,
        }
        result
    }
}

/// The error policy of every controller: requeue with per-object exponential backoff.
pub fn requeue_with_backoff<K: Resource<DynamicType = ()>>(obj: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = ObjectRef::from_obj(obj.as_ref()).to_string();
    let delay = ctx.backoff.failed(&key);
    tracing::warn!(object = %key, %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}
