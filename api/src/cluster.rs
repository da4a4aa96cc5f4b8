//! The API's two ways of talking to Kubernetes: as itself, and as a tenant member.

use axum::http::{HeaderMap, HeaderName, HeaderValue, Request};
use kube::{Client, Config, client::Body};
use slipway_crds::{VIA_API, role_group, tenant_group};

/// Field manager of the API's writes (server-side apply and managedFields).
pub const FIELD_MANAGER: &str = "slipway-api";

/// `Impersonate-Extra-<key>` for [`slipway_crds::VIA_EXTRA`], the key percent-encoded (it holds a `/`).
const VIA_HEADER: &str = "impersonate-extra-slipway.dev%2fvia";

/// Kubernetes access for the API: one client, so one connection pool and one TLS session
/// cache for every caller. Member calls share it and differ only in their impersonation
/// headers (issue 13: a client per request, TLS handshake included, held reads to ~490/s).
#[derive(Clone)]
pub struct Cluster {
    client: Client,
}

impl Cluster {
    /// `config` is the API's own identity; it needs rights on Tenants and the right to
    /// impersonate users and groups.
    ///
    /// # Errors
    /// The configuration cannot produce a client (bad TLS material).
    pub fn new(config: Config) -> Result<Self, kube::Error> {
        Ok(Self { client: Client::try_from(config)? })
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
    /// It sends through the API's own client (its connections, its credentials) and only adds
    /// the `Impersonate-*` headers to each request.
    ///
    /// # Errors
    /// `kube::Error::BuildRequest` if a name is not a valid HTTP header value (an address the
    /// API accepted never is).
    pub fn as_member(&self, email: &str, tenant: &str, role: &str) -> Result<Client, kube::Error> {
        let headers = impersonation(email, tenant, role)?;
        let shared = self.client.clone();
        let default_namespace = shared.default_namespace().to_string();
        let service = tower::service_fn(move |mut request: Request<Body>| {
            let shared = shared.clone();
            request.headers_mut().extend(headers.clone());
            async move { shared.send(request).await }
        });
        Ok(Client::new(service, default_namespace))
    }
}

/// The `Impersonate-User`, `Impersonate-Group` (three) and via-extra headers of a member call.
fn impersonation(email: &str, tenant: &str, role: &str) -> Result<HeaderMap, kube::Error> {
    let value = |v: &str| {
        HeaderValue::from_str(v)
            .map_err(|e| kube::Error::BuildRequest(kube::core::request::Error::Validation(e.to_string())))
    };
    let mut headers = HeaderMap::new();
    headers.insert(HeaderName::from_static("impersonate-user"), value(email)?);
    for group in [tenant_group(tenant), role_group(tenant, role), "system:authenticated".into()] {
        headers.append(HeaderName::from_static("impersonate-group"), value(&group)?);
    }
    headers.insert(HeaderName::from_static(VIA_HEADER), HeaderValue::from_static(VIA_API));
    Ok(headers)
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

    #[test]
    fn member_calls_impersonate_the_user_with_the_tenant_and_role_groups() {
        let headers = impersonation("ada@example.com", "acme", "admin").unwrap();
        assert_eq!(headers["impersonate-user"], "ada@example.com");
        let groups: Vec<_> = headers.get_all("impersonate-group").iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(groups, [tenant_group("acme"), role_group("acme", "admin"), "system:authenticated".into()]);
        assert_eq!(headers[VIA_HEADER], VIA_API);
        assert!(impersonation("bad\nname", "acme", "admin").is_err());
    }
}
