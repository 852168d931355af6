//! Handler tasks: each registered handler runs in its own task, draining its
//! bounded queue one event at a time.
//!
//! A task decodes the payload (as the handler's type, or not at all for raw
//! handlers, or as a lifecycle event for services), runs the handler with
//! panics caught (`catch_unwind` on the handler's future), and for requests
//! sends the reply. A payload that does not decode, or a handler that
//! panics, is reported (see [`ClientEvent`]) and the task goes on with the
//! next event. A task ends when its queue's sender is dropped: on
//! unsubscribe, or when the client closes.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Weak};

use futures_util::FutureExt;
use herald_protocol::Envelope;
use herald_protocol::envelope::Reply;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::client::Shared;
use crate::dispatch::{Delivery, ReplyTo};
use crate::error::ClientEvent;
use crate::namespace::Event;
use crate::outbox::Outgoing;
use crate::payload::Payload;

/// What a handler task needs besides its handler.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    /// Weak: the registry (inside `Shared`) owns this task's queue sender,
    /// so a strong reference would keep `Shared` alive through its own
    /// tasks.
    pub(crate) shared: Weak<Shared>,
    /// The subscription's namespace, for reports.
    pub(crate) namespace: String,
}

impl Context {
    fn report(&self, event: ClientEvent) {
        match self.shared.upgrade() {
            Some(shared) => shared.report(event),
            None => tracing::warn!(%event, "herald client event after the client was dropped"),
        }
    }

    fn decode_failed(&self, delivery: &Delivery, error: String) {
        self.report(ClientEvent::Decode {
            namespace: self.namespace.clone(),
            event: delivery.event().to_owned(),
            error,
        });
    }

    fn panicked(&self, delivery: &Delivery, panic: &(dyn Any + Send)) {
        self.report(ClientEvent::HandlerPanic {
            namespace: self.namespace.clone(),
            event: delivery.event().to_owned(),
            message: panic_message(panic),
        });
    }

    /// Sends a reply on the connection the request came from.
    async fn reply(&self, to: ReplyTo, ok: bool, payload: Payload) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let frame = herald_protocol::encode(&Envelope::Reply(Reply {
            ack: to.handle,
            ok,
            payload: payload.bytes,
            args: payload.args,
        }));
        send_reply(&shared, to.generation, frame).await;
    }
}

/// Sends an encoded `reply` on connection `generation`, or drops it (with a
/// debug log) when that connection is gone: the broker that issued the
/// handle forgot it with the connection.
pub(crate) async fn send_reply(shared: &Arc<Shared>, generation: u64, frame: Vec<u8>) {
    match shared.outbox.sender_for(generation) {
        Some(tx) => {
            if tx
                .send(Outgoing::once(bytes::Bytes::from(frame)))
                .await
                .is_err()
            {
                tracing::debug!("reply dropped: its connection closed");
            }
        }
        None => tracing::debug!("reply dropped: its connection is gone"),
    }
}

/// Encodes the error text of an `ok: false` reply (a MessagePack string).
pub(crate) fn error_payload(message: &str) -> Vec<u8> {
    rmp_serde::to_vec(message).unwrap_or_default()
}

/// The text of a panic payload.
fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// Decodes a delivery for a handler; the error text is reported.
pub(crate) trait Decode<T>: Fn(&Delivery) -> Result<T, String> {}
impl<T, D: Fn(&Delivery) -> Result<T, String>> Decode<T> for D {}

/// The SDK's payload convention: the MessagePack of the handler's type.
pub(crate) fn typed<T: DeserializeOwned>(delivery: &Delivery) -> Result<T, String> {
    rmp_serde::from_slice(delivery.payload()).map_err(|e| e.to_string())
}

/// The [`Event`] for `delivery` in `namespace`, carrying `data`: the
/// names become `String`s here, for the handlers that take an `Event`.
pub(crate) fn event<T>(namespace: &str, delivery: &Delivery, data: T) -> Event<T> {
    Event {
        namespace: namespace.to_owned(),
        event: delivery.event().to_owned(),
        room: delivery.room().map(str::to_owned),
        from: delivery.from().map(str::to_owned),
        args: delivery.args,
        data,
    }
}

/// What a handler is called with, made from the decoded payload: the
/// payload alone ([`data`]), or an [`Event`] with the metadata
/// ([`with_event`]).
pub(crate) type Shape<T, A> = fn(&Context, &Delivery, T) -> A;

/// The payload alone: nothing more to build per event.
pub(crate) fn data<T>(_: &Context, _: &Delivery, data: T) -> T {
    data
}

/// The payload in an [`Event`] with the event's name, room and sender.
pub(crate) fn with_event<T>(ctx: &Context, delivery: &Delivery, data: T) -> Event<T> {
    event(&ctx.namespace, delivery, data)
}

/// No decoding: the payload as it came, with its `args` flag.
pub(crate) fn raw(delivery: &Delivery) -> Result<Payload, String> {
    Ok(Payload {
        bytes: delivery.payload_bytes(),
        args: delivery.args,
    })
}

/// Runs an event handler over its queue until the queue closes. The
/// handler gets what `shape` makes of the payload decoded by `decode`
/// (the payload, or an [`Event`] with its name, room and sender).
pub(crate) async fn run_events<T, A, D, F, Fut>(
    mut queue: mpsc::Receiver<Delivery>,
    ctx: Context,
    decode: D,
    shape: Shape<T, A>,
    handler: F,
) where
    D: Decode<T>,
    F: Fn(A) -> Fut,
    Fut: Future<Output = ()>,
{
    while let Some(delivery) = queue.recv().await {
        let value = match decode(&delivery) {
            Ok(value) => value,
            Err(error) => {
                ctx.decode_failed(&delivery, error);
                continue;
            }
        };
        let event = shape(&ctx, &delivery, value);
        // The call itself happens inside the async block, so a panic before
        // the handler's first await is caught too.
        let run = AssertUnwindSafe(async { handler(event).await }).catch_unwind();
        if let Err(panic) = run.await {
            ctx.panicked(&delivery, &*panic);
        }
    }
}

/// Runs a request handler over its queue until the queue closes, answering
/// every request: `ok: true` with the answer made by `encode`, or
/// `ok: false` with the error's text.
pub(crate) async fn run_requests<T, R, E, D, N, F, Fut>(
    mut queue: mpsc::Receiver<Delivery>,
    ctx: Context,
    decode: D,
    encode: N,
    handler: F,
) where
    D: Decode<T>,
    N: Fn(R) -> Result<Payload, String>,
    E: std::fmt::Display,
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<R, E>>,
{
    while let Some(delivery) = queue.recv().await {
        let Some(reply_to) = delivery.reply else {
            tracing::debug!(
                event = delivery.event(),
                "responder got an event without ack handle"
            );
            continue;
        };
        let answer = match decode(&delivery) {
            Err(error) => {
                let message = format!("request payload did not decode: {error}");
                ctx.decode_failed(&delivery, error);
                Err(message)
            }
            Ok(value) => {
                let run = AssertUnwindSafe(async { handler(value).await }).catch_unwind();
                match run.await {
                    Ok(Ok(answer)) => encode(answer).map_err(|error| {
                        tracing::warn!(event = delivery.event(), %error, "reply did not encode");
                        format!("reply did not encode: {error}")
                    }),
                    Ok(Err(error)) => Err(error.to_string()),
                    Err(panic) => {
                        ctx.panicked(&delivery, &*panic);
                        Err("responder panicked".to_owned())
                    }
                }
            }
        };
        let (ok, payload) = match answer {
            Ok(payload) => (true, payload),
            Err(message) => (false, Payload::one(error_payload(&message))),
        };
        ctx.reply(reply_to, ok, payload).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages() {
        let boxed: Box<dyn Any + Send> = Box::new("boom");
        assert_eq!(panic_message(&*boxed), "boom");
        let boxed: Box<dyn Any + Send> = Box::new(String::from("bang"));
        assert_eq!(panic_message(&*boxed), "bang");
        let boxed: Box<dyn Any + Send> = Box::new(3_u8);
        assert_eq!(panic_message(&*boxed), "non-string panic payload");
    }

    #[test]
    fn error_payload_is_a_msgpack_string() {
        let decoded: String =
            rmp_serde::from_slice(&error_payload("nope")).expect("a msgpack string");
        assert_eq!(decoded, "nope");
    }
}
