//! A loopback TCP proxy that a test can cut: every connection through it is
//! forwarded to one target (unless [`CutProxy::block`]ed), and
//! [`CutProxy::cut`] drops both sides of every
//! connection open now, mid-stream, with a TCP reset (no WebSocket close,
//! no FIN): what a client sees when a network path dies. Bytes in flight
//! inside the proxy are lost with them. New connections are forwarded as
//! before. [`CutProxy::hold_replies`] stops forwarding what the target
//! sends on the connections open now (dropping it), so a test can lose a
//! broker's answer to something the broker did receive.
//! [`CutProxy::retarget`] sends new connections to another broker, as a
//! load balancer does when a node fails its health check.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One forwarded connection: its two sockets' tasks, and its hold switch.
struct Link {
    tasks: Vec<JoinHandle<()>>,
    hold: Arc<AtomicBool>,
}

/// The proxy; dropping it stops accepting (open links end with their
/// tasks when the test's runtime ends).
pub struct CutProxy {
    addr: SocketAddr,
    target: Arc<Mutex<SocketAddr>>,
    links: Arc<Mutex<Vec<Link>>>,
    /// While set, new connections are dropped at once (the path is down).
    blocked: Arc<AtomicBool>,
    accept: JoinHandle<()>,
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl CutProxy {
    /// A proxy on `127.0.0.1:0` to `target`.
    pub async fn start(target: SocketAddr) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("the proxy could not bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("the proxy has no address: {e}"));
        let links: Arc<Mutex<Vec<Link>>> = Arc::default();
        let accepted = links.clone();
        let target = Arc::new(Mutex::new(target));
        let current = target.clone();
        let blocked = Arc::new(AtomicBool::new(false));
        let refusing = blocked.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if refusing.load(Ordering::SeqCst) {
                    continue;
                }
                let target = *lock(&current);
                let Ok(server) = TcpStream::connect(target).await else {
                    continue;
                };
                for socket in [&client, &server] {
                    // Dropped sockets send a reset. (Deprecated because a
                    // non-zero linger blocks on drop; a zero one does not.)
                    #[allow(deprecated)]
                    let _ = socket.set_linger(Some(Duration::ZERO));
                    let _ = socket.set_nodelay(true);
                }
                let hold = Arc::new(AtomicBool::new(false));
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                let up = tokio::spawn(pump(client_read, server_write, None));
                let down = tokio::spawn(pump(server_read, client_write, Some(hold.clone())));
                lock(&accepted).push(Link {
                    tasks: vec![up, down],
                    hold,
                });
            }
        });
        CutProxy {
            addr,
            target,
            links,
            blocked,
            accept,
        }
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A `ws://` URL of the broker's `/v1/ws` through the proxy.
    pub fn url(&self) -> String {
        format!("ws://{}/v1/ws", self.addr)
    }

    /// Forwards the connections accepted from now on to `target`.
    pub fn retarget(&self, target: SocketAddr) {
        *lock(&self.target) = target;
    }

    /// Drops every open connection at once (both sides, with a reset).
    pub fn cut(&self) {
        for link in lock(&self.links).drain(..) {
            for task in link.tasks {
                task.abort();
            }
        }
    }

    /// Drops new connections at once (`true`) until called with `false`:
    /// a path that stays down while the test does something.
    pub fn block(&self, blocked: bool) {
        self.blocked.store(blocked, Ordering::SeqCst);
    }

    /// From now on, what the target sends on the open connections is
    /// dropped instead of forwarded.
    pub fn hold_replies(&self) {
        for link in lock(&self.links).iter() {
            link.hold.store(true, Ordering::SeqCst);
        }
    }
}

/// Copies `from` to `to` until either ends; while `hold` is set, what is
/// read is dropped.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    hold: Option<Arc<AtomicBool>>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if hold.as_ref().is_some_and(|h| h.load(Ordering::SeqCst)) {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
