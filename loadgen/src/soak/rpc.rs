//! The soak's request/reply part: responders that echo every request's
//! payload, and requesters that send requests at a fixed rate (each with
//! the broker timeout `tmo`, at most [`MAX_REQUESTS_IN_FLIGHT`] pending)
//! and check that every one is answered with its own payload.
//!
//! A `timeout`, `no_responders`, `dropped` or any other `err`, a reply
//! that does not echo its request, and a request with no answer at all
//! (past its timeout plus the drain timeout) are all errors.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use herald_protocol::Envelope;
use herald_protocol::envelope::{Emit, Event, Reply};
use tokio_tungstenite::tungstenite::Message;

use crate::BenchError;
use crate::clock::{Clock, payload_template};
use crate::flow::{due_at, due_by};
use crate::herald::{close_politely, decode_envelope};
use crate::soak::plan::{MAX_REQUESTS_IN_FLIGHT, SoakPlan};
use crate::soak::streams::{CHECK_EVERY, read_seq, write_seq};
use crate::soak::tally::Tally;
use crate::ws::WsStream;

/// What a frame from the broker turned out to be, for the loops below.
/// (One per frame, matched at once: boxing the envelope would only add an
/// allocation.)
#[allow(clippy::large_enum_variant)]
enum Incoming {
    Envelope(Envelope),
    /// Control frames and the like: nothing to do.
    Nothing,
    /// The connection is gone (why).
    Gone(String),
}

async fn next_incoming(ws: &mut WsStream) -> Incoming {
    match ws.next().await {
        None | Some(Ok(Message::Close(_))) => Incoming::Gone("the broker closed it".to_owned()),
        Some(Err(error)) => Incoming::Gone(format!("connection lost: {error}")),
        Some(Ok(Message::Binary(frame))) => match decode_envelope(&frame) {
            Ok(envelope) => Incoming::Envelope(envelope),
            Err(error) => Incoming::Gone(error.to_string()),
        },
        Some(Ok(_)) => Incoming::Nothing,
    }
}

/// Answers every request on `ws` (a responder subscription) with its own
/// payload, until `done` says the requesters are finished; then closes.
pub(crate) async fn respond(mut ws: WsStream, tally: &Tally, done: impl Fn() -> bool) {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    loop {
        tokio::select! {
            biased;
            incoming = next_incoming(&mut ws) => match incoming {
                Incoming::Envelope(Envelope::Event(Event { ack: Some(handle), payload, .. })) => {
                    let reply = Envelope::Reply(Reply { ack: handle, ok: true, payload, args: false });
                    let frame = Message::Binary(herald_protocol::encode(&reply).into());
                    if let Err(error) = ws.send(frame).await {
                        tally.error(format!("responder: replying: {error}"));
                        return;
                    }
                }
                Incoming::Envelope(Envelope::Error(error)) => {
                    tally.error(format!("responder: the broker sent err {}: {}", error.code, error.message));
                }
                Incoming::Envelope(_) | Incoming::Nothing => {}
                Incoming::Gone(why) => {
                    tally.error(format!("responder: {why}"));
                    return;
                }
            },
            _ = tick.tick() => if done() { break },
        }
    }
    if let Err(error) = close_politely(&mut ws).await {
        tally.error(format!("responder: {error}"));
    }
}

/// What one requester needs besides its connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Requests<'a> {
    pub(crate) namespace: &'a str,
    pub(crate) event: &'a str,
    pub(crate) plan: &'a SoakPlan,
    pub(crate) clock: Clock,
    pub(crate) started: Instant,
}

/// Sends requests at the plan's rate until the load stops, waits for the
/// answers still pending, then closes.
pub(crate) async fn request(mut ws: WsStream, requests: Requests<'_>, tally: &Tally) {
    let plan = requests.plan;
    let rate = plan.request_rate;
    let timeout_ms = u64::try_from(plan.request_timeout.as_millis()).unwrap_or(u64::MAX);
    // The broker answers `timeout` at the deadline; past this, nothing came.
    let give_up_after = plan.request_timeout + plan.drain_timeout;
    let mut pending: HashMap<u64, Instant> = HashMap::new();
    let mut sent = 0u64;
    let mut payload = payload_template(plan.payload_bytes);
    let mut tick = tokio::time::interval(CHECK_EVERY);
    loop {
        let stopping = tally.stopping();
        if stopping && pending.is_empty() {
            break;
        }
        let room = MAX_REQUESTS_IN_FLIGHT.saturating_sub(pending.len()) as u64;
        let next_due = requests.started + due_at(rate, sent + 1);
        tokio::select! {
            biased;
            incoming = next_incoming(&mut ws) => match incoming {
                Incoming::Envelope(envelope) => answered(envelope, &mut pending, tally),
                Incoming::Nothing => {}
                Incoming::Gone(why) => {
                    tally.error(format!("requester: {why}"));
                    let unanswered = pending.len();
                    if unanswered > 0 {
                        tally.error(format!("requester: {unanswered} requests never answered"));
                    }
                    return;
                }
            },
            () = tokio::time::sleep_until(next_due.into()), if !stopping && room > 0 => {
                let due = due_by(rate, requests.started.elapsed()).saturating_sub(sent).min(room);
                let sending = async {
                    for _ in 0..due {
                        sent += 1;
                        requests.clock.stamp(&mut payload);
                        write_seq(&mut payload, sent);
                        let emit = Envelope::Emit(Emit {
                            namespace: requests.namespace.to_owned(),
                            event: requests.event.to_owned(),
                            payload: Bytes::copy_from_slice(&payload),
                            ack: Some(sent),
                            timeout_ms: Some(timeout_ms),
                            ..Emit::default()
                        });
                        ws.feed(Message::Binary(herald_protocol::encode(&emit).into())).await?;
                        pending.insert(sent, Instant::now());
                        Tally::add(&tally.requests, 1);
                    }
                    ws.flush().await
                };
                let sent_in_time = tokio::time::timeout(plan.drain_timeout, sending).await;
                if let Err(error) = flatten(sent_in_time, plan.drain_timeout) {
                    tally.error(format!("requester: {error}"));
                    return;
                }
            },
            _ = tick.tick() => {
                let before = pending.len();
                pending.retain(|_, sent_at| sent_at.elapsed() < give_up_after);
                let expired = before - pending.len();
                if expired > 0 {
                    tally.error(format!(
                        "requester: {expired} requests got no answer (reply or err) within {}",
                        humantime::format_duration(give_up_after)
                    ));
                }
            }
        }
    }
    if let Err(error) = close_politely(&mut ws).await {
        tally.error(format!("requester: {error}"));
    }
}

fn flatten(
    result: Result<Result<(), tokio_tungstenite::tungstenite::Error>, tokio::time::error::Elapsed>,
    after: Duration,
) -> Result<(), BenchError> {
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(BenchError::target(
            "herald",
            format!("sending requests: {error}"),
        )),
        Err(_) => Err(BenchError::timeout(
            after,
            "the broker to accept more requests",
        )),
    }
}

/// Settles the pending request an envelope from the broker answers.
fn answered(envelope: Envelope, pending: &mut HashMap<u64, Instant>, tally: &Tally) {
    match envelope {
        Envelope::Reply(Reply {
            ack, ok, payload, ..
        }) => {
            let Some(sent_at) = pending.remove(&ack) else {
                tally.error(format!(
                    "requester: a reply to request {ack}, which is not pending"
                ));
                return;
            };
            if !ok {
                tally.error("requester: a responder answered with an error");
            } else if read_seq(&payload) != Some(ack) {
                tally.error("requester: a reply that does not carry its request's payload");
            } else {
                Tally::add(&tally.replies, 1);
                tally.request_latency.borrow_mut().record(sent_at.elapsed());
            }
        }
        Envelope::Error(error) => {
            if let Some(id) = error.id {
                pending.remove(&id);
            }
            tally.error(format!(
                "requester: request failed with {}: {}",
                error.code, error.message
            ));
        }
        _ => {}
    }
}
