//! Helpers for tests that poll a server until something holds.

use std::future::Future;
use std::time::{Duration, Instant};

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
