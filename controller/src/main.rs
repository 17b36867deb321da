//! `nomarch`: the command line and the controller process.

use clap::Parser;
use controller::cli::{run, Cli};

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(error) = run(cli).await {
        eprintln!("error: {error}");
        std::process::exit(error.exit_status() as i32);
    }
}
