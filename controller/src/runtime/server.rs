//! The controller's HTTP server: `/metrics`, `/healthz`, `/readyz`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::context::Context;

pub fn router(ctx: Arc<Context>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(ctx)
}

async fn metrics(State(ctx): State<Arc<Context>>) -> impl IntoResponse {
    ctx.metrics.queue_depth.set(ctx.queue.len() as i64);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        ctx.metrics.encode(),
    )
}

/// Ready once the first listing is in (reconciling has started).
async fn ready(State(ctx): State<Arc<Context>>) -> impl IntoResponse {
    if ctx.cache.is_synced() {
        (StatusCode::OK, format!("ready: {}\n", ctx.identity))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "waiting for the first listing\n".to_string(),
        )
    }
}
