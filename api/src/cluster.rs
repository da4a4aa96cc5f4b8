//! The API's two ways of talking to Kubernetes: as itself, and as a tenant member.

use kube::{Client, Config};
use slipway_crds::tenant_group;

/// Field manager of the API's writes (server-side apply and managedFields).
pub const FIELD_MANAGER: &str = "slipway-api";

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

    /// A client that impersonates `email` as a member of `tenant` (groups
    /// `slipway:tenant:<tenant>` and `system:authenticated`), so Kubernetes RBAC decides what the
    /// call may do (<https://kubernetes.io/docs/reference/access-authn-authz/authentication/#user-impersonation>).
    ///
    /// # Errors
    /// As [`Cluster::new`].
    pub fn as_member(&self, email: &str, tenant: &str) -> Result<Client, kube::Error> {
        let mut config = self.config.clone();
        config.auth_info.impersonate = Some(email.to_string());
        config.auth_info.impersonate_groups = Some(vec![tenant_group(tenant), "system:authenticated".into()]);
        Client::try_from(config)
    }
}
