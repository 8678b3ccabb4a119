//! One module per subcommand.

use std::process::ExitCode;

use clap::Subcommand;

mod inspect;
mod verify;

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    Inspect(inspect::Args),
    Verify(verify::Args),
}

/// Runs a subcommand.
pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Inspect(a) => inspect::run(&a),
        Command::Verify(a) => verify::run(&a),
    }
}
