//! Takes keys from the queue and reconciles them, at most `concurrency` at a time. On shutdown
//! it stops taking work and lets the runs in flight finish.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{info_span, Instrument};

use super::context::Context;
use super::kinds::Kinds;
use super::queue::Outcome;

pub async fn run(ctx: Arc<Context>, kinds: Arc<dyn Kinds>, concurrency: usize) {
    ctx.cache.wait_synced().await;
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut running = JoinSet::new();
    loop {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let Some(key) = ctx.queue.next().await else {
            break;
        };
        // Another shard's object: its controller reconciles it.
        if !ctx.owns(&key) {
            ctx.queue.done(&key, super::queue::Outcome::Done);
            continue;
        }
        ctx.metrics.queue_depth.set(ctx.queue.len() as i64);
        let (ctx, kinds) = (ctx.clone(), kinds.clone());
        let span = info_span!("reconcile", object = %key);
        running.spawn(
            async move {
                let started = Instant::now();
                let (outcome, result) = kinds.reconcile(&ctx, &key).await;
                ctx.metrics.record_reconcile(
                    key.kind.as_str(),
                    result,
                    started.elapsed().as_secs_f64(),
                );
                ctx.queue.done(&key, outcome);
                drop(permit);
                outcome
            }
            .instrument(span),
        );
        while running.try_join_next().is_some() {}
    }
    // Shutting down: what started, finishes.
    while running.join_next().await.is_some() {}
}

/// For tests and `nomarch diff`: one reconcile outcome's label.
pub fn outcome_label(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Done => "done",
        Outcome::RequeueAfter(_) => "requeue",
        Outcome::Retry => "retry",
        Outcome::GiveUp => "terminal",
    }
}
