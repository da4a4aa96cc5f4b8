//! Registries and image references: an image must be a reference in the distribution grammar
//! (<https://github.com/distribution/reference/blob/main/reference.go>, parsed by `oci-spec`),
//! from a registry the plan allows (`limits.allowedRegistries`).

use crate::{Outcome, TenantPolicy, Violation};
use oci_spec::distribution::Reference;

/// The registry of a valid image reference, lowercase: the first path component when it looks
/// like a host (has a `.` or `:`, or is `localhost`), else `docker.io` (Docker's rule for short
/// names such as `nginx`; `index.docker.io` is `docker.io` too).
///
/// # Errors
/// Why `image` is not a reference: not ASCII (the grammar's `\w` would otherwise admit other
/// letters in tags), or not the grammar (spaces, newlines, capitals in the repository, a
/// digest of the wrong length, ...).
pub fn registry(image: &str) -> Result<String, String> {
    let example = "e.g. nginx:1.27, ghcr.io/acme/api:2.0 or registry.example.com:5000/team/app@sha256:<64 hex digits>";
    if !image.is_ascii() {
        return Err(format!("{image:?} is not a valid image reference: use ASCII only, {example}"));
    }
    let reference = Reference::try_from(image)
        .map_err(|e| format!("{image:?} is not a valid image reference ({e}); write it as {example}"))?;
    Ok(reference.registry().to_ascii_lowercase())
}

/// Denies, at `field`, an image that is not a reference or comes from a registry the plan
/// does not allow.
pub(crate) fn review_image(policy: &TenantPolicy, field: &str, image: &str, out: &mut Outcome) {
    let registry = match registry(image) {
        Ok(r) => r,
        Err(e) => return out.deny(Violation::invalid(field, e)),
    };
    let allowed = &policy.limits.allowed_registries;
    if !allowed.iter().any(|r| r == "*" || *r == registry) {
        out.deny(Violation::invalid(
            field,
            format!(
                "registry \"{registry}\" is not allowed by the plan \"{}\" (allowed: {})",
                policy.plan,
                allowed.join(", ")
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PlanCatalog;

    #[test]
    fn registries_follow_dockers_rule_for_short_names() {
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(registry("nginx").unwrap(), "docker.io");
        assert_eq!(registry("library/nginx:1.27").unwrap(), "docker.io");
        assert_eq!(registry("index.docker.io/library/nginx").unwrap(), "docker.io");
        assert_eq!(registry(&format!("ghcr.io/acme/api@{digest}")).unwrap(), "ghcr.io");
        assert_eq!(registry("localhost:5000/x").unwrap(), "localhost:5000");
        assert_eq!(registry("Registry.Example.COM/x").unwrap(), "registry.example.com");
    }

    #[test]
    fn malformed_references_are_refused() {
        for bad in [
            "",
            " nginx",
            "nginx ",
            "ngi nx",
            "nginx\n",
            "nginx:1.27\nx",
            "ngïnx",
            "nginx:tägg",
            "NGINX",
            "nginx:",
            "nginx@sha256:abc",
            "nginx:-x",
            "http://nginx",
            "a/b/../c",
        ] {
            assert!(registry(bad).is_err(), "{bad:?} must be refused");
        }
        let e = registry("nginx\n").unwrap_err();
        assert!(e.starts_with(r#""nginx\n" is not a valid image reference"#), "{e}");
    }

    #[test]
    fn the_plan_decides_registries() {
        let free = PlanCatalog::embedded().effective("free", None).unwrap();
        let mut out = Outcome::default();
        review_image(&free, "spec.image", "evil.example.com/miner", &mut out);
        assert_eq!(
            out.message(),
            r#"spec.image: registry "evil.example.com" is not allowed by the plan "free" (allowed: docker.io, ghcr.io, quay.io)"#
        );
        let pro = PlanCatalog::embedded().effective("pro", None).unwrap();
        let mut out = Outcome::default();
        review_image(&pro, "spec.image", "evil.example.com/miner", &mut out);
        assert!(out.allowed(), "pro allows any registry");
    }
}
