//! `nomarch events [--watch]`: one line per event, oldest first.

use crate::store::{decode_event, Event, WatchEvent};

use super::{CliError, NamespaceArgs, StoreArgs};

pub async fn run(
    store_args: &StoreArgs,
    watch: bool,
    namespace: &NamespaceArgs,
) -> Result<(), CliError> {
    let store = store_args.connect().await?;
    let (events, revision) = store.list_events().await?;
    for event in events
        .iter()
        .filter(|e| namespace.matches(&e.object.namespace))
    {
        println!("{}", format_event(event));
    }
    if !watch {
        return Ok(());
    }
    let mut stream = store.watch_prefix(store.keys().events(), revision + 1);
    loop {
        tokio::select! {
            item = stream.recv() => match item {
                Some(Ok(WatchEvent::Put(item))) => {
                    if let Some(event) = decode_event(&item.value).filter(|e| namespace.matches(&e.object.namespace)) {
                        println!("{}", format_event(&event));
                    }
                }
                // Expiry and compaction: nothing new to show.
                Some(Ok(_)) => {}
                Some(Err(e)) => eprintln!("watch interrupted, reconnecting: {e}"),
                None => return Ok(()),
            },
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

pub fn format_event(event: &Event) -> String {
    let count = if event.count > 1 {
        format!(" (x{})", event.count)
    } else {
        String::new()
    };
    format!(
        "{}  {:<7}  {:<16}  {:<24}  {}{count}",
        event.last_timestamp.format("%Y-%m-%dT%H:%M:%SZ"),
        format!("{:?}", event.type_),
        event.reason,
        event.object.to_string(),
        event.message,
    )
}
