//! `nomarch get KIND [NAME]`.

use crds::{ObjectRef, Resource};

use super::output::{print_table, render_json, render_yaml, summary_columns, Row};
use super::{parse_kind, CliError, NamespaceArgs, OutputFormat, StoreArgs};
use super::{say, say_raw};
use crate::store::StoreError;

pub async fn run(
    store_args: &StoreArgs,
    kind: &str,
    name: Option<&str>,
    namespace: &NamespaceArgs,
    output: Option<OutputFormat>,
) -> Result<(), CliError> {
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
            all.into_iter()
                .filter(|r| namespace.matches(&r.metadata().namespace))
                .collect()
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
