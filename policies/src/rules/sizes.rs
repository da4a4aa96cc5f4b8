//! Sizes of one object: an App's replicas; every CPU, memory and storage amount readable and at
//! least the plan's minimum (`minimums`); an App's requests not above its limits; one App alone
//! within the tenant's totals (replicas x limit).

use crate::{Amount, Outcome, TenantPolicy, Total, Violation};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use slipway_crds::{AppSpec, ResourceAmounts};

/// The amount of `total` in a container's requests or limits.
pub(crate) fn pick(amounts: Option<&ResourceAmounts>, total: Total) -> Option<&Quantity> {
    let amounts = amounts?;
    match total {
        Total::Cpu => amounts.cpu.as_ref(),
        Total::Memory => amounts.memory.as_ref(),
        Total::Storage => None,
    }
}

/// Parses the amount at `field`: unreadable text, or less than the plan's minimum of `total`,
/// is denied. `None` when unset or unreadable.
fn amount(policy: &TenantPolicy, field: &str, q: Option<&Quantity>, total: Total, out: &mut Outcome) -> Option<Amount> {
    let parsed = match Amount::from_quantity(q?) {
        Ok(a) => a,
        Err(e) => {
            out.deny(Violation::invalid(field, e.to_string()));
            return None;
        }
    };
    let least = policy.minimum_of(total);
    if parsed < *least {
        out.deny(Violation::invalid(
            field,
            format!("{parsed} is below the plan \"{}\" minimum of {least}", policy.plan),
        ));
    }
    Some(parsed)
}

/// An App's replicas (and the most its autoscaling may reach) and pod amounts.
pub(crate) fn review_app(policy: &TenantPolicy, spec: &AppSpec, out: &mut Outcome) {
    let max = policy.limits.max_replicas;
    let autoscaled = spec.autoscaling.as_ref().map(|a| a.max_replicas);
    for (field, count) in
        [("spec.replicas", Some(policy.replicas_of(spec))), ("spec.autoscaling.maxReplicas", autoscaled)]
    {
        if let Some(count) = count.filter(|c| u32::try_from(*c).is_ok_and(|c| c > max)) {
            out.deny(Violation::invalid(field, format!("{count} exceeds the plan \"{}\" limit of {max}", policy.plan)));
        }
    }
    let replicas = policy.most_replicas_of(spec);
    let resources = spec.resources.as_ref();
    for total in Total::COMPUTE {
        let name = total.name();
        let (request_field, limit_field) =
            (format!("spec.resources.requests.{name}"), format!("spec.resources.limits.{name}"));
        let request =
            amount(policy, &request_field, pick(resources.and_then(|r| r.requests.as_ref()), total), total, out);
        let limit = amount(policy, &limit_field, pick(resources.and_then(|r| r.limits.as_ref()), total), total, out);
        // Kubernetes' LimitRange semantics: an unset limit takes the default limit; an unset
        // request takes the limit if one was given, else the default request.
        let effective_limit = limit.clone().unwrap_or_else(|| policy.default_limit_of(total).clone());
        let effective_request = request.or(limit).unwrap_or_else(|| policy.default_request_of(total).clone());
        if effective_request > effective_limit && !out.reported(&request_field) {
            out.deny(Violation::invalid(
                request_field,
                format!(
                    "request {effective_request} is above the limit {effective_limit}; lower the request or raise the limit"
                ),
            ));
        }
        let (needed, plan_total) = (effective_limit.times(replicas), policy.limit_of(total));
        if needed > *plan_total && !out.reported(&limit_field) {
            out.deny(Violation::invalid(
                limit_field,
                format!(
                    "{replicas} replicas x {effective_limit} = {needed} exceeds the plan \"{}\" {name} limit of {plan_total}",
                    policy.plan
                ),
            ));
        }
    }
}

/// The CPU, memory and storage of a single-instance object (Database, Workspace), at
/// `spec.cpu`, `spec.memory`, `spec.storage`.
pub(crate) fn review_instance(
    policy: &TenantPolicy,
    cpu: Option<&Quantity>,
    memory: Option<&Quantity>,
    storage: &Quantity,
    out: &mut Outcome,
) {
    amount(policy, "spec.cpu", cpu, Total::Cpu, out);
    amount(policy, "spec.memory", memory, Total::Memory, out);
    amount(policy, "spec.storage", Some(storage), Total::Storage, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PlanCatalog;
    use slipway_crds::ComputeResources;

    fn free() -> TenantPolicy {
        PlanCatalog::embedded().effective("free", None).unwrap()
    }

    fn app(replicas: i32, requests: Option<(&str, &str)>, limits: Option<(&str, &str)>) -> AppSpec {
        let amounts = |(cpu, memory): (&str, &str)| ResourceAmounts {
            cpu: Some(Quantity(cpu.into())),
            memory: Some(Quantity(memory.into())),
        };
        AppSpec {
            image: "nginx".into(),
            port: 8080,
            replicas: Some(replicas),
            env: vec![],
            resources: Some(ComputeResources { requests: requests.map(amounts), limits: limits.map(amounts) }),
            expose: None,
            autoscaling: None,
            rollout: None,
            revision_history_limit: None,
        }
    }

    fn fields(out: &Outcome) -> Vec<&str> {
        out.violations.iter().map(|v| v.field.as_str()).collect()
    }

    #[test]
    fn replicas_and_one_apps_totals() {
        let mut out = Outcome::default();
        review_app(&free(), &app(3, None, Some(("500m", "512Mi"))), &mut out);
        assert!(out.allowed(), "{}", out.message());
        let mut out = Outcome::default();
        review_app(&free(), &app(4, None, Some(("1", "1Gi"))), &mut out);
        assert_eq!(fields(&out), ["spec.replicas", "spec.resources.limits.cpu", "spec.resources.limits.memory"]);
        assert_eq!(out.violations[0].message, r#"4 exceeds the plan "free" limit of 3"#);
        assert_eq!(out.violations[1].message, r#"4 replicas x 1 = 4 exceeds the plan "free" cpu limit of 2"#);
    }

    #[test]
    fn amounts_are_readable_at_least_the_minimum_and_requests_fit_limits() {
        let mut out = Outcome::default();
        review_app(&free(), &app(1, Some(("5m", "1")), Some(("lots", "1e-400"))), &mut out);
        assert_eq!(
            out.message(),
            [
                r#"spec.resources.requests.cpu: 5m is below the plan "free" minimum of 10m"#,
                r#"spec.resources.limits.cpu: "lots" is not a Kubernetes quantity (examples: 500m, 2, 256Mi, 10Gi)"#,
                r#"spec.resources.requests.memory: 1 is below the plan "free" minimum of 32Mi"#,
                r#"spec.resources.limits.memory: 1e-400 is below the plan "free" minimum of 32Mi"#,
            ]
            .join("; ")
        );
        let mut out = Outcome::default();
        review_app(&free(), &app(1, Some(("500m", "256Mi")), Some(("250m", "128Mi"))), &mut out);
        assert_eq!(fields(&out), ["spec.resources.requests.cpu", "spec.resources.requests.memory"]);
        assert_eq!(
            out.violations[0].message,
            "request 500m is above the limit 250m; lower the request or raise the limit"
        );
    }

    #[test]
    fn instances_have_the_minimums_too() {
        let mut out = Outcome::default();
        let (cpu, memory) = (Quantity("1m".into()), Quantity("1".into()));
        review_instance(&free(), Some(&cpu), Some(&memory), &Quantity("0".into()), &mut out);
        assert_eq!(
            out.message(),
            r#"spec.cpu: 1m is below the plan "free" minimum of 10m; spec.memory: 1 is below the plan "free" minimum of 32Mi; spec.storage: 0 is below the plan "free" minimum of 100Mi"#
        );
        let mut out = Outcome::default();
        review_instance(&free(), None, None, &Quantity("1Gi".into()), &mut out);
        assert!(out.allowed(), "unset CPU and memory take the plan's defaults");
    }
}
