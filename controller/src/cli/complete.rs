//! Shell completion: `nomarch completion SHELL` prints the shell's registration, which calls
//! `nomarch` back as the user presses Tab (clap_complete's `COMPLETE=<shell>` protocol, run by
//! [`clap_complete::CompleteEnv`] in `main`), so subcommands, flags and object names all come
//! from the binary itself. Object names (`app/web`) are read from etcd with the store flags the
//! environment gives (the command line being completed is not parsed yet), within a second;
//! when etcd does not answer, only the kinds are offered.

use std::ffi::OsStr;
use std::time::Duration;

use clap::Parser;
use clap_complete::env::{Bash, EnvCompleter, Fish, Zsh};
use clap_complete::{ArgValueCompleter, CompletionCandidate};
use crds::Kind;

use super::Cli;

/// The environment variable the registration sets when it calls `nomarch` back (its own name,
/// so a `COMPLETE` someone set for another tool does not turn nomarch into a completer).
pub const VARIABLE: &str = "NOMARCH_COMPLETE";

/// How long completing may wait for etcd.
const ETCD_PATIENCE: Duration = Duration::from_secs(1);

/// The registration script for a shell.
pub fn registration(shell: clap_complete::Shell) -> Result<String, super::CliError> {
    let completer: &dyn EnvCompleter = match shell {
        clap_complete::Shell::Bash => &Bash,
        clap_complete::Shell::Zsh => &Zsh,
        clap_complete::Shell::Fish => &Fish,
        other => {
            return Err(super::CliError::Usage(format!(
                "completion for {other} is not offered: bash, zsh or fish"
            )))
        }
    };
    // Called back by its full path, as clap_complete's own registration does.
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.to_str().map(String::from))
        .unwrap_or_else(|| "nomarch".into());
    let mut script = Vec::new();
    completer
        .write_registration(VARIABLE, "nomarch", "nomarch", &binary, &mut script)
        .map_err(|e| super::CliError::Runtime(e.to_string()))?;
    Ok(String::from_utf8_lossy(&script).into_owned())
}

/// For the `KIND/NAME` arguments.
pub fn objects() -> ArgValueCompleter {
    ArgValueCompleter::new(complete_object)
}

fn complete_object(current: &OsStr) -> Vec<CompletionCandidate> {
    let current = current.to_string_lossy();
    let Some((kind, prefix)) = current.split_once('/') else {
        return Kind::ALL
            .iter()
            .map(|k| format!("{}/", k.as_str().to_lowercase()))
            .filter(|k| k.starts_with(current.as_ref()))
            .map(CompletionCandidate::new)
            .collect();
    };
    let Ok(kind) = super::parse_kind(kind) else {
        return Vec::new();
    };
    let names = names_in_etcd(kind).unwrap_or_default();
    names
        .into_iter()
        .filter(|name| name.starts_with(prefix))
        .map(|name| CompletionCandidate::new(format!("{}/{name}", kind.as_str().to_lowercase())))
        .collect()
}

/// The names of one kind's objects, every namespace, or `None` when etcd does not answer.
fn names_in_etcd(kind: Kind) -> Option<Vec<String>> {
    let cli = Cli::try_parse_from(["nomarch", "schema", "app"]).ok()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    runtime.block_on(async {
        tokio::time::timeout(ETCD_PATIENCE, async {
            let store = cli.store.connect().await.ok()?;
            let (objects, _) = store.list(Some(kind)).await.ok()?;
            let mut names: Vec<String> =
                objects.iter().map(|o| o.metadata().name.clone()).collect();
            names.sort();
            names.dedup();
            Some(names)
        })
        .await
        .ok()
        .flatten()
    })
}
