//! API errors as RFC 9457 problem details (`application/problem+json`).

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

/// One field-level problem, e.g. `{"field": "spec.replicas", "message": "12 exceeds ..."}`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FieldError {
    /// JSON path of the field at fault.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Everything a handler can fail with. Each maps to one HTTP status; 5xx details are logged,
/// never sent (the client gets a generic message).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not the JSON expected.
    #[error("{0}")]
    BadRequest(String),
    /// 401: missing, expired or forged credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: authenticated, not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// 404: absent, or not visible to this user.
    #[error("{0}")]
    NotFound(String),
    /// 405: the path exists, the method does not.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 409: clashes with the current state (name taken, concurrent update).
    #[error("{0}")]
    Conflict(String),
    /// 413: body over the configured limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415: not `application/json`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: well-formed but invalid; `errors` lists each field.
    #[error("{detail}")]
    Unprocessable {
        /// Summary.
        detail: String,
        /// Each offending field.
        errors: Vec<FieldError>,
    },
    /// 429 with `Retry-After` (RFC 9110 §10.2.3): the caller asked too often, or the
    /// Kubernetes API asked the API to slow down.
    #[error("{detail}")]
    RateLimited {
        /// What was asked too often.
        detail: String,
        /// Seconds until asking again can succeed (at least 1).
        retry_after_seconds: u64,
    },
    /// 502: the Kubernetes API failed in a way that is not the client's fault.
    #[error("{0}")]
    BadGateway(String),
    /// 500: a bug or an outage; logged with its cause.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The body of every error answer: an RFC 9457 problem details object, sent as
/// `application/problem+json`.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Problem)]
pub(crate) struct Problem<'a> {
    /// Always `about:blank`: the status says what kind of problem it is.
    #[serde(rename = "type")]
    #[schema(example = "about:blank")]
    type_: &'a str,
    /// The status's reason phrase, e.g. `Unprocessable Entity`.
    title: &'a str,
    /// The HTTP status code.
    #[schema(minimum = 400, maximum = 599)]
    status: u16,
    /// What went wrong and how to fix it.
    detail: String,
    /// Each invalid field (422 only; absent when empty).
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    #[schema(required = false)]
    errors: &'a [FieldError],
}

impl ApiError {
    /// A 422 for one field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::fields(vec![FieldError { field: field.into(), message: message.into() }])
    }

    /// A 422 listing each of `errors`; its detail joins them (`field: message; ...`).
    pub fn fields(errors: Vec<FieldError>) -> Self {
        let detail = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ");
        Self::Unprocessable { detail, errors }
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<kube::Error> for ApiError {
    /// Kubernetes answers carry messages written for users (RBAC denials, schema and CEL
    /// validation, admission webhook denials): pass them on with a matching status.
    fn from(e: kube::Error) -> Self {
        match e {
            kube::Error::Api(s) => {
                let message = s.message.clone();
                match s.code {
                    400 => Self::BadRequest(message),
                    403 => Self::Forbidden(message),
                    404 => Self::NotFound(message),
                    409 => Self::Conflict(message),
                    422 => Self::Unprocessable { detail: message, errors: vec![] },
                    429 => Self::RateLimited {
                        detail: message,
                        retry_after_seconds: s.details.as_ref().map_or(1, |d| u64::from(d.retry_after_seconds)),
                    },
                    _ => {
                        tracing::error!(code = s.code, %message, "kubernetes API error");
                        Self::BadGateway("the Kubernetes API failed; try again later".into())
                    }
                }
            }
            other => {
                tracing::error!(error = %other, "kubernetes client error");
                Self::BadGateway("the Kubernetes API is unreachable; try again later".into())
            }
        }
    }
}

/// A query string that does not fit its handler: 400 in problem details saying which
/// parameter is wrong (axum's own rejection is plain text).
impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(e: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::BadRequest(e.body_text())
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = match &self {
            Self::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                "an internal error occurred; it has been logged".to_string()
            }
            other => other.to_string(),
        };
        let errors = match &self {
            Self::Unprocessable { errors, .. } => errors.as_slice(),
            _ => &[],
        };
        let problem = Problem {
            type_: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail,
            errors,
        };
        let mut response = (status, axum::Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Self::RateLimited { retry_after_seconds, .. } = &self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds.max(&1).to_owned()));
        }
        response
    }
}
