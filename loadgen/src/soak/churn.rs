//! Connection churn: clients that arrive at a steady rate, connect,
//! subscribe to the churn event, receive a few events in order and leave
//! (a polite close), all the time the soak runs.
//!
//! A client that cannot connect or subscribe, misses an event between its
//! first and last, or does not get its events in time, is an error (a gap
//! is also counted as loss).

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use crate::BenchError;
use crate::clock::Clock;
use crate::driver::{Driver, Subscriber};
use crate::flow::due_at;
use crate::herald::HeraldDriver;
use crate::soak::plan::{MAX_CHURN_ALIVE, SoakPlan};
use crate::soak::streams::{CHECK_EVERY, count_payload, read_seq};
use crate::soak::tally::{SequenceCheck, Tally};

/// How long one churn client may take to receive its events: the time
/// they take to be published, plus the drain timeout.
pub fn churn_deadline(plan: &SoakPlan) -> Duration {
    let publishing = plan.churn_events as f64 / plan.churn_event_rate.max(1) as f64;
    plan.drain_timeout + Duration::from_secs_f64(publishing)
}

/// Starts churn clients on `event` at the plan's rate until the load
/// stops, then waits for those still alive.
pub(crate) async fn churn(
    driver: &HeraldDriver,
    event: &str,
    plan: &SoakPlan,
    tally: &Tally,
    clock: Clock,
) {
    let started = Instant::now();
    let mut clients = FuturesUnordered::new();
    let mut arrivals = 0u64;
    let mut tick = tokio::time::interval(CHECK_EVERY);
    loop {
        let stopping = tally.stopping();
        if stopping && clients.is_empty() {
            break;
        }
        let next_arrival = started + due_at(plan.churn_rate, arrivals + 1);
        tokio::select! {
            biased;
            Some(result) = clients.next(), if !clients.is_empty() => {
                tally.churn_alive.set(clients.len() as u64);
                match result {
                    Ok(()) => Tally::add(&tally.churned, 1),
                    Err(error) => tally.error(format!("churn: {error}")),
                }
            }
            () = tokio::time::sleep_until(next_arrival.into()), if !stopping => {
                arrivals += 1;
                if clients.len() >= MAX_CHURN_ALIVE {
                    tally.error(format!(
                        "churn: {MAX_CHURN_ALIVE} clients alive at once, none started (the \
                         broker or the load generator is far behind)"
                    ));
                } else {
                    clients.push(churn_client(driver, event, plan, tally, clock));
                    tally.churn_alive.set(clients.len() as u64);
                }
            }
            _ = tick.tick() => {}
        }
    }
    tally.churn_alive.set(0);
}

/// One churn client's life.
async fn churn_client(
    driver: &HeraldDriver,
    event: &str,
    plan: &SoakPlan,
    tally: &Tally,
    clock: Clock,
) -> Result<(), BenchError> {
    let mut subscriber = driver.idle_subscriber(event).await?;
    let deadline = churn_deadline(plan);
    let mut received = 0u64;
    let receiving = async {
        let mut check: Option<SequenceCheck> = None;
        while received < plan.churn_events {
            let Some(payload) = subscriber.next_payload().await? else {
                return Err(BenchError::target(
                    "herald",
                    "the broker closed a churn client's connection",
                ));
            };
            received += 1;
            // The first event sets where this client's sequence starts.
            let check = check.get_or_insert_with(|| {
                SequenceCheck::starting_at(read_seq(&payload).unwrap_or_default())
            });
            count_payload(&payload, check, "churn", tally, clock);
        }
        Ok(())
    };
    let outcome = tokio::time::timeout(deadline, receiving).await;
    match outcome {
        Ok(result) => result?,
        Err(_) => {
            return Err(BenchError::timeout(
                deadline,
                format!(
                    "a churn client's {} events (got {received})",
                    plan.churn_events
                ),
            ));
        }
    }
    subscriber.close().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_covers_publishing_and_draining() {
        let plan = SoakPlan {
            churn_events: 10,
            churn_event_rate: 5,
            drain_timeout: Duration::from_secs(1),
            ..SoakPlan::default()
        };
        assert_eq!(churn_deadline(&plan), Duration::from_secs(3));
    }
}
