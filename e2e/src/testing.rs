//! Helpers for tests that talk to a server: send a request and read its reply, poll until
//! something holds.

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Sends `request` and returns the status with the body: JSON when it parses, else the text
/// as a JSON string (Nomad's errors are plain text).
pub async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("request reaches the server");
    let status = response.status().as_u16();
    let text = response.text().await.expect("reply body is readable");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// Polls `check` every 50 ms until it holds. The 20 s limit only turns a hang into a failure;
/// tests never assert on how long it took.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}
