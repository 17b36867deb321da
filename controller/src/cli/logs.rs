//! `nomarch logs KIND/NAME`: prints what [`crate::ops::logs`] reads and follows. Lines of
//! several instances are prefixed with the instance, as `stern` does, coloured on a terminal.

use std::io::IsTerminal;

use crds::ObjectRef;

use super::{connect, say, CliError, StoreArgs};
use crate::ops::logs::{self, LogsArgs, LogsError};

/// How lines are printed: with the instance in front or not, coloured or not.
struct Printer {
    prefix: bool,
    colour: bool,
}

impl Printer {
    fn line(&self, instance: &str, line: &str) {
        if !self.prefix {
            say!("{line}");
            return;
        }
        let name = logs::short(instance);
        if self.colour {
            // One of six colours per instance, stable across runs.
            let code = 31 + instance.bytes().map(u32::from).sum::<u32>() % 6;
            say!("\x1b[{code}m{name}\x1b[0m {line}");
        } else {
            say!("{name} {line}");
        }
    }
}

fn cli_error(e: LogsError) -> CliError {
    match e {
        LogsError::Usage(why) => CliError::Usage(why),
        LogsError::NotFound(why) => CliError::NotFound(why),
        LogsError::Nomad(e) => CliError::Runtime(format!("Nomad: {e}")),
    }
}

pub async fn run(
    store_args: &StoreArgs,
    object: &ObjectRef,
    args: &LogsArgs,
    nomad_args: &connect::NomadArgs,
) -> Result<(), CliError> {
    let store = store_args.connect().await?;
    let resource = store.get_existing(object).await?;
    // The task is checked before Nomad is asked (a NomadJob needs `--task`).
    if args.task.is_none() {
        logs::default_task(object.kind).map_err(cli_error)?;
    }
    let nomad = nomad_args.client(|_| {})?;
    let read = logs::read(&nomad, &resource, args)
        .await
        .map_err(cli_error)?;
    let printer = Printer {
        prefix: read.several,
        colour: std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    };
    for (instance, line) in &read.lines {
        printer.line(instance, line);
    }
    if !args.follow {
        return Ok(());
    }
    let (sink, mut lines) = tokio::sync::mpsc::channel(256);
    let follow = logs::follow(&nomad, &resource, args, read.offsets, sink);
    tokio::pin!(follow);
    loop {
        tokio::select! {
            done = &mut follow => return done.map_err(cli_error),
            Some((instance, line)) = lines.recv() => printer.line(&instance, &line),
        }
    }
}
