//! The socketioxide relay (`herald-bench serve-socketio --listen ADDR`): the
//! Rust Socket.IO server as a pub/sub relay, served by hyper.
//!
//! - event `sub` with a room name: the socket joins the room and the event
//!   is acknowledged (the client's readiness confirmation);
//! - event `pub` with a room name and a payload: the payload is broadcast
//!   to the room as event `msg`.
//!
//! Settings differing from socketioxide's defaults: a per-socket buffer of
//! 4,096 packets (the default 128 would drop under any burst; 4,096 matches
//! Herald's default outbound queue), and heartbeats every 10 minutes, so
//! clients that do not read while measuring (publishers, idle connections)
//! are not dropped for a missed ping.

use std::convert::Infallible;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, Data, SocketRef};
use socketioxide::handler::ConnectHandler;
use tokio::net::TcpListener;

/// Packets a socket may have waiting to be written.
pub const BUFFER_PACKETS: usize = 4096;
/// The heartbeat interval (and timeout) of the relay.
pub const HEARTBEAT: Duration = Duration::from_secs(600);

/// Registers the relay's two events on a connecting socket.
async fn register_handlers(socket: SocketRef) -> Result<(), Infallible> {
    socket.on(
        "sub",
        async |socket: SocketRef, Data(room): Data<String>, ack: AckSender| {
            socket.join(room);
            // The client gave an ack id; a failed ack means it left.
            let _ = ack.send("ok");
        },
    );
    socket.on(
        "pub",
        async |socket: SocketRef, Data((room, payload)): Data<(String, String)>| {
            // A full receiver buffer drops the packet for that receiver;
            // the benchmark counts it as loss.
            let _ = socket.within(room).emit("msg", &payload).await;
        },
    );
    Ok(())
}

/// Serves the relay on `listener` until the process is stopped.
pub async fn serve(listener: TcpListener) {
    let (service, io) = SocketIo::builder()
        .max_buffer_size(BUFFER_PACKETS)
        .ping_interval(HEARTBEAT)
        .ping_timeout(HEARTBEAT)
        .build_svc();
    // Handlers are registered by a connect middleware, which socketioxide
    // awaits before it confirms the connection: registered in the connect
    // handler (spawned after the confirmation), a client's first `sub` could
    // arrive before them and be ignored.
    io.ns("/", (async |_: SocketRef| {}).with(register_handlers));
    crate::accept::serve_each(listener, move |stream| {
        let service = service.clone();
        async move {
            let connection = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            let _ = connection.await;
        }
    })
    .await
}
