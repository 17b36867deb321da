//! `nomarch`: the command line and the controller process.

use clap::Parser;
use controller::cli::{run, Cli, CliError};

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(error) = run(cli).await {
        match &error {
            // An answer, not an error.
            CliError::Differs(said) => eprintln!("{said}"),
            error => eprintln!("error: {error}"),
        }
        std::process::exit(error.exit_status().code());
    }
}
