//! Lifecycle events: what a service learns of Socket.IO sockets, as
//! Herald events the broker emits in the socket's namespace (system
//! events, which wildcards at the first token never match):
//!
//! - `$connection`: `{sid, auth, transport}` when a socket connects (its
//!   session id, the CONNECT auth payload as MessagePack, `{}` when none,
//!   and `websocket` or `polling`); with `auth.mode = "jwt"` also `user`
//!   (the token's `sub`, `""` when anonymous), and `auth` without its
//!   `token`;
//! - `$disconnect`: `{sid, reason}` when it leaves (Socket.IO's reason
//!   strings).
//!
//! The event's `from` is the socket's session id too. Services subscribe
//! to them by name (queue groups included), on any node.

use bytes::Bytes;
use herald_protocol::CloseReason;
use herald_protocol::envelope::Emit;
use herald_protocol::socketio::convert::write_auth;
use herald_protocol::socketio::json::Json;

use crate::outbox::Outbox;
use crate::state::Shared;

/// The event a service gets when a socket connects to its namespace.
pub(crate) const CONNECTION: &str = "$connection";
/// The event a service gets when a socket leaves its namespace.
pub(crate) const DISCONNECT: &str = "$disconnect";

/// Socket.IO's disconnect reason for a closed connection.
pub(crate) fn reason_of(reason: CloseReason) -> &'static str {
    match reason {
        CloseReason::ClientClosed => "transport close",
        CloseReason::HeartbeatTimeout => "ping timeout",
        CloseReason::ShuttingDown => "server shutting down",
        CloseReason::ProtocolError | CloseReason::InvalidUtf8 | CloseReason::MessageTooBig => {
            "parse error"
        }
        CloseReason::TransportError | CloseReason::MessageTimeout => "transport error",
        CloseReason::Kicked => "server namespace disconnect",
        _ => "forced close",
    }
}

fn write_str_entry(out: &mut Vec<u8>, key: &str, value: &str) {
    // Writes into a Vec cannot fail.
    let _ = rmp::encode::write_str(out, key);
    let _ = rmp::encode::write_str(out, value);
}

fn publish(shared: &Shared, socket: &Outbox, namespace: &str, event: &str, payload: Vec<u8>) {
    let emit = Emit {
        namespace: namespace.to_owned(),
        event: event.to_owned(),
        payload: Bytes::from(payload),
        ..Emit::default()
    };
    shared.router.publish(Some(socket), &emit);
}

/// Publishes `$connection` for `socket` in `namespace`. With auth on
/// (`user` given: the grant's `sub`, empty when anonymous) the payload
/// carries `user`, and the CONNECT payload's `token` is stripped.
pub(crate) fn connected(
    shared: &Shared,
    socket: &Outbox,
    namespace: &str,
    auth: Option<&Json>,
    transport: &str,
    user: Option<&str>,
) {
    let stripped = user.and(auth).map(|auth| match auth {
        Json::Object(entries) => Json::Object(
            entries
                .iter()
                .filter(|(key, _)| key != "token")
                .cloned()
                .collect(),
        ),
        other => other.clone(),
    });
    let auth = stripped.as_ref().or(auth);
    let mut payload = Vec::with_capacity(64);
    let _ = rmp::encode::write_map_len(&mut payload, if user.is_some() { 4 } else { 3 });
    write_str_entry(&mut payload, "sid", &socket.session);
    if let Some(user) = user {
        write_str_entry(&mut payload, "user", user);
    }
    let _ = rmp::encode::write_str(&mut payload, "auth");
    write_auth(&mut payload, auth);
    write_str_entry(&mut payload, "transport", transport);
    publish(shared, socket, namespace, CONNECTION, payload);
}

/// Publishes `$disconnect` for `socket` leaving `namespace`.
pub(crate) fn disconnected(shared: &Shared, socket: &Outbox, namespace: &str, reason: &str) {
    let mut payload = Vec::with_capacity(48);
    let _ = rmp::encode::write_map_len(&mut payload, 2);
    write_str_entry(&mut payload, "sid", &socket.session);
    write_str_entry(&mut payload, "reason", reason);
    publish(shared, socket, namespace, DISCONNECT, payload);
}
