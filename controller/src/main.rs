//! `nomarch`: the command line and the controller process.

use clap::{CommandFactory, Parser};
use controller::cli::{run, Cli, CliError, COMPLETE_VARIABLE};

fn main() {
    // A shell asking for completions (the hook `nomarch completion SHELL` prints) is answered
    // here, before anything else runs, and the process ends.
    clap_complete::CompleteEnv::with_factory(Cli::command)
        .var(COMPLETE_VARIABLE)
        .complete();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts");
    if let Err(error) = runtime.block_on(run(cli)) {
        match &error {
            // An answer, not an error.
            CliError::Differs(said) => eprintln!("{said}"),
            error => eprintln!("error: {error}"),
        }
        std::process::exit(error.exit_status().code());
    }
}
