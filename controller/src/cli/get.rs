//! `nomarch get KIND [NAME]`, and `-w`: the same rows kept up to date from an etcd watch of the
//! kind's objects and statuses (redrawn in place on a terminal; elsewhere a line per row that
//! changed, as `kubectl get -w` prints them).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use crds::{Kind, ObjectRef, Resource};

use super::output::{print_table, render_json, render_yaml, summary_columns, table_lines, Row};
use super::{parse_kind, CliError, NamespaceArgs, OutputFormat, StoreArgs};
use super::{say, say_raw};
use crate::store::{Store, StoreError};
use crds::select::{Selector, SortBy};

/// Changes closer together than this are drawn once.
const REDRAW_AFTER: Duration = Duration::from_millis(100);

/// Which objects a listing shows, and in what order.
pub struct Shown {
    pub namespace: NamespaceArgs,
    pub selector: Option<Selector>,
    pub sort_by: Option<SortBy>,
}

async fn listed(
    store: &Store,
    kind: Kind,
    name: Option<&str>,
    shown: &Shown,
) -> Result<Vec<Resource>, CliError> {
    let namespace = &shown.namespace;
    Ok(match name {
        Some(name) => {
            let object = ObjectRef::new(kind, &namespace.namespace, name);
            let found = store.get(&object).await?;
            vec![found.ok_or_else(|| StoreError::NotFound(object.to_string()))?]
        }
        None => {
            let (all, _) = store.list(Some(kind)).await?;
            let mut listed: Vec<Resource> = all
                .into_iter()
                .filter(|r| namespace.matches(&r.metadata().namespace))
                .filter(|r| {
                    shown
                        .selector
                        .as_ref()
                        .is_none_or(|s| s.matches(&r.metadata().labels))
                })
                .collect();
            if let Some(by) = &shown.sort_by {
                let mut keyed: Vec<(serde_json::Value, Resource)> = listed
                    .into_iter()
                    .map(|r| (serde_json::to_value(&r).expect("objects serialize"), r))
                    .collect();
                // Stable: equal values keep the store's order (kind, namespace, name).
                keyed.sort_by(|(a, _), (b, _)| by.compare(a, b));
                listed = keyed.into_iter().map(|(_, r)| r).collect();
            }
            listed
        }
    })
}

fn rows(objects: &[Resource], wide: bool, shown: &Shown) -> Vec<Row> {
    objects
        .iter()
        .map(|r| summary_columns(r, wide, shown.namespace.all_namespaces))
        .collect()
}

pub async fn run(
    store_args: &StoreArgs,
    kind: &str,
    name: Option<&str>,
    shown: &Shown,
    output: Option<OutputFormat>,
    watch: bool,
) -> Result<(), CliError> {
    let kind = parse_kind(kind)?;
    if watch && matches!(output, Some(OutputFormat::Yaml | OutputFormat::Json)) {
        return Err(CliError::Usage(
            "-w keeps a table up to date: use it without -o, or with -o wide".into(),
        ));
    }
    let store = store_args.connect().await?;
    let revision = store.revision().await?;
    let objects = listed(&store, kind, name, shown).await?;
    match output {
        Some(OutputFormat::Yaml) => say_raw!("{}", render_yaml(&objects, name.is_some())),
        Some(OutputFormat::Json) => say!("{}", render_json(&objects, name.is_some())),
        format => {
            if objects.is_empty() && !watch {
                eprintln!("No {} found.", kind.singular());
                return Ok(());
            }
            let wide = format == Some(OutputFormat::Wide);
            if watch {
                return follow(&store, kind, name, shown, wide, revision).await;
            }
            print_table(&rows(&objects, wide, shown));
        }
    }
    Ok(())
}

/// `get -w`: rows as they change, until interrupted.
async fn follow(
    store: &Store,
    kind: Kind,
    name: Option<&str>,
    shown: &Shown,
    wide: bool,
    revision: i64,
) -> Result<(), CliError> {
    let in_place = std::io::stdout().is_terminal();
    let mut objects_changed = store.watch_prefix(store.keys().objects(Some(kind)), revision + 1);
    let mut statuses_changed = store.watch_prefix(store.keys().statuses(Some(kind)), revision + 1);
    let mut drawn_lines = 0;
    let mut last_rows: BTreeMap<String, String> = BTreeMap::new();
    let mut first = true;
    loop {
        let objects = match listed(store, kind, name, shown).await {
            Ok(objects) => objects,
            // The one object watched was deleted: say so and wait for it to come back.
            Err(CliError::Store(StoreError::NotFound(_))) => Vec::new(),
            Err(e) => return Err(e),
        };
        let rows = rows(&objects, wide, shown);
        let lines = table_lines(&rows);
        if in_place {
            if drawn_lines > 0 {
                // Up to where the table began, and clear what was there.
                say_raw!("\x1b[{drawn_lines}A\x1b[J");
            }
            for line in &lines {
                say!("{line}");
            }
            drawn_lines = lines.len();
        } else {
            if first {
                if let Some(header) = lines.first() {
                    say!("{header}");
                }
            }
            let mut seen = BTreeMap::new();
            for ((object, row), line) in objects.iter().zip(&rows).zip(lines.iter().skip(1)) {
                let key = object.object_ref().to_string();
                let content = what_changes(row);
                if last_rows.get(&key) != Some(&content) {
                    say!("{line}");
                }
                seen.insert(key, content);
            }
            last_rows = seen;
        }
        first = false;
        let changed = tokio::select! {
            event = objects_changed.recv() => event.is_some(),
            event = statuses_changed.recv() => event.is_some(),
        };
        if !changed {
            return Err(CliError::Runtime("the store's watch ended".into()));
        }
        // Let a burst of changes (an object and its status) land before drawing once.
        tokio::time::sleep(REDRAW_AFTER).await;
        while objects_changed.try_recv().is_ok() || statuses_changed.try_recv().is_ok() {}
    }
}

/// A row's cells but its age, which moves by itself: only rows whose other cells changed are
/// printed again.
fn what_changes(row: &Row) -> String {
    row.iter()
        .filter(|(header, _)| *header != "AGE")
        .map(|(_, cell)| cell.as_str())
        .collect::<Vec<_>>()
        .join("\t")
}
