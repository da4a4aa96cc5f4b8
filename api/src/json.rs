//! A strict JSON body extractor: exact media type, size limit, unknown fields refused, objects
//! where structs are expected (never arrays), and type errors reported with the path of the
//! field (`spec.replicas: invalid type ...`).

mod objects;

use crate::error::{ApiError, FieldError};
use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::header,
};
use serde::de::DeserializeOwned;

/// Like `axum::Json`, but every failure is a problem-details 4xx that says what to fix.
pub struct StrictJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for StrictJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let media_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase());
        if media_type.as_deref() != Some("application/json") {
            return Err(ApiError::UnsupportedMediaType(
                "send the body as JSON with Content-Type: application/json".into(),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(format!("the request body is too large: {e}"))
            } else {
                ApiError::BadRequest(format!("could not read the request body: {e}"))
            }
        })?;
        parse(&bytes).map(StrictJson)
    }
}

/// Parses `bytes` as `T`, refusing unknown fields anywhere in the document, and arrays where
/// structs are expected ([`objects::Objects`]).
///
/// # Errors
/// 400 for malformed JSON; 422 for a wrong type, a missing field or unknown fields.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut unknown = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let mut record = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
    let parsed: Result<T, _> =
        serde_path_to_error::deserialize(serde_ignored::Deserializer::new(objects::Objects(&mut de), &mut record));
    let value = match parsed {
        Ok(v) => v,
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            return Err(if inner.is_syntax() || inner.is_eof() {
                ApiError::BadRequest(format!("the body is not valid JSON: {inner}"))
            } else if path == "." {
                ApiError::invalid("body", inner.to_string())
            } else {
                ApiError::invalid(path, inner.to_string())
            });
        }
    };
    de.end().map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    if !unknown.is_empty() {
        let errors: Vec<_> = unknown
            .into_iter()
            .map(|field| FieldError { message: "unknown field; remove it (check its spelling)".into(), field })
            .collect();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        return Err(ApiError::Unprocessable { detail: format!("unknown field(s): {}", fields.join(", ")), errors });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        inner: Inner,
    }

    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Inner {
        replicas: i32,
    }

    fn status(r: Result<Outer, ApiError>) -> (u16, String) {
        let e = r.unwrap_err();
        (e.status().as_u16(), e.to_string())
    }

    #[test]
    fn accepts_exact_documents() {
        assert!(parse::<Outer>(br#"{"name":"a","inner":{"replicas":2}}"#).is_ok());
    }

    #[test]
    fn reports_the_path_of_type_errors() {
        let (code, msg) = status(parse(br#"{"name":"a","inner":{"replicas":"two"}}"#));
        assert_eq!(code, 422);
        assert!(msg.starts_with("inner.replicas: invalid type"), "{msg}");
    }

    #[test]
    fn refuses_unknown_fields_with_their_path() {
        let (code, msg) = status(parse(br#"{"name":"a","inner":{"replicas":2,"replica":3},"x":1}"#));
        assert_eq!(code, 422);
        assert_eq!(msg, "unknown field(s): inner.replica, x");
    }

    #[test]
    fn malformed_and_trailing_json_is_400() {
        assert_eq!(status(parse(br#"{"name":"a","#)).0, 400);
        assert_eq!(status(parse(br#"{"name":"a","inner":{"replicas":2}} x"#)).0, 400);
        assert_eq!(status(parse(b"")).0, 400);
    }

    #[test]
    fn structs_are_objects_never_arrays() {
        let (code, msg) = status(parse(br#"{"name":"a","inner":[2]}"#));
        assert_eq!(code, 422);
        assert!(msg.starts_with("inner: invalid type: sequence, expected struct Inner"), "{msg}");
        let (code, msg) = status(parse(br#"["a",{"replicas":2}]"#));
        assert_eq!(code, 422);
        assert!(msg.contains("invalid type: sequence, expected struct Outer"), "{msg}");
        // Sequences stay sequences, options and nested objects still work.
        assert!(parse::<Vec<Option<Inner>>>(br#"[{"replicas":1},null]"#).is_ok());
    }

    #[test]
    fn missing_fields_are_422() {
        let (code, msg) = status(parse(br#"{"name":"a"}"#));
        assert_eq!(code, 422);
        assert!(msg.contains("missing field `inner`"), "{msg}");
    }
}
