//! A virtual user's state (account, access token, tenant, App) and the one way it calls the
//! API: a named request with its bearer token, judged by the status it expects.

use goose::goose::{GooseMethod, GooseRequest, GooseUser, TransactionError};
use serde_json::Value;

/// What a virtual user has set up so far.
#[derive(Clone, Debug, Default)]
pub struct Session {
    pub email: String,
    pub access_token: String,
    pub tenant: Option<String>,
    pub app: Option<String>,
}

/// A failed step: goose's own error, so the run counts and reports it.
pub type Step<T = ()> = Result<T, Box<TransactionError>>;

/// The user's session, or a failed step when its sign-up has not happened.
pub fn session(user: &GooseUser) -> Step<Session> {
    user.get_session_data::<Session>().cloned().ok_or_else(|| failed("the user has not signed up"))
}

/// A step that failed for a reason of the scenario's own (not a response it judged).
pub fn failed(why: impl Into<String>) -> Box<TransactionError> {
    Box::new(TransactionError::Custom(why.into()))
}

/// Where the REST API's paths start.
const API: &str = "/api/v1";

/// One API request.
pub struct Call<'a> {
    pub method: GooseMethod,
    /// The route template the figures are kept under, such as `/tenants/{tenant}`.
    pub name: &'a str,
    /// The path under [`Call::prefix`].
    pub path: String,
    /// `/api/v1`, or nothing for the probes at the root (`/healthz`).
    pub prefix: &'static str,
    pub body: Option<Value>,
    /// The status that counts as success; any other fails the request.
    pub expect: u16,
}

impl<'a> Call<'a> {
    pub fn get(name: &'a str, path: String) -> Self {
        Self { method: GooseMethod::Get, name, path, prefix: API, body: None, expect: 200 }
    }

    pub fn post(name: &'a str, path: String, body: Value, expect: u16) -> Self {
        Self { method: GooseMethod::Post, name, path, prefix: API, body: Some(body), expect }
    }

    pub fn put(name: &'a str, path: String, body: Value) -> Self {
        Self { method: GooseMethod::Put, name, path, prefix: API, body: Some(body), expect: 200 }
    }

    pub fn delete(name: &'a str, path: String, expect: u16) -> Self {
        Self { method: GooseMethod::Delete, name, path, prefix: API, body: None, expect }
    }

    /// The same call to `path` at the root rather than under `/api/v1`.
    pub fn unversioned(self) -> Self {
        Self { prefix: "", ..self }
    }

    /// Sends the call as `user` (with its access token once it has one) and returns the
    /// response body as JSON (`null` when empty), or fails the request when the status is
    /// not the expected one.
    pub async fn send(self, user: &mut GooseUser) -> Step<Value> {
        let path = format!("{}{}", self.prefix, self.path);
        let mut builder = user.get_request_builder(&self.method, &path)?;
        if let Some(s) = user.get_session_data::<Session>().filter(|s| !s.access_token.is_empty()) {
            builder = builder.bearer_auth(&s.access_token);
        }
        if let Some(body) = &self.body {
            builder = builder.json(body);
        }
        let request = GooseRequest::builder()
            .method(self.method)
            .path(path.as_str())
            .name(self.name)
            .expect_status_code(self.expect)
            .set_request_builder(builder)
            .build();
        // goose counts a request with another status as failed; the answer's body says why.
        let response = user.request(request).await?.response.map_err(|e| Box::new(TransactionError::Reqwest(e)))?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| Box::new(TransactionError::Reqwest(e)))?;
        if status != self.expect {
            let why = format!("{} {}: {status} {text}", self.method_name(), self.path);
            eprintln!("slipway-loadtest: {why}");
            return Err(failed(why));
        }
        Ok(if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::Null) })
    }

    fn method_name(&self) -> &'static str {
        match self.method {
            GooseMethod::Get => "GET",
            GooseMethod::Post => "POST",
            GooseMethod::Put => "PUT",
            GooseMethod::Delete => "DELETE",
            GooseMethod::Patch => "PATCH",
            _ => "request",
        }
    }
}
