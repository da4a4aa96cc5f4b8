//! Loading and validating the plan catalogue, and resolving a tenant's effective policy.

use crate::{
    TenantPolicy,
    quantity::{Amount, QuantityError},
    rules::engines::KNOWN_ENGINES,
};
use serde::Deserialize;
use slipway_crds::{ExposeType, LimitOverrides};
use std::collections::{BTreeMap, BTreeSet};

/// The catalogue embedded in the binary: `policies/plans.yaml`.
pub const EMBEDDED_PLANS: &str = include_str!("../plans.yaml");

/// Why a catalogue could not be loaded, or a tenant's policy resolved.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The text is not YAML of the expected shape.
    #[error("plan catalogue is not valid YAML of the expected shape: {0}")]
    Syntax(#[from] serde_yaml::Error),
    /// A quantity in a plan or override does not parse.
    #[error("{field}: {source}")]
    Quantity {
        /// Where the quantity was, e.g. `plans.free.limits.cpu`.
        field: String,
        /// The parse error.
        source: QuantityError,
    },
    /// A plan contradicts itself, e.g. a default above its own limit.
    #[error("{field}: {reason}")]
    Inconsistent {
        /// The offending field.
        field: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// The catalogue holds no plan.
    #[error("plan catalogue defines no plan")]
    Empty,
    /// A tenant names a plan the catalogue does not have.
    #[error("unknown plan {name:?}; available plans: {available}")]
    UnknownPlan {
        /// The name asked for.
        name: String,
        /// Comma-separated names of the plans that exist.
        available: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    plans: BTreeMap<String, RawPlan>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    #[serde(default)]
    description: String,
    #[serde(default, rename = "selfService")]
    self_service: bool,
    limits: RawLimits,
    minimums: RawMinimums,
    defaults: RawDefaults,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMinimums {
    cpu: String,
    memory: String,
    storage: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawLimits {
    max_apps: u32,
    max_databases: u32,
    max_workspaces: u32,
    max_replicas: u32,
    cpu: String,
    memory: String,
    storage: String,
    exposures: BTreeSet<ExposeType>,
    allowed_registries: Vec<String>,
    database_engines: BTreeMap<String, Vec<String>>,
    database_node_ports: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawDefaults {
    replicas: u32,
    expose: ExposeType,
    cpu_request: String,
    cpu_limit: String,
    memory_request: String,
    memory_limit: String,
    #[serde(default)]
    auto_rollback: bool,
}

/// The most a tenant may use.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Maximum number of Apps.
    pub max_apps: u32,
    /// Maximum number of Databases.
    pub max_databases: u32,
    /// Maximum number of Workspaces.
    pub max_workspaces: u32,
    /// Maximum replicas of one App.
    pub max_replicas: u32,
    /// Total CPU (cores) over all the tenant's pods, requests and limits alike.
    pub cpu: Amount,
    /// Total memory (bytes) over all the tenant's pods, requests and limits alike.
    pub memory: Amount,
    /// Total persistent storage (bytes) the tenant may request.
    pub storage: Amount,
    /// The exposure types the tenant's Apps may use.
    pub exposures: BTreeSet<ExposeType>,
    /// Registries images may come from, lowercase; `*` allows any.
    pub allowed_registries: Vec<String>,
    /// Database engines offered (`postgres`, `mysql`, `mariadb`, `redis`) and their versions.
    pub database_engines: BTreeMap<String, Vec<String>>,
    /// Whether Databases may be exposed on a node port (outside the cluster).
    pub database_node_ports: bool,
}

/// The least any one amount may be: every CPU and memory request or limit, every volume.
/// A container cannot start on a few bytes of memory, and a volume of a few bytes holds
/// nothing; such values are refused at admission rather than left Pending without a reason.
#[derive(Clone, Debug, PartialEq)]
pub struct Minimums {
    /// Least CPU of a request or limit (cores).
    pub cpu: Amount,
    /// Least memory of a request or limit (bytes).
    pub memory: Amount,
    /// Least size of a volume (bytes).
    pub storage: Amount,
}

/// Values an App gets for what its spec leaves unset.
#[derive(Clone, Debug, PartialEq)]
pub struct Defaults {
    /// Replicas of an App that does not say.
    pub replicas: u32,
    /// Exposure of an App that does not say.
    pub expose: ExposeType,
    /// CPU request of a container that does not say.
    pub cpu_request: Amount,
    /// CPU limit of a container that does not say.
    pub cpu_limit: Amount,
    /// Memory request of a container that does not say.
    pub memory_request: Amount,
    /// Memory limit of a container that does not say.
    pub memory_limit: Amount,
    /// Whether a failed rollout of an App whose `spec.rollout.autoRollback` is unset goes back
    /// to its last healthy revision by itself (default false).
    pub auto_rollback: bool,
}

/// One validated plan.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The plan's name, e.g. `free`.
    pub name: String,
    /// One line for people choosing a plan.
    pub description: String,
    /// Whether any account may choose it by itself (`selfService: true`); other plans need
    /// a platform admin's grant. Off unless the catalogue says so.
    pub self_service: bool,
    /// What the plan allows.
    pub limits: Limits,
    /// The least each amount may be.
    pub minimums: Minimums,
    /// What the plan fills in.
    pub defaults: Defaults,
}

/// Every plan, validated, by name.
#[derive(Clone, Debug)]
pub struct PlanCatalog {
    plans: BTreeMap<String, Plan>,
}

fn amount(field: String, text: &str) -> Result<Amount, PlanError> {
    Amount::parse(text).map_err(|source| PlanError::Quantity { field, source })
}

fn ensure(ok: bool, field: String, reason: impl FnOnce() -> String) -> Result<(), PlanError> {
    if ok { Ok(()) } else { Err(PlanError::Inconsistent { field, reason: reason() }) }
}

impl PlanCatalog {
    /// The catalogue shipped in the binary (`policies/plans.yaml`).
    ///
    /// # Panics
    /// Never in a released binary: a unit test loads the embedded file.
    pub fn embedded() -> Self {
        Self::from_yaml(EMBEDDED_PLANS).expect("the embedded plans.yaml is valid (tested)")
    }

    /// Loads and validates a catalogue from YAML (shape: see `policies/plans.yaml`).
    ///
    /// # Errors
    /// [`PlanError`] naming the field at fault: bad YAML, unknown fields, unparsable
    /// quantities, defaults above limits or below minimums, a default exposure the plan does
    /// not allow.
    pub fn from_yaml(text: &str) -> Result<Self, PlanError> {
        let raw: RawCatalog = serde_yaml::from_str(text)?;
        if raw.plans.is_empty() {
            return Err(PlanError::Empty);
        }
        let plans = raw
            .plans
            .into_iter()
            .map(|(name, raw)| Ok((name.clone(), Self::validate(name, raw)?)))
            .collect::<Result<_, PlanError>>()?;
        Ok(Self { plans })
    }

    fn validate(name: String, raw: RawPlan) -> Result<Plan, PlanError> {
        let at = |f: &str| format!("plans.{name}.{f}");
        let (l, m, d) = (raw.limits, raw.minimums, raw.defaults);
        let limits = Limits {
            max_apps: l.max_apps,
            max_databases: l.max_databases,
            max_workspaces: l.max_workspaces,
            max_replicas: l.max_replicas,
            cpu: amount(at("limits.cpu"), &l.cpu)?,
            memory: amount(at("limits.memory"), &l.memory)?,
            storage: amount(at("limits.storage"), &l.storage)?,
            exposures: l.exposures,
            allowed_registries: l.allowed_registries.iter().map(|r| r.to_ascii_lowercase()).collect(),
            database_engines: l.database_engines,
            database_node_ports: l.database_node_ports,
        };
        for engine in limits.database_engines.keys() {
            ensure(KNOWN_ENGINES.contains(&engine.as_str()), at("limits.databaseEngines"), || {
                format!("unknown engine {engine:?}; Slipway runs {}", KNOWN_ENGINES.join(", "))
            })?;
        }
        ensure(!limits.allowed_registries.is_empty(), at("limits.allowedRegistries"), || {
            "list at least one registry, or \"*\" for any".into()
        })?;
        let minimums = Minimums {
            cpu: amount(at("minimums.cpu"), &m.cpu)?,
            memory: amount(at("minimums.memory"), &m.memory)?,
            storage: amount(at("minimums.storage"), &m.storage)?,
        };
        for (name, least) in [("cpu", &minimums.cpu), ("memory", &minimums.memory), ("storage", &minimums.storage)] {
            ensure(*least > Amount::zero(), at(&format!("minimums.{name}")), || "must be more than 0".into())?;
        }
        let defaults = Defaults {
            replicas: d.replicas,
            expose: d.expose,
            cpu_request: amount(at("defaults.cpuRequest"), &d.cpu_request)?,
            cpu_limit: amount(at("defaults.cpuLimit"), &d.cpu_limit)?,
            memory_request: amount(at("defaults.memoryRequest"), &d.memory_request)?,
            memory_limit: amount(at("defaults.memoryLimit"), &d.memory_limit)?,
            auto_rollback: d.auto_rollback,
        };
        ensure(defaults.replicas <= limits.max_replicas, at("defaults.replicas"), || {
            format!("{} is above limits.maxReplicas {}", defaults.replicas, limits.max_replicas)
        })?;
        ensure(limits.exposures.contains(&defaults.expose), at("defaults.expose"), || {
            format!("{} is not in limits.exposures", defaults.expose)
        })?;
        ensure(defaults.cpu_request <= defaults.cpu_limit, at("defaults.cpuRequest"), || {
            format!("{} is above defaults.cpuLimit {}", defaults.cpu_request, defaults.cpu_limit)
        })?;
        ensure(defaults.memory_request <= defaults.memory_limit, at("defaults.memoryRequest"), || {
            format!("{} is above defaults.memoryLimit {}", defaults.memory_request, defaults.memory_limit)
        })?;
        ensure(defaults.cpu_limit <= limits.cpu, at("defaults.cpuLimit"), || {
            format!("{} is above limits.cpu {}", defaults.cpu_limit, limits.cpu)
        })?;
        ensure(defaults.memory_limit <= limits.memory, at("defaults.memoryLimit"), || {
            format!("{} is above limits.memory {}", defaults.memory_limit, limits.memory)
        })?;
        ensure(defaults.cpu_request >= minimums.cpu, at("defaults.cpuRequest"), || {
            format!("{} is below minimums.cpu {}", defaults.cpu_request, minimums.cpu)
        })?;
        ensure(defaults.memory_request >= minimums.memory, at("defaults.memoryRequest"), || {
            format!("{} is below minimums.memory {}", defaults.memory_request, minimums.memory)
        })?;
        Ok(Plan { name, description: raw.description, self_service: raw.self_service, limits, minimums, defaults })
    }

    /// Looks a plan up by name.
    ///
    /// # Errors
    /// [`PlanError::UnknownPlan`] listing the plans that exist.
    pub fn plan(&self, name: &str) -> Result<&Plan, PlanError> {
        self.plans.get(name).ok_or_else(|| PlanError::UnknownPlan {
            name: name.to_string(),
            available: self.plans.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    /// Every plan, ordered by name.
    pub fn plans(&self) -> impl Iterator<Item = &Plan> {
        self.plans.values()
    }

    /// The policy of a tenant on `plan` with `overrides` applied field by field.
    ///
    /// # Errors
    /// [`PlanError::UnknownPlan`], or [`PlanError::Quantity`] for an override that does not parse.
    pub fn effective(&self, plan: &str, overrides: Option<&LimitOverrides>) -> Result<TenantPolicy, PlanError> {
        let plan = self.plan(plan)?;
        let mut limits = plan.limits.clone();
        if let Some(o) = overrides {
            let q =
                |field: &str, q: &Option<k8s_openapi::apimachinery::pkg::api::resource::Quantity>, current: &Amount| {
                    q.as_ref().map_or(Ok(current.clone()), |q| amount(format!("spec.limits.{field}"), &q.0))
                };
            limits.max_apps = o.max_apps.unwrap_or(limits.max_apps);
            limits.max_databases = o.max_databases.unwrap_or(limits.max_databases);
            limits.max_workspaces = o.max_workspaces.unwrap_or(limits.max_workspaces);
            limits.max_replicas = o.max_replicas.unwrap_or(limits.max_replicas);
            limits.cpu = q("cpu", &o.cpu, &limits.cpu)?;
            limits.memory = q("memory", &o.memory, &limits.memory)?;
            limits.storage = q("storage", &o.storage, &limits.storage)?;
        }
        Ok(TenantPolicy {
            plan: plan.name.clone(),
            limits,
            minimums: plan.minimums.clone(),
            defaults: plan.defaults.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    #[test]
    fn embedded_catalogue_is_valid() {
        let catalog = PlanCatalog::from_yaml(EMBEDDED_PLANS).unwrap();
        let names: Vec<_> = catalog.plans().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["free", "pro", "standard"]);
        assert_eq!(catalog.plan("free").unwrap().limits.max_apps, 3);
        let self_service: Vec<_> = catalog.plans().filter(|p| p.self_service).map(|p| p.name.as_str()).collect();
        assert_eq!(self_service, ["free"], "only free is self-service; the others need an admin's grant");
    }

    #[test]
    fn unknown_plan_lists_alternatives() {
        let err = PlanCatalog::embedded().plan("gold").unwrap_err().to_string();
        assert_eq!(err, r#"unknown plan "gold"; available plans: free, pro, standard"#);
    }

    fn with(replace: (&str, &str)) -> Result<PlanCatalog, PlanError> {
        PlanCatalog::from_yaml(&EMBEDDED_PLANS.replacen(replace.0, replace.1, 1))
    }

    #[test]
    fn rejects_inconsistent_plans() {
        let err = with(("      replicas: 1\n", "      replicas: 4\n")).unwrap_err().to_string();
        assert_eq!(err, "plans.free.defaults.replicas: 4 is above limits.maxReplicas 3");
        let err = with(("cpu: \"2\"", "cpu: 100m")).unwrap_err().to_string();
        assert_eq!(err, "plans.free.defaults.cpuLimit: 250m is above limits.cpu 100m");
        let err = with(("      expose: ClusterIP\n", "      expose: Ingress\n")).unwrap_err().to_string();
        assert_eq!(err, "plans.free.defaults.expose: Ingress is not in limits.exposures");
        let err = with(("memory: 2Gi", "memory: two")).unwrap_err().to_string();
        assert!(err.starts_with("plans.free.limits.memory: \"two\" is not a Kubernetes quantity"), "{err}");
        let err = with(("      memory: 32Mi\n", "      memory: 100Mi\n")).unwrap_err().to_string();
        assert_eq!(err, "plans.free.defaults.memoryRequest: 64Mi is below minimums.memory 100Mi");
        let err = with(("      storage: 100Mi\n", "      storage: \"0\"\n")).unwrap_err().to_string();
        assert_eq!(err, "plans.free.minimums.storage: must be more than 0");
    }

    #[test]
    fn rejects_unknown_database_engines() {
        let err = with(("redis: [\"7\"]}", "oracle: [\"23\"]}")).unwrap_err().to_string();
        assert_eq!(
            err,
            "plans.free.limits.databaseEngines: unknown engine \"oracle\"; Slipway runs postgres, mysql, mariadb, redis"
        );
    }

    #[test]
    fn rejects_unknown_fields_and_empty() {
        assert!(matches!(with(("maxApps: 3", "maxApps: 3\n      maxCats: 1")), Err(PlanError::Syntax(_))));
        assert!(matches!(PlanCatalog::from_yaml("plans: {}"), Err(PlanError::Empty)));
    }

    #[test]
    fn overrides_replace_only_what_they_set() {
        let catalog = PlanCatalog::embedded();
        let overrides =
            LimitOverrides { max_apps: Some(7), memory: Some(Quantity("4Gi".into())), ..Default::default() };
        let policy = catalog.effective("free", Some(&overrides)).unwrap();
        assert_eq!(policy.limits.max_apps, 7);
        assert_eq!(policy.limits.memory, Amount::parse("4Gi").unwrap());
        assert_eq!(policy.limits.cpu, Amount::parse("2").unwrap());
        assert_eq!(policy.limits.max_replicas, 3);
        let bad = LimitOverrides { cpu: Some(Quantity("x".into())), ..Default::default() };
        assert!(catalog.effective("free", Some(&bad)).unwrap_err().to_string().starts_with("spec.limits.cpu:"));
    }
}
