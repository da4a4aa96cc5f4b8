//! One shutdown signal shared by every task: Ctrl-C, SIGTERM, or a programmatic trigger.

use tokio::sync::watch;

/// A cloneable shutdown signal.
#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// Fires a [`Shutdown`].
pub struct Trigger(watch::Sender<bool>);

impl Trigger {
    /// Asks every holder of the paired [`Shutdown`] to stop.
    pub fn fire(&self) {
        let _ = self.0.send(true);
    }
}

impl Shutdown {
    /// A signal fired only through the returned [`Trigger`] (tests).
    pub fn manual() -> (Trigger, Self) {
        let (tx, rx) = watch::channel(false);
        (Trigger(tx), Self { rx })
    }

    /// A signal fired by Ctrl-C or SIGTERM (what Kubernetes sends before killing a pod).
    pub fn on_signals() -> Self {
        let (trigger, shutdown) = Self::manual();
        tokio::spawn(async move {
            let ctrl_c = tokio::signal::ctrl_c();
            #[cfg(unix)]
            let term = async {
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(mut s) => drop(s.recv().await),
                    Err(_) => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let term = std::future::pending::<()>();
            tokio::select! { _ = ctrl_c => {}, () = term => {} }
            tracing::info!("shutdown signal received");
            trigger.fire();
        });
        shutdown
    }

    /// Resolves once the signal fires.
    pub async fn wait(mut self) {
        let _ = self.rx.wait_for(|fired| *fired).await;
    }
}
