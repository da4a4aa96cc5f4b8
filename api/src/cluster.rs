//! The API's two ways of talking to Kubernetes: as itself, and as a tenant member.

use axum::http::{HeaderName, HeaderValue};
use kube::{Client, Config};
use slipway_crds::{VIA_API, role_group, tenant_group};

/// Field manager of the API's writes (server-side apply and managedFields).
pub const FIELD_MANAGER: &str = "slipway-api";

/// `Impersonate-Extra-<key>` for [`slipway_crds::VIA_EXTRA`], the key percent-encoded (it holds a `/`).
const VIA_HEADER: &str = "impersonate-extra-slipway.dev%2fvia";

/// Kubernetes access for the API.
#[derive(Clone)]
pub struct Cluster {
    client: Client,
    config: Config,
}

impl Cluster {
    /// `config` is the API's own identity; it needs rights on Tenants and the right to
    /// impersonate users and groups.
    ///
    /// # Errors
    /// The configuration cannot produce a client (bad TLS material).
    pub fn new(config: Config) -> Result<Self, kube::Error> {
        Ok(Self { client: Client::try_from(config.clone())?, config })
    }

    /// The API's own client, for cluster-scoped Tenants, which members may not write.
    pub fn service(&self) -> Client {
        self.client.clone()
    }

    /// A client that impersonates `email` as someone of `tenant` with `role` (groups
    /// `slipway:tenant:<tenant>`, `slipway:tenant:<tenant>:<role>` and `system:authenticated`),
    /// so Kubernetes RBAC decides what the call may do
    /// (<https://kubernetes.io/docs/reference/access-authn-authz/authentication/#user-impersonation>),
    /// with the user extra [`slipway_crds::VIA_EXTRA`]` = `[`VIA_API`], so the webhook leaves these calls to
    /// the API's own audit trail.
    ///
    /// # Errors
    /// As [`Cluster::new`].
    pub fn as_member(&self, email: &str, tenant: &str, role: &str) -> Result<Client, kube::Error> {
        let mut config = self.config.clone();
        config.auth_info.impersonate = Some(email.to_string());
        let groups = vec![tenant_group(tenant), role_group(tenant, role), "system:authenticated".into()];
        config.auth_info.impersonate_groups = Some(groups);
        config.headers.push((HeaderName::from_static(VIA_HEADER), HeaderValue::from_static(VIA_API)));
        Client::try_from(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_crds::VIA_EXTRA;

    #[test]
    fn the_via_header_names_the_via_extra() {
        let key = VIA_HEADER.strip_prefix("impersonate-extra-").unwrap();
        assert_eq!(key.replace("%2f", "/"), VIA_EXTRA);
    }
}
