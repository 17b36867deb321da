//! `nomarch delete KIND NAME` and `nomarch delete -f`.

use std::path::PathBuf;

use crds::ObjectRef;

use crate::store::{EventType, NewEvent, StoreError};

use super::say;
use super::{parse_kind, CliError, StoreArgs};

pub async fn run(
    store_args: &StoreArgs,
    kind: Option<String>,
    name: Option<String>,
    files: &[PathBuf],
    namespace: &str,
) -> Result<(), CliError> {
    let targets: Vec<(ObjectRef, Option<String>)> = match (kind, name, files.is_empty()) {
        (Some(kind), Some(name), true) => {
            vec![(ObjectRef::new(parse_kind(&kind)?, namespace, name), None)]
        }
        (None, None, false) => crds::load_paths(files)
            .map_err(CliError::Invalid)?
            .into_iter()
            .map(|m| {
                let version =
                    Some(m.resource.metadata().resource_version.clone()).filter(|v| !v.is_empty());
                (m.resource.object_ref(), version)
            })
            .collect(),
        _ => return Err(CliError::Usage("give KIND NAME, or -f FILE...".into())),
    };
    let store = store_args.connect().await?;
    let mut missing = Vec::new();
    for (object, version) in targets {
        match store.delete(&object, version.as_deref()).await {
            Ok(()) => {
                say!("{object} deleted");
                let event = NewEvent {
                    type_: EventType::Normal,
                    reason: "Deleted".into(),
                    object: object.clone(),
                    message: "deleted by nomarch delete".into(),
                    source: "cli".into(),
                };
                if let Err(e) = store.record_event(event).await {
                    eprintln!("warning: {object} was deleted but its event was not recorded: {e}");
                }
            }
            Err(StoreError::NotFound(_)) => {
                eprintln!("{object} not found");
                missing.push(object.to_string());
            }
            Err(e) => return Err(e.into()),
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(CliError::NotFound(format!(
            "{} object(s) not found",
            missing.len()
        )))
    }
}
