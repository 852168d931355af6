//! The Socket.IO handlers of the upstream conformance suites
//! (socketio/socket.io-protocol `test-suite/`), written as a native
//! service with the SDK: it runs beside the broker, in its own process,
//! as any service that does what a Socket.IO server app does.
//!
//! - `/` and `/custom`: on connection, emit `auth` with the CONNECT payload
//!   (`{}` when none) to that socket.
//! - `/`: `message(...a)` → `message-back(...a)` to the sender;
//!   `message-with-ack(...a)` → ack with `...a`.
//! - `/chat` (all acked): `echo(...a)` acks `...a` (binary included);
//!   `join(room)` / `leave(room)` make the sender join or leave and ack
//!   `{"ok":true,"room":room}`; `publish({"room":r,"data":d})` emits
//!   `broadcast {"room":r,"data":d}` to every other socket in room `r`
//!   (`r` null: every other socket of `/chat`) and acks
//!   `{"ok":true,"recipients":N}`.
//!
//! Prints `ready` once every handler is registered.
//!
//! ```sh
//! cargo run --example socketio-conformance -- --url ws://127.0.0.1:7400/v1/ws
//! ```

use std::convert::Infallible;

use clap::Parser;
use herald_client::{Connection, Event, Namespace, Payload};
use herald_examples::{BrokerArgs, Line, init_logging, shutdown_signal};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

/// Answers the Socket.IO conformance suites' events.
#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    broker: BrokerArgs,
}

/// `join` / `leave` acks.
#[derive(Debug, Serialize)]
struct RoomAck<'a> {
    ok: bool,
    room: &'a str,
}

/// What `publish` is given, and what `broadcast` carries.
#[derive(Debug, Serialize, Deserialize)]
struct Publication {
    room: Option<String>,
    data: rmpv::Value,
}

/// `publish` acks.
#[derive(Debug, Serialize)]
struct PublishAck {
    ok: bool,
    recipients: u64,
}

/// Why a `/chat` request could not be served (becomes the ack's error).
#[derive(Debug, thiserror::Error)]
enum ChatError {
    #[error("the event names no sender")]
    NoSender,
    #[error("{0}")]
    Client(#[from] herald_client::Error),
}

/// Emits `auth` with the CONNECT payload to every socket connecting to `ns`.
async fn greet(ns: &Namespace) -> anyhow::Result<()> {
    ns.on_connection(|connection: Connection| async move {
        let auth = connection
            .auth::<rmpv::Value>()
            .unwrap_or_else(|_| rmpv::Value::Map(Vec::new()));
        if let Err(error) = connection.emit("auth", &auth).await {
            warn!(%error, "greeting a socket");
        }
    })
    .await?;
    Ok(())
}

/// The sender of a request, as a socket handle.
fn sender(ns: &Namespace, event: &Event<Payload>) -> Result<herald_client::Socket, ChatError> {
    event
        .from
        .as_deref()
        .map(|sid| ns.socket(sid))
        .ok_or(ChatError::NoSender)
}

async fn main_namespace(ns: &Namespace) -> anyhow::Result<()> {
    let back = ns.clone();
    ns.on_raw("message", move |event: Event<Payload>| {
        let ns = back.clone();
        async move {
            let Some(sid) = event.from.as_deref() else {
                return;
            };
            if let Err(error) = ns.to(sid).emit_raw("message-back", event.data).await {
                warn!(%error, "message-back");
            }
        }
    })
    .await?;
    ns.on_request_raw("message-with-ack", |event: Event<Payload>| async move {
        Ok::<_, Infallible>(event.data)
    })
    .await?;
    Ok(())
}

async fn chat_namespace(ns: &Namespace) -> anyhow::Result<()> {
    ns.on_request_raw("echo", |event: Event<Payload>| async move {
        Ok::<_, Infallible>(event.data)
    })
    .await?;
    for join in [true, false] {
        let chat = ns.clone();
        let event = if join { "join" } else { "leave" };
        ns.on_request_raw(event, move |event: Event<Payload>| {
            let chat = chat.clone();
            async move {
                let socket = sender(&chat, &event)?;
                let room: String = event.data.decode()?;
                if join {
                    socket.join(&room).await?;
                } else {
                    socket.leave(&room).await?;
                }
                Ok::<_, ChatError>(Payload::encode(&RoomAck {
                    ok: true,
                    room: &room,
                })?)
            }
        })
        .await?;
    }
    let chat = ns.clone();
    ns.on_request_raw("publish", move |event: Event<Payload>| {
        let chat = chat.clone();
        async move {
            let socket = sender(&chat, &event)?;
            let publication: Publication = event.data.decode()?;
            let emitter = match &publication.room {
                Some(room) => chat.to(room.clone()).except(socket.sid()),
                None => chat.except_self().except(socket.sid()),
            };
            let recipients = emitter.emit_acked("broadcast", &publication).await?;
            Ok::<_, ChatError>(Payload::encode(&PublishAck {
                ok: true,
                recipients,
            })?)
        }
    })
    .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_logging();
    let args = Args::parse();
    let client = args.broker.connect("socketio-conformance").await?;
    client.on_error(|event| warn!(?event, "client error"));
    let main = client.of("/");
    greet(&main).await?;
    greet(&client.of("/custom")).await?;
    main_namespace(&main).await?;
    chat_namespace(&client.of("/chat")).await?;
    println!("{}", Line::Ready);

    shutdown_signal().await;
    info!("stopping");
    client.close().await?;
    Ok(())
}
