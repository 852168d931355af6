//! The Socket.IO wire format: what the router hands a Socket.IO receiver,
//! spelled as Engine.IO messages in WebSocket frames (the polling
//! transport re-frames them).
//!
//! An event becomes `42/ns,["event",…args]` (the Engine.IO `4`, then the
//! Socket.IO packet), its MessagePack payload converted to JSON once per
//! emit; `bin` values become attachments, sent as binary frames right
//! after the text frame, all in one queued item so nothing comes between.
//! Answers are acks: a reply becomes `43/ns,id[…args]`, a failed request
//! an ack whose one argument is `{"$error":{"code","message"}}`, and a
//! refusal with no ack to answer a `$error` event. In a history namespace
//! an event's last argument is its recovery offset (`seq@epoch`), as
//! Socket.IO's connection state recovery appends it.

use bytes::Bytes;
use herald_protocol::EventRef;
use herald_protocol::socketio::convert::{write_ack_packet, write_event_packet};
use herald_protocol::socketio::encode::{write_ack_head, write_event_head};
use herald_protocol::socketio::json::write_str;

use crate::engineio::packet::message_item;
use crate::wire::Answer;

/// The frame of one delivered event.
pub(crate) fn event(event: &EventRef<'_>) -> Bytes {
    let payload = Bytes::copy_from_slice(event.payload);
    let mut text = String::with_capacity(16 + event.event.len() + 2 * payload.len());
    let mut attachments = Vec::new();
    write_event_packet(
        &mut text,
        &mut attachments,
        event.namespace,
        event.event,
        &payload,
        event.args,
        None,
    );
    if let (Some(seq), Some(epoch)) = (event.seq, event.epoch) {
        // Connection state recovery: the offset goes last among the
        // arguments (the packet ends with the data array's `]`), where a
        // stock client reads it when it has a `pid`.
        if text.ends_with(']') {
            text.pop();
            text.push(',');
            write_str(&mut text, &offset(seq, epoch));
            text.push(']');
        }
    }
    message_item(&text, &attachments)
}

/// A Socket.IO recovery offset: `seq` and the history's epoch.
pub(crate) fn offset(seq: u64, epoch: &str) -> String {
    format!("{seq}@{epoch}")
}

/// The `seq` and epoch of an offset made by [`offset`].
pub(crate) fn parse_offset(offset: &str) -> Option<(u64, &str)> {
    let (seq, epoch) = offset.split_once('@')?;
    Some((seq.parse().ok()?, epoch))
}

/// The frame of one answer to a Socket.IO connection.
pub(crate) fn answer(answer: &Answer<'_>) -> Bytes {
    let mut text = String::with_capacity(64);
    match *answer {
        Answer::Reply {
            namespace,
            ack,
            ok: true,
            payload,
            args,
        } => {
            let mut attachments = Vec::new();
            write_ack_packet(&mut text, &mut attachments, namespace, ack, payload, args);
            return message_item(&text, &attachments);
        }
        Answer::Reply {
            namespace,
            ack,
            payload,
            ..
        } => {
            write_ack_head(&mut text, namespace, ack, 0);
            text.push('[');
            write_error(&mut text, "rejected", &rejection_message(payload));
            text.push(']');
        }
        Answer::Error {
            namespace,
            id: Some(id),
            code,
            message,
        } => {
            write_ack_head(&mut text, namespace.unwrap_or("/"), id, 0);
            text.push('[');
            write_error(&mut text, code.as_str(), message);
            text.push(']');
        }
        Answer::Error {
            namespace,
            id: None,
            code,
            message,
        } => {
            write_event_head(&mut text, namespace.unwrap_or("/"), None, 0);
            text.push_str("[\"$error\",");
            write_error_body(&mut text, code.as_str(), message);
            text.push(']');
        }
    }
    message_item(&text, &[])
}

/// The ack argument of `{"ok":true}`, or of a refusal, for the reserved
/// client events (`$subscribe`, `$join`, …).
pub(crate) fn command_ack(namespace: &str, id: u64, refused: Option<(&str, &str)>) -> Bytes {
    let mut text = String::with_capacity(48);
    write_ack_head(&mut text, namespace, id, 0);
    match refused {
        None => text.push_str("[{\"ok\":true}]"),
        Some((code, message)) => {
            text.push_str("[{\"ok\":false,\"error\":");
            write_error_body(&mut text, code, message);
            text.push_str("}]");
        }
    }
    message_item(&text, &[])
}

/// `{"$error":{"code":…,"message":…}}`: the one argument of a failed ack.
fn write_error(out: &mut String, code: &str, message: &str) {
    out.push_str("{\"$error\":");
    write_error_body(out, code, message);
    out.push('}');
}

/// `{"code":…,"message":…}`.
fn write_error_body(out: &mut String, code: &str, message: &str) {
    out.push_str("{\"code\":");
    write_str(out, code);
    out.push_str(",\"message\":");
    write_str(out, message);
    out.push('}');
}

/// A native responder's error reply is, by convention, a MessagePack
/// string; anything else is named generically.
fn rejection_message(payload: &Bytes) -> String {
    match rmpv::decode::read_value(&mut &payload[..]) {
        Ok(rmpv::Value::String(text)) => text.into_str().unwrap_or_default(),
        _ => "the responder answered with an error".into(),
    }
}

/// A notice as the reserved event `$notice` in `namespace`:
/// `{"code","message","exp"?,"revoked"?}`.
pub(crate) fn notice(namespace: &str, notice: &herald_protocol::envelope::Notice) -> Bytes {
    let mut body = serde_json::json!({"code": notice.code, "message": notice.message});
    if let Some(exp) = notice.exp {
        body["exp"] = exp.into();
    }
    if !notice.revoked.is_empty() {
        body["revoked"] = serde_json::to_value(&notice.revoked).unwrap_or_default();
    }
    let mut text = String::with_capacity(96);
    write_event_head(&mut text, namespace, None, 0);
    text.push_str("[\"$notice\",");
    text.push_str(&body.to_string());
    text.push(']');
    message_item(&text, &[])
}
