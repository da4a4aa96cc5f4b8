//! HTTPS serving for the webhook's axum [`Router`]: rustls (ring provider, TLS 1.2 and 1.3 only), a certificate that
//! reloads when its files change on disk, and a hyper-util accept loop modelled on axum's `low-level-rustls` example.
//!
//! The API server only calls admission webhooks over HTTPS
//! (<https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/#contacting-the-webhook>);
//! the serving pair usually lives in a Secret volume that cert-manager or kubelet rotate in place, hence the reload.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// Longest a client may take to complete the TLS handshake (10 s) before its connection is dropped, so idle or
/// slow sockets cannot pile up tasks.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest [`serve`] waits (10 s) after shutdown for in-flight connections to finish. Matches the default admission
/// webhook `timeoutSeconds` (10 s, see the Kubernetes doc linked in the module docs), after which the API server has
/// given up on the request anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause (1 s) after an accept error that is not about a single connection (e.g. `EMFILE`), as `axum::serve` does,
/// instead of spinning.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// What identifies one version of a file on disk: modification time, length and (on Unix) inode. The inode changes
/// on every `rename(2)` replacement, catching updates whose mtime falls in the same filesystem timestamp tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl FileStamp {
    /// Stamp of `path`, following symlinks (Kubernetes Secret volumes swap a `..data` symlink on update).
    fn of(path: &Path) -> io::Result<Self> {
        let meta = std::fs::metadata(path)?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        Ok(Self { modified: meta.modified().ok(), len: meta.len(), inode })
    }
}

/// Mutable part of [`ReloadingCert`].
struct Loaded {
    key: Arc<CertifiedKey>,
    /// Stamps of (certificate, key) last looked at, whether or not that version loaded successfully.
    stamps: (FileStamp, FileStamp),
}

/// A TLS certificate chain and private key loaded from PEM files, reloaded when either file changes on disk.
///
/// * Certificate file: one or more `CERTIFICATE` PEM blocks (RFC 7468), leaf first, then intermediates; other
///   blocks are ignored.
/// * Key file: the first `PRIVATE KEY` (PKCS#8), `EC PRIVATE KEY` (SEC1) or `RSA PRIVATE KEY` (PKCS#1) block; any
///   key type the ring provider signs with (ECDSA P-256/P-384, Ed25519, RSA).
/// * The key must match the leaf's public key (compared by SubjectPublicKeyInfo).
///
/// [`ReloadingCert::watch`] polls both files' modification time, length and inode. When either changes, the pair is
/// re-read; if it fails to parse or does not match, a warning is logged and the previous pair keeps being served
/// (the broken version is not retried until a file changes again). New handshakes pick up a new pair immediately;
/// established connections keep theirs, and so do sessions resumed from tickets or session IDs issued before the
/// reload (resumption re-uses the earlier authentication; it does not present a certificate). Implements [`ResolvesServerCert`] by returning the current pair for every
/// ClientHello (no SNI selection).
pub struct ReloadingCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Loaded>,
}

impl fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingCert").field("cert_path", &self.cert_path).field("key_path", &self.key_path).finish()
    }
}

impl ReloadingCert {
    /// Reads and parses `cert_path` and `key_path` (PEM, shapes in the type docs) once, with the ring provider.
    /// Synchronous file I/O; call it at startup. Does not start watching: see [`ReloadingCert::watch`].
    ///
    /// # Errors
    /// Either file cannot be read; the certificate file holds no `CERTIFICATE` block; the key file holds no
    /// supported private key; the key is of a type ring cannot sign with; the key does not match the leaf
    /// certificate.
    pub fn load(cert_path: PathBuf, key_path: PathBuf) -> anyhow::Result<Arc<Self>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let stamps = (stamp(&cert_path)?, stamp(&key_path)?);
        let key = load_pair(&cert_path, &key_path, &provider)?;
        Ok(Arc::new(Self { cert_path, key_path, provider, current: RwLock::new(Loaded { key, stamps }) }))
    }

    /// Spawns the polling task on the current tokio runtime and returns its handle; the task runs until aborted
    /// (drop of the handle does not stop it). Every `interval` (e.g. 2 s in production, ~100 ms in tests; the first
    /// check happens one `interval` after the call) it stats both files and, if either changed since the last look,
    /// reloads the pair. File access runs on tokio's blocking pool. A file that cannot be stat-ed (e.g. during a
    /// Secret update) is retried on the next tick without changing the served pair.
    ///
    /// # Panics
    /// Outside a tokio runtime, or if `interval` is zero (tokio's `interval` rule).
    pub fn watch(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let this = Arc::clone(&this);
                if let Err(err) = tokio::task::spawn_blocking(move || this.reload_if_changed()).await {
                    tracing::warn!(error = %err, "certificate reload check panicked");
                }
            }
        })
    }

    /// One poll: re-reads the pair if either file's stamp changed; logs the outcome. Returns whether a new pair was
    /// installed.
    fn reload_if_changed(&self) -> bool {
        let stamps = match (FileStamp::of(&self.cert_path), FileStamp::of(&self.key_path)) {
            (Ok(c), Ok(k)) => (c, k),
            (Err(err), _) | (_, Err(err)) => {
                tracing::debug!(error = %err, cert = %self.cert_path.display(), "cannot stat certificate files");
                return false;
            }
        };
        if self.current.read().unwrap_or_else(PoisonError::into_inner).stamps == stamps {
            return false;
        }
        let result = load_pair(&self.cert_path, &self.key_path, &self.provider);
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        current.stamps = stamps;
        match result {
            Ok(key) => {
                current.key = key;
                tracing::info!(cert = %self.cert_path.display(), "reloaded TLS certificate");
                true
            }
            Err(err) => {
                tracing::warn!(
                    error = format!("{err:#}"),
                    cert = %self.cert_path.display(),
                    key = %self.key_path.display(),
                    "new TLS certificate or key failed to load; still serving the previous pair"
                );
                false
            }
        }
    }

    /// The pair currently served.
    fn current(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner).key)
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// Stamp of `path`, with the path in the error.
fn stamp(path: &Path) -> anyhow::Result<FileStamp> {
    FileStamp::of(path).with_context(|| format!("reading metadata of {}", path.display()))
}

/// Parses the PEM chain and key and checks that they belong together.
fn load_pair(cert_path: &Path, key_path: &Path, provider: &CryptoProvider) -> anyhow::Result<Arc<CertifiedKey>> {
    let cert_pem = std::fs::read(cert_path).with_context(|| format!("reading {}", cert_path.display()))?;
    let key_pem = std::fs::read(key_path).with_context(|| format!("reading {}", key_path.display()))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing PEM certificates in {}", cert_path.display()))?;
    if chain.is_empty() {
        bail!("no CERTIFICATE block in {}", cert_path.display());
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .with_context(|| format!("parsing a PEM private key in {}", key_path.display()))?;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .with_context(|| format!("unsupported private key in {}", key_path.display()))?;
    let certified = CertifiedKey::new(chain, signing_key);
    certified.keys_match().with_context(|| {
        format!("private key {} does not match certificate {}", key_path.display(), cert_path.display())
    })?;
    Ok(Arc::new(certified))
}

/// Builds the rustls server configuration for the webhook.
///
/// * Provider: ring, passed explicitly (no reliance on a process-default `CryptoProvider`), with its default
///   cipher suites and key-exchange groups.
/// * Versions: TLS 1.3 (RFC 8446) and TLS 1.2 (RFC 5246) only; rustls has no older versions, and Kubernetes'
///   API server dials webhooks with Go's default minimum of TLS 1.2.
/// * No client authentication; certificates from `cert` on every handshake.
/// * ALPN (RFC 7301): `h2`, then `http/1.1`; a client offering neither, or no ALPN at all, still connects. The
///   HTTP version actually spoken is detected from the connection preface by [`serve`].
///
/// # Errors
/// rustls rejects the provider/version combination (cannot happen with ring and these versions, kept for safety).
pub fn server_config(cert: Arc<ReloadingCert>) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::clone(&cert.provider);
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("ring provider does not support TLS 1.2/1.3")?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Builds the rustls client configuration a replica uses to reach its peers (see
/// [`crate::forward`]): the peer must present exactly the leaf certificate `cert` serves now
/// and prove it holds its key (the handshake signature is checked as usual); names and
/// issuers are not looked at. Versions and provider as in [`server_config`]; ALPN `h2` only;
/// no session resumption, so every connection checks the certificate served now.
///
/// # Errors
/// rustls rejects the provider/version combination (cannot happen with ring and these versions).
pub fn same_certificate_client(cert: Arc<ReloadingCert>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::clone(&cert.provider);
    let algorithms = provider.signature_verification_algorithms;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("ring provider does not support TLS 1.2/1.3")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(SameCertificate { cert, algorithms }))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// Accepts a server whose leaf certificate is the one this replica serves.
#[derive(Debug)]
struct SameCertificate {
    cert: Arc<ReloadingCert>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl rustls::client::danger::ServerCertVerifier for SameCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let served = self.cert.current();
        if served.cert.first().is_some_and(|own| own.as_ref() == end_entity.as_ref()) {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Serves `router` over HTTPS on `listener` until `shutdown` resolves.
///
/// * Each accepted TCP connection is handled in its own tokio task: TLS handshake with `config` (bounded by a
///   10 s timeout; a failure is logged at debug and only drops that connection), then HTTP/1.1 or HTTP/2 (chosen
///   from the connection preface by `hyper_util::server::conn::auto::Builder`, upgrades allowed) serving a clone
///   of `router`. hyper's HTTP/1 header-read timeout (30 s) is active.
/// * Accept errors: per-connection ones (reset, aborted, refused) are logged at debug and skipped; any other
///   (e.g. `EMFILE`) is logged at error and followed by a 1 s pause, as `axum::serve` does. They never end the
///   loop.
/// * Shutdown: when `shutdown` resolves the listener is dropped (no new connections), pending handshakes are
///   abandoned, and every open connection is told to shut down gracefully (in-flight requests finish, HTTP/1
///   keep-alive and HTTP/2 streams are closed after them). `serve` then waits up to 10 s for the connections to end
///   and returns; connections still open after that are left to finish on their own tasks.
///
/// Handlers do not get `ConnectInfo`; the peer address is only logged.
///
/// # Errors
/// None at present: the signature keeps `io::Result` so a future fatal listener error can be reported. Returns
/// `Ok(())` after shutdown.
pub async fn serve(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let acceptor = TlsAcceptor::from(config);
    // Every connection task holds a receiver; `closed()` on the sender resolves once all tasks have ended.
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) if is_connection_error(&err) => {
                    tracing::debug!(error = %err, "accept failed for one connection");
                    continue;
                }
                Err(err) => {
                    tracing::error!(error = %err, "accept failed; retrying in 1 s");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
        };
        tokio::spawn(handle_connection(tcp, peer, acceptor.clone(), router.clone(), shutdown_rx.clone()));
    }
    drop(listener);
    drop(shutdown_rx);
    let open = shutdown_tx.receiver_count();
    // Ignore send errors: no receivers means no connection left to stop.
    let _ = shutdown_tx.send(true);
    if tokio::time::timeout(DRAIN_TIMEOUT, shutdown_tx.closed()).await.is_err() {
        tracing::warn!(open = shutdown_tx.receiver_count(), "connections still open after the drain timeout");
    } else {
        tracing::debug!(drained = open, "HTTPS server stopped");
    }
    Ok(())
}

/// Whether an accept error concerns only the connection being accepted (same list as `axum::serve`).
fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// TLS handshake then HTTP serving for one connection; returns when the connection ends or shutdown completes.
async fn handle_connection(
    tcp: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    acceptor: TlsAcceptor,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
    let tls = tokio::select! {
        () = stop_requested(&mut shutdown) => return,
        result = handshake => match result {
            Ok(Ok(tls)) => tls,
            Ok(Err(err)) => {
                tracing::debug!(%peer, error = %err, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        },
    };

    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    let service = TowerToHyperService::new(router);
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stop_requested(&mut shutdown) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(err) = result {
        tracing::debug!(%peer, error = %err, "HTTP connection ended with an error");
    }
}

/// Resolves once [`serve`] asks connections to stop, or if `serve` itself was dropped (sender gone).
async fn stop_requested(shutdown: &mut watch::Receiver<bool>) {
    // The returned guard borrows the channel and is not `Send`; drop it here.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs;
    use rustls::pki_types::ServerName;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    const BODY: &str = "hello from slipway";

    fn router() -> Router {
        Router::new().route("/", axum::routing::get(|| async { BODY }))
    }

    fn hosts() -> Vec<String> {
        vec!["127.0.0.1".to_owned()]
    }

    /// A rustls client trusting only `ca_pem`, limited to `versions`, offering `alpn`. Session resumption is off so
    /// that every connection verifies the certificate the server presents now (a resumed TLS 1.3 session would
    /// skip certificate verification and make the reload assertions meaningless).
    fn client_config(
        ca_pem: &str,
        versions: &[&'static rustls::SupportedProtocolVersion],
        alpn: &[&[u8]],
    ) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap()).unwrap();
        let mut config =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(versions)
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config.resumption = rustls::client::Resumption::disabled();
        Arc::new(config)
    }

    /// Starts `serve` on 127.0.0.1:0 with the pair in `dir`; returns the address, the cert, the shutdown trigger
    /// and the server task.
    async fn start(
        dir: &Path,
    ) -> (
        std::net::SocketAddr,
        Arc<ReloadingCert>,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<io::Result<()>>,
    ) {
        let cert = ReloadingCert::load(dir.join(certs::CERT_FILE), dir.join(certs::KEY_FILE)).unwrap();
        let config = server_config(Arc::clone(&cert)).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, config, router(), async move {
            let _ = rx.await;
        }));
        (addr, cert, tx, server)
    }

    /// Connects and completes a TLS handshake with `config`.
    async fn connect(
        addr: std::net::SocketAddr,
        config: Arc<rustls::ClientConfig>,
    ) -> io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let name = ServerName::try_from("127.0.0.1").unwrap();
        tokio_rustls::TlsConnector::from(config).connect(name, tcp).await
    }

    /// Sends `GET /` over HTTP/1.1 with `Connection: close` and returns the whole response text.
    async fn get(addr: std::net::SocketAddr, config: Arc<rustls::ClientConfig>) -> io::Result<String> {
        let mut tls = connect(addr, config).await?;
        tls.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").await?;
        let mut response = String::new();
        tls.read_to_string(&mut response).await?;
        Ok(response)
    }

    fn assert_ok(response: &str) {
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.ends_with(BODY), "{response}");
    }

    #[tokio::test]
    async fn serves_https_get() {
        let dir = tempfile::tempdir().unwrap();
        let pair = certs::generate(&hosts()).unwrap();
        certs::write(dir.path(), &pair).unwrap();
        let (addr, _cert, stop, server) = start(dir.path()).await;

        let tls13 = client_config(&pair.ca_pem, &[&rustls::version::TLS13], &[]);
        assert_ok(&get(addr, tls13).await.unwrap());

        // A garbage handshake does not take the server down.
        let mut junk = tokio::net::TcpStream::connect(addr).await.unwrap();
        junk.write_all(b"not a TLS ClientHello\r\n\r\n").await.unwrap();
        let mut sink = Vec::new();
        let _ = junk.read_to_end(&mut sink).await;

        // TLS 1.2 is accepted too, and negotiated as such.
        let tls12 = client_config(&pair.ca_pem, &[&rustls::version::TLS12], &[]);
        let conn = connect(addr, tls12.clone()).await.unwrap();
        assert_eq!(conn.get_ref().1.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));
        drop(conn);
        assert_ok(&get(addr, tls12).await.unwrap());

        // ALPN: h2 is preferred when offered.
        let h2 = client_config(&pair.ca_pem, &[&rustls::version::TLS13], &[b"h2", b"http/1.1"]);
        let conn = connect(addr, h2).await.unwrap();
        assert_eq!(conn.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        drop(conn);

        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(2), server).await.unwrap().unwrap().unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "listener closed after shutdown");
    }

    #[tokio::test]
    async fn reloads_changed_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let pair_a = certs::generate(&hosts()).unwrap();
        certs::write(dir.path(), &pair_a).unwrap();
        let (addr, cert, stop, server) = start(dir.path()).await;
        let watcher = cert.watch(Duration::from_millis(100));
        let trust_a = client_config(&pair_a.ca_pem, &[&rustls::version::TLS13], &[]);
        assert_ok(&get(addr, trust_a.clone()).await.unwrap());

        // A broken key is ignored: the previous pair keeps being served.
        std::fs::write(dir.path().join(certs::KEY_FILE), "not a key").unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_ok(&get(addr, trust_a.clone()).await.unwrap());

        let pair_b = certs::generate(&hosts()).unwrap();
        certs::write(dir.path(), &pair_b).unwrap();
        let trust_b = client_config(&pair_b.ca_pem, &[&rustls::version::TLS13], &[]);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        loop {
            match get(addr, trust_b.clone()).await {
                Ok(response) => {
                    assert_ok(&response);
                    break;
                }
                Err(err) => {
                    assert!(tokio::time::Instant::now() < deadline, "new certificate never served: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        let err = get(addr, trust_a).await.unwrap_err();
        assert!(err.to_string().contains("invalid peer certificate"), "{err}");

        watcher.abort();
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(2), server).await.unwrap().unwrap().unwrap();
    }

    #[test]
    fn load_rejects_mismatched_pair() {
        let dir = tempfile::tempdir().unwrap();
        let a = certs::generate(&hosts()).unwrap();
        let b = certs::generate(&hosts()).unwrap();
        certs::write(dir.path(), &certs::DevCerts { key_pem: b.key_pem, ..a }).unwrap();
        let err = ReloadingCert::load(dir.path().join(certs::CERT_FILE), dir.path().join(certs::KEY_FILE)).unwrap_err();
        assert!(format!("{err:#}").contains("does not match"), "{err:#}");
    }

    /// rustls cannot build a TLS 1.0/1.1 client and `ServerConfig` keeps its enabled versions private, so this
    /// feeds the server a hand-made TLS 1.1 ClientHello (RFC 4346 section 7.4.1.2, no `supported_versions`
    /// extension) and checks that it answers with a fatal `protocol_version` alert (RFC 5246 section 7.2.2, code
    /// 70) instead of negotiating.
    #[test]
    fn tls11_client_hello_is_rejected() {
        let pair = certs::generate(&hosts()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        certs::write(dir.path(), &pair).unwrap();
        let cert = ReloadingCert::load(dir.path().join(certs::CERT_FILE), dir.path().join(certs::KEY_FILE)).unwrap();
        let mut server = rustls::ServerConnection::new(server_config(cert).unwrap()).unwrap();

        let mut body = vec![0x03, 0x02]; // client_version TLS 1.1
        body.extend_from_slice(&[0x11; 32]); // random
        body.push(0); // empty session id
        // TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, TLS_RSA_WITH_AES_128_CBC_SHA
        body.extend_from_slice(&[0x00, 0x04, 0xc0, 0x09, 0x00, 0x2f]);
        body.extend_from_slice(&[0x01, 0x00]); // compression: null
        // Extensions: only signature_algorithms (ecdsa_secp256r1_sha256), which rustls requires before it looks at
        // the version; without it the alert would be handshake_failure.
        body.extend_from_slice(&[0x00, 0x08, 0x00, 0x0d, 0x00, 0x04, 0x00, 0x02, 0x04, 0x03]);
        let mut handshake = vec![0x01, 0x00]; // ClientHello, 24-bit length
        handshake.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
        handshake.extend_from_slice(&body);
        let mut record = vec![0x16, 0x03, 0x01]; // handshake record, legacy version TLS 1.0
        record.extend_from_slice(&u16::try_from(handshake.len()).unwrap().to_be_bytes());
        record.extend_from_slice(&handshake);

        server.read_tls(&mut record.as_slice()).unwrap();
        let err = server.process_new_packets().unwrap_err();
        assert_eq!(err, rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls12NotOffered));
        let mut out = Vec::new();
        server.write_tls(&mut out).unwrap();
        // Alert record: type 21, then level fatal (2) and description protocol_version (70).
        assert_eq!(out.first(), Some(&21), "{out:?}");
        assert_eq!(&out[out.len() - 2..], &[2, 70], "{out:?}");
    }
}
