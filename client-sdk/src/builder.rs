//! [`ClientBuilder`]: the client's settings, and the first connection.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::backoff::ReconnectPolicy;
use crate::client::{Client, Config, ConnectionState, Shared};
use crate::connection;
use crate::error::Error;
use crate::lock;
use crate::tls::TlsOptions;
use crate::token::{Credentials, boxed_provider};

/// Default capacity of the offline buffer.
pub const DEFAULT_OFFLINE_BUFFER: usize = 1024;
/// Default capacity of each handler's queue.
pub const DEFAULT_HANDLER_QUEUE: usize = 1024;
/// Default bound on one connection attempt.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Configures and connects a [`Client`]; made by [`Client::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until .connect() is awaited"]
pub struct ClientBuilder {
    urls: Vec<String>,
    name: String,
    reconnect: ReconnectPolicy,
    offline_buffer: usize,
    handler_queue: usize,
    connect_timeout: Duration,
    credentials: Credentials,
    tls: TlsOptions,
}

impl ClientBuilder {
    /// A builder for the broker at `url` (base or full endpoint URL).
    pub fn new(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            urls: vec![url.into()],
            name: format!("herald-client-rs/{}", env!("CARGO_PKG_VERSION")),
            reconnect: ReconnectPolicy::default(),
            offline_buffer: DEFAULT_OFFLINE_BUFFER,
            handler_queue: DEFAULT_HANDLER_QUEUE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            credentials: Credentials::None,
            tls: TlsOptions::default(),
        }
    }

    /// The client name sent in `hello` (shown in broker logs). Defaults to
    /// `herald-client-rs/VERSION`.
    pub fn name(mut self, name: impl Into<String>) -> ClientBuilder {
        self.name = name.into();
        self
    }

    /// More broker URLs to fail over to: tried in order after the first
    /// one; reconnection rotates through all of them.
    pub fn urls<I, S>(mut self, urls: I) -> ClientBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.urls.extend(urls.into_iter().map(Into::into));
        self
    }

    /// The reconnection back-off (default: 100 ms doubling up to 5 s, full
    /// jitter, forever); [`ReconnectPolicy::disabled`] turns it off.
    pub fn reconnect(mut self, policy: ReconnectPolicy) -> ClientBuilder {
        self.reconnect = policy;
        self
    }

    /// How many emits are kept while disconnected (default 1024); when it
    /// is full, `emit` fails with [`Error::BufferFull`]. Zero refuses every
    /// emit made while disconnected.
    pub fn offline_buffer(mut self, capacity: usize) -> ClientBuilder {
        self.offline_buffer = capacity;
        self
    }

    /// How many delivered events may wait for each handler (default 1024,
    /// at least 1). When a handler's queue is full, the client stops reading
    /// from the broker until there is room (backpressure, nothing dropped);
    /// a broker may then treat the connection as a slow consumer. While the
    /// client is not reading, answers to calls are not read either: a
    /// handler that awaits a request or subscribe of its own while its queue
    /// is full waits until that call times out.
    pub fn handler_queue(mut self, capacity: usize) -> ClientBuilder {
        self.handler_queue = capacity.max(1);
        self
    }

    /// Bound on one connection attempt (TCP connect, WebSocket upgrade,
    /// hello/welcome), default 10 s. Also bounds the wait for the broker's
    /// answer to a subscribe, unsubscribe, join, leave or `emit_acked`
    /// ([`Error::Timeout`] when it does not come).
    pub fn connect_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.connect_timeout = timeout;
        self
    }

    /// Trusts the CA certificate(s) of this PEM file for `wss://` URLs,
    /// besides the system's roots (a private CA, a test CA).
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> ClientBuilder {
        self.tls.ca_file = Some(path.into());
        self
    }

    /// Presents this certificate chain and private key (PEM files) when a
    /// `wss://` broker asks for one (mutual TLS, `tls.client_ca_file`).
    pub fn client_cert(
        mut self,
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> ClientBuilder {
        self.tls.client_cert = Some((cert.into(), key.into()));
        self
    }

    /// A token (a JWT) to present in `hello`, for a broker that checks
    /// tokens (`auth.mode = "jwt"`, PROTOCOL.md §22); brokers that do not
    /// ignore it. The same token is presented on every reconnection, so a
    /// token that expires needs [`Client::refresh_token`] before then, or
    /// use [`ClientBuilder::token_provider`] instead. Replaces a provider
    /// set earlier. The token is never logged.
    pub fn token(mut self, token: impl Into<String>) -> ClientBuilder {
        self.credentials = Credentials::Fixed(token.into());
        self
    }

    /// An async callback that gives the token to present, called:
    /// - before every connection attempt (the first and each reconnection),
    ///   so every `hello` carries a fresh token;
    /// - when the broker says the token expires soon (the `token_expiring`
    ///   notice): the client sends the new token in place (`auth`) and the
    ///   connection carries on; a failure is reported as
    ///   [`ClientEvent::RefreshFailed`](crate::ClientEvent::RefreshFailed),
    ///   and if the broker then closes the connection at expiry the client
    ///   reconnects with a new token from the provider;
    /// - by [`Client::reauthenticate`].
    ///
    /// Each call is bounded by the connect timeout. When a connection
    /// attempt is refused `unauthorized`, the client asks the provider
    /// again (with back-off), up to 3 attempts in a row; then the refusal
    /// is final ([`Error::Unauthorized`] from `connect`, or
    /// [`ClientEvent::GaveUp`](crate::ClientEvent::GaveUp) when
    /// reconnecting). The provider's error becomes
    /// [`Error::TokenProvider`] with its text. Replaces a token set earlier.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), herald_client::Error> {
    /// async fn mint() -> Result<String, std::io::Error> {
    ///     // e.g. ask your identity service for a short-lived JWT
    ///     Ok("eyJhbGciOi...".to_owned())
    /// }
    /// let client = herald_client::Client::builder("ws://127.0.0.1:7400")
    ///     .token_provider(mint)
    ///     .connect()
    ///     .await?;
    /// println!("connected as {:?}", client.user());
    /// # Ok(()) }
    /// ```
    pub fn token_provider<F, Fut, E>(mut self, provider: F) -> ClientBuilder
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, E>> + Send + 'static,
        E: std::fmt::Display + 'static,
    {
        self.credentials = Credentials::Provider(boxed_provider(provider));
        self
    }

    /// Connects: one attempt per URL, in order, each bounded by the
    /// connect timeout. Fails with [`Error::InvalidUrl`] for a malformed
    /// URL, with the broker's refusal when it refuses the handshake for a
    /// reason retrying will not fix (e.g. [`Error::Handshake`] with status
    /// 400, [`Error::Unauthorized`] for a refused token), with
    /// [`Error::TokenProvider`] when the token provider fails, or else
    /// with [`Error::Connect`] when no broker was reachable.
    pub async fn connect(self) -> Result<Client, Error> {
        let urls = self
            .urls
            .iter()
            .map(|u| crate::url::normalize(u))
            .collect::<Result<Vec<_>, _>>()?;
        let tls = if urls.iter().any(|u| u.scheme() == "wss") {
            Some(self.tls.client_config()?)
        } else {
            None
        };
        let config = Config {
            tls,
            urls,
            name: self.name,
            reconnect: self.reconnect,
            offline_buffer: self.offline_buffer,
            handler_queue: self.handler_queue,
            connect_timeout: self.connect_timeout,
        };
        let shared = Arc::new(Shared::new(config, self.credentials));
        let established = match connection::connect_first(&shared).await {
            Ok(established) => established,
            Err(error) => {
                shared.set_state(ConnectionState::Closed);
                return Err(error);
            }
        };
        let live = match connection::activate(&shared, established).await {
            Ok(live) => live,
            Err(error) => {
                shared.set_state(ConnectionState::Closed);
                return Err(error);
            }
        };
        let task = tokio::spawn(connection::run(Arc::clone(&shared), live));
        *lock(&shared.task) = Some(task);
        Ok(Client::from_shared(shared))
    }
}
