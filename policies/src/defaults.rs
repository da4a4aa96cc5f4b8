//! Defaults the mutating webhook fills in where a spec is silent. Nothing the user set
//! changes, and defaulting a defaulted spec changes nothing (idempotent).

use crate::TenantPolicy;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use slipway_crds::{AppSpec, ComputeResources, Expose, ResourceAmounts};

/// An App's replicas, exposure, and CPU/memory requests and limits, with Kubernetes
/// LimitRange semantics (<https://kubernetes.io/docs/concepts/policy/limit-range/>): an unset
/// limit takes the default limit; an unset request takes the container's own limit if it set
/// one, else the default request.
pub(crate) fn app(policy: &TenantPolicy, spec: &AppSpec) -> AppSpec {
    let d = &policy.defaults;
    let mut out = spec.clone();
    out.replicas.get_or_insert(i32::try_from(d.replicas).unwrap_or(i32::MAX));
    out.expose.get_or_insert(Expose { type_: d.expose, host: None });
    let resources = out.resources.get_or_insert_with(ComputeResources::default);
    let limits = resources.limits.get_or_insert_with(ResourceAmounts::default);
    let (own_cpu_limit, own_memory_limit) = (limits.cpu.clone(), limits.memory.clone());
    limits.cpu.get_or_insert_with(|| d.cpu_limit.to_quantity());
    limits.memory.get_or_insert_with(|| d.memory_limit.to_quantity());
    let requests = resources.requests.get_or_insert_with(ResourceAmounts::default);
    requests.cpu.get_or_insert_with(|| own_cpu_limit.unwrap_or_else(|| d.cpu_request.to_quantity()));
    requests.memory.get_or_insert_with(|| own_memory_limit.unwrap_or_else(|| d.memory_request.to_quantity()));
    out
}

/// A single-instance object's (Database, Workspace) CPU and memory: the plan's default limits,
/// requested and limited alike.
pub(crate) fn instance(policy: &TenantPolicy, cpu: &mut Option<Quantity>, memory: &mut Option<Quantity>) {
    cpu.get_or_insert_with(|| policy.defaults.cpu_limit.to_quantity());
    memory.get_or_insert_with(|| policy.defaults.memory_limit.to_quantity());
}
