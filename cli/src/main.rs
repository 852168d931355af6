//! The `herald` binary: parses the command line, runs it, and maps a
//! failure to one line on stderr and an exit code (see `herald --help`).

use std::process::ExitCode;

use clap::Parser;
use herald_cli::Cli;
use herald_cli::error::exit;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // Usage errors and --help/--version exit here (code 2 / 0).
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("herald: error: could not start the async runtime: {error}");
            return ExitCode::from(exit::ERROR);
        }
    };
    match runtime.block_on(herald_cli::run(cli)) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(error) => {
            let message = error.to_string();
            let one_line: Vec<&str> = message.lines().map(str::trim).collect();
            eprintln!("herald: error: {}", one_line.join(" "));
            ExitCode::from(error.exit_code())
        }
    }
}

/// Logs go to stderr, filtered by `RUST_LOG` (default: errors only; the
/// SDK's warnings already reach stderr as `herald: warning: ...` lines).
fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
