//! The admission rules: everything [`TenantPolicy::check_app`] checks, plus what needs the
//! tenant's other objects and the cluster's Ingress hosts; and the defaults the mutating
//! webhook fills in. Pure: the webhook and the API feed them from their own caches.

use crate::{
    Inventory, TenantPolicy, Violation,
    check::Resource,
    tenancy::{Kind, review_name},
};
use slipway_crds::{AppSpec, ComputeResources, Expose, ExposeType, ResourceAmounts};

/// An Ingress host held by an App somewhere in the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostClaim {
    /// Host name, lowercase.
    pub host: String,
    /// Tenant of the App holding it.
    pub tenant: String,
    /// Name of the App holding it.
    pub app: String,
}

/// One App under review, with what it is judged against.
#[derive(Clone, Copy, Debug)]
pub struct AppReview<'a> {
    /// Tenant the App belongs to.
    pub tenant: &'a str,
    /// The App's name.
    pub name: &'a str,
    /// The spec to admit (after defaulting).
    pub spec: &'a AppSpec,
    /// Everything else the tenant holds (stored or reserved), not including this App.
    pub others: &'a Inventory,
    /// The stored spec on UPDATE (`None` on CREATE): a change that does not raise the App's
    /// footprint is never denied for tenant totals, so a tenant over a shrunken plan can still
    /// scale down.
    pub previous: Option<&'a AppSpec>,
    /// Ingress hosts held by Apps anywhere in the cluster.
    pub hosts: &'a [HostClaim],
    /// Base domain of tenants' Ingress hosts: tenant `acme` may use `acme.<base>` and names under it.
    pub ingress_domain: &'a str,
}

/// The verdict: denied when `violations` is not empty; `warnings` go back to the client
/// either way (AdmissionResponse warnings, shown by kubectl).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// Broken rules, each naming the field, the limit and the value.
    pub violations: Vec<Violation>,
    /// Values close to a limit.
    pub warnings: Vec<String>,
}

/// The registry of an image reference, lowercase: the first path component when it looks
/// like a host (has a `.` or `:`, or is `localhost`), else `docker.io` (Docker's rule for
/// short names such as `nginx` or `library/nginx`, as in the distribution reference grammar).
pub fn image_registry(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first.to_ascii_lowercase()
        }
        _ => "docker.io".into(),
    }
}

impl TenantPolicy {
    /// Judges one App: the per-object rules of [`TenantPolicy::check_app`], the tenant totals
    /// over `others` plus this App (CPU and memory of every kind), the image registry, the
    /// Ingress host, and on CREATE that its Service name is free.
    pub fn review_app(&self, review: &AppReview<'_>) -> Outcome {
        let spec = review.spec;
        // An UPDATE never changes how many Apps there are: count only CREATEs.
        let others = if review.previous.is_some() { 0 } else { review.others.count(Kind::App) };
        let mut out =
            Outcome { violations: self.check_app(spec, crate::AppUsage { other_apps: others }), warnings: vec![] };
        if out.violations.is_empty() && review.previous.is_none() {
            // check_app admitted the count, so this adds at most the "last one" warning.
            self.review_count(Kind::App, review.others, &mut out);
        }
        if let Some(needed) = self.app_footprint(spec) {
            let before = review.previous.and_then(|p| self.app_footprint(p));
            let field = |name: &str| format!("spec.resources.limits.{name}");
            self.review_totals("this App", &needed, before.as_ref(), review.others, field, &mut out);
        }
        self.review_registry(&spec.image, &mut out.violations);
        review_host(review, &mut out.violations);
        if review.previous.is_none() {
            review_name(Kind::App, review.name, review.others, &mut out.violations);
        }
        out
    }

    /// Whether changing an App from `previous` to `spec` raises its CPU or memory footprint
    /// (or makes it unreadable): only such UPDATEs need the tenant's usage to be judged.
    pub fn grows(&self, previous: &AppSpec, spec: &AppSpec) -> bool {
        Resource::ALL.into_iter().any(|r| match (self.footprint(previous, r), self.footprint(spec, r)) {
            (Some(before), Some(after)) => after > before,
            _ => true,
        })
    }

    /// Denies an image from a registry the plan does not allow.
    pub(crate) fn review_registry(&self, image: &str, out: &mut Vec<Violation>) {
        let allowed = &self.limits.allowed_registries;
        let registry = image_registry(image);
        if !allowed.iter().any(|r| r == "*" || *r == registry) {
            out.push(Violation {
                field: "spec.image".into(),
                message: format!(
                    "registry \"{registry}\" is not allowed by the plan \"{}\" (allowed: {})",
                    self.plan,
                    allowed.join(", ")
                ),
            });
        }
    }

    /// The App with the plan's defaults filled in where its spec is silent: replicas, exposure,
    /// and CPU/memory requests and limits. Kubernetes LimitRange semantics
    /// (<https://kubernetes.io/docs/concepts/policy/limit-range/>): an unset limit takes the
    /// default limit; an unset request takes the container's own limit if it set one, else the
    /// default request. Nothing the user set changes, and defaulting a defaulted spec changes
    /// nothing (idempotent).
    pub fn default_app(&self, spec: &AppSpec) -> AppSpec {
        let d = &self.defaults;
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
}

fn review_host(review: &AppReview<'_>, out: &mut Vec<Violation>) {
    let Some(host) =
        review.spec.expose.as_ref().filter(|e| e.type_ == ExposeType::Ingress).and_then(|e| e.host.as_ref())
    else {
        return;
    };
    let host = host.to_ascii_lowercase();
    let field = "spec.expose.host".to_string();
    if host.contains('*') {
        out.push(Violation {
            field,
            message: format!("wildcard hosts such as {host:?} are not allowed; name one host"),
        });
        return;
    }
    let domain = format!("{}.{}", review.tenant, review.ingress_domain.trim_matches('.').to_ascii_lowercase());
    if host != domain && !host.ends_with(&format!(".{domain}")) {
        out.push(Violation {
            field,
            message: format!(
                "{host:?} is outside the tenant's domain; use {domain} or a name under it, e.g. {}.{domain}",
                review.name
            ),
        });
        return;
    }
    let holder = review.hosts.iter().find(|c| c.host == host && !(c.tenant == review.tenant && c.app == review.name));
    if let Some(c) = holder {
        let who =
            if c.tenant == review.tenant { format!("App {:?} of this tenant", c.app) } else { "another tenant".into() };
        out.push(Violation { field, message: format!("{host:?} is already held by {who}; choose another host") });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PlanCatalog;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn plan(name: &str) -> TenantPolicy {
        PlanCatalog::embedded().effective(name, None).unwrap()
    }

    /// An App with `replicas` pods of `cpu` CPU and 64Mi memory limits each.
    fn app(replicas: i32, cpu: &str) -> AppSpec {
        AppSpec {
            image: "nginx".into(),
            port: 8080,
            replicas: Some(replicas),
            env: vec![],
            resources: Some(ComputeResources {
                requests: None,
                limits: Some(ResourceAmounts {
                    cpu: Some(Quantity(cpu.into())),
                    memory: Some(Quantity("64Mi".into())),
                }),
            }),
            expose: None,
        }
    }

    /// An inventory of Apps named `app0`, `app1`, ...
    fn apps<const N: usize>(specs: [AppSpec; N]) -> Inventory {
        let apps = specs.into_iter().enumerate().map(|(i, s)| (format!("app{i}"), s)).collect();
        Inventory { apps, ..Default::default() }
    }

    fn review<'a>(spec: &'a AppSpec, others: &'a Inventory, hosts: &'a [HostClaim]) -> AppReview<'a> {
        AppReview {
            tenant: "acme",
            name: "web",
            spec,
            others,
            previous: None,
            hosts,
            ingress_domain: "apps.example.com",
        }
    }

    fn messages(o: &Outcome) -> Vec<String> {
        o.violations.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn tenant_cpu_total_exactly_at_the_limit_is_admitted_one_over_is_not() {
        // free: 2 CPUs in total. Others use 1500m; 500m more is exactly the limit.
        let others = apps([app(3, "500m")]);
        let at = plan("free").review_app(&review(&app(1, "500m"), &others, &[]));
        assert!(at.violations.is_empty(), "{:?}", at.violations);
        assert_eq!(at.warnings, [r#"the tenant will use 2 of the plan "free" cpu limit of 2 (100%)"#]);
        let over = plan("free").review_app(&review(&app(1, "501m"), &others, &[]));
        assert_eq!(
            messages(&over),
            [
                r#"spec.resources.limits.cpu: this App needs 501m but the tenant already uses 1500m of the plan "free" cpu limit of 2 (500m left)"#
            ]
        );
    }

    #[test]
    fn an_update_that_lowers_usage_is_admitted_even_over_the_total() {
        // Others alone are over the total (e.g. the plan shrank); scaling this App down is fine,
        // scaling it up is not.
        let others = apps([app(3, "750m")]);
        let previous = app(2, "500m");
        let (down, up) = (app(1, "500m"), app(3, "500m"));
        let lower = plan("free").review_app(&AppReview { previous: Some(&previous), ..review(&down, &others, &[]) });
        assert!(lower.violations.is_empty(), "{:?}", lower.violations);
        let higher = plan("free").review_app(&AppReview { previous: Some(&previous), ..review(&up, &others, &[]) });
        assert_eq!(higher.violations[0].field, "spec.resources.limits.cpu");
        assert!(plan("free").grows(&previous, &up) && !plan("free").grows(&previous, &down));

        // A tenant over its App count (the plan shrank) may still update its Apps.
        let three = apps([app(1, "10m"), app(1, "10m"), app(1, "10m")]);
        let update = plan("free").review_app(&AppReview { previous: Some(&down), ..review(&down, &three, &[]) });
        assert!(update.violations.is_empty(), "{:?}", update.violations);
        // The App being updated is never counted against itself: `others` excludes it.
        let alone = plan("free").review_app(&review(&app(3, "500m"), &Inventory::default(), &[]));
        assert!(alone.violations.is_empty(), "{:?}", alone.violations);
    }

    #[test]
    fn counts_warn_on_the_last_app_and_deny_past_it() {
        let two = apps([app(1, "100m"), app(1, "100m")]);
        let last = plan("free").review_app(&review(&app(1, "100m"), &two, &[]));
        assert!(last.violations.is_empty());
        assert_eq!(last.warnings, [r#"this is the last App the plan "free" allows (3 of 3)"#]);
        let three = apps([app(1, "100m"), app(1, "100m"), app(1, "100m")]);
        let over = plan("free").review_app(&review(&app(1, "100m"), &three, &[]));
        assert_eq!(over.violations[0].field, "metadata.name");
    }

    #[test]
    fn images_come_from_allowed_registries() {
        assert_eq!(image_registry("nginx"), "docker.io");
        assert_eq!(image_registry("library/nginx:1.27"), "docker.io");
        assert_eq!(image_registry("ghcr.io/acme/api@sha256:abc"), "ghcr.io");
        assert_eq!(image_registry("localhost:5000/x"), "localhost:5000");
        assert_eq!(
            image_registry("LOCALHOST/x"),
            "docker.io",
            "registry host names are lowercase; LOCALHOST is a user name"
        );
        let mut spec = app(1, "100m");
        spec.image = "evil.example.com/miner".into();
        let o = plan("free").review_app(&review(&spec, &Inventory::default(), &[]));
        assert_eq!(
            messages(&o),
            [
                r#"spec.image: registry "evil.example.com" is not allowed by the plan "free" (allowed: docker.io, ghcr.io, quay.io)"#
            ]
        );
        assert!(
            plan("pro").review_app(&review(&spec, &Inventory::default(), &[])).violations.is_empty(),
            "pro allows any registry"
        );
    }

    fn ingress(host: &str) -> AppSpec {
        let mut spec = app(1, "100m");
        spec.expose = Some(Expose { type_: ExposeType::Ingress, host: Some(host.into()) });
        spec
    }

    #[test]
    fn ingress_hosts_stay_in_the_tenant_domain_and_are_held_once() {
        let standard = plan("standard");
        assert!(
            standard
                .review_app(&review(&ingress("acme.apps.example.com"), &Inventory::default(), &[]))
                .violations
                .is_empty()
        );
        assert!(
            standard
                .review_app(&review(&ingress("shop.acme.apps.example.com"), &Inventory::default(), &[]))
                .violations
                .is_empty()
        );
        let outside = standard.review_app(&review(&ingress("shop.example.com"), &Inventory::default(), &[]));
        assert_eq!(
            messages(&outside),
            [
                r#"spec.expose.host: "shop.example.com" is outside the tenant's domain; use acme.apps.example.com or a name under it, e.g. web.acme.apps.example.com"#
            ]
        );
        let lookalike = standard.review_app(&review(&ingress("evilacme.apps.example.com"), &Inventory::default(), &[]));
        assert_eq!(lookalike.violations.len(), 1, "a suffix match must be on a label boundary");
        let wildcard = standard.review_app(&review(&ingress("*.acme.apps.example.com"), &Inventory::default(), &[]));
        assert!(messages(&wildcard)[0].contains("wildcard hosts"));

        let taken = [HostClaim { host: "shop.acme.apps.example.com".into(), tenant: "acme".into(), app: "old".into() }];
        let clash = standard.review_app(&review(&ingress("shop.acme.apps.example.com"), &Inventory::default(), &taken));
        assert!(messages(&clash)[0].ends_with(r#"is already held by App "old" of this tenant; choose another host"#));
        let mine = [HostClaim { host: "shop.acme.apps.example.com".into(), tenant: "acme".into(), app: "web".into() }];
        assert!(
            standard
                .review_app(&review(&ingress("shop.acme.apps.example.com"), &Inventory::default(), &mine))
                .violations
                .is_empty()
        );
        let foreign =
            [HostClaim { host: "shop.acme.apps.example.com".into(), tenant: "other".into(), app: "web".into() }];
        let stolen =
            standard.review_app(&review(&ingress("shop.acme.apps.example.com"), &Inventory::default(), &foreign));
        assert!(messages(&stolen)[0].contains("held by another tenant"));
    }

    #[test]
    fn defaults_fill_only_what_is_unset_and_are_idempotent() {
        let free = plan("free");
        let bare =
            AppSpec { image: "nginx".into(), port: 8080, replicas: None, env: vec![], resources: None, expose: None };
        let once = free.default_app(&bare);
        assert_eq!(once.replicas, Some(1));
        assert_eq!(once.expose, Some(Expose { type_: ExposeType::ClusterIP, host: None }));
        let r = once.resources.clone().unwrap();
        assert_eq!(r.limits.unwrap().cpu, Some(Quantity("250m".into())));
        assert_eq!(r.requests.unwrap().memory, Some(Quantity("64Mi".into())));
        assert_eq!(free.default_app(&once), once, "defaulting is idempotent");

        // A user's own limit becomes the request (LimitRange semantics); user values stay.
        let mine = app(3, "200m");
        let defaulted = free.default_app(&mine);
        assert_eq!(defaulted.replicas, Some(3));
        let r = defaulted.resources.unwrap();
        assert_eq!(r.requests.unwrap().cpu, Some(Quantity("200m".into())));
        assert_eq!(r.limits.unwrap().cpu, Some(Quantity("200m".into())));
    }
}
