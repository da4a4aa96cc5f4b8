//! A Database's connection credentials, read as the caller from the Secret the controller
//! writes, so Kubernetes RBAC (the member role's `get` on Secrets) decides who sees them.

use super::objects;
use super::openapi::Problem;
use crate::{AppState, auth::AuthUser, error::ApiError, paths::ObjectName};
use anyhow::Context;
use axum::{Json, extract::State, http::header};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde::Serialize;
use slipway_crds::{Database, tenant_namespace};
use slipway_policies::rules::names::credentials_secret;
use utoipa::ToSchema;

/// How to connect to a Database: `{"username","password","host","port","dbname","uri"}`, with
/// `port` a number. No `Debug`, so the password cannot end up in a log by accident.
#[derive(Serialize, ToSchema)]
pub struct Credentials {
    /// The database user.
    username: String,
    /// Its password.
    password: String,
    /// The in-cluster host name.
    host: String,
    /// The in-cluster port.
    port: u16,
    /// The database to use.
    dbname: String,
    /// All of the above as one connection URI.
    uri: String,
}

/// The Secret holding `database`'s credentials: `status.secretName`, or `<name>-credentials`
/// before the controller has reported it.
fn secret_name(database: &Database) -> String {
    database
        .status
        .as_ref()
        .and_then(|s| s.secret_name.clone())
        .unwrap_or_else(|| credentials_secret(database.metadata.name.as_deref().unwrap_or_default()))
}

/// Reads the credentials from the Secret's `data` (base64 on the wire, bytes here).
///
/// # Errors
/// A key is missing, is not UTF-8, or `port` is not a port number: the Secret is not the
/// controller's, a bug worth a 500 and a log line.
fn from_secret(secret: &Secret) -> anyhow::Result<Credentials> {
    let name = secret.metadata.name.as_deref().unwrap_or_default();
    let data = secret.data.as_ref();
    let field = |key: &str| -> anyhow::Result<String> {
        let bytes = data.and_then(|d| d.get(key)).with_context(|| format!("Secret {name} has no key {key:?}"))?;
        String::from_utf8(bytes.0.clone()).with_context(|| format!("Secret {name}: {key:?} is not UTF-8"))
    };
    let port = field("port")?;
    Ok(Credentials {
        username: field("username")?,
        password: field("password")?,
        host: field("host")?,
        port: port.trim().parse().with_context(|| format!("Secret {name}: port {port:?} is not a port number"))?,
        dbname: field("dbname")?,
        uri: field("uri")?,
    })
}

/// `GET /api/v1/tenants/{tenant}/databases/{db}/credentials` → 200
/// `{"username","password","host","port","dbname","uri"}` with `Cache-Control: no-store`
/// (OWASP REST Security Cheat Sheet: sensitive data must not be cached).
///
/// # Errors
/// 404 when the Database does not exist; 409 until the controller has written the Secret;
/// 403 when Kubernetes RBAC refuses the caller the Secret.
#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/databases/{db}/credentials",
    tag = "databases",
    operation_id = "get_database_credentials",
    params(("tenant" = String, Path, description = "The tenant's name", pattern = "^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 63), ("db" = String, Path, description = "The Database's name", pattern = "^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 63)),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "How to connect", body = Credentials,
         headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 403, description = "The caller's address is not verified yet, or Kubernetes RBAC refuses the Secret", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant or Database, or the caller is not a member", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The credentials are not provisioned yet", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    user: AuthUser,
    ObjectName { tenant, name }: ObjectName,
) -> Result<([(header::HeaderName, &'static str); 1], Json<Credentials>), ApiError> {
    let client = objects::member_client(&state, &user, &tenant).await?;
    let namespace = tenant_namespace(&tenant);
    let databases = Api::<Database>::namespaced(client.clone(), &namespace);
    let database = objects::fetch(&databases, &tenant, &name).await?;
    let not_yet = || {
        ApiError::Conflict(format!(
            "database {name:?}: credentials are not provisioned yet; retry when the Database is Ready"
        ))
    };
    let secrets = Api::<Secret>::namespaced(client, &namespace);
    let secret = secrets.get_opt(&secret_name(&database)).await?.ok_or_else(not_yet)?;
    let credentials = from_secret(&secret)?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(credentials)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use slipway_crds::{DatabaseSpec, DatabaseStatus};

    fn secret(entries: &[(&str, &str)]) -> Secret {
        let mut s = Secret::default();
        s.metadata.name = Some("orders-credentials".into());
        s.data = Some(entries.iter().map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec()))).collect());
        s
    }

    const FULL: [(&str, &str); 6] = [
        ("username", "app"),
        ("password", "s3cret"),
        ("host", "orders.tenant-acme.svc.cluster.local"),
        ("port", "5432"),
        ("dbname", "app"),
        ("uri", "postgres://app:s3cret@orders.tenant-acme.svc.cluster.local:5432/app"),
    ];

    #[test]
    fn reads_every_key_and_the_port_as_a_number() {
        let json = serde_json::to_value(from_secret(&secret(&FULL)).unwrap()).unwrap();
        assert_eq!(json["port"], 5432);
        assert_eq!(json["password"], "s3cret");
        assert_eq!(json.as_object().unwrap().len(), 6);
    }

    #[test]
    fn refuses_incomplete_or_garbled_secrets() {
        let missing = from_secret(&secret(&FULL[..5])).err().expect("a Secret without uri is refused");
        assert!(missing.to_string().contains("no key \"uri\""), "{missing}");
        let mut bad_port = FULL;
        bad_port[3] = ("port", "postgres");
        assert!(from_secret(&secret(&bad_port)).is_err());
        assert!(from_secret(&Secret::default()).is_err());
    }

    #[test]
    fn the_secret_is_the_reported_one_else_the_conventional_one() {
        let spec: DatabaseSpec =
            serde_json::from_value(serde_json::json!({"engine": "postgres", "version": "17"})).unwrap();
        let mut db = Database::new("orders", spec);
        assert_eq!(secret_name(&db), "orders-credentials");
        db.status = Some(DatabaseStatus { secret_name: Some("orders-auth".into()), ..Default::default() });
        assert_eq!(secret_name(&db), "orders-auth");
    }
}
