//! Two webhook replicas behind one address, each review sent to the next in turn.
//!
//! A Service spreads connections, not requests, and kube-apiserver sends every review over one
//! HTTP/2 connection, so behind a TCP proxy a test's reviews would nearly all reach one
//! replica. This proxy ends TLS (with the replicas' own certificate) and sends each review on,
//! alternately, so every racing test judges a tenant on both replicas: the lease holder
//! admits, the other forwards to it.

use axum::{Router, body::Bytes, extract::State, http::Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use slipway_webhook::tls::{ReloadingCert, same_certificate_client, serve, server_config};
use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};
use tokio::sync::Mutex;

struct Proxy {
    backends: Vec<SocketAddr>,
    next: AtomicUsize,
    tls: tokio_rustls::TlsConnector,
    /// One HTTP/2 connection per backend, opened on first use (or again after it closed).
    connections: Vec<Mutex<Option<SendRequest<Full<Bytes>>>>>,
}

impl Proxy {
    async fn connection(&self, i: usize) -> SendRequest<Full<Bytes>> {
        let mut slot = self.connections[i].lock().await;
        if let Some(sender) = slot.as_ref().filter(|s| !s.is_closed()) {
            return sender.clone();
        }
        let tcp = tokio::net::TcpStream::connect(self.backends[i]).await.expect("a webhook replica listens");
        let name = rustls::pki_types::ServerName::try_from("replica.slipway.invalid").unwrap();
        let tls = self.tls.connect(name, tcp).await.expect("TLS with a webhook replica");
        let (sender, connection) =
            hyper::client::conn::http2::Builder::new(TokioExecutor::new()).handshake(TokioIo::new(tls)).await.unwrap();
        tokio::spawn(connection);
        *slot = Some(sender.clone());
        sender
    }
}

/// Sends the review to the next replica and returns its answer as it is.
async fn pass_on(State(proxy): State<Arc<Proxy>>, uri: Uri, body: Bytes) -> (axum::http::StatusCode, Bytes) {
    let i = proxy.next.fetch_add(1, Ordering::Relaxed) % proxy.backends.len();
    let request = hyper::Request::post(format!("https://{}{}", proxy.backends[i], uri.path()))
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .unwrap();
    match proxy.connection(i).await.send_request(request).await {
        Ok(response) => {
            let status = response.status();
            (status, response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default())
        }
        Err(e) => (axum::http::StatusCode::BAD_GATEWAY, Bytes::from(e.to_string())),
    }
}

/// Serves the proxy on `listener` with the replicas' certificate and key, for ever.
pub async fn run(listener: tokio::net::TcpListener, backends: Vec<SocketAddr>, cert: PathBuf, key: PathBuf) {
    let cert = ReloadingCert::load(cert, key).unwrap();
    let proxy = Proxy {
        connections: backends.iter().map(|_| Mutex::new(None)).collect(),
        backends,
        next: AtomicUsize::new(0),
        tls: tokio_rustls::TlsConnector::from(same_certificate_client(cert.clone()).unwrap()),
    };
    let router = Router::new().fallback(pass_on).with_state(Arc::new(proxy));
    serve(listener, server_config(cert).unwrap(), router, std::future::pending()).await.unwrap();
}
