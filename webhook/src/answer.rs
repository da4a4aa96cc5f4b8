//! What both sides of admission share: which webhook path was called, and how a denial is
//! phrased. `review` (HTTP) and `admit` (the rules' glue) both use it and neither imports the
//! other's internals.

use kube::core::admission::AdmissionResponse;

/// Which webhook path was called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// `/mutate`: fill in defaults and labels.
    Mutate,
    /// `/validate`: enforce the plan.
    Validate,
}

/// What judging a review came to.
#[derive(Debug)]
pub enum Verdict {
    /// The answer to send (boxed: it is large, and a forward is small).
    Answer(Box<AdmissionResponse>),
    /// Another replica holds the tenant's lease: the review must be judged there, at this
    /// address (`ip:port`; see [`crate::reservations`]).
    Forward(String),
}

impl From<AdmissionResponse> for Verdict {
    fn from(response: AdmissionResponse) -> Self {
        Verdict::Answer(Box::new(response))
    }
}

/// A denial with an HTTP-like `code` and a message that reaches the user verbatim (kubectl
/// prints it; the API passes it on as the problem's `detail`). Codes follow Kubernetes'
/// meaning: 400 a request the webhook cannot read, 403 a change the requester may not make,
/// 422 a value the plan refuses, 503 a check that could not be made (retry).
pub fn deny(response: AdmissionResponse, code: u16, message: impl ToString) -> AdmissionResponse {
    let mut response = response.deny(message);
    response.result.code = code;
    response
}
