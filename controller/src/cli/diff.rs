//! `nomarch diff -f PATH`: what applying would change in Nomad ([`crate::ops::diff`]), for
//! each object in the manifests. Changes nothing; exits 1 when something would change.

use std::path::PathBuf;

use super::connect::NomadArgs;
use super::say;
use super::{CliError, StoreArgs};
use crate::ops::diff::{self, DiffError};

fn cli_error(e: DiffError) -> CliError {
    match e {
        DiffError::Store(e) => e.into(),
        other => CliError::Runtime(other.to_string()),
    }
}

pub async fn run(
    store_args: &StoreArgs,
    files: &[PathBuf],
    nomad_args: &NomadArgs,
    json: bool,
) -> Result<(), CliError> {
    // diff(1)'s convention: 1 means "differs", so trouble (an invalid manifest) is 2.
    let manifests =
        crds::load_paths(files).map_err(|e| CliError::Usage(CliError::Invalid(e).to_string()))?;
    let mut answers = Vec::new();
    let nomad = nomad_args.client(|_| {})?;
    let store = store_args.connect().await?;
    for manifest in manifests {
        let stored = store.get(&manifest.resource.object_ref()).await?;
        let answer = diff::diff(&store, &nomad, manifest.resource, stored.as_ref())
            .await
            .map_err(cli_error)?;
        answers.push(answer);
    }
    if json {
        say!(
            "{}",
            serde_json::to_string_pretty(&answers).expect("answers serialize")
        );
    } else {
        for answer in &answers {
            say!("{}", answer.text());
        }
    }
    let changed = answers.iter().filter(|a| a.changes).count();
    if changed > 0 {
        return Err(CliError::Differs(format!(
            "{changed} object(s) would change Nomad"
        )));
    }
    Ok(())
}
