//! A TCP relay on a fixed loopback port to a server that may move: what
//! lets a test "crash" Herald for its clients and bring it back on the
//! same address, with the conformance service connected before any
//! client gets in.
//!
//! The broker runs in the test's process, so it cannot be killed the way
//! the reference server is; and a graceful shutdown is not a crash (the
//! clients are told, and python-socketio does not reconnect after an
//! Engine.IO close). Clients connect to the relay instead: [`Relay::cut`]
//! drops every relayed connection at once (the clients see their
//! connections die, as when a server process dies) and refuses new ones
//! (accepted and closed at once, so clients keep retrying) until
//! [`Relay::point`] names the server's new address.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::local;

/// The relay; dropping it ends every relayed connection.
#[derive(Debug)]
pub(crate) struct Relay {
    port: u16,
    upstream: watch::Sender<Option<SocketAddr>>,
    accept: JoinHandle<()>,
}

impl Relay {
    /// Listens on a free loopback port, relaying nowhere yet.
    pub(crate) async fn start() -> Relay {
        let listener = match TcpListener::bind(local(0)).await {
            Ok(listener) => listener,
            Err(error) => panic!("the relay cannot listen on loopback: {error}"),
        };
        let port = match listener.local_addr() {
            Ok(addr) => addr.port(),
            Err(error) => panic!("the relay's address is unknown: {error}"),
        };
        let (upstream, rx) = watch::channel(None);
        let accept = tokio::spawn(accept_loop(listener, rx));
        Relay {
            port,
            upstream,
            accept,
        }
    }

    /// The port clients connect to.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Relays new connections to `server`.
    pub(crate) fn point(&self, server: SocketAddr) {
        self.upstream.send_replace(Some(server));
    }

    /// Drops every relayed connection and refuses new ones until the next
    /// [`Relay::point`].
    pub(crate) fn cut(&self) {
        self.upstream.send_replace(None);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, upstream: watch::Receiver<Option<SocketAddr>>) {
    while let Ok((client, _)) = listener.accept().await {
        let mut upstream = upstream.clone();
        // Connections made while the server is down are closed at once.
        let Some(server) = *upstream.borrow_and_update() else {
            continue;
        };
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(server).await else {
                return;
            };
            let (mut client, mut server) = (client, server);
            // Small Socket.IO packets should not wait for Nagle's algorithm.
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                // Any change (a cut, a new server) ends the connection; so
                // does the relay's end (the sender dropped).
                _ = upstream.changed() => {}
            }
        });
    }
}
