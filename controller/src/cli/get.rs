//! `nomarch get KIND [NAME]`.

use crds::{ObjectRef, Resource};

use super::output::{print_table, render_json, render_yaml, summary_columns, Row};
use super::select::{Selector, SortBy};
use super::{parse_kind, CliError, NamespaceArgs, OutputFormat, StoreArgs};
use super::{say, say_raw};
use crate::store::StoreError;

/// Which objects a listing shows, and in what order.
pub struct Shown {
    pub namespace: NamespaceArgs,
    pub selector: Option<Selector>,
    pub sort_by: Option<SortBy>,
}

pub async fn run(
    store_args: &StoreArgs,
    kind: &str,
    name: Option<&str>,
    shown: &Shown,
    output: Option<OutputFormat>,
) -> Result<(), CliError> {
    let namespace = &shown.namespace;
    let kind = parse_kind(kind)?;
    let store = store_args.connect().await?;
    let objects: Vec<Resource> = match name {
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
    };
    match output {
        Some(OutputFormat::Yaml) => say_raw!("{}", render_yaml(&objects, name.is_some())),
        Some(OutputFormat::Json) => say!("{}", render_json(&objects, name.is_some())),
        format => {
            if objects.is_empty() {
                eprintln!("No {} found.", kind.singular());
                return Ok(());
            }
            let wide = format == Some(OutputFormat::Wide);
            let rows: Vec<Row> = objects
                .iter()
                .map(|r| summary_columns(r, wide, namespace.all_namespaces))
                .collect();
            print_table(&rows);
        }
    }
    Ok(())
}
