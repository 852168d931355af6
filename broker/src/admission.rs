//! Admission: one function per action a connection asks for, shared by
//! every front end (the Herald session, the Socket.IO session; the HTTP
//! publish API for emits): names, limits and the service-side powers. A
//! refusal is a [`Denied`] with the error code and a message naming the
//! rule or setting; each front end spells it in its own wire format.

use std::sync::Arc;

use bytes::Bytes;
use herald_config::ServicePowers;
use herald_protocol::names::{validate_event, validate_group, validate_namespace, validate_room};
use herald_protocol::{ErrorCode, NameError, Pattern};

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
/// powers: emitting to a session-id room, moving other connections
/// between rooms. `socketio.service_powers = "native"` gives them to
/// native (Herald protocol) connections and the HTTP API, never to
/// Socket.IO clients.
pub(crate) fn holds_service_powers(shared: &Shared, sender: Option<&Outbox>) -> bool {
    match shared.settings.socketio.service_powers {
        ServicePowers::None => false,
        ServicePowers::Native => sender.is_none_or(|conn| conn.format == WireFormat::Herald),
    }
}

fn forbidden(message: String) -> Denied {
    Denied {
        code: ErrorCode::Forbidden,
        message,
    }
}

/// An emit or a request: its names, its payload size, and the power an
/// emit to a session-id room needs.
pub(crate) fn emit(
    shared: &Shared,
    sender: Option<&Outbox>,
    emit: &EmitNames<'_>,
) -> Result<(), Denied> {
    validate_namespace(emit.namespace)?;
    validate_event(emit.event)?;
    for room in emit.room.into_iter().chain(emit.except) {
        validate_room(room)?;
    }
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
    if let Some(room) = emit.room
        && shared.router.is_session_room(room)
        && !holds_service_powers(shared, sender)
    {
        return Err(forbidden(format!(
            "emitting to session id {room:?} is a service-side power this connection does not hold (socketio.service_powers)"
        )));
    }
    Ok(())
}

/// A subscription: its namespace, pattern and group.
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

/// A room change: the names, and for another connection's (`session`)
/// the service power.
pub(crate) fn room_change(
    shared: &Shared,
    conn: &Outbox,
    namespace: &str,
    room: &str,
    session: Option<&str>,
) -> Result<(), Denied> {
    validate_namespace(namespace)?;
    validate_room(room)?;
    if session.is_some_and(|sid| sid != &*conn.session) && !holds_service_powers(shared, Some(conn))
    {
        return Err(forbidden(
            "moving another connection into or out of a room is a service-side power this connection does not hold (socketio.service_powers)".into(),
        ));
    }
    Ok(())
}
