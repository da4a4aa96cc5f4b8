//! Names users choose, checked before anything is stored.

use crate::error::ApiError;

/// Longest tenant name: its namespace `tenant-<name>` must fit the 63-character DNS label.
pub const MAX_TENANT_NAME: usize = 63 - "tenant-".len();

/// Longest App name: a DNS label, and the NetworkPolicy `slipway-expose-<name>` must fit 253.
pub const MAX_APP_NAME: usize = 63;

/// Longest name of an object run as a StatefulSet (Databases, Workspaces): 52. Its pods carry
/// the label `controller-revision-hash: <name>-<10-character hash>`, and a label value is at
/// most 63 characters, so a longer name leaves the StatefulSet unable to create its pod
/// (<https://github.com/kubernetes/kubernetes/issues/64023>). This also keeps the pod `<name>-0`
/// and a Database's Service `<name>-headless` (≤ 54) within a 63-character DNS label.
const MAX_STATEFUL_NAME: usize = 63 - "-".len() - 10;

/// Longest Database name: see `MAX_STATEFUL_NAME`.
pub const MAX_DATABASE_NAME: usize = MAX_STATEFUL_NAME;

/// Longest Workspace name: see `MAX_STATEFUL_NAME`.
pub const MAX_WORKSPACE_NAME: usize = MAX_STATEFUL_NAME;

/// Checks an RFC 1123 DNS label (lowercase letters, digits, `-`; starts with a letter, ends
/// alphanumeric), the rule Kubernetes applies to namespaces and Services
/// (<https://kubernetes.io/docs/concepts/overview/working-with-objects/names/#dns-label-names>).
/// Names also start with a letter so a Service name is never mistaken for a number.
///
/// # Errors
/// 422 naming `field` and saying what a valid name looks like.
pub fn dns_label(field: &str, name: &str, max: usize) -> Result<(), ApiError> {
    let valid = !name.is_empty()
        && name.len() <= max
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            format!(
                "{name:?} is not a valid name: use 1 to {max} lowercase letters, digits or '-', starting with a letter and ending with a letter or digit"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dns_labels_only() {
        for ok in ["a", "web", "my-app-2"] {
            assert!(dns_label("name", ok, 63).is_ok(), "{ok}");
        }
        for bad in ["", "Web", "-a", "a-", "2fast", "a_b", "a.b", &"a".repeat(64)] {
            assert!(dns_label("name", bad, 63).is_err(), "{bad}");
        }
        assert!(dns_label("name", &"a".repeat(MAX_TENANT_NAME + 1), MAX_TENANT_NAME).is_err());
    }

    #[test]
    fn stateful_names_leave_room_for_the_revision_hash_and_headless_service() {
        assert_eq!(MAX_DATABASE_NAME, 52);
        assert!(format!("{}-headless", "a".repeat(MAX_DATABASE_NAME)).len() <= 63);
        assert!(dns_label("name", &"a".repeat(MAX_WORKSPACE_NAME), MAX_WORKSPACE_NAME).is_ok());
        assert!(dns_label("name", &"a".repeat(MAX_WORKSPACE_NAME + 1), MAX_WORKSPACE_NAME).is_err());
    }
}
