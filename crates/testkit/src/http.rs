//! A service's HTTP API as a test calls it: a request with a bearer token
//! and a JSON body, answered by its status and its JSON; and a service run
//! in the test's process, called that way.

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::StopOnDrop;

/// Sends `request` with `token` as its bearer (None: no Authorization
/// header) and `body` as its JSON text (None: no body); answers the status
/// and the JSON answer (Null when the answer is not JSON). Panics when no
/// answer comes.
pub async fn call(
    request: reqwest::RequestBuilder,
    token: Option<&str>,
    body: Option<String>,
) -> (u16, Value) {
    let mut request = request;
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    if let Some(b) = body {
        request = request.header("content-type", "application/json").body(b);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Checks that `answer` (to the request `what` names) is the JSON error
/// `status` with `code`.
pub fn assert_error(what: &str, (got, answer): (u16, &Value), status: u16, code: &str) {
    assert_eq!(got, status, "{what}: {answer}");
    assert_eq!(answer["status"], "error", "{what}: {answer}");
    assert_eq!(answer["code"], code, "{what}: {answer}");
}

/// A service built on port 0 and running in the background until `stop`
/// (cancelled when this is dropped): its base URL and a client for it.
pub struct Service {
    pub base: String,
    pub http: reqwest::Client,
    pub stop: StopOnDrop,
}

impl Service {
    /// Runs `run(stop)` (a service's `run_until_stopped`) in the background,
    /// the service listening on `port`.
    pub fn start<F>(port: u16, run: impl FnOnce(CancellationToken) -> F) -> Service
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Service::start_with(StopOnDrop::new(), port, run)
    }

    /// [`Service::start`] stopped by `stop` (a [`StopOnDrop::child`] of a
    /// stack's token stops it with the stack).
    pub fn start_with<F>(
        stop: StopOnDrop,
        port: u16,
        run: impl FnOnce(CancellationToken) -> F,
    ) -> Service
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        tokio::spawn(run(stop.clone()));
        Service {
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            stop,
        }
    }

    /// A request of `path` (from the base URL), for [`call`].
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    /// [`call`] of `path` with `body` (JSON text) and `token`.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> (u16, Value) {
        call(self.request(method, path), token, body.map(str::to_owned)).await
    }
}
