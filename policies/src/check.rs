//! Per-App rules: pure functions from a policy, a spec and current usage to violations.

use crate::{Amount, TenantPolicy};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use slipway_crds::{AppSpec, ResourceAmounts};
use std::fmt;

/// One broken rule: the field at fault and what is wrong, phrased so a user knows what to change,
/// e.g. `spec.replicas: 12 exceeds the plan "free" limit of 3`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// JSON path of the offending field, e.g. `spec.replicas`.
    pub field: String,
    /// What is wrong, with the limit and the value asked for.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// What the tenant already uses, not counting the App being checked (so an UPDATE is not
/// counted against itself).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppUsage {
    /// Apps the tenant has besides this one.
    pub other_apps: u32,
}

/// Which of an App's pod amounts is being checked (for messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resource {
    Cpu,
    Memory,
}

impl Resource {
    pub(crate) const ALL: [Resource; 2] = [Resource::Cpu, Resource::Memory];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Resource::Cpu => "cpu",
            Resource::Memory => "memory",
        }
    }

    fn pick(self, amounts: Option<&ResourceAmounts>) -> Option<Quantity> {
        match self {
            Resource::Cpu => amounts.and_then(|a| a.cpu.clone()),
            Resource::Memory => amounts.and_then(|a| a.memory.clone()),
        }
    }
}

impl TenantPolicy {
    /// Replicas an App runs: its own value or the plan's default.
    pub fn replicas_of(&self, spec: &AppSpec) -> i32 {
        spec.replicas.unwrap_or(i32::try_from(self.defaults.replicas).unwrap_or(i32::MAX))
    }

    /// Checks one App against the policy: the App count, replicas, exposure, and the pod's
    /// CPU/memory (each amount must parse, requests may not exceed limits, and limits times
    /// replicas must fit in the tenant's totals). Returns every violation, empty when allowed.
    pub fn check_app(&self, spec: &AppSpec, usage: AppUsage) -> Vec<Violation> {
        let mut out = Vec::new();
        let plan = &self.plan;
        let limits = &self.limits;
        out.extend(self.count_violation(crate::Kind::App, usage.other_apps));
        let replicas = self.replicas_of(spec);
        if u32::try_from(replicas).is_ok_and(|r| r > limits.max_replicas) {
            out.push(Violation {
                field: "spec.replicas".into(),
                message: format!("{replicas} exceeds the plan \"{plan}\" limit of {}", limits.max_replicas),
            });
        }
        let expose = spec.expose_type();
        if !limits.exposures.contains(&expose) {
            let allowed: Vec<_> = limits.exposures.iter().map(ToString::to_string).collect();
            out.push(Violation {
                field: "spec.expose.type".into(),
                message: format!("{expose} is not allowed by the plan \"{plan}\" (allowed: {})", allowed.join(", ")),
            });
        }
        for resource in Resource::ALL {
            self.check_pod_amount(spec, resource, replicas, &mut out);
        }
        out
    }

    /// The plan's default request and limit, and the tenant total, of `resource`.
    pub(crate) fn amounts_of(&self, resource: Resource) -> (&Amount, &Amount, &Amount) {
        match resource {
            Resource::Cpu => (&self.defaults.cpu_request, &self.defaults.cpu_limit, &self.limits.cpu),
            Resource::Memory => (&self.defaults.memory_request, &self.defaults.memory_limit, &self.limits.memory),
        }
    }

    /// What an App's pods may use of `resource` in total: replicas x (its limit, or the plan's
    /// default limit). `None` when its limit does not parse (reported by [`Self::check_app`]).
    pub(crate) fn footprint(&self, spec: &AppSpec, resource: Resource) -> Option<Amount> {
        let limit = match resource.pick(spec.resources.as_ref().and_then(|r| r.limits.as_ref())) {
            Some(q) => Amount::from_quantity(&q).ok()?,
            None => self.amounts_of(resource).1.clone(),
        };
        Some(limit.times(self.replicas_of(spec).max(0)))
    }

    fn check_pod_amount(&self, spec: &AppSpec, resource: Resource, replicas: i32, out: &mut Vec<Violation>) {
        let name = resource.name();
        let (default_request, default_limit, total) = self.amounts_of(resource);
        let pick = |amounts: Option<&ResourceAmounts>| resource.pick(amounts);
        let resources = spec.resources.as_ref();
        let mut parse = |kind: &str, q: Option<Quantity>| {
            let q = q?;
            Amount::from_quantity(&q)
                .map_err(|e| {
                    out.push(Violation { field: format!("spec.resources.{kind}.{name}"), message: e.to_string() })
                })
                .ok()
        };
        let request = parse("requests", pick(resources.and_then(|r| r.requests.as_ref())));
        let limit = parse("limits", pick(resources.and_then(|r| r.limits.as_ref())));
        // Kubernetes' LimitRange semantics: an unset limit takes the default limit; an unset
        // request takes the limit if one was given, else the default request.
        let effective_limit = limit.clone().unwrap_or_else(|| default_limit.clone());
        let effective_request = request.clone().or(limit).unwrap_or_else(|| default_request.clone());
        if effective_request > effective_limit {
            out.push(Violation {
                field: format!("spec.resources.requests.{name}"),
                message: format!("request {effective_request} is above the limit {effective_limit}; lower the request or raise the limit"),
            });
        }
        let needed = effective_limit.times(replicas.max(0));
        if needed > *total {
            out.push(Violation {
                field: format!("spec.resources.limits.{name}"),
                message: format!(
                    "{replicas} replicas x {effective_limit} = {needed} exceeds the plan \"{}\" {name} limit of {total}",
                    self.plan
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PlanCatalog;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use slipway_crds::{ComputeResources, Expose, ExposeType};

    fn free() -> TenantPolicy {
        PlanCatalog::embedded().effective("free", None).unwrap()
    }

    fn spec(replicas: Option<i32>) -> AppSpec {
        AppSpec { image: "nginx".into(), port: 8080, replicas, env: vec![], resources: None, expose: None }
    }

    fn fields(v: &[Violation]) -> Vec<&str> {
        v.iter().map(|v| v.field.as_str()).collect()
    }

    #[test]
    fn replicas_at_the_limit_pass_and_one_over_fails() {
        assert!(free().check_app(&spec(Some(3)), AppUsage::default()).is_empty());
        let v = free().check_app(&spec(Some(4)), AppUsage::default());
        assert_eq!(v[0].to_string(), r#"spec.replicas: 4 exceeds the plan "free" limit of 3"#);
    }

    #[test]
    fn unset_replicas_take_the_default() {
        assert_eq!(free().replicas_of(&spec(None)), 1);
    }

    #[test]
    fn app_count_counts_others_only() {
        assert!(free().check_app(&spec(None), AppUsage { other_apps: 2 }).is_empty());
        let v = free().check_app(&spec(None), AppUsage { other_apps: 3 });
        assert_eq!(
            v[0].to_string(),
            r#"metadata.name: the tenant already has 3 Apps; the plan "free" allows 3 (0 left)"#
        );
    }

    #[test]
    fn exposure_must_be_allowed() {
        let mut s = spec(None);
        s.expose = Some(Expose { type_: ExposeType::Ingress, host: Some("a.example.com".into()) });
        let v = free().check_app(&s, AppUsage::default());
        assert_eq!(
            v[0].to_string(),
            r#"spec.expose.type: Ingress is not allowed by the plan "free" (allowed: ClusterIP, NodePort)"#
        );
        s.expose = Some(Expose { type_: ExposeType::NodePort, host: None });
        assert!(free().check_app(&s, AppUsage::default()).is_empty());
    }

    fn with_limits(cpu: &str, memory: &str, replicas: i32) -> AppSpec {
        let mut s = spec(Some(replicas));
        s.resources = Some(ComputeResources {
            requests: None,
            limits: Some(ResourceAmounts { cpu: Some(Quantity(cpu.into())), memory: Some(Quantity(memory.into())) }),
        });
        s
    }

    #[test]
    fn pod_totals_must_fit_the_tenant() {
        // free: 2 CPUs and 2Gi in total.
        assert!(free().check_app(&with_limits("500m", "512Mi", 3), AppUsage::default()).is_empty());
        let v = free().check_app(&with_limits("1", "1Gi", 3), AppUsage::default());
        assert_eq!(fields(&v), ["spec.resources.limits.cpu", "spec.resources.limits.memory"]);
        assert_eq!(v[0].message, r#"3 replicas x 1 = 3 exceeds the plan "free" cpu limit of 2"#);
    }

    #[test]
    fn bad_quantities_and_inverted_requests_are_reported() {
        let mut s = with_limits("lots", "128Mi", 1);
        let v = free().check_app(&s, AppUsage::default());
        assert_eq!(fields(&v), ["spec.resources.limits.cpu"]);
        s.resources.as_mut().unwrap().requests =
            Some(ResourceAmounts { cpu: None, memory: Some(Quantity("256Mi".into())) });
        let v = free().check_app(&s, AppUsage::default());
        assert!(fields(&v).contains(&"spec.resources.requests.memory"), "{v:?}");
    }
}

impl TenantPolicy {
    /// Checks a Database's engine and version against the plan's allow-list
    /// (`limits.databaseEngines`); `None` when allowed.
    pub fn check_database_engine(&self, engine: &str, version: &str) -> Option<Violation> {
        let engines = &self.limits.database_engines;
        let Some(versions) = engines.get(engine) else {
            let offered: Vec<_> = engines.keys().map(String::as_str).collect();
            return Some(Violation {
                field: "spec.engine".into(),
                message: format!(
                    "{engine:?} is not offered by the plan \"{}\" (offered: {})",
                    self.plan,
                    offered.join(", ")
                ),
            });
        };
        (!versions.iter().any(|v| v == version)).then(|| Violation {
            field: "spec.version".into(),
            message: format!(
                "{engine} {version:?} is not offered by the plan \"{}\" (offered: {})",
                self.plan,
                versions.join(", ")
            ),
        })
    }
}

#[cfg(test)]
mod engine_tests {
    use crate::PlanCatalog;

    #[test]
    fn engines_and_versions_come_from_the_plan() {
        let free = PlanCatalog::embedded().effective("free", None).unwrap();
        assert_eq!(free.check_database_engine("postgres", "17"), None);
        let v = free.check_database_engine("postgres", "9.6").unwrap();
        assert_eq!(
            v.to_string(),
            r#"spec.version: postgres "9.6" is not offered by the plan "free" (offered: 16, 17)"#
        );
        let e = free.check_database_engine("mysql", "8.4").unwrap();
        assert_eq!(
            e.to_string(),
            r#"spec.engine: "mysql" is not offered by the plan "free" (offered: postgres, redis)"#
        );
        let pro = PlanCatalog::embedded().effective("pro", None).unwrap();
        assert_eq!(pro.check_database_engine("mysql", "8.4"), None);
    }
}
