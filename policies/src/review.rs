//! The shape of a review: what one object is judged with ([`Review`]), and the verdict
//! ([`Outcome`] of [`Violation`]s and warnings).

use crate::Inventory;
use slipway_crds::{TenantMember, TenantOwner};
use std::fmt;

/// Who asks for a change, as the admission request's user info says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requester<'a> {
    /// A member of the tenant acting through the tenant's group `slipway:tenant:<name>` (with
    /// kubectl, or through the API, which impersonates them so): their user name, the email
    /// they signed up with.
    Member(&'a str),
    /// Anyone else Kubernetes let through: an operator (cluster RBAC decides who), or
    /// Slipway's own controllers.
    Operator,
}

/// What the operator configured for the whole platform that rules depend on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Platform {
    /// Base domain of tenants' Ingress hosts: tenant `acme` may use `acme.<domain>` and names
    /// under it. Lowercase, without leading or trailing dots.
    pub ingress_domain: String,
    /// Email domains (lowercase, e.g. `university.example`) whose accounts may own Workspaces;
    /// empty: every domain.
    pub workspace_email_domains: Vec<String>,
}

impl Platform {
    /// Normalizes what an operator wrote: lowercase, no surrounding dots or `@`, empty entries
    /// dropped.
    pub fn new(ingress_domain: &str, workspace_email_domains: impl IntoIterator<Item = impl AsRef<str>>) -> Self {
        Self {
            ingress_domain: ingress_domain.trim().trim_matches('.').to_ascii_lowercase(),
            workspace_email_domains: workspace_email_domains
                .into_iter()
                .map(|d| d.as_ref().trim().trim_start_matches('@').to_ascii_lowercase())
                .filter(|d| !d.is_empty())
                .collect(),
        }
    }
}

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

/// One object under review, with everything its verdict depends on. The webhook fills it
/// from the admission request and its caches; the API, previewing, from its own reads.
#[derive(Clone, Copy, Debug)]
pub struct Review<'a, S> {
    /// The tenant the object belongs to.
    pub tenant: &'a str,
    /// The tenant's owners (`Tenant.spec.owners`).
    pub owners: &'a [TenantOwner],
    /// The tenant's other people (`Tenant.spec.members`).
    pub members: &'a [TenantMember],
    /// The object's name.
    pub name: &'a str,
    /// The spec to admit, with the plan's defaults filled in.
    pub spec: &'a S,
    /// The stored spec on UPDATE, `None` on CREATE. Names and counts are judged on CREATE
    /// only; a total that an UPDATE does not raise is not judged (a tenant over a shrunken plan
    /// can still scale down).
    pub previous: Option<&'a S>,
    /// Who asks.
    pub requester: Requester<'a>,
    /// Everything else the tenant holds (stored or reserved), without this object.
    pub others: &'a Inventory,
    /// Ingress hosts held by Apps anywhere in the cluster (only App reviews read them). Only
    /// claims of the App's own host matter, so the webhook passes just those.
    pub hosts: &'a [HostClaim],
    /// The platform's settings.
    pub platform: &'a Platform,
}

/// Why a rule refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The value is wrong or over the plan: answered 422 Unprocessable Entity.
    Invalid,
    /// The requester may not make this change at all: answered 403 Forbidden.
    Forbidden,
}

/// One broken rule: the field at fault and what is wrong, phrased so a user knows what to
/// change, e.g. `spec.replicas: 12 exceeds the plan "free" limit of 3`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// JSON path of the offending field, e.g. `spec.replicas`.
    pub field: String,
    /// What is wrong, with the limit and the value asked for.
    pub message: String,
    /// Whether the value or the requester is at fault.
    pub reason: Reason,
}

impl Violation {
    /// A value that breaks a rule (422).
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into(), reason: Reason::Invalid }
    }

    /// A change the requester may not make (403).
    pub fn forbidden(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into(), reason: Reason::Forbidden }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
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

impl Outcome {
    /// Whether no rule is broken.
    pub fn allowed(&self) -> bool {
        self.violations.is_empty()
    }

    /// Whether a violation of `field` is already reported (a later rule on the same field
    /// stays silent, so each field gets its most precise message).
    pub(crate) fn reported(&self, field: &str) -> bool {
        self.violations.iter().any(|v| v.field == field)
    }

    /// The HTTP status of a denial: 403 when the requester may not make the change at all,
    /// else 422.
    pub fn status_code(&self) -> u16 {
        if self.violations.iter().any(|v| v.reason == Reason::Forbidden) { 403 } else { 422 }
    }

    /// Every violation, `field: message`, joined with `; `.
    pub fn message(&self) -> String {
        self.violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    }

    pub(crate) fn deny(&mut self, violation: Violation) {
        self.violations.push(violation);
    }

    pub(crate) fn warn(&mut self, warning: String) {
        self.warnings.push(warning);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_outweighs_invalid() {
        let mut o = Outcome::default();
        assert!(o.allowed());
        o.deny(Violation::invalid("spec.cpu", "too much"));
        assert_eq!(o.status_code(), 422);
        o.deny(Violation::forbidden("spec.owner", "not yours"));
        assert_eq!(o.status_code(), 403);
        assert_eq!(o.message(), "spec.cpu: too much; spec.owner: not yours");
    }

    #[test]
    fn platform_settings_are_normalized() {
        let p = Platform::new(".Apps.Example.com.", [" @University.Example ", "", "b.example"]);
        assert_eq!(p.ingress_domain, "apps.example.com");
        assert_eq!(p.workspace_email_domains, ["university.example", "b.example"]);
    }
}
