//! The API's two ways of talking to Kubernetes: as itself, and as a tenant member.

use kube::{Client, Config};
use slipway_crds::{role_group, tenant_group};

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

    /// A client that impersonates `email` as someone of `tenant` with `role` (groups
    /// `slipway:tenant:<tenant>`, `slipway:tenant:<tenant>:<role>` and `system:authenticated`),
    /// so Kubernetes RBAC decides what the call may do
    /// (<https://kubernetes.io/docs/reference/access-authn-authz/authentication/#user-impersonation>).
    ///
    /// # Errors
    /// As [`Cluster::new`].
    pub fn as_member(&self, email: &str, tenant: &str, role: &str) -> Result<Client, kube::Error> {
        let mut config = self.config.clone();
        config.auth_info.impersonate = Some(email.to_string());
        let groups = vec![tenant_group(tenant), role_group(tenant, role), "system:authenticated".into()];
        config.auth_info.impersonate_groups = Some(groups);
        Client::try_from(config)
    }
}
