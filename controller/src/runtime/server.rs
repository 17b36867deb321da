//! The controller's HTTP server: `/metrics`, `/healthz`, `/readyz`, the git push webhook
//! (`POST /api/v1/webhooks/git/{name}`) and the event stream (`GET /api/v1/events/stream`).

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;

use super::context::Context;

pub fn router(ctx: Arc<Context>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route(
            "/api/v1/webhooks/git/{name}",
            post(super::webhook::git_push)
                .layer(DefaultBodyLimit::max(super::webhook::MAX_BODY_BYTES)),
        )
        .route("/api/v1/events/stream", get(super::event_stream::events))
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

/// Ready once the first listing is in (a standby is ready to take over). The body says whether
/// this controller leads its shard, and who does otherwise.
async fn ready(State(ctx): State<Arc<Context>>) -> impl IntoResponse {
    if !ctx.cache.is_synced() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "waiting for the first listing\n".to_string(),
        );
    }
    let role = if ctx.leadership.is_held() {
        "leading".to_string()
    } else {
        match ctx.store.holder(&ctx.leadership.key).await {
            Ok(Some((leader, _))) => format!("standby; {leader} leads"),
            _ => "standby; no leader yet".to_string(),
        }
    };
    (
        StatusCode::OK,
        format!("ready: {} ({role})\n", ctx.identity),
    )
}
