//! The controller's error type.

/// Why a reconcile failed. Every variant is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the Kubernetes API failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The tenant names a plan or override the catalogue rejects.
    #[error("plan: {0}")]
    Plan(#[from] slipway_policies::PlanError),
    /// Sending an email failed.
    #[error("email: {0}")]
    Mail(String),
    /// Configuration is unusable (e.g. the SMTP URL).
    #[error("configuration: {0}")]
    Config(String),
    /// The leader election's Lease could not be used.
    #[error("leader election: {0}")]
    Leadership(String),
    /// This replica lost the Lease while leading and stopped reconciling.
    #[error("leader election: lost the lease while leading; restart to compete again")]
    LostLeadership,
}

impl From<slipway_mail::MailError> for Error {
    fn from(e: slipway_mail::MailError) -> Self {
        match e {
            slipway_mail::MailError::Config(e) => Error::Config(e),
            slipway_mail::MailError::Send(e) => Error::Mail(e),
        }
    }
}

impl Error {
    /// A short, stable label for logs and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(_) => "KubernetesError",
            Error::Plan(_) => "InvalidPlan",
            Error::Mail(_) => "EmailFailed",
            Error::Config(_) => "InvalidConfiguration",
            Error::Leadership(_) | Error::LostLeadership => "LeaderElection",
        }
    }
}

/// Result with the controller's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
