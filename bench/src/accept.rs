//! The accept loop of the relays built into herald-bench (floor and
//! socketioxide): one task per connection, with a short back-off when
//! accepting fails (out of file descriptors, ...).

use std::future::Future;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// How long to wait before accepting again after a failed accept.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// Runs `serve` for every connection `listener` accepts (with TCP_NODELAY
/// set), each on its own task, until the process is stopped.
pub async fn serve_each<F, Fut>(listener: TcpListener, serve: F)
where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve(stream));
            }
            Err(_) => tokio::time::sleep(ACCEPT_BACKOFF).await,
        }
    }
}
