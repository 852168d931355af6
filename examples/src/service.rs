//! What every example service does the same way: find the broker
//! ([`BrokerArgs`]), log to stderr ([`init_logging`]), and run until
//! Ctrl-C or SIGTERM ([`shutdown_signal`]; in a container the service is
//! PID 1, which gets no default SIGTERM handling).

use std::io::IsTerminal;

use clap::Args;
use herald_client::{Client, Error};
use tracing_subscriber::EnvFilter;

use crate::DEFAULT_URL;

/// The command-line and environment settings every service shares.
#[derive(Debug, Clone, Args)]
pub struct BrokerArgs {
    /// Broker URL: a base URL (`/v1/ws` is appended) or the full
    /// endpoint.
    #[arg(long, env = "HERALD_URL", default_value = DEFAULT_URL)]
    pub url: String,
}

impl BrokerArgs {
    /// Connects to the broker, naming the client `service` (shown in the
    /// broker's logs). The client reconnects by itself afterwards.
    pub async fn connect(&self, service: &str) -> Result<Client, Error> {
        let client = Client::builder(&self.url).name(service).connect().await?;
        tracing::info!(url = %self.url, service, "connected");
        Ok(client)
    }
}

/// Logs to stderr at `info`, or as `RUST_LOG` says, keeping stdout for
/// [`Line`](crate::Line)s. Colours only on a terminal.
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; Ctrl-C only");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
