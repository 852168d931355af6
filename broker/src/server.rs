//! Starting and stopping a broker: the connection limit under the
//! open-files limit, bind, the accept loop (back-off on accept errors such
//! as running out of file descriptors), one HTTP/1 connection task per
//! socket (after the TLS handshake when `[tls]` is on, bounded by
//! `server.handshake_timeout`; its bytes watched for requests framed
//! twice, `framing`), and graceful shutdown. With `server.operator_listen`,
//! a second listener serves the operator endpoints (`http::handle_operator`)
//! the same way (TLS included). With `[rate_limits]` per-IP limits on, each
//! accepted connection is first checked against its address's connection
//! rate (`limits`): over it, its requests are answered 429, or, in a flood,
//! it is closed unread.
//!
//! Shutdown: readiness goes false and new upgrades are refused; every
//! session flushes its queue and closes with 1001 (going away) within
//! `server.shutdown_grace`; then the listener closes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use herald_config::{ClusterBackend, Settings};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::backplane::{Backplane, Inbound};
use crate::cluster::Cluster;
use crate::fdlimit::{ConnectionLimit, OpenFiles};
use crate::framing::{Verdicts, Watched};
use crate::limits::operator::OperatorToken;
use crate::limits::{Accept, Refused};
use crate::state::{Shared, node_name};
use crate::stats::{Stats, StatsSnapshot};
use crate::tls::{Tls, TlsError};

/// What can stop a broker from starting.
#[derive(Debug, Error)]
pub enum Error {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr} (server.listen): {source}")]
    Bind {
        /// The address from `server.listen`.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The TLS certificate, key or client CA could not be loaded (`[tls]`).
    #[error("{0}")]
    Tls(#[from] TlsError),
    /// The cluster side could not be set up (`[cluster]`).
    #[error("{message}")]
    Cluster {
        /// What is wrong, naming the key.
        message: String,
    },
    /// The operator listen address could not be bound.
    #[error("cannot listen on {addr} (server.operator_listen): {source}")]
    OperatorBind {
        /// The address from `server.operator_listen`.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The admin console's credentials could not be loaded
    /// (`admin.token_file`, `admin.password_hash`).
    #[error("{message}")]
    Admin {
        /// What is wrong, naming the key.
        message: String,
    },
    /// The operator token could not be loaded (`server.operator_token_file`).
    #[error("{message}")]
    OperatorToken {
        /// What is wrong, naming the key.
        message: String,
    },
    /// The `[auth]` keys could not be loaded.
    #[error("{message}")]
    Auth {
        /// What is wrong, naming the key.
        message: String,
    },
}

/// Entry point: `Broker::start(settings)`.
#[derive(Debug)]
pub struct Broker;

/// A running broker. Dropping it does not stop the broker; call
/// [`BrokerHandle::shutdown`].
#[derive(Debug)]
pub struct BrokerHandle {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    stop_accepting: CancellationToken,
    accept_loop: JoinHandle<()>,
    /// The operator listener's address and accept loop, when
    /// `server.operator_listen` is set.
    operator: Option<(SocketAddr, JoinHandle<()>)>,
}

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// `server.listen`: everything.
    Main,
    /// `server.operator_listen`: the operator endpoints only.
    Operator,
}

/// What other nodes send, for the dispatcher.
type Inbox = mpsc::Receiver<Inbound>;

/// A started backplane and the inbox of what it receives.
type Started = (Arc<dyn Backplane>, Inbox);

const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

impl Broker {
    /// Binds `settings.server.listen` and starts serving.
    pub async fn start(settings: Settings) -> Result<BrokerHandle, Error> {
        let addr = settings.server.listen;
        let tls = Tls::load(&settings.tls)?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| Error::Bind { addr, source })?;
        // Session ids are `<node>-<n>`: in a cluster the node part is the
        // cluster's node id, so that any node can tell which node a
        // session-id room lives on.
        let node = match settings.cluster.backend {
            ClusterBackend::Redis if !settings.cluster.node_id.is_empty() => {
                settings.cluster.node_id.clone()
            }
            _ => node_name(),
        };
        let auth =
            crate::auth::Authenticator::from_settings(&settings.auth).map_err(|e| Error::Auth {
                message: e.to_string(),
            })?;
        let operator_token = OperatorToken::load(&settings.server)
            .map_err(|message| Error::OperatorToken { message })?;
        let admin = crate::admin::Credentials::load(&settings.admin)
            .map_err(|message| Error::Admin { message })?;
        let operator_listener = match settings.server.operator_addr() {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .and_then(|l| Ok((l.local_addr()?, l)))
                    .map_err(|source| Error::OperatorBind { addr, source })?,
            ),
            None => None,
        };
        let connection_limit = fit_connection_limit(settings.server.max_connections);
        let (backplane, inbox) = start_backplane(&settings, &node)?.unzip();
        let mut shared = Shared::new(settings, node, backplane, connection_limit);
        shared.limits.operator_token = operator_token;
        shared.auth = auth;
        shared.admin = admin;
        let shared = Arc::new(shared);
        if let Some(inbox) = inbox {
            tokio::spawn(crate::dispatch::run(shared.clone(), inbox));
        }
        let stop_accepting = CancellationToken::new();
        let operator = operator_listener.map(|(addr, listener)| {
            info!(%addr, "operator endpoints listening");
            let stop = stop_accepting.clone();
            let task = tokio::spawn(accept_loop(
                listener,
                shared.clone(),
                tls.clone(),
                stop,
                Side::Operator,
            ));
            (addr, task)
        });
        if let Some(tls) = &tls {
            tls.clone()
                .spawn_reloader(shared.stats.clone(), stop_accepting.clone());
        }
        let accept_loop = tokio::spawn(accept_loop(
            listener,
            shared.clone(),
            tls.clone(),
            stop_accepting.clone(),
            Side::Main,
        ));
        info!(
            %local_addr,
            tls = tls.is_some(),
            node = %shared.node,
            max_sessions = shared.connection_limit.sessions,
            "herald broker listening"
        );
        Ok(BrokerHandle {
            shared,
            local_addr,
            stop_accepting,
            accept_loop,
            operator,
        })
    }
}

impl BrokerHandle {
    /// The address the broker listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address of the operator listener (`server.operator_listen`),
    /// when there is one.
    pub fn operator_addr(&self) -> Option<SocketAddr> {
        self.operator.as_ref().map(|(addr, _)| *addr)
    }

    /// The broker's counters now.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// Rooms with at least one member now.
    pub fn rooms(&self) -> usize {
        self.shared.router.room_count()
    }

    /// Engine.IO long-polling sessions open now (upgraded ones included).
    pub fn engineio_sessions(&self) -> usize {
        self.shared.engineio.len()
    }

    /// Engine.IO long-polling GETs waiting for packets now.
    pub fn engineio_polls_waiting(&self) -> usize {
        self.shared.engineio.polls_waiting()
    }

    /// Requests in flight now.
    pub fn pending_requests(&self) -> usize {
        self.shared.router.pending_requests()
    }

    /// Whether `/readyz` answers 200: not shutting down, and when
    /// clustered, connected to the backplane.
    pub fn is_ready(&self) -> bool {
        self.shared.is_ready() && !self.shared.cluster_degraded()
    }

    /// Gracefully stops: refuse new sessions, drain and close every session
    /// with 1001 within `server.shutdown_grace`, then stop listening.
    /// Returns true when every connection finished within the grace.
    pub async fn shutdown(self) -> bool {
        let grace = self.shared.settings.server.shutdown_grace;
        info!(?grace, "shutting down");
        self.shared.ready.store(false, Relaxed);
        self.shared.shutdown.cancel();
        self.shared.tasks.close();
        // Each session bounds its own close by the grace; allow a second
        // more for the sockets to finish.
        let drained =
            tokio::time::timeout(grace + Duration::from_secs(1), self.shared.tasks.wait())
                .await
                .is_ok();
        if !drained {
            warn!("some connections did not close within the shutdown grace");
        }
        if let Some(backplane) = &self.shared.backplane {
            backplane.leave().await;
        }
        self.stop_accepting.cancel();
        let _ = self.accept_loop.await;
        if let Some((_, operator_loop)) = self.operator {
            let _ = operator_loop.await;
        }
        info!("shut down");
        drained
    }
}

/// The backplane of `[cluster]` for node `node`, started, and the inbox its
/// messages from other nodes arrive in; none on one node. The only place
/// that names a backend.
fn start_backplane(settings: &Settings, node: &str) -> Result<Option<Started>, Error> {
    match settings.cluster.backend {
        ClusterBackend::None => Ok(None),
        ClusterBackend::Redis => {
            let (sender, inbox) = mpsc::channel(settings.cluster.queue_capacity);
            let cluster = Cluster::start(&settings.cluster, &settings.history, node, sender)
                .map_err(|e| Error::Cluster {
                    message: e.to_string(),
                })?;
            info!(node, "clustered over redis");
            Ok(Some((cluster, inbox)))
        }
    }
}

/// The connection limit for `server.max_connections = configured` under
/// the open-files limit, raised first; both steps logged.
fn fit_connection_limit(configured: usize) -> ConnectionLimit {
    let open_files = OpenFiles::raise();
    if open_files.raised_from.is_some() {
        info!("raised the soft {open_files} to the hard limit");
    }
    let limit = ConnectionLimit::fit(configured, open_files);
    if limit.lowered_by.is_some() {
        warn!(
            "server.max_connections = {configured} does not fit the {open_files}: \
             admitting at most {} sessions, to keep {} descriptors for the listener, \
             HTTP requests (/healthz, 503 refusals) and the rest; raise the hard \
             limit (ulimit -Hn, systemd LimitNOFILE=, docker --ulimit nofile=) or \
             lower server.max_connections",
            limit.sessions,
            open_files.limit.map_or(0, crate::fdlimit::reserve),
        );
    }
    limit
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<Arc<Tls>>,
    stop: CancellationToken,
    side: Side,
) {
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (socket, peer) = match accepted {
            Ok(accepted) => {
                backoff = Duration::from_millis(5);
                accepted
            }
            Err(error) => {
                warn!(%error, ?backoff, "accept failed; backing off");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                continue;
            }
        };
        let refused = match side {
            Side::Main => match shared.limits.accept(peer.ip(), &shared.stats) {
                Accept::Serve => None,
                Accept::Refuse(refused) => Some(refused),
                // Dropped unread: a flood that ignored its 429s.
                Accept::Drop => continue,
            },
            Side::Operator => None,
        };
        let _ = socket.set_nodelay(true);
        let shared = shared.clone();
        let stop = stop.clone();
        let accepted = Accepted {
            peer,
            refused,
            side,
        };
        match &tls {
            None => tokio::spawn(serve(socket, accepted, shared, stop)),
            Some(tls) => tokio::spawn(serve_tls(socket, tls.clone(), accepted, shared, stop)),
        };
    }
}

/// An accepted connection: who, on which listener, and whether its
/// address is over its connection rate (then every request is answered
/// 429).
#[derive(Debug, Clone, Copy)]
struct Accepted {
    peer: SocketAddr,
    refused: Option<Refused>,
    side: Side,
}

/// The TLS handshake within `server.handshake_timeout`, then [`serve`];
/// a failed handshake is counted and logged at debug (a port scan, a
/// plain-HTTP client or an untrusted client certificate is no event).
async fn serve_tls(
    socket: TcpStream,
    tls: Arc<Tls>,
    accepted: Accepted,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let peer = accepted.peer;
    let timeout = shared.settings.server.handshake_timeout;
    let handshake = tokio::select! {
        () = stop.cancelled() => return,
        handshake = tokio::time::timeout(timeout, crate::tls::stream::accept(socket, tls.config())) => handshake,
    };
    match handshake {
        Ok(Ok(stream)) => serve(stream, accepted, shared, stop).await,
        Ok(Err(error)) => {
            Stats::add(&shared.stats.tls_handshakes_failed, 1);
            debug!(%peer, %error, "TLS handshake failed");
        }
        Err(_) => {
            Stats::add(&shared.stats.tls_handshakes_failed, 1);
            debug!(%peer, ?timeout, "TLS handshake timed out");
        }
    }
}

/// One connection's HTTP/1 (and its upgrade), until it ends or shutdown.
async fn serve<S>(stream: S, accepted: Accepted, shared: Arc<Shared>, stop: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Accepted {
        peer,
        refused,
        side,
    } = accepted;
    let handshake_timeout = shared.settings.server.handshake_timeout;
    let verdicts = Arc::new(Verdicts::default());
    let stream = Watched::new(stream, verdicts.clone());
    let service = service_fn(move |req| {
        let framed_twice = verdicts.next_framed_twice();
        let shared = shared.clone();
        async move {
            match (refused, side) {
                (Some(refused), _) => Ok(shared.limits.refused_connection(refused)),
                (None, Side::Main) => crate::http::handle(req, shared, peer, framed_twice).await,
                (None, Side::Operator) => crate::http::handle_operator(req, shared).await,
            }
        }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(handshake_timeout)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        () = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}
