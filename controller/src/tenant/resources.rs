//! Pure builders of the objects a tenant owns. Each names its source of truth.

use k8s_openapi::{
    api::{
        core::v1::{LimitRange, LimitRangeItem, LimitRangeSpec, Namespace, ResourceQuota, ResourceQuotaSpec},
        networking::v1::{
            NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
            NetworkPolicySpec,
        },
        rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleBinding, RoleRef, Subject},
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference},
        util::intstr::IntOrString,
    },
};
use slipway_crds::{Kind, TENANT_LABEL, role_group, tenant_group, tenant_namespace};
use slipway_policies::TenantPolicy;
use std::collections::BTreeMap;

/// The ClusterRole bound in every tenant namespace to the tenant's group (everyone in it).
pub const MEMBER_ROLE: &str = "slipway:tenant-member";

/// The ClusterRole bound in every tenant namespace to the tenant's owners and admins, on top
/// of [`MEMBER_ROLE`].
pub const ADMIN_ROLE: &str = "slipway:tenant-admin";

fn labels(tenant: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (TENANT_LABEL.to_string(), tenant.to_string()),
        ("app.kubernetes.io/managed-by".to_string(), "slipway".to_string()),
    ])
}

fn meta(name: &str, tenant: &str, owner: OwnerReference) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(tenant_namespace(tenant)),
        labels: Some(labels(tenant)),
        owner_references: Some(vec![owner]),
        ..Default::default()
    }
}

/// The tenant's namespace. Pod Security Admission enforces the `restricted` profile
/// (<https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted>).
pub fn namespace(tenant: &str, owner: OwnerReference) -> Namespace {
    let mut labels = labels(tenant);
    labels.insert("pod-security.kubernetes.io/enforce".into(), "restricted".into());
    labels.insert("pod-security.kubernetes.io/enforce-version".into(), "latest".into());
    Namespace {
        metadata: ObjectMeta {
            name: Some(tenant_namespace(tenant)),
            labels: Some(labels),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The plan's totals as a ResourceQuota: compute, storage and Service kinds
/// (<https://kubernetes.io/docs/concepts/policy/resource-quotas/>). NodePorts as many as the
/// plan's objects may hold ([`TenantPolicy::node_port_quota`]); LoadBalancers never (Slipway
/// does not offer them).
///
/// Counts of Slipway's own kinds (`count/apps.slipway.dev`) are deliberately absent: the quota
/// controller learns about a CRD's resources only on its periodic discovery, and until then
/// quota admission refuses every such object ("status unknown for quota"). Those counts are
/// checked by the API and the admission webhook instead.
pub fn quota(tenant: &str, policy: &TenantPolicy, owner: OwnerReference) -> ResourceQuota {
    let l = &policy.limits;
    let count = |n: u32| Quantity(n.to_string());
    let node_ports = policy.node_port_quota();
    let hard = BTreeMap::from([
        ("requests.cpu".to_string(), l.cpu.to_quantity()),
        ("limits.cpu".to_string(), l.cpu.to_quantity()),
        ("requests.memory".to_string(), l.memory.to_quantity()),
        ("limits.memory".to_string(), l.memory.to_quantity()),
        ("requests.storage".to_string(), l.storage.to_quantity()),
        ("services.nodeports".to_string(), count(node_ports)),
        ("services.loadbalancers".to_string(), count(0)),
    ]);
    ResourceQuota {
        metadata: meta("slipway-plan", tenant, owner),
        spec: Some(ResourceQuotaSpec { hard: Some(hard), ..Default::default() }),
        ..Default::default()
    }
}

/// Whether the quota controller has computed usage for every resource of `quota`. Until it
/// has, quota admission refuses every object the quota covers ("status unknown for quota"),
/// so the tenant is not usable yet.
pub fn quota_observed(quota: &ResourceQuota) -> bool {
    let hard = quota.spec.as_ref().and_then(|s| s.hard.as_ref());
    let used = quota.status.as_ref().and_then(|s| s.used.as_ref());
    match (hard, used) {
        (Some(hard), Some(used)) => hard.keys().all(|k| used.contains_key(k)),
        (None, _) => true,
        (Some(_), None) => false,
    }
}

/// The plan's per-container defaults as a LimitRange, so pods that do not say get them and the
/// quota (which requires requests and limits) admits them
/// (<https://kubernetes.io/docs/concepts/policy/limit-range/>).
pub fn limit_range(tenant: &str, policy: &TenantPolicy, owner: OwnerReference) -> LimitRange {
    let d = &policy.defaults;
    let pair = |cpu: &slipway_policies::Amount, memory: &slipway_policies::Amount| {
        BTreeMap::from([("cpu".to_string(), cpu.to_quantity()), ("memory".to_string(), memory.to_quantity())])
    };
    LimitRange {
        metadata: meta("slipway-defaults", tenant, owner),
        spec: Some(LimitRangeSpec {
            limits: vec![LimitRangeItem {
                type_: "Container".into(),
                default: Some(pair(&d.cpu_limit, &d.memory_limit)),
                default_request: Some(pair(&d.cpu_request, &d.memory_request)),
                ..Default::default()
            }],
        }),
    }
}

/// What a tenant member may do in the tenant namespace: manage Slipway resources (and scale
/// Apps through their scale subresource), read the
/// workloads, pods, logs and events the controller makes from them, and read the tenant's
/// Secrets one by one (its own Database credentials) and volume claims. Nothing else: the
/// Deployments and Services are the controller's to write.
pub fn member_role() -> ClusterRole {
    let read = ["get", "list", "watch"];
    let kinds: Vec<String> = Kind::ALL.iter().map(|k| k.plural().into_owned()).collect();
    let statuses: Vec<String> = kinds.iter().map(|k| format!("{k}/status")).collect();
    let kinds: Vec<&str> = kinds.iter().map(String::as_str).collect();
    let statuses: Vec<&str> = statuses.iter().map(String::as_str).collect();
    ClusterRole {
        metadata: shared_meta(MEMBER_ROLE),
        rules: Some(vec![
            rule(&[slipway_crds::GROUP], &kinds, &["get", "list", "watch", "create", "update", "patch", "delete"]),
            rule(&[slipway_crds::GROUP], &statuses, &read),
            // `kubectl scale app/NAME`: judged by the webhook like any change of the App.
            rule(&[slipway_crds::GROUP], &["apps/scale"], &["get", "update", "patch"]),
            rule(
                &[""],
                &["pods", "pods/log", "events", "services", "endpoints", "resourcequotas", "limitranges"],
                &read,
            ),
            // Apps' revision history is kept in ControllerRevisions (see `slipway_crds::revision`).
            rule(&["apps"], &["deployments", "replicasets", "statefulsets", "controllerrevisions"], &read),
            // Database credentials by name (`GET .../databases/{db}/credentials` reads them as
            // the member); not `list`, which would return every Secret's content at once.
            rule(&[""], &["secrets"], &["get"]),
            rule(&[""], &["persistentvolumeclaims"], &read),
            rule(&["networking.k8s.io"], &["ingresses"], &read),
            rule(&["autoscaling"], &["horizontalpodautoscalers"], &read),
            rule(&["events.k8s.io"], &["events"], &read),
        ]),
        ..Default::default()
    }
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(groups.iter().map(|s| s.to_string()).collect()),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn shared_meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        labels: Some(BTreeMap::from([("app.kubernetes.io/managed-by".into(), "slipway".into())])),
        ..Default::default()
    }
}

fn group(name: String) -> Subject {
    Subject { api_group: Some("rbac.authorization.k8s.io".into()), kind: "Group".into(), name, ..Default::default() }
}

fn cluster_role_ref(name: &str) -> RoleRef {
    RoleRef { api_group: Some("rbac.authorization.k8s.io".into()), kind: "ClusterRole".into(), name: name.into() }
}

/// What owners and admins may do in the tenant namespace beyond members: restart pods (delete
/// one; its Deployment or StatefulSet makes another) and delete volume claims (those a
/// Database with `deletionPolicy: Retain` left behind). Managing people happens in the API.
pub fn admin_role() -> ClusterRole {
    ClusterRole {
        metadata: shared_meta(ADMIN_ROLE),
        rules: Some(vec![rule(&[""], &["pods", "persistentvolumeclaims"], &["delete"])]),
        ..Default::default()
    }
}

/// Binds [`ADMIN_ROLE`] in the tenant namespace to the groups of its owners and admins.
pub fn admin_binding(tenant: &str, owner: OwnerReference) -> RoleBinding {
    RoleBinding {
        metadata: meta("slipway-tenant-admins", tenant, owner),
        role_ref: cluster_role_ref(ADMIN_ROLE),
        subjects: Some(vec![group(role_group(tenant, "owner")), group(role_group(tenant, "admin"))]),
    }
}

/// The name of the tenant's own ClusterRole and ClusterRoleBinding: `slipway:tenant:<name>:owner`.
pub fn owner_role_name(tenant: &str) -> String {
    role_group(tenant, "owner")
}

fn cluster_meta(tenant: &str, owner: OwnerReference) -> ObjectMeta {
    ObjectMeta {
        name: Some(owner_role_name(tenant)),
        labels: Some(labels(tenant)),
        owner_references: Some(vec![owner]),
        ..Default::default()
    }
}

/// What only owners may do: read and delete their Tenant (a cluster-scoped object, so a
/// ClusterRole limited to its name). Owned by the Tenant, so it goes with it.
pub fn owner_role(tenant: &str, owner: OwnerReference) -> ClusterRole {
    let mut delete = rule(&[slipway_crds::GROUP], &["tenants"], &["get", "delete"]);
    delete.resource_names = Some(vec![tenant.to_string()]);
    ClusterRole { metadata: cluster_meta(tenant, owner), rules: Some(vec![delete]), ..Default::default() }
}

/// Binds [`owner_role`] to the group of the tenant's owners.
pub fn owner_binding(tenant: &str, owner: OwnerReference) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: cluster_meta(tenant, owner),
        role_ref: cluster_role_ref(&owner_role_name(tenant)),
        subjects: Some(vec![group(role_group(tenant, "owner"))]),
    }
}

/// Binds [`MEMBER_ROLE`] in the tenant namespace to the group `slipway:tenant:<name>`, the
/// group the API impersonates for the tenant's members.
pub fn member_binding(tenant: &str, owner: OwnerReference) -> RoleBinding {
    RoleBinding {
        metadata: meta("slipway-tenant-members", tenant, owner),
        role_ref: cluster_role_ref(MEMBER_ROLE),
        subjects: Some(vec![group(tenant_group(tenant))]),
    }
}

/// Default deny for every pod of the tenant: ingress only from the same namespace; egress only
/// to the same namespace and to DNS in kube-system
/// (<https://kubernetes.io/docs/concepts/services-networking/network-policies/#default-policies>).
/// Exposed Apps get their own allow policy from the App controller.
pub fn default_deny(tenant: &str, owner: OwnerReference) -> NetworkPolicy {
    let same_namespace = NetworkPolicyPeer { pod_selector: Some(LabelSelector::default()), ..Default::default() };
    let kube_system = NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([("kubernetes.io/metadata.name".into(), "kube-system".into())])),
            ..Default::default()
        }),
        ..Default::default()
    };
    let dns = |protocol: &str| NetworkPolicyPort {
        protocol: Some(protocol.into()),
        port: Some(IntOrString::Int(53)),
        ..Default::default()
    };
    NetworkPolicy {
        metadata: meta("slipway-default-deny", tenant, owner),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![same_namespace.clone()]),
                ..Default::default()
            }]),
            egress: Some(vec![
                NetworkPolicyEgressRule { to: Some(vec![same_namespace]), ..Default::default() },
                NetworkPolicyEgressRule { to: Some(vec![kube_system]), ports: Some(vec![dns("UDP"), dns("TCP")]) },
            ]),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_policies::PlanCatalog;

    fn owner() -> OwnerReference {
        OwnerReference {
            api_version: "slipway.dev/v1alpha1".into(),
            kind: "Tenant".into(),
            name: "acme".into(),
            uid: "u".into(),
            ..Default::default()
        }
    }

    #[test]
    fn namespace_enforces_restricted_and_is_owned() {
        let ns = namespace("acme", owner());
        let labels = ns.metadata.labels.unwrap();
        assert_eq!(ns.metadata.name.as_deref(), Some("tenant-acme"));
        assert_eq!(labels["pod-security.kubernetes.io/enforce"], "restricted");
        assert_eq!(labels[TENANT_LABEL], "acme");
        assert_eq!(ns.metadata.owner_references.unwrap()[0].name, "acme");
    }

    #[test]
    fn quota_mirrors_the_plan() {
        let free = PlanCatalog::embedded().effective("free", None).unwrap();
        let hard = quota("acme", &free, owner()).spec.unwrap().hard.unwrap();
        assert_eq!(hard["limits.cpu"], Quantity("2".into()));
        assert_eq!(hard["requests.memory"], Quantity("2Gi".into()));
        // free: 3 Apps on node ports, no Database node ports, 1 Workspace's SSH port.
        assert_eq!(hard["services.nodeports"], Quantity("4".into()));
    }

    #[test]
    fn quota_is_observed_once_every_resource_has_usage() {
        let free = PlanCatalog::embedded().effective("free", None).unwrap();
        let mut q = quota("acme", &free, owner());
        assert!(!quota_observed(&q));
        let mut used = q.spec.as_ref().unwrap().hard.clone().unwrap();
        let last = used.keys().next_back().unwrap().clone();
        used.remove(&last);
        q.status =
            Some(k8s_openapi::api::core::v1::ResourceQuotaStatus { used: Some(used.clone()), ..Default::default() });
        assert!(!quota_observed(&q), "one resource without usage");
        used.insert(last, Quantity("0".into()));
        q.status.as_mut().unwrap().used = Some(used);
        assert!(quota_observed(&q));
    }

    #[test]
    fn binding_names_the_tenant_group() {
        let rb = member_binding("acme", owner());
        assert_eq!(rb.subjects.unwrap()[0].name, "slipway:tenant:acme");
        assert_eq!(rb.role_ref.name, MEMBER_ROLE);
    }

    #[test]
    fn owners_and_admins_get_more_and_only_owners_reach_their_tenant() {
        let admins = admin_binding("acme", owner());
        let groups: Vec<_> = admins.subjects.unwrap().into_iter().map(|s| s.name).collect();
        assert_eq!(groups, ["slipway:tenant:acme:owner", "slipway:tenant:acme:admin"]);
        assert_eq!(admins.role_ref.name, ADMIN_ROLE);
        let role = owner_role("acme", owner());
        assert_eq!(role.metadata.name.as_deref(), Some("slipway:tenant:acme:owner"));
        let rule = &role.rules.unwrap()[0];
        assert_eq!(rule.resource_names.as_deref(), Some(&["acme".to_string()][..]));
        assert_eq!(rule.verbs, ["get", "delete"]);
        let binding = owner_binding("acme", owner());
        assert_eq!(binding.subjects.unwrap()[0].name, "slipway:tenant:acme:owner");
        assert_eq!(binding.metadata.owner_references.unwrap()[0].name, "acme");
    }

    #[test]
    fn default_deny_allows_dns_only_outside() {
        let np = default_deny("acme", owner()).spec.unwrap();
        let egress = np.egress.unwrap();
        assert_eq!(egress.len(), 2);
        assert_eq!(egress[1].ports.as_ref().unwrap()[0].port, Some(IntOrString::Int(53)));
        assert_eq!(np.policy_types.unwrap(), ["Ingress", "Egress"]);
    }
}
