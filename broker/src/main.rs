//! `herald-broker`: the Herald broker daemon.
//!
//! Loads the layered configuration (embedded defaults < `--config FILE` <
//! `HERALD__SECTION__KEY` environment variables < flags), sets up logging,
//! serves until SIGTERM or Ctrl-C, then shuts down gracefully. An invalid
//! configuration exits with status 2 and a message naming the key. Before
//! serving, the daemon re-executes itself once with
//! `MIMALLOC_PURGE_DELAY=0` unless that is set (`allocator`), so memory
//! freed after a burst goes back to the OS.
//!
//! `herald-broker healthcheck` instead probes a running broker's `/healthz`
//! (by default on the configured listen address) and exits 0 when healthy,
//! 1 otherwise, with a one-line message: the Docker image's `HEALTHCHECK`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use herald_broker::{Broker, healthcheck};
use herald_config::{LogFormat, Settings, Sources};
use tracing_subscriber::EnvFilter;

mod allocator;

/// mimalloc instead of the system allocator: every batch a connection's
/// writer sends is one short-lived buffer of up to 64 KiB, a churn that
/// glibc's allocator answers by trimming and re-growing its heap (page
/// faults in the kernel on the hot path); mimalloc reuses the memory, and
/// gives back what is freed (`allocator`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The Herald pub/sub broker.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// TOML config file layered over the built-in defaults.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Listen address (server.listen), e.g. 0.0.0.0:7400.
    #[arg(long, global = true, value_name = "ADDR")]
    listen: Option<String>,
    /// Log filter (log.level), e.g. "info" or "herald_broker=debug".
    #[arg(long, global = true, value_name = "FILTER")]
    log_level: Option<String>,
    /// Log format (log.format): pretty or json.
    #[arg(long, global = true, value_name = "FORMAT")]
    log_format: Option<String>,
    /// Set any key, e.g. --set limits.max_payload_bytes=65536 (repeatable).
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Probe a running broker's /healthz: exit 0 when it answers 2xx, 1
    /// otherwise (for container health checks).
    Healthcheck {
        /// URL to GET [default: /healthz on the configured server.listen,
        /// 0.0.0.0 and [::] probed on loopback].
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// Give up after this long, e.g. "500ms" or "3s".
        #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
}

impl Args {
    fn overrides(&self) -> Result<Vec<(String, String)>, String> {
        let mut overrides = Vec::new();
        let flags = [
            ("server.listen", &self.listen),
            ("log.level", &self.log_level),
            ("log.format", &self.log_format),
        ];
        for (key, value) in flags {
            if let Some(value) = value {
                overrides.push((key.to_owned(), value.clone()));
            }
        }
        for pair in &self.set {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("--set {pair:?}: expected KEY=VALUE"))?;
            overrides.push((key.trim().to_owned(), value.to_owned()));
        }
        Ok(overrides)
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::Healthcheck { url, timeout }) = &args.command {
        return health_check(&args, url.as_deref(), *timeout);
    }
    let settings = match load(&args) {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("herald-broker: {message}");
            return ExitCode::from(2);
        }
    };
    if args.print_config {
        print!("{}", settings.to_toml());
        return ExitCode::SUCCESS;
    }
    // Before any thread starts; may replace this process with itself.
    let purge_delay = allocator::purge_when_freed();
    init_logging(&settings);
    purge_delay.log();
    match run(settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("herald-broker: {error:#}");
            // Unusable TLS files are configuration errors, like a bad key.
            match error.downcast_ref::<herald_broker::Error>() {
                Some(herald_broker::Error::Tls(_)) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

fn load(args: &Args) -> Result<Settings, String> {
    let overrides = args.overrides()?;
    let sources = Sources {
        file: args.config.as_deref(),
        env: None,
        overrides,
    };
    Settings::load(&sources).map_err(|e| e.to_string())
}

/// `herald-broker healthcheck`: exit 0 and `healthy: …` on stdout, or
/// exit 1 and `unhealthy: …` on stderr (1 also for a bad configuration:
/// container runtimes reserve other codes).
fn health_check(args: &Args, url: Option<&str>, timeout: Duration) -> ExitCode {
    let url = match url {
        Some(url) => url.to_owned(),
        None => match load(args) {
            Ok(settings) => healthcheck::default_url(settings.server.listen),
            Err(message) => {
                eprintln!("unhealthy: {message}");
                return ExitCode::FAILURE;
            }
        },
    };
    match probe(&url, timeout) {
        Ok(status) => {
            println!("healthy: {url} answered {status}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("unhealthy: {message}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn probe(
    url: &str,
    timeout: Duration,
) -> Result<http::StatusCode, healthcheck::HealthcheckError> {
    healthcheck::probe(url, timeout).await
}

fn init_logging(settings: &Settings) {
    // RUST_LOG, when set, wins over log.level.
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match settings.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
}

#[tokio::main]
async fn run(settings: Settings) -> anyhow::Result<()> {
    let broker = Broker::start(settings)
        .await
        .context("starting the broker")?;
    shutdown_signal().await;
    broker.shutdown().await;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM; Ctrl-C only");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
