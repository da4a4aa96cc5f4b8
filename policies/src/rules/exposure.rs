//! Exposure and hosts: the exposure types an App may use (`limits.exposures`), its Ingress host
//! (under `<tenant>.<ingress domain>`, no wildcards, held by one App only), node ports for
//! Databases only where the plan allows (`limits.databaseNodePorts`), and the node-port count
//! these add up to in the tenant's ResourceQuota.

use crate::{Outcome, Review, TenantPolicy, Violation};
use slipway_crds::{AppSpec, DatabaseSpec, ExposeType};

/// The App's exposure type and, for Ingress, its host.
pub(crate) fn review_app(policy: &TenantPolicy, review: &Review<'_, AppSpec>, out: &mut Outcome) {
    let expose = review.spec.expose_type();
    let allowed = &policy.limits.exposures;
    if !allowed.contains(&expose) {
        let allowed: Vec<_> = allowed.iter().map(ToString::to_string).collect();
        out.deny(Violation::invalid(
            "spec.expose.type",
            format!("{expose} is not allowed by the plan \"{}\" (allowed: {})", policy.plan, allowed.join(", ")),
        ));
    }
    review_host(review, out);
}

fn review_host(review: &Review<'_, AppSpec>, out: &mut Outcome) {
    let Some(host) =
        review.spec.expose.as_ref().filter(|e| e.type_ == ExposeType::Ingress).and_then(|e| e.host.as_ref())
    else {
        return;
    };
    let host = host.to_ascii_lowercase();
    let field = "spec.expose.host";
    if host.contains('*') {
        out.deny(Violation::invalid(field, format!("wildcard hosts such as {host:?} are not allowed; name one host")));
        return;
    }
    let domain = format!("{}.{}", review.tenant, review.platform.ingress_domain);
    if host != domain && !host.ends_with(&format!(".{domain}")) {
        out.deny(Violation::invalid(
            field,
            format!(
                "{host:?} is outside the tenant's domain; use {domain} or a name under it, e.g. {}.{domain}",
                review.name
            ),
        ));
        return;
    }
    let holder = review.hosts.iter().find(|c| c.host == host && !(c.tenant == review.tenant && c.app == review.name));
    if let Some(c) = holder {
        let who =
            if c.tenant == review.tenant { format!("App {:?} of this tenant", c.app) } else { "another tenant".into() };
        out.deny(Violation::invalid(field, format!("{host:?} is already held by {who}; choose another host")));
    }
}

/// A Database's node port, only where the plan allows it.
pub(crate) fn review_database(policy: &TenantPolicy, spec: &DatabaseSpec, out: &mut Outcome) {
    if spec.node_port() && !policy.limits.database_node_ports {
        out.deny(Violation::invalid(
            "spec.expose.type",
            format!(
                "NodePort is not allowed for Databases by the plan \"{}\"; use ClusterIP and connect from inside the cluster",
                policy.plan
            ),
        ));
    }
}

/// The node ports a tenant may hold (`services.nodeports` of its ResourceQuota): every
/// Workspace has an SSH node port; Apps and Databases only where the plan allows them one.
pub fn node_port_quota(policy: &TenantPolicy) -> u32 {
    let l = &policy.limits;
    let apps = if l.exposures.contains(&ExposeType::NodePort) { l.max_apps } else { 0 };
    let databases = if l.database_node_ports { l.max_databases } else { 0 };
    apps.saturating_add(databases).saturating_add(l.max_workspaces)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HostClaim, Inventory, PlanCatalog, Platform, Requester};
    use slipway_crds::Expose;

    fn plan(name: &str) -> TenantPolicy {
        PlanCatalog::embedded().effective(name, None).unwrap()
    }

    fn judge(plan_name: &str, expose: Expose, hosts: &[HostClaim]) -> Outcome {
        let spec = AppSpec {
            image: "nginx".into(),
            port: 80,
            replicas: None,
            env: vec![],
            resources: None,
            expose: Some(expose),
            autoscaling: None,
            rollout: None,
            revision_history_limit: None,
        };
        let platform = Platform::new("apps.example.com", [""; 0]);
        let review = Review {
            tenant: "acme",
            owners: &[],
            members: &[],
            name: "web",
            spec: &spec,
            previous: None,
            requester: Requester::Operator,
            others: &Inventory::default(),
            hosts,
            platform: &platform,
        };
        let mut out = Outcome::default();
        review_app(&plan(plan_name), &review, &mut out);
        out
    }

    fn ingress(host: &str) -> Expose {
        Expose { type_: ExposeType::Ingress, host: Some(host.into()) }
    }

    #[test]
    fn exposure_types_follow_the_plan() {
        let out = judge("free", ingress("acme.apps.example.com"), &[]);
        assert_eq!(
            out.message(),
            r#"spec.expose.type: Ingress is not allowed by the plan "free" (allowed: ClusterIP, NodePort)"#
        );
        assert!(judge("free", Expose { type_: ExposeType::NodePort, host: None }, &[]).allowed());
    }

    #[test]
    fn ingress_hosts_stay_in_the_tenant_domain_and_are_held_once() {
        assert!(judge("standard", ingress("acme.apps.example.com"), &[]).allowed());
        assert!(judge("standard", ingress("shop.acme.apps.example.com"), &[]).allowed());
        assert_eq!(
            judge("standard", ingress("shop.example.com"), &[]).message(),
            r#"spec.expose.host: "shop.example.com" is outside the tenant's domain; use acme.apps.example.com or a name under it, e.g. web.acme.apps.example.com"#
        );
        assert!(!judge("standard", ingress("evilacme.apps.example.com"), &[]).allowed(), "label boundary");
        assert!(judge("standard", ingress("*.acme.apps.example.com"), &[]).message().contains("wildcard hosts"));
        let claim = |tenant: &str, app: &str| HostClaim {
            host: "shop.acme.apps.example.com".into(),
            tenant: tenant.into(),
            app: app.into(),
        };
        let host = ingress("shop.acme.apps.example.com");
        assert!(
            judge("standard", host.clone(), &[claim("acme", "old")])
                .message()
                .ends_with(r#"is already held by App "old" of this tenant; choose another host"#)
        );
        assert!(judge("standard", host.clone(), &[claim("acme", "web")]).allowed(), "its own host");
        assert!(judge("standard", host, &[claim("other", "web")]).message().contains("held by another tenant"));
    }

    #[test]
    fn node_ports_add_up_per_plan() {
        // free: 3 Apps on node ports, no Database node ports, 1 Workspace's SSH port.
        assert_eq!(node_port_quota(&plan("free")), 4);
        // standard: 10 Apps, 3 Databases, 5 Workspaces.
        assert_eq!(node_port_quota(&plan("standard")), 18);
    }
}
