//! The message-flow workloads (`fanout`, `pairs`, `latency`) against any
//! [`Driver`].
//!
//! 1. Every subscriber connects and has its subscription confirmed.
//! 2. Every publisher connects.
//! 3. All publishers start at once. Each stamps the send time into its
//!    payload, feeds up to `batch` messages, flushes, and yields. With a
//!    rate it sends what is due by now; with a window it pauses (after
//!    flushing) while more than `window` messages are in flight, until half
//!    of them have been received. The publishers' connections also push
//!    back on their own (a full socket makes `feed` wait).
//!    A batch that cannot be handed over within `drain_timeout` stops the
//!    publisher with an error.
//! 4. Each subscriber counts receipts and records their latency until it has
//!    every message, or nothing arrived for `drain_timeout`.
//!
//! Everything runs on the calling task: one core does all the client work.

use std::cell::Cell;
use std::time::{Duration, Instant};

use futures_util::future::{join, join_all};
use tokio::sync::Notify;

use crate::clock::{Clock, payload_template};
use crate::driver::{Driver, Publisher, Subscriber};
use crate::open::open_many;
use crate::outcome::{FlowOutcome, PublisherTally, SubscriberTally};
use crate::procfs::ProcessProbe;
use crate::progress::Progress;
use crate::workload::FlowPlan;
use crate::{BenchError, DEFAULT_OPEN_CONCURRENCY};

/// The shared state of one publisher's event.
#[derive(Debug)]
pub(crate) struct EventFlow {
    /// Deliveries so far, over all of the event's subscribers.
    pub(crate) received: Cell<u64>,
    /// The publisher is woken when `received` reaches this.
    pub(crate) wake_at: Cell<u64>,
    pub(crate) wake: Notify,
}

impl EventFlow {
    pub(crate) fn new() -> EventFlow {
        EventFlow {
            received: Cell::new(0),
            wake_at: Cell::new(u64::MAX),
            wake: Notify::new(),
        }
    }

    pub(crate) fn delivered(&self) {
        let received = self.received.get() + 1;
        self.received.set(received);
        if received >= self.wake_at.get() {
            self.wake_at.set(u64::MAX);
            self.wake.notify_one();
        }
    }
}

/// A name for this run's events that other runs on the same broker do not
/// share (process id and start time).
pub fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("r{:x}{:x}", std::process::id(), nanos)
}

/// The event of publisher `index` in run `run`.
pub fn event_name(run: &str, index: usize) -> String {
    format!("bench.{run}.e{index}")
}

/// Runs one message-flow workload; `probe` (the server process, when it is
/// local) measures the server's CPU time from the first send to the end.
pub async fn run_flow<D: Driver>(
    driver: &D,
    plan: &FlowPlan,
    probe: Option<&ProcessProbe>,
    progress: &Progress,
) -> Result<FlowOutcome, BenchError> {
    let run = run_id();
    let events: Vec<String> = (0..plan.publishers).map(|i| event_name(&run, i)).collect();

    progress.phase("subscribing");
    let opened = Cell::new(0);
    let total = plan.publishers * plan.subscribers;
    let (subscribers, failure) = open_many(total, DEFAULT_OPEN_CONCURRENCY, &opened, |i| {
        let publisher = i / plan.subscribers;
        let event = &events[publisher];
        async move { Ok((publisher, driver.subscriber(event).await?)) }
    })
    .await;
    if let Some(error) = failure {
        return Err(error);
    }

    progress.phase("connecting");
    let mut publishers = Vec::with_capacity(plan.publishers);
    for event in &events {
        publishers.push(driver.publisher(event).await?);
    }

    progress.phase("running");
    let flows: Vec<EventFlow> = (0..plan.publishers).map(|_| EventFlow::new()).collect();
    let delivered = Cell::new(0u64);
    let clock = Clock::new();
    let cpu_before = probe.map(ProcessProbe::cpu_each).transpose()?;
    // The load generator's own CPU time says whether it was the bottleneck.
    let this_process = ProcessProbe::new(std::process::id()).ok();
    let client_before = this_process.as_ref().and_then(|p| p.cpu().ok());
    let started = Instant::now();
    let publishing = join_all(
        publishers
            .into_iter()
            .zip(&flows)
            .map(|(publisher, flow)| publish(publisher, flow, plan, clock, started)),
    );
    let receiving = join_all(subscribers.into_iter().map(|(publisher, subscriber)| {
        receive(
            subscriber,
            publisher,
            &flows[publisher],
            plan,
            clock,
            &delivered,
        )
    }));
    let (publisher_tallies, subscriber_tallies) = progress
        .track(&delivered, join(publishing, receiving))
        .await;
    let server_cpu_each = match (probe, cpu_before) {
        (Some(probe), Some(before)) => Some(cpu_used(probe, &before)?),
        _ => None,
    };
    let server_cpu = server_cpu_each
        .as_ref()
        .map(|each| each.iter().map(|(_, cpu)| *cpu).sum());
    let client_cpu = match (&this_process, client_before) {
        (Some(this_process), Some(before)) => this_process.cpu().ok().map(|now| now.since(before)),
        _ => None,
    };
    progress.phase("done");
    let mut outcome =
        FlowOutcome::from_tallies(&publisher_tallies, &subscriber_tallies, started, server_cpu);
    outcome.client_cpu = client_cpu;
    if let Some(each) = server_cpu_each.filter(|each| each.len() > 1) {
        outcome.server_cpu_by_process = each;
    }
    Ok(outcome)
}

/// The CPU time each of `probe`'s processes used since `before` (its
/// [`ProcessProbe::cpu_each`] then), with the process's name.
fn cpu_used(
    probe: &ProcessProbe,
    before: &[crate::procfs::CpuTicks],
) -> Result<Vec<(String, Duration)>, BenchError> {
    Ok(probe
        .names()
        .into_iter()
        .zip(probe.cpu_each()?)
        .zip(before)
        .map(|((name, now), before)| (name.to_owned(), now.since(*before)))
        .collect())
}

/// How many messages are due by `elapsed` at `rate` per second (the first
/// one at once).
pub fn due_by(rate: u64, elapsed: Duration) -> u64 {
    let due = elapsed.as_secs_f64() * rate as f64;
    if due >= u64::MAX as f64 {
        u64::MAX
    } else {
        due as u64 + 1
    }
}

/// When message number `n` (1-based) is due at `rate` per second.
pub fn due_at(rate: u64, n: u64) -> Duration {
    Duration::from_secs_f64(n.saturating_sub(1) as f64 / rate.max(1) as f64)
}

/// Messages a publisher may still send with `window` messages in flight at
/// most, having sent `sent` to `subscribers` who received `received` in all.
pub fn window_room(window: u64, subscribers: u64, sent: u64, received: u64) -> u64 {
    let in_flight = sent
        .saturating_mul(subscribers)
        .saturating_sub(received)
        .div_ceil(subscribers.max(1));
    window.saturating_sub(in_flight)
}

async fn publish<P: Publisher>(
    mut publisher: P,
    flow: &EventFlow,
    plan: &FlowPlan,
    clock: Clock,
    started: Instant,
) -> PublisherTally {
    let mut sent = 0u64;
    let result = publish_all(&mut publisher, &mut sent, flow, plan, clock, started).await;
    PublisherTally {
        sent,
        error: result.err().map(|e| e.to_string()),
    }
}

async fn publish_all<P: Publisher>(
    publisher: &mut P,
    sent: &mut u64,
    flow: &EventFlow,
    plan: &FlowPlan,
    clock: Clock,
    started: Instant,
) -> Result<(), BenchError> {
    let subscribers = plan.subscribers as u64;
    let mut payload = payload_template(plan.payload_bytes);
    while *sent < plan.messages {
        if plan
            .max_duration
            .is_some_and(|max| started.elapsed() >= max)
        {
            break;
        }
        let mut batch = (plan.messages - *sent).min(plan.batch as u64);
        if let Some(rate) = plan.rate {
            let due = due_by(rate, started.elapsed());
            if due <= *sent {
                tokio::time::sleep_until((started + due_at(rate, *sent + 1)).into()).await;
                continue;
            }
            batch = batch.min(due - *sent);
        }
        if let Some(window) = plan.window {
            let room = window_room(window, subscribers, *sent, flow.received.get());
            if room == 0 {
                publisher.flush().await?;
                wait_for_room(flow, window, subscribers, *sent, plan.drain_timeout).await?;
                continue;
            }
            batch = batch.min(room);
        }
        let sending = async {
            for _ in 0..batch {
                clock.stamp(&mut payload);
                publisher.feed(&payload).await?;
                *sent += 1;
            }
            publisher.flush().await
        };
        tokio::time::timeout(plan.drain_timeout, sending)
            .await
            .map_err(|_| {
                BenchError::timeout(plan.drain_timeout, "the target to accept more messages")
            })??;
        tokio::task::yield_now().await;
    }
    publisher.finish().await
}

/// Waits (the publisher having flushed) until half of a full window of
/// `window` messages has been received by the event's `subscribers`;
/// an error after `timeout` without that.
pub(crate) async fn wait_for_room(
    flow: &EventFlow,
    window: u64,
    subscribers: u64,
    sent: u64,
    timeout: Duration,
) -> Result<(), BenchError> {
    let resume_at = sent.saturating_sub(window / 2).saturating_mul(subscribers);
    flow.wake_at.set(resume_at);
    let woken = tokio::time::timeout(timeout, flow.wake.notified()).await;
    flow.wake_at.set(u64::MAX);
    if woken.is_err() {
        return Err(BenchError::timeout(
            timeout,
            format!("receipts while {window} messages were in flight; stopped publishing"),
        ));
    }
    Ok(())
}

async fn receive<S: Subscriber>(
    mut subscriber: S,
    publisher: usize,
    flow: &EventFlow,
    plan: &FlowPlan,
    clock: Clock,
    delivered: &Cell<u64>,
) -> SubscriberTally {
    let mut tally = SubscriberTally {
        publisher,
        ..SubscriberTally::default()
    };
    let mut last_activity = Instant::now();
    let idle = tokio::time::sleep_until((last_activity + plan.drain_timeout).into());
    let mut idle = std::pin::pin!(idle);
    while tally.received < plan.messages {
        tokio::select! {
            biased;
            next = subscriber.next_payload() => match next {
                Ok(Some(payload)) => {
                    let now = Instant::now();
                    if let Some(age) = clock.age(&payload) {
                        tally.latency.record(age);
                    }
                    tally.received += 1;
                    tally.last_receipt = Some(now);
                    last_activity = now;
                    delivered.set(delivered.get() + 1);
                    flow.delivered();
                }
                Ok(None) => {
                    tally.error = Some("a subscriber's connection closed".to_owned());
                    break;
                }
                Err(error) => {
                    tally.error = Some(error.to_string());
                    break;
                }
            },
            () = &mut idle => {
                // Re-armed lazily: only when it fires, not per message.
                let quiet_until = last_activity + plan.drain_timeout;
                if quiet_until > Instant::now() {
                    idle.as_mut().reset(quiet_until.into());
                } else {
                    break;
                }
            }
        }
    }
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_arithmetic() {
        assert_eq!(due_by(10_000, Duration::ZERO), 1, "the first one at once");
        assert_eq!(due_by(10_000, Duration::from_millis(1)), 11);
        assert_eq!(due_by(3, Duration::from_millis(999)), 3);
        assert_eq!(due_at(10_000, 1), Duration::ZERO);
        assert_eq!(due_at(10_000, 2), Duration::from_micros(100));
        assert_eq!(due_at(4, 3), Duration::from_millis(500));
        // 200 messages at 2,000/s are all due within 100 ms.
        assert!(due_at(2_000, 200) < Duration::from_millis(100));
    }

    #[test]
    fn window_counts_messages_not_yet_received_by_every_subscriber() {
        // 10 sent to 3 subscribers, 24 of 30 deliveries done: 2 in flight.
        assert_eq!(window_room(5, 3, 10, 24), 3);
        assert_eq!(window_room(5, 3, 10, 30), 5);
        assert_eq!(window_room(2, 3, 10, 24), 0);
        assert_eq!(window_room(5, 1, 0, 0), 5);
        // More receipts than due never underflows.
        assert_eq!(window_room(5, 1, 1, 9), 5);
    }

    #[test]
    fn event_names_are_valid_herald_events() {
        let run = run_id();
        let name = event_name(&run, 7);
        herald_protocol::names::validate_event(&name).expect("a valid event name");
        assert!(name.ends_with(".e7"));
    }

    #[test]
    fn the_publisher_is_woken_at_its_mark() {
        let flow = EventFlow::new();
        flow.wake_at.set(2);
        flow.delivered();
        assert_eq!(flow.wake_at.get(), 2, "not yet");
        flow.delivered();
        assert_eq!(flow.wake_at.get(), u64::MAX, "woken and disarmed");
        assert_eq!(flow.received.get(), 2);
    }
}
