//! The `herald` command-line tool: `sub`, `pub`, `request`, `reply`,
//! `bench` and `admin` against a Herald broker, built on the `herald-client` SDK (and,
//! for `bench`, on `herald-loadgen`).
//!
//! The binary (`src/main.rs`) only parses the command line, runs
//! [`run`] and turns a [`CliError`] into one line on stderr and an exit
//! code ([`error::exit`]). Everything else lives here, so it can be tested:
//!
//! - [`args`]: the clap command line ([`Cli`], [`Command`]);
//! - [`convert`]: payloads between JSON and MessagePack;
//! - [`output`]: line-by-line stdout, and the JSON shape of an event;
//! - [`session`]: the SDK client a command runs on (fail fast, no
//!   reconnection);
//! - [`commands`]: one module per subcommand;
//! - [`error`]: [`CliError`] and the exit codes.

pub mod args;
pub mod commands;
pub mod convert;
pub mod error;
pub mod output;
pub mod session;

pub use args::{Cli, Command};
pub use error::CliError;

use output::Output;

/// Runs one parsed command line, printing its results on stdout.
///
/// A stdout closed by its reader (`herald sub ... | head -1`) ends the
/// command successfully.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let mut out = Output::new(std::io::stdout());
    let global = &cli.global;
    let result = match &cli.command {
        Command::Sub(args) => commands::sub::run(global, args, &mut out).await,
        Command::Pub(args) => commands::publish::run(global, args, &mut out).await,
        Command::Request(args) => commands::request::run(global, args, &mut out).await,
        Command::Reply(args) => commands::reply::run(global, args).await,
        Command::Bench(args) => herald_loadgen::run_bench(&global.url, (**args).clone())
            .await
            .map_err(CliError::Bench),
        Command::Admin(args) => commands::admin::run(global, args, &mut out).await,
    };
    match result {
        Err(error) if error.is_stdout_closed() => Ok(()),
        other => other,
    }
}
