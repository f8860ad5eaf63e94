//! `idp`: runs one service per sub-command, all of them in one process
//! (`idp dev`), or the migrations (`idp migrate`).
//!
//! Errors at start-up are printed as one line naming the setting, and the
//! process exits non-zero: 2 for configuration, 1 for anything else.

mod cli;
mod deps;
mod dev;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("idp: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(cli::Failure::Config(line)) => {
            eprintln!("idp: {line}");
            ExitCode::from(2)
        }
        Err(cli::Failure::Run(line)) => {
            eprintln!("idp: {line}");
            ExitCode::FAILURE
        }
    }
}
