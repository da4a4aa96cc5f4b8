//! Names: what a tenant or an object may be called, the names of the objects Slipway derives
//! from them (Services, Secrets), and the rule that those never collide inside a tenant.

use crate::{Inventory, Outcome, Violation};
use slipway_crds::Kind;

/// Longest DNS label (RFC 1123): namespaces, Services and label values.
pub const MAX_LABEL: usize = 63;

/// Longest tenant name: its namespace `tenant-<name>` must fit a DNS label.
pub const MAX_TENANT_NAME: usize = MAX_LABEL - "tenant-".len();

/// Longest name of an object run as a StatefulSet (Databases, Workspaces): 52. Its pods carry
/// the label `controller-revision-hash: <name>-<10-character hash>`, and a label value is at
/// most 63 characters, so a longer name leaves the StatefulSet unable to create its pod
/// (<https://github.com/kubernetes/kubernetes/issues/64023>). This also keeps the pod `<name>-0`
/// and a Database's Service `<name>-headless` (≤ 61) within a DNS label.
pub const MAX_STATEFUL_NAME: usize = MAX_LABEL - "-".len() - 10;

/// Longest name of an object of `kind`: a DNS label for Apps (their Service has the same
/// name), [`MAX_STATEFUL_NAME`] for kinds run as StatefulSets.
pub fn max_name(kind: Kind) -> usize {
    match kind {
        Kind::App => MAX_LABEL,
        Kind::Database | Kind::Workspace => MAX_STATEFUL_NAME,
    }
}

/// Checks an RFC 1123 DNS label of at most `max` characters (lowercase letters, digits, `-`;
/// ending alphanumeric), the rule Kubernetes applies to namespaces and Services
/// (<https://kubernetes.io/docs/concepts/overview/working-with-objects/names/#dns-label-names>).
/// Slipway's names also start with a letter, so a Service name is never mistaken for a number.
///
/// # Errors
/// What a valid name looks like, to follow "`"x" is not a valid … name: `".
pub fn check_label(name: &str, max: usize) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= max
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "use 1 to {max} lowercase letters, digits or '-', starting with a letter and ending with a letter or digit"
        ))
    }
}

/// Checks a tenant's name.
///
/// # Errors
/// `"<name>" is not a valid tenant name: …`.
pub fn check_tenant_name(name: &str) -> Result<(), String> {
    check_label(name, MAX_TENANT_NAME).map_err(|rule| format!("{name:?} is not a valid tenant name: {rule}"))
}

/// Denies an object name that is not a valid name of its kind (see [`max_name`]).
pub(crate) fn review_name(kind: Kind, name: &str, out: &mut Outcome) {
    if let Err(rule) = check_label(name, max_name(kind)) {
        out.deny(Violation::invalid("metadata.name", format!("{name:?} is not a valid {kind} name: {rule}")));
    }
}

/// The credentials Secret of Database `name`: `<name>-credentials`.
pub fn credentials_secret(name: &str) -> String {
    format!("{name}-credentials")
}

/// The headless Service that governs Database `name`'s StatefulSet: `<name>-headless`.
pub fn headless_service(name: &str) -> String {
    format!("{name}-headless")
}

/// The Secret holding Workspace `name`'s `authorized_keys`: `<name>-ssh-keys`.
pub fn ssh_keys_secret(name: &str) -> String {
    format!("{name}-ssh-keys")
}

/// Names of the Services an object of `kind` called `name` gets. Every kind's objects share
/// the tenant namespace, so these must not collide across kinds: an App `web` and a Database
/// `web` would fight over Service `web`. (Secrets cannot collide: each kind has its own suffix.)
pub fn service_names(kind: Kind, name: &str) -> Vec<String> {
    match kind {
        Kind::App | Kind::Workspace => vec![name.to_string()],
        Kind::Database => vec![name.to_string(), headless_service(name)],
    }
}

/// The objects that could be given Service `service`, as far as names go: one of each kind
/// called `service`, and the Database whose headless Service it would be. [`service_names`]
/// decides; this only proposes, so that a review looks up a few names instead of going through
/// every object of the tenant.
fn could_hold(service: &str) -> impl Iterator<Item = (Kind, &str)> {
    let headless_of = service.strip_suffix(headless_service("").as_str()).filter(|n| !n.is_empty());
    Kind::ALL.into_iter().map(move |k| (k, service)).chain(headless_of.map(|n| (Kind::Database, n)))
}

/// Denies `kind`/`name` when one of its Service names is already claimed by another object of
/// the tenant (see [`service_names`]).
pub(crate) fn review_unique_services(kind: Kind, name: &str, others: &Inventory, out: &mut Outcome) {
    let mine = service_names(kind, name);
    let clash = mine.iter().find_map(|service| {
        could_hold(service)
            .find(|&(k, n)| others.contains(k, n) && service_names(k, n).contains(service))
            .map(|(k, n)| (k, n.to_string(), service.clone()))
    });
    if let Some((k, n, service)) = clash {
        out.deny(Violation::invalid(
            "metadata.name",
            format!(
                "{name:?} clashes with {k} {n:?} of this tenant (both would use Service {service:?}); choose another name"
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Footprint;

    #[test]
    fn names_are_dns_labels_within_their_kinds_limit() {
        for ok in ["a", "web", "my-app-2"] {
            assert!(check_label(ok, MAX_LABEL).is_ok(), "{ok}");
        }
        for bad in ["", "Web", "-a", "a-", "2fast", "a_b", "a.b", "a b", "a\0b", "a?b", &"a".repeat(64)] {
            assert!(check_label(bad, MAX_LABEL).is_err(), "{bad:?}");
        }
        assert_eq!(MAX_STATEFUL_NAME, 52);
        assert_eq!(MAX_TENANT_NAME, 56);
        assert!(headless_service(&"a".repeat(MAX_STATEFUL_NAME)).len() <= MAX_LABEL);
        let mut out = Outcome::default();
        review_name(Kind::Database, &"d".repeat(53), &mut out);
        assert!(out.message().starts_with(r#"metadata.name: "ddd"#), "{}", out.message());
        assert!(out.message().ends_with(" is not a valid Database name: use 1 to 52 lowercase letters, digits or '-', starting with a letter and ending with a letter or digit"));
        let mut out = Outcome::default();
        review_name(Kind::App, &"a".repeat(63), &mut out);
        assert!(out.allowed());
        assert!(check_tenant_name(&"t".repeat(57)).unwrap_err().contains("use 1 to 56"));
    }

    #[test]
    fn service_names_are_unique_across_kinds() {
        let others: Inventory =
            [(Kind::App, "orders-headless".to_string(), Footprint::default())].into_iter().collect();
        let mut out = Outcome::default();
        review_unique_services(Kind::Database, "orders", &others, &mut out);
        assert_eq!(
            out.message(),
            r#"metadata.name: "orders" clashes with App "orders-headless" of this tenant (both would use Service "orders-headless"); choose another name"#
        );
        let mut out = Outcome::default();
        review_unique_services(Kind::App, "orders-api", &others, &mut out);
        assert!(out.allowed(), "a name that only looks alike is free");

        // The other way round, and from a map shared with a cache.
        let mut others = Inventory::default();
        let databases = [("orders".to_string(), Footprint::default())].into_iter().collect();
        others.share(Kind::Database, databases);
        let clash = |others: &Inventory, kind, name: &str| {
            let mut out = Outcome::default();
            review_unique_services(kind, name, others, &mut out);
            (!out.allowed()).then(|| out.message())
        };
        assert!(clash(&others, Kind::App, "orders-headless").unwrap().contains(r#"Database "orders""#));
        assert!(clash(&others, Kind::Workspace, "orders").unwrap().contains(r#"Service "orders""#));
        assert_eq!(clash(&others, Kind::App, "-headless"), None);
        assert_eq!(clash(&others, Kind::Database, "order"), None);
        others.remove(Kind::Database, "orders");
        assert_eq!(clash(&others, Kind::App, "orders"), None, "a removed object holds nothing");
    }
}
