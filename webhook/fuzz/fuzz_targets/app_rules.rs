//! The plan rules on arbitrary Apps: a tenant policy from [`PlanCatalog::effective`] (any plan
//! name, arbitrary overrides), then [`TenantPolicy::review_app`] (with other Apps, a previous
//! spec, a member or an operator, host claims, any Ingress domain) and
//! [`TenantPolicy::default_app`].
//!
//! Invariants: nothing panics; `default_app` is idempotent and keeps what the user set;
//! defaulting never turns an admitted App into a denied one or back (the API previews the
//! defaulted spec, the webhook judges it after the mutating webhook); an UPDATE that does not
//! grow the App is judged the same whatever else the tenant holds (the webhook takes no
//! reservation for it).
#![no_main]

use arbitrary::Arbitrary;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use libfuzzer_sys::fuzz_target;
use slipway_crds::{AppSpec, ComputeResources, EnvVar, Expose, ExposeType, LimitOverrides, ResourceAmounts};
use slipway_policies::{HostClaim, Inventory, PlanCatalog, Platform, Requester, Review, Spec as _};
use std::sync::OnceLock;

/// Plan names: the three real ones most of the time, sometimes an unknown one.
const PLANS: &[&str] = &["free", "standard", "pro", "gold"];
const SUFFIXES: &[&str] = &["", "m", "n", "k", "M", "G", "E", "Ki", "Mi", "Gi", "Ei", "e3", "e-400", "E-9", "x"];
const IMAGES: &[&str] =
    &["nginx", "library/nginx:1.27", "ghcr.io/acme/api@sha256:abc", "localhost:5000/x", "EVIL.io/m", " nginx", "nginx\n"];

/// A quantity: mostly well-formed (so the arithmetic is reached), sometimes arbitrary text.
#[derive(Arbitrary, Debug)]
enum Q {
    Shaped { mantissa: u64, fraction: Option<u16>, suffix: u8 },
    Raw(String),
}

impl Q {
    fn quantity(&self) -> Quantity {
        Quantity(match self {
            Q::Shaped { mantissa, fraction, suffix } => {
                let frac = fraction.map(|f| format!(".{f}")).unwrap_or_default();
                format!("{mantissa}{frac}{}", SUFFIXES[usize::from(*suffix) % SUFFIXES.len()])
            }
            Q::Raw(s) => s.clone(),
        })
    }
}

#[derive(Arbitrary, Debug)]
struct Amounts {
    cpu: Option<Q>,
    memory: Option<Q>,
}

impl Amounts {
    fn build(&self) -> ResourceAmounts {
        ResourceAmounts { cpu: self.cpu.as_ref().map(Q::quantity), memory: self.memory.as_ref().map(Q::quantity) }
    }
}

#[derive(Arbitrary, Debug)]
struct Spec {
    image: u8,
    raw_image: Option<String>,
    replicas: Option<i32>,
    requests: Option<Amounts>,
    limits: Option<Amounts>,
    resources: bool,
    expose: Option<(u8, Option<String>)>,
    env: Option<(String, String)>,
}

impl Spec {
    fn build(&self) -> AppSpec {
        let expose = self.expose.as_ref().map(|(t, host)| Expose {
            type_: [ExposeType::ClusterIP, ExposeType::NodePort, ExposeType::Ingress][usize::from(*t) % 3],
            host: host.clone(),
        });
        AppSpec {
            image: self.raw_image.clone().unwrap_or_else(|| IMAGES[usize::from(self.image) % IMAGES.len()].into()),
            port: 8080,
            replicas: self.replicas,
            env: self.env.iter().map(|(name, value)| EnvVar { name: name.clone(), value: value.clone(), value_from: None }).collect(),
            resources: (self.resources || self.requests.is_some() || self.limits.is_some()).then(|| ComputeResources {
                requests: self.requests.as_ref().map(Amounts::build),
                limits: self.limits.as_ref().map(Amounts::build),
            }),
            expose,
            autoscaling: None, rollout: None, revision_history_limit: None,
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Overrides {
    max_apps: Option<u32>,
    max_replicas: Option<u32>,
    cpu: Option<Q>,
    memory: Option<Q>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    plan: u8,
    overrides: Option<Overrides>,
    tenant: String,
    name: String,
    ingress_domain: String,
    member: Option<String>,
    spec: Spec,
    previous: Option<Spec>,
    others: Vec<Spec>,
    hosts: Vec<(String, bool, String)>,
}

fn catalog() -> &'static PlanCatalog {
    static CATALOG: OnceLock<PlanCatalog> = OnceLock::new();
    CATALOG.get_or_init(PlanCatalog::embedded)
}

fuzz_target!(|input: Input| {
    let overrides = input.overrides.as_ref().map(|o| LimitOverrides {
        max_apps: o.max_apps,
        max_replicas: o.max_replicas,
        cpu: o.cpu.as_ref().map(Q::quantity),
        memory: o.memory.as_ref().map(Q::quantity),
        ..Default::default()
    });
    let plan = PLANS[usize::from(input.plan) % PLANS.len()];
    let Ok(policy) = catalog().effective(plan, overrides.as_ref()) else { return };

    let spec = input.spec.build();
    let previous = input.previous.as_ref().map(Spec::build);
    let mut others = Inventory::default();
    for (i, other) in input.others.iter().take(64).enumerate() {
        others.insert_spec(&policy, format!("other{i}"), &other.build());
    }
    let hosts: Vec<HostClaim> = input
        .hosts
        .iter()
        .take(16)
        .map(|(host, same_tenant, app)| HostClaim {
            host: host.to_ascii_lowercase(),
            tenant: if *same_tenant { input.tenant.clone() } else { format!("x{}", input.tenant) },
            app: app.clone(),
        })
        .collect();
    let platform = Platform::new(&input.ingress_domain, [""; 0]);
    let review = Review {
        tenant: &input.tenant,
        owners: &[],
        name: &input.name,
        spec: &spec,
        previous: previous.as_ref(),
        requester: input.member.as_deref().map_or(Requester::Operator, Requester::Member),
        others: &others,
        hosts: &hosts,
        platform: &platform,
    };
    let raw = policy.review_app(&review);

    let once = policy.default_app(&spec);
    assert_eq!(policy.default_app(&once), once, "default_app is not idempotent for {spec:?}");
    assert!(spec.replicas.is_none() || spec.replicas == once.replicas, "defaulting changed the user's replicas");
    let defaulted = policy.review_app(&Review { spec: &once, ..review });
    assert_eq!(
        raw.allowed(),
        defaulted.allowed(),
        "defaulting changed the verdict on {spec:?}: before {:?}, after {:?}",
        raw.violations,
        defaulted.violations
    );

    if let Some(previous) = previous.as_ref().map(|p| p.defaulted(&policy)) {
        if !policy.grows(&previous, &once) {
            let nothing = Inventory::default();
            let update = Review { spec: &once, previous: Some(&previous), ..review };
            assert_eq!(
                policy.review_app(&update),
                policy.review_app(&Review { others: &nothing, ..update }),
                "an UPDATE that grows nothing was judged by the tenant's other objects"
            );
        }
    }
});
