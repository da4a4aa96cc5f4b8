//! Development certificates for the admission webhook: a throw-away CA plus a serving certificate signed by it.
//!
//! The Kubernetes API server only calls webhooks over HTTPS and verifies the serving certificate against the
//! `caBundle` of the `ValidatingWebhookConfiguration` / `MutatingWebhookConfiguration`
//! (<https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/#contacting-the-webhook>).
//! In production the pair usually comes from cert-manager; this module produces an equivalent pair for local
//! clusters (kind, k3d) and tests. Nothing here is meant to protect real traffic: the CA key is discarded.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, date_time_ymd,
};

/// Common name of the development CA.
const CA_COMMON_NAME: &str = "slipway-webhook-ca";

/// Validity of both certificates, counted from generation time: 365 days. Long enough that a development cluster
/// does not need re-provisioning, short enough to stay under the 398-day ceiling browsers and the CA/Browser Forum
/// baseline requirements put on leaf certificates.
const VALIDITY: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// How far `notBefore` is back-dated (1 hour) so that a peer whose clock is slightly behind still accepts the pair.
const BACKDATE: Duration = Duration::from_secs(60 * 60);

/// File name of the CA certificate written by [`write()`] (PEM). Same name cert-manager uses in its Secrets.
pub const CA_FILE: &str = "ca.crt";
/// File name of the serving certificate written by [`write()`] (PEM). Kubernetes `kubernetes.io/tls` Secret key.
pub const CERT_FILE: &str = "tls.crt";
/// File name of the serving private key written by [`write()`] (PEM, PKCS#8). Kubernetes `kubernetes.io/tls` Secret key.
pub const KEY_FILE: &str = "tls.key";

/// PEM texts of a development CA and a serving certificate signed by it.
///
/// * `ca_pem`: one `CERTIFICATE` block, the self-signed CA (CN `slipway-webhook-ca`, `basicConstraints` CA with
///   path length 0, key usages keyCertSign + cRLSign + digitalSignature). Its private key is not kept.
/// * `cert_pem`: one `CERTIFICATE` block, the serving (leaf) certificate issued by the CA, extended key usage
///   serverAuth (RFC 5280 section 4.2.1.12).
/// * `key_pem`: one `PRIVATE KEY` block (PKCS#8, RFC 5958), the ECDSA P-256 key of `cert_pem`.
#[derive(Clone)]
pub struct DevCerts {
    /// The CA certificate, PEM (RFC 7468). This is what goes, base64-encoded, into `caBundle`; see [`ca_bundle`].
    pub ca_pem: String,
    /// The serving certificate, PEM (RFC 7468), leaf only (the CA is not appended).
    pub cert_pem: String,
    /// The serving certificate's private key, PEM PKCS#8 (RFC 5958 / RFC 7468). Secret.
    pub key_pem: String,
}

impl std::fmt::Debug for DevCerts {
    /// Shows the certificates but never the private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCerts")
            .field("ca_pem", &self.ca_pem)
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// Generates a development CA and a serving certificate for `hosts`, both ECDSA P-256 with SHA-256 signatures.
///
/// * `hosts`: non-empty; each entry that parses as an IPv4/IPv6 address becomes an `iPAddress` subject alternative
///   name, every other entry a `dNSName` SAN (e.g. `slipway-webhook.slipway-system.svc`, the name the API server
///   dials for a `service` reference). The first entry is also the subject CN. Clients (Go's crypto/x509 since Go
///   1.15, hence the API server, and rustls) match only the SANs, never the CN (RFC 6125 section 6.4.4), so every
///   name the certificate must be valid for has to be listed.
/// * Validity: both certificates from 1 hour before now until 365 days after now.
/// * The CA key is dropped after signing: the CA can never sign anything else.
///
/// # Errors
/// `hosts` is empty; a DNS entry is not a valid IA5 string (e.g. contains non-ASCII characters); key generation or
/// signing fails; the system clock is before 1970.
pub fn generate(hosts: &[String]) -> anyhow::Result<DevCerts> {
    let Some(first) = hosts.first() else {
        bail!("generating a serving certificate needs at least one host name or IP address");
    };
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).context("system clock is before 1970")?;
    // `OffsetDateTime` is only reachable through rcgen's re-exported constructor; adding a std `Duration` to it is
    // exact (the `time` crate implements `Add<std::time::Duration>`).
    let epoch = date_time_ymd(1970, 1, 1);
    let not_before = epoch + since_epoch.saturating_sub(BACKDATE);
    let not_after = epoch + since_epoch + VALIDITY;

    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).context("generating the CA key")?;
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = rcgen::DistinguishedName::new();
    ca_params.distinguished_name.push(DnType::CommonName, CA_COMMON_NAME);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    ca_params.not_before = not_before;
    ca_params.not_after = not_after;
    let ca_cert = ca_params.self_signed(&ca_key).context("self-signing the CA certificate")?;

    let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).context("generating the serving key")?;
    let mut leaf_params = CertificateParams::new(hosts.to_vec())
        .with_context(|| format!("invalid host name among {hosts:?} for a subject alternative name"))?;
    leaf_params.distinguished_name = rcgen::DistinguishedName::new();
    leaf_params.distinguished_name.push(DnType::CommonName, first.as_str());
    leaf_params.is_ca = IsCa::ExplicitNoCa;
    // ECDSA keys only sign (no key encipherment), RFC 5480 section 3 / RFC 8813.
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf_params.use_authority_key_identifier_extension = true;
    leaf_params.not_before = not_before;
    leaf_params.not_after = not_after;
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_cert = leaf_params.signed_by(&leaf_key, &issuer).context("signing the serving certificate")?;

    Ok(DevCerts { ca_pem: ca_cert.pem(), cert_pem: leaf_cert.pem(), key_pem: leaf_key.serialize_pem() })
}

/// Writes `ca.crt`, `tls.crt` and `tls.key` (see [`CA_FILE`], [`CERT_FILE`], [`KEY_FILE`]) into `dir`, creating
/// `dir` and its parents if missing, and replacing existing files.
///
/// Each file is written to a temporary sibling (`.<name>.tmp-<pid>-<nanos>`), flushed to disk, then renamed over the
/// target; `rename(2)` within one directory is atomic (POSIX), so a reader such as
/// [`crate::tls::ReloadingCert`] sees either the old or the new file, never a prefix. The three files are not
/// replaced together, so a reader may briefly see a new certificate with the old key; `ReloadingCert` rejects such
/// mismatched pairs and picks the pair up on its next poll. On Unix `tls.key` is created with mode `0600` (owner
/// read/write) before any byte is written; the certificates get `0644`.
///
/// # Errors
/// `dir` cannot be created, or a file cannot be created, written, synced or renamed (the temporary file is removed
/// on a best-effort basis).
pub fn write(dir: &Path, certs: &DevCerts) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating certificate directory {}", dir.display()))?;
    write_atomic(dir, CA_FILE, certs.ca_pem.as_bytes(), 0o644)?;
    write_atomic(dir, KEY_FILE, certs.key_pem.as_bytes(), 0o600)?;
    write_atomic(dir, CERT_FILE, certs.cert_pem.as_bytes(), 0o644)?;
    Ok(())
}

/// Writes `contents` to `dir/name` via a temporary file and `rename`; `mode` is applied on Unix only.
pub(crate) fn write_atomic(dir: &Path, name: &str, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    let target = dir.join(name);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}-{nanos}", std::process::id()));
    let result = (|| -> anyhow::Result<()> {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
        #[cfg(not(unix))]
        let _ = mode;
        let mut file = options.open(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        file.write_all(contents).with_context(|| format!("writing {}", tmp.display()))?;
        file.sync_all().with_context(|| format!("syncing {}", tmp.display()))?;
        fs::rename(&tmp, &target).with_context(|| format!("renaming {} to {}", tmp.display(), target.display()))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The `caBundle` field value of a webhook configuration's `clientConfig`: standard base64 (RFC 4648 section 4, with
/// `=` padding, no line breaks) of the PEM text `ca_pem`.
///
/// Kubernetes types `caBundle` as `[]byte` holding PEM-encoded CA certificates, which JSON and YAML carry as base64
/// (<https://kubernetes.io/docs/reference/kubernetes-api/extend-resources/validating-webhook-configuration-v1/>).
/// Use this string when writing a manifest or a JSON patch by hand; with k8s-openapi's `ByteString` pass the raw
/// PEM bytes instead, since its serializer base64-encodes them itself. Never fails.
pub fn ca_bundle(ca_pem: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(ca_pem.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

    fn hosts(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    /// Verifies `certs.cert_pem` against `certs.ca_pem` as a TLS server certificate for `name` with rustls-webpki
    /// (through rustls' `WebPkiServerVerifier`, ring provider).
    fn verify(certs: &DevCerts, name: &str) -> Result<(), rustls::Error> {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(certs.ca_pem.as_bytes()).unwrap()).unwrap();
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider).build().unwrap();
        let leaf = CertificateDer::from_pem_slice(certs.cert_pem.as_bytes()).unwrap();
        let server_name = ServerName::try_from(name.to_owned()).unwrap();
        rustls::client::danger::ServerCertVerifier::verify_server_cert(
            verifier.as_ref(),
            &leaf,
            &[],
            &server_name,
            &[],
            UnixTime::now(),
        )
        .map(|_| ())
    }

    #[test]
    fn chain_verifies_for_ip_and_dns_sans() {
        let certs = generate(&hosts(&["127.0.0.1", "slipway-webhook.slipway-system.svc", "::1"])).unwrap();
        verify(&certs, "127.0.0.1").unwrap();
        verify(&certs, "::1").unwrap();
        verify(&certs, "slipway-webhook.slipway-system.svc").unwrap();
        let err = verify(&certs, "other.example").unwrap_err();
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext { .. })
                    | rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)
            ),
            "{err:?}"
        );
        // An IP literal must not be accepted through a DNS SAN or vice versa.
        let dns_only = generate(&hosts(&["localhost"])).unwrap();
        verify(&dns_only, "localhost").unwrap();
        assert!(verify(&dns_only, "127.0.0.1").is_err());
    }

    #[test]
    fn other_ca_does_not_verify() {
        let a = generate(&hosts(&["127.0.0.1"])).unwrap();
        let b = generate(&hosts(&["127.0.0.1"])).unwrap();
        let mixed = DevCerts { ca_pem: a.ca_pem.clone(), ..b };
        assert!(verify(&mixed, "127.0.0.1").is_err());
    }

    #[test]
    fn pem_shapes_and_key_matches() {
        let certs = generate(&hosts(&["localhost"])).unwrap();
        assert_eq!(certs.ca_pem.matches("-----BEGIN CERTIFICATE-----").count(), 1);
        assert_eq!(certs.cert_pem.matches("-----BEGIN CERTIFICATE-----").count(), 1);
        assert!(certs.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let chain = vec![CertificateDer::from_pem_slice(certs.cert_pem.as_bytes()).unwrap()];
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(certs.key_pem.as_bytes()).unwrap();
        let provider = rustls::crypto::ring::default_provider();
        let ck = rustls::sign::CertifiedKey::from_der(chain, key, &provider).unwrap();
        ck.keys_match().unwrap();
        assert!(!format!("{certs:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn empty_hosts_and_bad_dns_are_errors() {
        assert!(generate(&[]).is_err());
        assert!(generate(&hosts(&["bad\u{e9}name"])).is_err());
    }

    #[test]
    fn ca_bundle_round_trips() {
        let certs = generate(&hosts(&["127.0.0.1"])).unwrap();
        let bundle = ca_bundle(&certs.ca_pem);
        assert!(!bundle.contains('\n'));
        let decoded = base64::engine::general_purpose::STANDARD.decode(&bundle).unwrap();
        assert_eq!(String::from_utf8(decoded).unwrap(), certs.ca_pem);
    }

    #[test]
    fn write_creates_files_atomically_with_key_mode() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("nested/certs");
        let first = generate(&hosts(&["127.0.0.1"])).unwrap();
        write(&dir, &first).unwrap();
        let second = generate(&hosts(&["127.0.0.1"])).unwrap();
        write(&dir, &second).unwrap();
        assert_eq!(fs::read_to_string(dir.join(CA_FILE)).unwrap(), second.ca_pem);
        assert_eq!(fs::read_to_string(dir.join(CERT_FILE)).unwrap(), second.cert_pem);
        assert_eq!(fs::read_to_string(dir.join(KEY_FILE)).unwrap(), second.key_pem);
        let mut names: Vec<_> =
            fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, [CA_FILE, CERT_FILE, KEY_FILE], "no temporary files left behind");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(dir.join(KEY_FILE)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }
}
