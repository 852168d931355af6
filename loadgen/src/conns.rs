//! The `conns` workload: many idle connections, each subscribed to its own
//! event. Reports the server's resident-memory growth per connection and the
//! time to open them all (every subscription confirmed).

use std::cell::Cell;
use std::time::Instant;

use crate::BenchError;
use crate::driver::Driver;
use crate::flow::{event_name, run_id};
use crate::open::open_many;
use crate::outcome::ConnsOutcome;
use crate::procfs::ProcessProbe;
use crate::progress::Progress;
use crate::workload::ConnsPlan;

/// Opens `plan.conns` idle subscribed connections, measures, then closes
/// them. `probe` (the server process, when it is local) gives the memory
/// and CPU figures. Opening stops at the first failure, which is reported
/// in the outcome's errors with the figures of what did open.
pub async fn run_conns<D: Driver>(
    driver: &D,
    plan: &ConnsPlan,
    probe: Option<&ProcessProbe>,
    progress: &Progress,
) -> Result<ConnsOutcome, BenchError> {
    let run = run_id();
    let events: Vec<String> = (0..plan.conns).map(|i| event_name(&run, i)).collect();
    let rss_before_kib = probe.map(ProcessProbe::rss_kib).transpose()?;
    let cpu_before = probe.map(ProcessProbe::cpu).transpose()?;
    progress.phase("opening");
    let opened = Cell::new(0);
    let started = Instant::now();
    let opening = open_many(plan.conns, plan.concurrency, &opened, |i| {
        driver.idle_subscriber(&events[i])
    });
    let (connections, failure) = progress.track(&opened, opening).await;
    let open_time = started.elapsed();
    let rss_after_kib = probe.map(ProcessProbe::rss_kib).transpose()?;
    let server_cpu = match (probe, cpu_before) {
        (Some(probe), Some(before)) => Some(probe.cpu()?.since(before)),
        _ => None,
    };
    progress.phase("closing");
    let outcome = ConnsOutcome {
        requested: plan.conns,
        opened: connections.len(),
        open_time,
        rss_before_kib,
        rss_after_kib,
        server_cpu,
        errors: failure
            .map(|error| {
                vec![format!(
                    "opening stopped after {} of {} connections: {error}",
                    connections.len(),
                    plan.conns
                )]
            })
            .unwrap_or_default(),
    };
    drop(connections);
    progress.phase("done");
    Ok(outcome)
}
