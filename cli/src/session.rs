//! [`Session`]: the SDK client a command runs on, connected the way a
//! command-line tool needs.
//!
//! One connection attempt, bounded by `--connect-timeout`, presenting
//! `--token` / `HERALD_TOKEN` when given, and no reconnection: an unreachable broker fails the command at once, and a
//! connection lost later ends it (the SDK then closes every handler queue,
//! which is how a command notices). What the SDK reports outside any call
//! goes to stderr as a warning, except the lost connection, whose reason is
//! kept for the command's error.

use std::sync::{Arc, Mutex, PoisonError};

use herald_client::{Client, ClientEvent, Error as ClientError, Namespace, ReconnectPolicy};

use crate::args::GlobalArgs;
use crate::error::CliError;

/// Why the connection was lost: the reason the SDK gave, and the typed
/// error when the broker closed it for its token.
#[derive(Debug, Default)]
struct Lost {
    reason: Option<String>,
    token: Option<ClientError>,
}

/// A connected client, and why its connection was lost (if it was).
#[derive(Debug)]
pub struct Session {
    client: Client,
    lost: Arc<Mutex<Lost>>,
}

impl Session {
    /// Connects to the broker named by the global options.
    pub async fn connect(global: &GlobalArgs) -> Result<Session, CliError> {
        let mut builder = Client::builder(global.url.as_str())
            .name(format!("herald-cli/{}", env!("CARGO_PKG_VERSION")))
            .reconnect(ReconnectPolicy::disabled())
            .connect_timeout(*global.connect_timeout);
        if let Some(token) = &global.token {
            builder = builder.token(token.expose());
        }
        if let Some(ca_file) = &global.ca_file {
            builder = builder.ca_file(ca_file);
        }
        if let (Some(cert), Some(key)) = (&global.client_cert, &global.client_key) {
            builder = builder.client_cert(cert, key);
        }
        let client = builder.connect().await.map_err(CliError::Connect)?;
        let lost = Arc::new(Mutex::new(Lost::default()));
        let record = Arc::clone(&lost);
        client.on_error(move |event| {
            let mut lost = record.lock().unwrap_or_else(PoisonError::into_inner);
            match event {
                ClientEvent::ConnectionLost { reason } => lost.reason = Some(reason),
                // Closed for its token (expired, refused): exit code 7.
                ClientEvent::GaveUp { error, .. } => lost.token = Some(error),
                other => eprintln!("herald: warning: {other}"),
            }
        });
        Ok(Session { client, lost })
    }

    /// A handle on `namespace`.
    pub fn namespace(&self, namespace: &str) -> Namespace {
        self.client.of(namespace)
    }

    /// The error for a connection that went away while a command waited.
    pub fn connection_lost(&self) -> CliError {
        let lost = self.lost.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(error) = lost.token.clone() {
            return CliError::client("the broker closed the connection", error);
        }
        let reason = lost
            .reason
            .clone()
            .unwrap_or_else(|| "the client closed".to_owned());
        CliError::ConnectionLost { reason }
    }

    /// Closes the connection after writing what is queued (replies
    /// included). A connection already gone is not an error here.
    pub async fn close(self) {
        // `Closed` only says the client was closed already.
        let _ = self.client.close().await;
    }
}
