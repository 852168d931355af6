//! The soak's event streams: a publisher at a fixed rate, stamping each
//! payload with its send time and a sequence number, and subscribers that
//! check the sequence (the broker delivers one publisher's events in
//! order, PROTOCOL.md §8), so a lost event is seen when the next one
//! arrives, not only at the end.
//!
//! Fanout and pairs publishers keep at most `window` messages in flight, so
//! the load never makes the broker queue more than that per subscriber;
//! the churn publisher has no window (its subscribers come and go).

use std::cell::Cell;
use std::time::{Duration, Instant};

use crate::BenchError;
use crate::clock::{Clock, payload_template};
use crate::driver::{Publisher, Subscriber};
use crate::flow::{EventFlow, due_at, due_by, wait_for_room, window_room};
use crate::herald::{HeraldPublisher, HeraldSubscriber};
use crate::soak::plan::SoakPlan;
use crate::soak::tally::{Sequence, SequenceCheck, Tally};

/// Messages fed before each flush.
const BATCH: u64 = 64;
/// How often a waiting subscriber looks at the stream's state.
pub(crate) const CHECK_EVERY: Duration = Duration::from_millis(100);

/// Writes `seq` big-endian into bytes 8..16 of `payload` (after the send
/// time); does nothing to a shorter payload.
pub fn write_seq(payload: &mut [u8], seq: u64) {
    if let Some(slot) = payload.get_mut(8..16) {
        slot.copy_from_slice(&seq.to_be_bytes());
    }
}

/// The sequence number in bytes 8..16 of `payload`, if it has them.
pub fn read_seq(payload: &[u8]) -> Option<u64> {
    let slot: [u8; 8] = payload.get(8..16)?.try_into().ok()?;
    Some(u64::from_be_bytes(slot))
}

/// One publisher's event, shared with its subscribers.
#[derive(Debug)]
pub(crate) struct Stream {
    /// `fanout`, `pair 3`, `churn`: for error messages.
    pub(crate) label: String,
    /// Subscribers that stay for the whole run (0 for churn).
    pub(crate) subscribers: u64,
    pub(crate) flow: EventFlow,
    /// Messages published so far.
    pub(crate) sent: Cell<u64>,
    /// Set once the publisher has stopped and the broker has handled
    /// every emit (its final `ping` was answered).
    pub(crate) finished: Cell<bool>,
}

impl Stream {
    pub(crate) fn new(label: String, subscribers: usize) -> Stream {
        Stream {
            label,
            subscribers: subscribers as u64,
            flow: EventFlow::new(),
            sent: Cell::new(0),
            finished: Cell::new(false),
        }
    }
}

/// What a publisher needs besides its connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pace<'a> {
    pub(crate) rate: u64,
    pub(crate) window: Option<u64>,
    pub(crate) plan: &'a SoakPlan,
    pub(crate) clock: Clock,
    pub(crate) started: Instant,
}

/// Publishes to `stream` at `pace` until `keep_going` says no, then
/// confirms with the broker that every emit was handled and closes.
pub(crate) async fn publish(
    mut publisher: HeraldPublisher,
    stream: &Stream,
    pace: Pace<'_>,
    tally: &Tally,
    keep_going: impl Fn() -> bool,
) {
    let result = async {
        publish_while(&mut publisher, stream, pace, tally, keep_going).await?;
        publisher.finish().await
    }
    .await;
    if let Err(error) = result {
        tally.error(format!("{} publisher: {error}", stream.label));
    }
    stream.finished.set(true);
    if let Err(error) = publisher.close().await {
        tally.error(format!("{} publisher: {error}", stream.label));
    }
}

async fn publish_while(
    publisher: &mut HeraldPublisher,
    stream: &Stream,
    pace: Pace<'_>,
    tally: &Tally,
    keep_going: impl Fn() -> bool,
) -> Result<(), BenchError> {
    let timeout = pace.plan.drain_timeout;
    let mut payload = payload_template(pace.plan.payload_bytes);
    let mut sent = 0u64;
    while keep_going() {
        let due = due_by(pace.rate, pace.started.elapsed());
        if due <= sent {
            let next = pace.started + due_at(pace.rate, sent + 1);
            tokio::time::sleep_until(next.min(Instant::now() + CHECK_EVERY).into()).await;
            continue;
        }
        let mut batch = (due - sent).min(BATCH);
        if let Some(window) = pace.window {
            let room = window_room(window, stream.subscribers, sent, stream.flow.received.get());
            if room == 0 {
                publisher.flush().await?;
                wait_for_room(&stream.flow, window, stream.subscribers, sent, timeout).await?;
                continue;
            }
            batch = batch.min(room);
        }
        let sending = async {
            for _ in 0..batch {
                pace.clock.stamp(&mut payload);
                write_seq(&mut payload, sent);
                publisher.feed(&payload).await?;
                sent += 1;
                stream.sent.set(sent);
                Tally::add(&tally.sent, 1);
            }
            publisher.flush().await
        };
        tokio::time::timeout(timeout, sending)
            .await
            .map_err(|_| BenchError::timeout(timeout, "the broker to accept more messages"))??;
        tokio::task::yield_now().await;
    }
    Ok(())
}

/// Counts one received payload against `check`: a gap is loss, a late or
/// repeated number an error.
pub(crate) fn count_payload(
    payload: &[u8],
    check: &mut SequenceCheck,
    label: &str,
    tally: &Tally,
    clock: Clock,
) {
    tally.delivery(clock.age(payload));
    match read_seq(payload).map(|seq| check.receive(seq)) {
        Some(Sequence::InOrder) => {}
        Some(Sequence::Gap(missing)) => Tally::add(&tally.lost, missing),
        Some(Sequence::Behind { expected, got }) => tally.error(format!(
            "{label}: event {got} arrived after {} (a duplicate or out of order)",
            expected.saturating_sub(1)
        )),
        None => tally.error(format!("{label}: an event without a sequence number")),
    }
}

/// Receives `stream` until its publisher has finished and everything it
/// sent arrived (or nothing more came for the drain timeout); what is
/// still missing then is loss. Closes the connection at the end.
pub(crate) async fn receive(
    mut subscriber: HeraldSubscriber,
    stream: &Stream,
    plan: &SoakPlan,
    tally: &Tally,
    clock: Clock,
) {
    let mut check = SequenceCheck::default();
    let mut last_receipt = Instant::now();
    let mut tick = tokio::time::interval(CHECK_EVERY);
    let mut open = true;
    loop {
        if stream.finished.get() && check.next >= stream.sent.get() {
            break;
        }
        tokio::select! {
            biased;
            next = subscriber.next_payload(), if open => match next {
                Ok(Some(payload)) => {
                    last_receipt = Instant::now();
                    count_payload(&payload, &mut check, &stream.label, tally, clock);
                    stream.flow.delivered();
                }
                Ok(None) => {
                    tally.error(format!("{}: the broker closed a subscriber", stream.label));
                    open = false;
                }
                Err(error) => {
                    tally.error(format!("{} subscriber: {error}", stream.label));
                    open = false;
                }
            },
            _ = tick.tick() => {
                // Waits for the publisher's end even after losing the
                // connection, to count what never arrived.
                let quiet = last_receipt.elapsed() >= plan.drain_timeout;
                if stream.finished.get() && (quiet || !open) {
                    break;
                }
            }
        }
    }
    Tally::add(&tally.lost, stream.sent.get().saturating_sub(check.next));
    if open && let Err(error) = subscriber.close().await {
        tally.error(format!("{} subscriber: {error}", stream.label));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_follow_the_send_time() {
        let mut payload = payload_template(32);
        Clock::new().stamp(&mut payload);
        let stamp = payload[..8].to_vec();
        write_seq(&mut payload, 0x0102_0304_0506_0708);
        assert_eq!(&payload[..8], stamp.as_slice(), "the stamp is kept");
        assert_eq!(read_seq(&payload), Some(0x0102_0304_0506_0708));
        assert_eq!(read_seq(&payload[..15]), None);
        let mut short = [7u8; 12];
        write_seq(&mut short, 1);
        assert_eq!(short, [7u8; 12]);
    }

    #[test]
    fn payloads_are_counted_against_the_sequence() {
        let tally = Tally::default();
        let clock = Clock::new();
        let mut check = SequenceCheck::default();
        let mut payload = payload_template(16);
        for seq in [0, 1, 4, 2] {
            write_seq(&mut payload, seq);
            count_payload(&payload, &mut check, "t", &tally, clock);
        }
        assert_eq!(tally.delivered.get(), 4);
        assert_eq!(tally.lost.get(), 2, "2 and 3 were skipped");
        assert_eq!(tally.errors(), 1, "2 came late");
        count_payload(&[1, 2, 3], &mut check, "t", &tally, clock);
        assert_eq!(tally.errors(), 2, "no sequence number");
    }
}
