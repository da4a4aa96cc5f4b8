//! Pure derivation of an App's status from what its Deployment and Service report.

use crate::conditions::condition;
use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentCondition},
        core::v1::{Pod, Service},
    },
    apimachinery::pkg::apis::meta::v1::Time,
};
use slipway_crds::{AppPhase, AppSpec, AppStatus, ExposeType};

/// What the status is computed from.
pub struct Observed<'a> {
    /// The App's `metadata.generation`.
    pub generation: Option<i64>,
    /// The App's name and namespace (for the in-cluster URL).
    pub name: &'a str,
    /// Namespace of the App.
    pub namespace: &'a str,
    /// The App's spec.
    pub spec: &'a AppSpec,
    /// Replicas wanted (the spec's or the plan's default).
    pub replicas: i32,
    /// The Deployment as the API server returned it.
    pub deployment: Option<&'a Deployment>,
    /// The App's pods, read while a rollout is under way (else empty): what keeps them from
    /// being ready goes into the message.
    pub pods: &'a [Pod],
    /// When the current revision's rollout started (its ControllerRevision's
    /// `creationTimestamp`), read once the Deployment reports a failed rollout: a failure the
    /// Deployment reported no later than that is the previous revision's. Going back to a
    /// ReplicaSet that exists already keeps the Deployment's `ProgressDeadlineExceeded`
    /// condition until that rollout completes, and the Deployment controller sets nothing
    /// newer meanwhile (`getNewReplicaSet` and `DeploymentTimedOut` in
    /// kubernetes/pkg/controller/deployment), so an automatic rollback would be judged failed
    /// in turn.
    pub rollout_started: Option<&'a Time>,
    /// The Service as the API server returned it.
    pub service: Option<&'a Service>,
    /// Address put in NodePort URLs.
    pub node_address: Option<&'a str>,
    /// The status written last time (for condition transition times).
    pub previous: &'a AppStatus,
}

/// Whether listing the App's pods can add anything to its status message: only once the
/// Deployment's controller has acted on its current template (`status.observedGeneration`
/// caught up with `metadata.generation`) and reports pods. Before that no pod of the template
/// exists, and the Deployment's own status change triggers the next reconcile, which reads
/// them (issue 13: this list was one uncached request per new App, made before any pod could
/// exist).
pub fn pods_worth_reading(deployment: &Deployment) -> bool {
    let Some(status) = deployment.status.as_ref() else { return false };
    status.observed_generation >= deployment.metadata.generation && status.replicas.unwrap_or(0) > 0
}

/// Phase, reason and message from the Deployment, per its documented status
/// (<https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#deployment-status>).
fn phase(o: &Observed<'_>) -> (AppPhase, &'static str, String) {
    let (deployment, replicas) = (o.deployment, o.replicas);
    let trouble = pod_trouble(o.pods).map(|t| format!("; {t}")).unwrap_or_default();
    let Some(d) = deployment else {
        return (AppPhase::Pending, "DeploymentMissing", "the Deployment is not created yet".into());
    };
    let Some(status) = d.status.as_ref() else {
        return waiting(0, replicas, &trouble);
    };
    let conditions = status.conditions.iter().flatten();
    // Whether the Deployment controller has seen the current spec: until it has, its
    // conditions describe the previous one (a rollback to a healthy revision would still read
    // ProgressDeadlineExceeded, and be judged failed too).
    let observed = status.observed_generation >= d.metadata.generation;
    let current = |c: &&DeploymentCondition| match (&c.last_update_time, o.rollout_started) {
        (Some(reported), Some(started)) => reported.0 > started.0,
        _ => true,
    };
    let failed = conditions
        .clone()
        .find(|c| c.type_ == "Progressing" && c.status == "False")
        .filter(|_| observed)
        .filter(current);
    if let Some(c) = failed {
        // The only reason Kubernetes gives today; another one is named in the message.
        let deadline = c.reason.as_deref() == Some("ProgressDeadlineExceeded");
        let reason = if deadline { "ProgressDeadlineExceeded" } else { "RolloutFailed" };
        let said = c.reason.as_deref().filter(|_| !deadline).map(|r| format!("{r}: ")).unwrap_or_default();
        let message = c.message.as_deref().unwrap_or_default().trim_end_matches('.');
        return (AppPhase::Failed, reason, format!("{said}{message}{trouble}"));
    }
    let available = status.available_replicas.unwrap_or(0);
    // The ReplicaSet could not create (or delete) pods, e.g. the namespace's ResourceQuota
    // refused them: say so in Kubernetes' own words, which name the quota and the amounts.
    if let Some(c) = conditions.clone().find(|c| c.type_ == "ReplicaFailure" && c.status == "True") {
        let reason = if c.reason.as_deref() == Some("FailedDelete") { "FailedDelete" } else { "FailedCreate" };
        let phase = if available > 0 { AppPhase::Progressing } else { AppPhase::Pending };
        let message = format!(
            "{available}/{replicas} replicas available; pods cannot be created: {}",
            c.message.clone().unwrap_or_default()
        );
        return (phase, reason, message);
    }
    if rolled_out(d, replicas) {
        return (AppPhase::Ready, "Available", format!("{available}/{replicas} replicas available"));
    }
    waiting(available, replicas, &trouble)
}

/// A rollout under way, in what [`progress`] tells apart: available replicas only. How many
/// pods exist or run the new template is left out, so that the Deployment controller's steps
/// toward availability (observing the spec, creating the ReplicaSet and its pods) need not
/// wake the App (issue 13: an App Ready in at most 2 reconciles).
fn waiting(available: i32, replicas: i32, trouble: &str) -> (AppPhase, &'static str, String) {
    let message = format!("{available}/{replicas} replicas available{trouble}");
    match available {
        0 => (AppPhase::Pending, "ReplicasUnavailable", message),
        _ => (AppPhase::Progressing, "RollingOut", message),
    }
}

/// What an App's status reads from its Deployment ([`phase`] and [`compute`]), as a value whose
/// change is worth a reconcile of the App: whether the rollout is complete, how many replicas
/// are available, and a failure the Deployment reports (`Progressing` false, or
/// `ReplicaFailure`), with its words and time. Steps of the rollout that change none of these
/// (the Deployment controller observing the spec, creating pods) are not.
pub fn progress(d: &Deployment) -> impl std::hash::Hash + '_ {
    let status = d.status.as_ref();
    let observed = status.is_some_and(|s| s.observed_generation >= d.metadata.generation);
    let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let available = status.and_then(|s| s.available_replicas).unwrap_or(0);
    let failures: Vec<_> = (status.and_then(|s| s.conditions.as_ref()).into_iter().flatten())
        .filter(|c| (c.type_ == "Progressing" && c.status == "False" && observed) || c.type_ == "ReplicaFailure")
        .map(|c| (&c.type_, &c.status, &c.reason, &c.message, c.last_update_time.as_ref().map(|t| t.0)))
        .collect();
    (rolled_out(d, wanted), available, failures)
}

/// Whether `d` has rolled out its current spec (`status.observedGeneration` caught up) to
/// exactly `wanted` replicas, every one updated and available: the App is Ready.
fn rolled_out(d: &Deployment, wanted: i32) -> bool {
    let Some(status) = d.status.as_ref() else { return false };
    let (available, updated, total) =
        (status.available_replicas.unwrap_or(0), status.updated_replicas.unwrap_or(0), status.replicas.unwrap_or(0));
    status.observed_generation >= d.metadata.generation && updated >= wanted && available >= wanted && total == wanted
}

/// Most pods [`pod_trouble`] names.
const TROUBLED_PODS_SHOWN: usize = 3;

/// What keeps pods from being ready, in the kubelet's words, e.g. `pod web-5d9c-x2b:
/// ImagePullBackOff (Back-off pulling image "x")`, `pod web-5d9c-x2b: CrashLoopBackOff (last
/// exit code 1)` or `pod web-5d9c-x2b: running but not ready (readiness probe failing)`; at most
/// [`TROUBLED_PODS_SHOWN`] pods. `None` when every pod is ready or says nothing useful.
pub fn pod_trouble(pods: &[Pod]) -> Option<String> {
    let troubles: Vec<String> = pods
        .iter()
        .filter_map(|pod| Some(format!("pod {}: {}", pod.metadata.name.as_deref()?, trouble_of(pod)?)))
        .take(TROUBLED_PODS_SHOWN)
        .collect();
    (!troubles.is_empty()).then(|| troubles.join("; "))
}

fn trouble_of(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let containers = status.container_statuses.iter().flatten();
    for c in containers.clone() {
        let state = c.state.as_ref();
        let exit = c.last_state.as_ref().and_then(|s| s.terminated.as_ref()).map(|t| t.exit_code);
        if let Some(waiting) = state.and_then(|s| s.waiting.as_ref()) {
            let reason = waiting.reason.as_deref().unwrap_or("Waiting");
            if reason == "ContainerCreating" || reason == "PodInitializing" {
                continue;
            }
            let detail = match (exit, waiting.message.as_deref()) {
                (Some(code), _) if reason == "CrashLoopBackOff" => format!(" (last exit code {code})"),
                (_, Some(message)) => format!(" ({message})"),
                _ => String::new(),
            };
            return Some(format!("{reason}{detail}"));
        }
        if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
            return Some(format!("{} (exit code {})", t.reason.as_deref().unwrap_or("Terminated"), t.exit_code));
        }
    }
    if containers.clone().any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()) && !c.ready) {
        return Some("running but not ready (readiness probe failing)".into());
    }
    // Not scheduled: the scheduler's words (no node with enough CPU, say).
    let unscheduled = status.conditions.iter().flatten().find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
    Some(format!(
        "{} ({})",
        unscheduled.reason.as_deref().unwrap_or("Unschedulable"),
        unscheduled.message.as_deref().unwrap_or_default()
    ))
}

/// The App's node port, if its Service has one.
pub fn node_port(service: Option<&Service>) -> Option<i32> {
    service?.spec.as_ref()?.ports.as_ref()?.first()?.node_port
}

/// The status an App should have now.
pub fn compute(o: &Observed<'_>) -> AppStatus {
    let (phase, reason, message) = phase(o);
    let node_port = node_port(o.service);
    let url = match o.spec.expose_type() {
        ExposeType::NodePort => node_port.zip(o.node_address).map(|(port, addr)| format!("http://{addr}:{port}")),
        ExposeType::Ingress => o.spec.expose.as_ref().and_then(|e| e.host.as_ref()).map(|h| format!("http://{h}/")),
        ExposeType::ClusterIP => Some(format!("http://{}.{}.svc.cluster.local:{}", o.name, o.namespace, o.spec.port)),
    };
    let prev = &o.previous.conditions;
    let conditions = vec![
        condition(prev, "Ready", phase == AppPhase::Ready, reason, message.clone(), o.generation),
        // Deployment convention: Progressing stays meaningful after a rollout, with its own reason.
        condition(
            prev,
            "Progressing",
            phase == AppPhase::Progressing,
            if phase == AppPhase::Ready { "RolloutComplete" } else { reason },
            message,
            o.generation,
        ),
    ];
    AppStatus {
        phase,
        observed_generation: o.generation,
        replicas: Some(o.replicas),
        available_replicas: o.deployment.and_then(|d| d.status.as_ref()?.available_replicas).unwrap_or(0),
        node_port,
        url,
        conditions,
        // Filled in by the reconciler, which records revisions.
        revision: None,
        template_key: None,
        selector: None,
        failure_notified_revision: None,
        ready_notified_at: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::{
        api::{
            apps::v1::DeploymentStatus,
            core::v1::{ServicePort, ServiceSpec},
        },
        apimachinery::pkg::apis::meta::v1::ObjectMeta,
    };
    use slipway_crds::Expose;

    fn deployment(replicas: i32, available: i32, failed: bool) -> Deployment {
        Deployment {
            metadata: ObjectMeta { generation: Some(1), ..Default::default() },
            status: Some(DeploymentStatus {
                observed_generation: Some(1),
                replicas: Some(replicas),
                updated_replicas: Some(replicas),
                available_replicas: Some(available),
                conditions: failed.then(|| {
                    vec![DeploymentCondition {
                        type_: "Progressing".into(),
                        status: "False".into(),
                        reason: Some("ProgressDeadlineExceeded".into()),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn observe<'a>(
        spec: &'a AppSpec,
        d: Option<&'a Deployment>,
        s: Option<&'a Service>,
        prev: &'a AppStatus,
    ) -> AppStatus {
        observe_since(spec, d, s, prev, None)
    }

    fn observe_since<'a>(
        spec: &'a AppSpec,
        d: Option<&'a Deployment>,
        s: Option<&'a Service>,
        prev: &'a AppStatus,
        rollout_started: Option<&'a Time>,
    ) -> AppStatus {
        compute(&Observed {
            generation: Some(3),
            name: "web",
            namespace: "tenant-acme",
            spec,
            replicas: 2,
            deployment: d,
            pods: &[],
            rollout_started,
            service: s,
            node_address: Some("192.0.2.5"),
            previous: prev,
        })
    }

    fn node_port_spec() -> AppSpec {
        AppSpec {
            image: "nginx".into(),
            port: 8080,
            replicas: Some(2),
            env: vec![],
            resources: None,
            expose: Some(Expose { type_: ExposeType::NodePort, host: None }),
            autoscaling: None,
            rollout: None,
            revision_history_limit: None,
        }
    }

    #[test]
    fn pods_are_read_only_once_the_deployment_has_made_some_of_its_current_template() {
        let created =
            Deployment { metadata: ObjectMeta { generation: Some(1), ..Default::default() }, ..Default::default() };
        assert!(!pods_worth_reading(&created), "just created: no status, no pods yet");
        let mut changed = deployment(2, 2, false);
        changed.metadata.generation = Some(2);
        assert!(!pods_worth_reading(&changed), "a new template the Deployment controller has not acted on");
        assert!(!pods_worth_reading(&deployment(0, 0, false)), "no pods reported");
        assert!(pods_worth_reading(&deployment(2, 1, false)));
        assert!(pods_worth_reading(&deployment(2, 1, true)), "a failed rollout's pods say why");
    }

    fn hash(value: &impl std::hash::Hash) -> u64 {
        let mut hasher = std::hash::DefaultHasher::new();
        value.hash(&mut hasher);
        std::hash::Hasher::finish(&hasher)
    }

    /// The Deployment controller's steps from an App's new Deployment to its first available
    /// pod change nothing the App reports, and so wake no App; availability and failures do.
    #[test]
    fn the_status_changes_only_with_the_deployments_progress() {
        let mut steps = [Deployment::default(), deployment(0, 0, false), deployment(2, 0, false)];
        for d in &mut steps {
            d.metadata.generation = Some(1);
            d.spec = Some(k8s_openapi::api::apps::v1::DeploymentSpec { replicas: Some(2), ..Default::default() });
        }
        let spec = node_port_spec();
        let prev = AppStatus::default();
        let first = observe(&spec, Some(&steps[0]), None, &prev);
        assert_eq!((first.phase, first.conditions[0].message.as_str()), (AppPhase::Pending, "0/2 replicas available"));
        for d in &steps[1..] {
            assert_eq!(hash(&progress(d)), hash(&progress(&steps[0])), "{:?}", d.status);
            assert_eq!(observe(&spec, Some(d), None, &first), first, "{:?}", d.status);
        }
        let mut available = deployment(2, 1, false);
        available.spec = steps[0].spec.clone();
        let mut failed = deployment(2, 0, true);
        failed.spec = steps[0].spec.clone();
        let mut complete = deployment(2, 2, false);
        complete.spec = steps[0].spec.clone();
        for d in [&available, &failed, &complete] {
            assert_ne!(hash(&progress(d)), hash(&progress(&steps[0])), "{:?}", d.status);
            assert_ne!(observe(&spec, Some(d), None, &first), first, "{:?}", d.status);
        }
    }

    #[test]
    fn phases_follow_the_deployment() {
        let spec = node_port_spec();
        let prev = AppStatus::default();
        assert_eq!(observe(&spec, None, None, &prev).phase, AppPhase::Pending);
        assert_eq!(observe(&spec, Some(&deployment(2, 1, false)), None, &prev).phase, AppPhase::Progressing);
        assert_eq!(observe(&spec, Some(&deployment(2, 1, true)), None, &prev).phase, AppPhase::Failed);
        // A failure the Deployment controller reported before it saw the current spec (just
        // rolled back, say) is the previous spec's: the new one is still rolling out.
        let mut stale = deployment(2, 1, true);
        stale.metadata.generation = Some(2);
        assert_eq!(observe(&spec, Some(&stale), None, &prev).phase, AppPhase::Progressing);
        // Going back to a ReplicaSet that exists: the Deployment has seen the spec but keeps
        // the previous rollout's failure (reported at 10:00:20) until it completes. Only a
        // failure reported after the current revision started is its own.
        let mut kept = deployment(2, 1, true);
        let time = |t: &str| Time(t.parse().unwrap());
        kept.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].last_update_time =
            Some(time("2026-12-04T10:00:20Z"));
        for (started, phase) in [
            ("2026-12-04T10:00:21Z", AppPhase::Progressing),
            ("2026-12-04T10:00:20Z", AppPhase::Progressing),
            ("2026-12-04T09:59:58Z", AppPhase::Failed),
        ] {
            let started = time(started);
            assert_eq!(observe_since(&spec, Some(&kept), None, &prev, Some(&started)).phase, phase, "{started:?}");
        }
        let ready = observe(&spec, Some(&deployment(2, 2, false)), None, &prev);
        assert_eq!(ready.phase, AppPhase::Ready);
        assert_eq!(ready.available_replicas, 2);
        assert!(ready.conditions.iter().all(|c| c.observed_generation == Some(3)));
        assert_eq!(ready.conditions[0].status, "True");
        assert_eq!(ready.conditions[1].status, "False");
        assert_eq!(ready.conditions[1].reason, "RolloutComplete");
    }

    #[test]
    fn pods_the_quota_refuses_are_reported_in_its_words() {
        let mut d = deployment(2, 0, false);
        let refusal = r#"pods "web-7c9" is forbidden: exceeded quota: slipway-plan, requested: limits.cpu=250m, used: limits.cpu=0, limited: limits.cpu=100m"#;
        d.status.as_mut().unwrap().conditions = Some(vec![DeploymentCondition {
            type_: "ReplicaFailure".into(),
            status: "True".into(),
            reason: Some("FailedCreate".into()),
            message: Some(refusal.into()),
            ..Default::default()
        }]);
        let spec = node_port_spec();
        let status = observe(&spec, Some(&d), None, &AppStatus::default());
        assert_eq!(status.phase, AppPhase::Pending);
        let ready = &status.conditions[0];
        assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "FailedCreate"));
        assert_eq!(ready.message, format!("0/2 replicas available; pods cannot be created: {refusal}"));
        d.status.as_mut().unwrap().available_replicas = Some(1);
        assert_eq!(observe(&spec, Some(&d), None, &AppStatus::default()).phase, AppPhase::Progressing);
    }

    #[test]
    fn node_port_url_uses_the_node_address() {
        let service = Service {
            spec: Some(ServiceSpec {
                ports: Some(vec![ServicePort { port: 8080, node_port: Some(31234), ..Default::default() }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let status = observe(&node_port_spec(), None, Some(&service), &AppStatus::default());
        assert_eq!(status.node_port, Some(31234));
        assert_eq!(status.url.as_deref(), Some("http://192.0.2.5:31234"));
        let mut cluster_ip = node_port_spec();
        cluster_ip.expose = None;
        let status = observe(&cluster_ip, None, None, &AppStatus::default());
        assert_eq!(status.url.as_deref(), Some("http://web.tenant-acme.svc.cluster.local:8080"));
    }

    fn pod(name: &str, state: serde_json::Value, last: serde_json::Value, ready: bool) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "status": {"containerStatuses": [{
                "name": "app", "image": "x", "imageID": "", "restartCount": 3, "ready": ready,
                "state": state, "lastState": last,
            }]},
        }))
        .unwrap()
    }

    #[test]
    fn a_failed_rollout_says_what_the_pods_say() {
        let pull = pod(
            "web-6b7-a",
            serde_json::json!({"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"x:missing\""}}),
            serde_json::json!({}),
            false,
        );
        let crash = pod(
            "web-6b7-b",
            serde_json::json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}}),
            serde_json::json!({"terminated": {"exitCode": 1, "reason": "Error"}}),
            false,
        );
        let deaf = pod("web-6b7-c", serde_json::json!({"running": {}}), serde_json::json!({}), false);
        let fine = pod("web-5a4-d", serde_json::json!({"running": {}}), serde_json::json!({}), true);
        let creating = pod(
            "web-6b7-e",
            serde_json::json!({"waiting": {"reason": "ContainerCreating"}}),
            serde_json::json!({}),
            false,
        );
        let pods = [fine.clone(), creating, pull, crash, deaf];
        assert_eq!(
            pod_trouble(&pods).unwrap(),
            r#"pod web-6b7-a: ImagePullBackOff (Back-off pulling image "x:missing"); pod web-6b7-b: CrashLoopBackOff (last exit code 1); pod web-6b7-c: running but not ready (readiness probe failing)"#
        );
        assert_eq!(pod_trouble(&[fine]), None);

        let mut d = deployment(2, 1, true);
        d.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].message =
            Some(r#"ReplicaSet "web-6b7" has timed out progressing."#.into());
        let spec = node_port_spec();
        let status = compute(&Observed {
            generation: Some(3),
            name: "web",
            namespace: "tenant-acme",
            spec: &spec,
            replicas: 2,
            deployment: Some(&d),
            pods: &pods[2..3],
            rollout_started: None,
            service: None,
            node_address: None,
            previous: &AppStatus::default(),
        });
        assert_eq!(status.phase, AppPhase::Failed);
        let ready = &status.conditions[0];
        assert_eq!(ready.reason, "ProgressDeadlineExceeded");
        assert_eq!(
            ready.message,
            r#"ReplicaSet "web-6b7" has timed out progressing; pod web-6b7-a: ImagePullBackOff (Back-off pulling image "x:missing")"#
        );
    }
}
