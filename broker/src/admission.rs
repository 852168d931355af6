//! Admission: one function per action a connection asks for, shared by
//! every front end (the Herald session, the Socket.IO session; the HTTP
//! publish API for emits): names, limits, permissions (the connection's
//! [`Grant`] under `auth.mode = "jwt"`; none, and no permission work, with
//! `"none"`) and the service-side powers. A refusal is a [`Denied`] with
//! the error code and a message naming the rule or setting; each front end
//! spells it in its own wire format.

use std::sync::Arc;

use bytes::Bytes;
use herald_config::ServicePowers;
use herald_protocol::names::{validate_event, validate_group, validate_namespace, validate_room};
use herald_protocol::{ErrorCode, NameError, Pattern};

use crate::auth::{Action, Grant};
use crate::outbox::Outbox;
use crate::router::{RouteError, SubKey};
use crate::state::Shared;
use crate::wire::WireFormat;

/// Why an action was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Denied {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
}

impl From<NameError> for Denied {
    fn from(error: NameError) -> Denied {
        let code = match error {
            NameError::Namespace(_) => ErrorCode::InvalidNamespace,
            NameError::Event(_) => ErrorCode::InvalidEvent,
            NameError::Pattern(_) => ErrorCode::InvalidPattern,
            NameError::Room(_) => ErrorCode::InvalidRoom,
            NameError::Group(_) => ErrorCode::InvalidGroup,
        };
        Denied {
            code,
            message: error.to_string(),
        }
    }
}

impl From<RouteError> for Denied {
    fn from(error: RouteError) -> Denied {
        Denied {
            code: error.code,
            message: error.message,
        }
    }
}

/// What an emit names, borrowed from whichever front end read it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EmitNames<'a> {
    pub(crate) namespace: &'a str,
    pub(crate) event: &'a str,
    pub(crate) room: Option<&'a str>,
    pub(crate) except: Option<&'a str>,
    pub(crate) payload: &'a Bytes,
}

/// Whether `sender` (none: the HTTP publish API) holds the service-side
/// powers in `namespace`: emitting to a session-id room, moving other
/// connections between rooms. `socketio.service_powers = "native"` gives
/// them to native (Herald protocol) connections and the HTTP API, never to
/// Socket.IO clients; with `auth.mode = "jwt"` the grant must also say
/// `powers: true` there.
pub(crate) fn holds_service_powers(
    shared: &Shared,
    sender: Option<&Outbox>,
    grant: Option<&Grant>,
    namespace: &str,
) -> bool {
    let kind = match shared.settings.socketio.service_powers {
        ServicePowers::None => false,
        ServicePowers::Native => sender.is_none_or(|conn| conn.format == WireFormat::Herald),
    };
    kind && grant.is_none_or(|grant| grant.powers(namespace))
}

fn forbidden(message: String) -> Denied {
    Denied {
        code: ErrorCode::Forbidden,
        message,
    }
}

/// A refusal by the connection's permissions, counted.
fn not_permitted(shared: &Shared, action: Action, name: &str, namespace: &str) -> Denied {
    shared.stats.auth.forbidden(action);
    forbidden(format!(
        "{} {name:?} in {namespace:?} is not allowed by this connection's token",
        action.as_str()
    ))
}

/// The names of an emit: namespace, event, rooms.
pub(crate) fn names(emit: &EmitNames<'_>) -> Result<(), Denied> {
    validate_namespace(emit.namespace)?;
    validate_event(emit.event)?;
    for room in emit.room.into_iter().chain(emit.except) {
        validate_room(room)?;
    }
    Ok(())
}

/// An emit or a request: its names, its payload size, the publish
/// permission, and the power an emit to a session-id room needs.
pub(crate) fn emit(
    shared: &Shared,
    sender: Option<&Outbox>,
    mut grant: Option<&mut Grant>,
    emit: &EmitNames<'_>,
) -> Result<(), Denied> {
    names(emit)?;
    let max = shared.settings.limits.max_payload_bytes;
    if emit.payload.len() > max {
        return Err(Denied {
            code: ErrorCode::PayloadTooLarge,
            message: format!(
                "payload of {} bytes exceeds limits.max_payload_bytes = {max}",
                emit.payload.len()
            ),
        });
    }
    if let Some(grant) = grant.as_deref_mut()
        && !grant.may_publish(emit.namespace, emit.event)
    {
        return Err(not_permitted(
            shared,
            Action::Publish,
            emit.event,
            emit.namespace,
        ));
    }
    if let Some(room) = emit.room
        && shared.router.is_session_room(room)
        && !holds_service_powers(shared, sender, grant.as_deref(), emit.namespace)
    {
        if grant.is_some() {
            shared.stats.auth.forbidden(Action::Powers);
        }
        return Err(forbidden(format!(
            "emitting to session id {room:?} is a service-side power this connection does not hold (socketio.service_powers)"
        )));
    }
    Ok(())
}

/// Subscribing `key` (a plain, queue-group or responder subscription):
/// with a grant, its pattern must be allowed (`subscribe`, or `respond`
/// for a responder).
pub(crate) fn subscribe(
    shared: &Shared,
    grant: Option<&Grant>,
    key: &SubKey,
) -> Result<(), Denied> {
    let Some(grant) = grant else {
        return Ok(());
    };
    if crate::auth::allows_subscription(grant, key) {
        return Ok(());
    }
    let action = if key.responder {
        Action::Respond
    } else {
        Action::Subscribe
    };
    Err(not_permitted(
        shared,
        action,
        &key.pattern.to_string(),
        &key.namespace,
    ))
}

/// Reading presence (`GET /v1/presence`): the names, and with a grant the
/// permission to subscribe to `$presence.join` in the namespace (who may
/// hear joins may list who joined) and, for a room, to join it.
pub(crate) fn presence(
    shared: &Shared,
    grant: Option<&Grant>,
    namespace: &str,
    room: Option<&str>,
) -> Result<(), Denied> {
    validate_namespace(namespace)?;
    if let Some(room) = room {
        validate_room(room)?;
    }
    let Some(grant) = grant else {
        return Ok(());
    };
    let join = crate::router::PRESENCE_JOIN;
    let pattern = Pattern::parse(join)?;
    if !grant.may_subscribe(namespace, &pattern, None, false) {
        return Err(not_permitted(shared, Action::Subscribe, join, namespace));
    }
    if let Some(room) = room.filter(|room| !grant.may_join(namespace, room)) {
        return Err(not_permitted(shared, Action::Join, room, namespace));
    }
    Ok(())
}

/// A subscription's names: its namespace, pattern and group (for
/// subscribing and unsubscribing alike).
pub(crate) fn subscription(
    namespace: &str,
    pattern: &str,
    group: Option<&str>,
    responder: bool,
) -> Result<SubKey, Denied> {
    validate_namespace(namespace)?;
    let pattern = Pattern::parse(pattern)?;
    if let Some(group) = group {
        validate_group(group)?;
    }
    Ok(SubKey {
        namespace: namespace.into(),
        pattern,
        group: group.map(Arc::from),
        responder,
    })
}

/// What a room change names.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RoomChangeNames<'a> {
    pub(crate) namespace: &'a str,
    pub(crate) room: &'a str,
    /// Another connection's session id (a service power), if any.
    pub(crate) session: Option<&'a str>,
    /// A join (checked against `join`); leaving is always allowed.
    pub(crate) join: bool,
}

/// A room change: the names, for a join of its own the `join`
/// permission, and for another connection's (`session`) the service
/// power.
pub(crate) fn room_change(
    shared: &Shared,
    conn: &Outbox,
    grant: Option<&Grant>,
    change: &RoomChangeNames<'_>,
) -> Result<(), Denied> {
    let RoomChangeNames {
        namespace,
        room,
        session,
        join,
    } = *change;
    validate_namespace(namespace)?;
    validate_room(room)?;
    let other = session.is_some_and(|sid| sid != &*conn.session);
    if !other
        && join
        && let Some(grant) = grant
        && !grant.may_join(namespace, room)
    {
        return Err(not_permitted(shared, Action::Join, room, namespace));
    }
    if other && !holds_service_powers(shared, Some(conn), grant, namespace) {
        if grant.is_some() {
            shared.stats.auth.forbidden(Action::Powers);
        }
        return Err(forbidden(
            "moving another connection into or out of a room is a service-side power this connection does not hold (socketio.service_powers)".into(),
        ));
    }
    Ok(())
}

/// Counts a request the broker answers itself (`$presence.list`,
/// `$history.read`) as in flight on `conn` until it is answered
/// (`limits.max_pending_requests_per_connection`, as any request): the
/// caller decrements `conn.pending_requests` when it answers.
pub(crate) fn reserve_request(shared: &Shared, conn: &crate::outbox::Outbox) -> Result<(), Denied> {
    let max = shared.settings.limits.max_pending_requests_per_connection;
    if conn
        .pending_requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        >= max
    {
        conn.pending_requests
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        return Err(Denied {
            code: ErrorCode::TooManyRequests,
            message: format!(
                "{max} requests already in flight (limits.max_pending_requests_per_connection)"
            ),
        });
    }
    Ok(())
}

/// The payload of a request the broker answers itself: an optional
/// MessagePack map (empty: every key's default); `shape` lists its keys
/// for the error.
pub(crate) fn broker_request<T>(event: &str, shape: &str, payload: &[u8]) -> Result<T, Denied>
where
    T: serde::de::DeserializeOwned + Default,
{
    if payload.is_empty() {
        return Ok(T::default());
    }
    rmp_serde::from_slice(payload).map_err(|e| Denied {
        code: ErrorCode::InvalidEnvelope,
        message: format!("a {event} payload is a map {shape}: {e}"),
    })
}
