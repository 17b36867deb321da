//! The controller's HTTP server: `/metrics`, `/healthz`, `/readyz`, whatever routes the kinds
//! bring (the git push webhook) and the HTTP API it is handed (`/api/v1`, the event stream
//! included: [`super::event_stream`] serves it once the API has let the request through).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::context::Context;
use super::kinds::Kinds;

/// `api` is the HTTP API's routes (above the runtime: it names no kind, but it is not the
/// runtime's either).
pub fn router(ctx: Arc<Context>, kinds: &dyn Kinds, api: Router<Arc<Context>>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .merge(kinds.routes())
        .merge(api)
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
