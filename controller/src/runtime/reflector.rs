//! Keeps the cache equal to etcd: list, then watch from the listing's revision, relisting when
//! the watch lost its place. Every object that appears, changes or goes is queued.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::context::Context;
use crate::store::{RawItem, WatchEvent};

pub async fn run(ctx: Arc<Context>) {
    loop {
        match list(&ctx).await {
            Ok(revision) => watch(&ctx, revision).await,
            Err(e) => {
                warn!(error = %e, "listing objects failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// A full listing into the cache; returns the revision to watch from.
async fn list(ctx: &Context) -> crate::store::Result<i64> {
    let (objects, revision) = ctx.store.list(None).await?;
    let statuses = objects
        .iter()
        .filter_map(|r| r.status().cloned().map(|s| (r.object_ref(), s)))
        .collect();
    let touched = ctx.cache.replace(objects, statuses, revision);
    for object in touched {
        ctx.queue.add(object);
    }
    if !ctx.cache.is_synced() {
        info!(
            objects = ctx.cache.refs().len(),
            revision, "first listing in; reconciling starts"
        );
        ctx.cache.mark_synced();
    }
    Ok(revision)
}

async fn watch(ctx: &Context, revision: i64) {
    let prefix = ctx.store.keys().prefix().to_string();
    let mut stream = ctx.store.watch_prefix(prefix, revision + 1);
    while let Some(item) = stream.recv().await {
        match item {
            Ok(WatchEvent::Put(item)) => on_put(ctx, &item),
            Ok(WatchEvent::Delete { key, .. }) => on_delete(ctx, &key),
            Ok(WatchEvent::Relisted { .. }) => {
                // The watch lost its place: list again through the typed path, then carry on.
                info!("watch revision compacted; relisting");
                return;
            }
            Err(e) => warn!(error = %e, "watch interrupted; it resumes by itself"),
        }
    }
}

fn table_of<'k>(ctx: &Context, key: &'k str) -> Option<&'k str> {
    key.strip_prefix(ctx.store.keys().prefix())?
        .split('/')
        .next()
}

fn on_put(ctx: &Context, item: &RawItem) {
    match table_of(ctx, &item.key) {
        Some("objects") => match ctx.store.decode_object_item(item) {
            Ok(resource) => {
                let object = resource.object_ref();
                if ctx.cache.put_object(resource) {
                    ctx.queue.add(object);
                }
            }
            Err(e) => warn!(error = %e, "skipping an object that does not decode"),
        },
        // Status is the controller's own output: cached, never a reason to reconcile.
        Some("status") => match ctx.store.decode_status_item(item) {
            Ok((object, status)) => ctx.cache.put_status(object, status, item.mod_revision),
            Err(e) => warn!(error = %e, "skipping a status that does not decode"),
        },
        _ => {}
    }
}

fn on_delete(ctx: &Context, key: &str) {
    let Some(object) = ctx.store.keys().object_ref_of(key) else {
        return;
    };
    match table_of(ctx, key) {
        Some("objects") => {
            ctx.cache.remove_object(&object);
            ctx.queue.add(object);
        }
        Some("status") => ctx.cache.remove_status(&object),
        _ => {}
    }
}
