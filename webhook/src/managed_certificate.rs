//! The webhook's own CA and serving certificate, kept in a Secret that the webhook creates and
//! renews itself, with the CA patched into the webhook configurations' `caBundle`: no manual
//! step and no cert-manager, the way Capsule and linkerd's policy controller run.
//!
//! Every replica runs [`ManagedCertificate::sync`] at start and then every
//! [`SYNC_INTERVAL`]. A sync reads the Secret; when it is missing, or its certificate will not
//! verify for the Service's name [`RENEW_BEFORE`] from now (expiring, another name, another
//! CA), it generates a new CA and certificate ([`crate::certs::generate`], valid 365 days),
//! first adds the new CA to the `caBundle` next to the previous one (so the API server trusts
//! both while replicas switch), then writes the Secret with optimistic concurrency: of racing
//! replicas one wins and the others adopt its Secret. Each replica writes the Secret's
//! certificate and key to its serving files, which [`crate::tls::ReloadingCert`] picks up.

use crate::{
    certs::{self, DevCerts},
    register::CONFIGURATION,
};
use anyhow::Context as _;
use k8s_openapi::{
    ByteString,
    api::{
        admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration},
        core::v1::Secret,
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{
    Api, Client, Resource,
    api::{Patch, PatchParams, PostParams},
};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject as _};
use serde::de::DeserializeOwned;
use std::{
    collections::BTreeMap,
    path::PathBuf,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// A certificate is renewed once it would no longer verify 120 days from now: a third of its
/// 365 days, the share cert-manager renews at by default (`renewBefore` = 1/3 of the duration).
pub const RENEW_BEFORE: Duration = Duration::from_secs(120 * 24 * 60 * 60);

/// How often each replica syncs (10 minutes): the longest a replica serves a certificate after
/// another replica renewed it, months before the old one expires.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(10 * 60);

/// Field manager of the `caBundle` patches.
const FIELD_MANAGER: &str = "slipway-webhook";

/// Where the certificate lives and whom it must serve.
#[derive(Clone, Debug)]
pub struct ManagedCertificate {
    /// Namespace of the Secret and the Service (the webhook's own).
    pub namespace: String,
    /// Name of the `kubernetes.io/tls` Secret holding `ca.crt` (the CA bundle, newest first),
    /// `tls.crt` and `tls.key`.
    pub secret: String,
    /// Name of the Service the webhook configurations point at: the certificate is valid for
    /// `<service>.<namespace>.svc`, the name the API server dials, and its shorter and longer
    /// forms.
    pub service: String,
    /// Where the serving certificate is written (PEM), as served by [`crate::Server`].
    pub tls_cert: PathBuf,
    /// Where its key is written (PEM, mode 0600).
    pub tls_key: PathBuf,
}

/// What the Secret holds.
struct Stored {
    certs: DevCerts,
    resource_version: Option<String>,
}

impl ManagedCertificate {
    /// The names the serving certificate is valid for; the first is the one the API server
    /// dials for a Service reference (`<service>.<namespace>.svc`).
    pub fn hosts(&self) -> Vec<String> {
        let (svc, ns) = (&self.service, &self.namespace);
        vec![format!("{svc}.{ns}.svc"), format!("{svc}.{ns}.svc.cluster.local"), format!("{svc}.{ns}"), svc.clone()]
    }

    /// Makes sure the Secret holds a certificate good for [`RENEW_BEFORE`] more, the webhook
    /// configurations trust its CA, and the serving files hold it.
    ///
    /// # Errors
    /// Kubernetes API errors (including a missing webhook configuration: the Helm chart
    /// installs them), certificate generation or file errors.
    pub async fn sync(&self, client: &Client) -> anyhow::Result<()> {
        let secrets = Api::<Secret>::namespaced(client.clone(), &self.namespace);
        let stored = self.current(&secrets).await?;
        let certs = match stored {
            Some(Stored { certs, .. }) if self.fresh(&certs) => certs,
            previous => self.renew(client, &secrets, previous).await?,
        };
        patch_ca_bundle(client, &certs.ca_pem).await?;
        self.write_files(&certs)
    }

    /// Syncs every [`SYNC_INTERVAL`] until the task is dropped, logging failures (the
    /// certificate in use stays valid for months, so a failed sync is retried, not fatal).
    pub fn keep_synced(self, client: Client) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SYNC_INTERVAL);
            tick.tick().await; // the first tick is immediate; the caller synced at start
            loop {
                tick.tick().await;
                if let Err(error) = self.sync(&client).await {
                    tracing::warn!(error = format!("{error:#}"), secret = %self.secret, "syncing the webhook certificate");
                }
            }
        })
    }

    async fn current(&self, secrets: &Api<Secret>) -> anyhow::Result<Option<Stored>> {
        let Some(secret) = secrets.get_opt(&self.secret).await.context("reading the certificate Secret")? else {
            return Ok(None);
        };
        let data = secret.data.unwrap_or_default();
        let text = |key: &str| data.get(key).and_then(|v| String::from_utf8(v.0.clone()).ok()).unwrap_or_default();
        let certs =
            DevCerts { ca_pem: text(certs::CA_FILE), cert_pem: text(certs::CERT_FILE), key_pem: text(certs::KEY_FILE) };
        Ok(Some(Stored { certs, resource_version: secret.metadata.resource_version }))
    }

    /// Whether `certs` verifies, chained to its CA bundle, for the Service's name as of
    /// [`RENEW_BEFORE`] from now.
    fn fresh(&self, certs: &DevCerts) -> bool {
        let later = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default() + RENEW_BEFORE;
        verifies(certs, &self.hosts()[0], UnixTime::since_unix_epoch(later))
    }

    /// Generates a new pair, trusts its CA next to the previous one, and stores it; when
    /// another replica stored one first, adopts that one.
    async fn renew(
        &self,
        client: &Client,
        secrets: &Api<Secret>,
        previous: Option<Stored>,
    ) -> anyhow::Result<DevCerts> {
        let mut certs = certs::generate(&self.hosts())?;
        let previous_ca = previous.as_ref().and_then(|p| first_pem_block(&p.certs.ca_pem));
        if let Some(old) = previous_ca {
            certs.ca_pem = format!("{}{old}", certs.ca_pem);
        }
        tracing::info!(secret = %self.secret, "issuing a new webhook CA and serving certificate");
        // Trust first, serve second: replicas that load the new certificate are then trusted.
        patch_ca_bundle(client, &certs.ca_pem).await?;
        let secret = self.secret_object(&certs, previous.as_ref().and_then(|p| p.resource_version.clone()));
        let written = match previous {
            Some(_) => secrets.replace(&self.secret, &PostParams::default(), &secret).await,
            None => secrets.create(&PostParams::default(), &secret).await,
        };
        match written {
            Ok(_) => Ok(certs),
            // Another replica renewed at the same moment: its pair is as good as ours.
            Err(kube::Error::Api(e)) if e.code == 409 => match self.current(secrets).await? {
                Some(theirs) => Ok(theirs.certs),
                None => anyhow::bail!("the certificate Secret {} vanished while renewing it", self.secret),
            },
            Err(e) => Err(e).context("writing the certificate Secret"),
        }
    }

    fn secret_object(&self, certs: &DevCerts, resource_version: Option<String>) -> Secret {
        let bytes = |s: &str| ByteString(s.as_bytes().to_vec());
        Secret {
            metadata: ObjectMeta {
                name: Some(self.secret.clone()),
                namespace: Some(self.namespace.clone()),
                resource_version,
                labels: Some(BTreeMap::from([("app.kubernetes.io/managed-by".into(), "slipway".into())])),
                ..Default::default()
            },
            type_: Some("kubernetes.io/tls".into()),
            data: Some(BTreeMap::from([
                (certs::CA_FILE.into(), bytes(&certs.ca_pem)),
                (certs::CERT_FILE.into(), bytes(&certs.cert_pem)),
                (certs::KEY_FILE.into(), bytes(&certs.key_pem)),
            ])),
            ..Default::default()
        }
    }

    /// Writes the pair unless the files already hold it (so the reloader sees no change).
    fn write_files(&self, certs: &DevCerts) -> anyhow::Result<()> {
        let on_disk = |path: &PathBuf| std::fs::read_to_string(path).unwrap_or_default();
        if on_disk(&self.tls_cert) == certs.cert_pem && on_disk(&self.tls_key) == certs.key_pem {
            return Ok(());
        }
        for (path, contents, mode) in [(&self.tls_key, &certs.key_pem, 0o600), (&self.tls_cert, &certs.cert_pem, 0o644)]
        {
            let dir = path.parent().context("the certificate path has no directory")?;
            let name = path.file_name().and_then(|n| n.to_str()).context("the certificate path has no file name")?;
            certs::write_atomic(dir, name, contents.as_bytes(), mode)?;
        }
        Ok(())
    }
}

/// Whether `certs.cert_pem` verifies as a TLS server certificate for `host` at `at`, chained to
/// one of the CAs in `certs.ca_pem` (rustls-webpki, as a client would check it).
fn verifies(certs: &DevCerts, host: &str, at: UnixTime) -> bool {
    let check = || -> Option<()> {
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(certs.ca_pem.as_bytes()) {
            roots.add(ca.ok()?).ok()?;
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider).build().ok()?;
        let leaf = CertificateDer::from_pem_slice(certs.cert_pem.as_bytes()).ok()?;
        let name = ServerName::try_from(host.to_owned()).ok()?;
        rustls::client::danger::ServerCertVerifier::verify_server_cert(verifier.as_ref(), &leaf, &[], &name, &[], at)
            .ok()?;
        Some(())
    };
    !certs.key_pem.is_empty() && check().is_some()
}

/// The first `CERTIFICATE` block of a PEM bundle, as PEM text (the newest CA of a bundle).
fn first_pem_block(bundle: &str) -> Option<String> {
    const END: &str = "-----END CERTIFICATE-----";
    let end = bundle.find(END)? + END.len();
    Some(format!("{}\n", bundle[..end].trim_start()))
}

/// Sets `caBundle` to `ca_pem` in every webhook of both configurations `slipway`, by a
/// strategic merge patch keyed on the webhooks' names, so whoever installed them (Helm)
/// keeps owning everything else. Patches nothing that already trusts exactly `ca_pem`.
///
/// # Errors
/// Kubernetes API errors, a missing configuration among them.
async fn patch_ca_bundle(client: &Client, ca_pem: &str) -> anyhow::Result<()> {
    let mutating = Api::<MutatingWebhookConfiguration>::all(client.clone());
    let live = mutating.get(CONFIGURATION).await.context("reading MutatingWebhookConfiguration slipway")?;
    let current = live.webhooks.unwrap_or_default().into_iter().map(|w| (w.name, w.client_config.ca_bundle)).collect();
    patch_webhooks(&mutating, current, ca_pem).await?;
    let validating = Api::<ValidatingWebhookConfiguration>::all(client.clone());
    let live = validating.get(CONFIGURATION).await.context("reading ValidatingWebhookConfiguration slipway")?;
    let current = live.webhooks.unwrap_or_default().into_iter().map(|w| (w.name, w.client_config.ca_bundle)).collect();
    patch_webhooks(&validating, current, ca_pem).await
}

async fn patch_webhooks<K>(api: &Api<K>, current: Vec<(String, Option<ByteString>)>, ca_pem: &str) -> anyhow::Result<()>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let wanted = ByteString(ca_pem.as_bytes().to_vec());
    if current.iter().all(|(_, bundle)| bundle.as_ref() == Some(&wanted)) {
        return Ok(());
    }
    let webhooks: Vec<_> = current
        .iter()
        .map(|(name, _)| serde_json::json!({ "name": name, "clientConfig": { "caBundle": certs::ca_bundle(ca_pem) } }))
        .collect();
    let patch = serde_json::json!({ "webhooks": webhooks });
    api.patch(
        CONFIGURATION,
        &PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() },
        &Patch::Strategic(patch),
    )
    .await
    .context("patching the webhook configurations' caBundle")?;
    tracing::info!("webhook configurations trust the current CA");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn managed() -> ManagedCertificate {
        ManagedCertificate {
            namespace: "slipway-system".into(),
            secret: "slipway-webhook-tls".into(),
            service: "slipway-webhook".into(),
            tls_cert: "unused".into(),
            tls_key: "unused".into(),
        }
    }

    fn from_now(d: Duration) -> UnixTime {
        UnixTime::since_unix_epoch(SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + d)
    }

    #[test]
    fn a_new_certificate_is_fresh_for_the_service_name_until_its_renewal_time() {
        let m = managed();
        let certs = certs::generate(&m.hosts()).unwrap();
        assert!(m.fresh(&certs));
        assert!(verifies(&certs, "slipway-webhook.slipway-system.svc", from_now(Duration::ZERO)));
        // 365 days of validity: past them it no longer verifies, so a sync renews it.
        assert!(!verifies(&certs, "slipway-webhook.slipway-system.svc", from_now(Duration::from_secs(366 * 86_400))));
    }

    #[test]
    fn a_certificate_for_another_name_a_missing_key_or_an_unrelated_ca_is_not_fresh() {
        let m = managed();
        let elsewhere = certs::generate(&["other.slipway-system.svc".to_string()]).unwrap();
        assert!(!m.fresh(&elsewhere));
        let mut keyless = certs::generate(&m.hosts()).unwrap();
        keyless.key_pem.clear();
        assert!(!m.fresh(&keyless));
        let mut foreign = certs::generate(&m.hosts()).unwrap();
        foreign.ca_pem = elsewhere.ca_pem;
        assert!(!m.fresh(&foreign));
    }

    #[test]
    fn a_renewed_bundle_trusts_the_new_and_the_previous_ca() {
        let m = managed();
        let old = certs::generate(&m.hosts()).unwrap();
        let mut new = certs::generate(&m.hosts()).unwrap();
        new.ca_pem = format!("{}{}", new.ca_pem, first_pem_block(&old.ca_pem).unwrap());
        assert!(m.fresh(&new), "the new certificate chains to the bundle's first CA");
        let old_served = DevCerts { ca_pem: new.ca_pem.clone(), ..old };
        assert!(m.fresh(&old_served), "a replica still serving the old certificate stays trusted");
        assert_eq!(new.ca_pem.matches("BEGIN CERTIFICATE").count(), 2);
    }
}
