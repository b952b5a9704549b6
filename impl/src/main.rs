//! A thin binary: parse arguments, call the library, turn the outcome into an exit code.

use clap::Parser;
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = insync::cli::Cli::parse();
    match insync::cli::run_command(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("insync: {e:#}");
            ExitCode::from(insync::error::exit_code(&e))
        }
    }
}
