//! `herald-bench scale`: many idle subscribed connections on one Herald
//! broker (100,000 by default): time to open them and the broker's memory.
//!
//! The client sockets are spread over several 127.0.0.x source addresses
//! (all of 127.0.0.0/8 is local on Linux), because one source address has
//! only the ephemeral port range (about 28,000 ports) to connect from.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use anyhow::{Context, bail};
use herald_loadgen::Record;
use herald_loadgen::conns::run_conns;
use herald_loadgen::herald::{DEFAULT_NAMESPACE, HeraldDriver};
use herald_loadgen::procfs::open_files_limit;
use herald_loadgen::progress::Progress;
use herald_loadgen::report::grouped;
use herald_loadgen::workload::ConnsPlan;

use crate::server::{ServerProcess, free_local_addr};
use crate::targets::{Programs, Target};

/// Connections per source address (below the ~28,000 ephemeral ports).
pub const CONNS_PER_SOURCE: usize = 25_000;
/// Open files needed beyond one per connection.
pub const SPARE_FILES: u64 = 512;

/// What the scale run does.
#[derive(Debug, Clone)]
pub struct ScaleOptions {
    /// Idle connections to open.
    pub conns: usize,
    /// Source addresses to spread them over (default: one per 25,000).
    pub source_ips: Option<usize>,
    /// Connections opened at the same time.
    pub concurrency: usize,
    /// The CPU the broker is pinned to, if any.
    pub server_cpu: Option<usize>,
    /// Whether to draw a progress bar.
    pub progress: bool,
}

/// The broker settings of the scale run: room for every connection, and
/// heartbeats slow enough that connections opened first are not closed
/// as silent while the rest open (the clients do not read while idle).
pub fn broker_settings(conns: usize) -> Vec<String> {
    vec![
        format!("server.max_connections={}", conns + 100),
        "server.heartbeat_interval=60s".to_owned(),
        "server.heartbeat_timeout=15m".to_owned(),
    ]
}

/// The source addresses for `conns` connections: 127.0.0.1, .2, ...
pub fn source_addresses(conns: usize, wanted: Option<usize>) -> Vec<IpAddr> {
    let count = wanted
        .unwrap_or_else(|| conns.div_ceil(CONNS_PER_SOURCE))
        .clamp(1, 254);
    (1..=count)
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i as u8)))
        .collect()
}

/// Refuses to start when the open-files limit cannot hold the connections.
pub fn check_open_files(conns: usize, limit: u64) -> anyhow::Result<()> {
    let needed = conns as u64 + SPARE_FILES;
    if limit < needed {
        bail!(
            "the open-files limit (ulimit -n) is {limit}, but {} connections need at least \
             {needed} here and in the broker. Run the scale run through bench/scale.sh, which \
             raises the limit (ulimit -n 1048576) first; where the hard limit is lower, use \
             --conns {}",
            grouped(conns as f64),
            limit.saturating_sub(SPARE_FILES)
        );
    }
    Ok(())
}

/// Runs the scale run and returns its record (workload `scale`).
pub async fn scale(
    options: &ScaleOptions,
    programs: &Programs,
    log_dir: &Path,
) -> anyhow::Result<(Record, String)> {
    check_open_files(options.conns, open_files_limit()?)?;
    let addr = free_local_addr()?;
    let settings = broker_settings(options.conns);
    let launch = programs
        .launch(Target::Herald, addr, &settings)
        .map_err(anyhow::Error::msg)?;
    let sources = source_addresses(options.conns, options.source_ips);
    let server = ServerProcess::start(
        Target::Herald.name(),
        &launch,
        addr,
        options.server_cpu,
        log_dir,
    )
    .await
    .context("starting the broker")?;
    let driver = HeraldDriver::new(&format!("ws://{addr}"), DEFAULT_NAMESPACE)?
        .with_sources(sources.clone());
    let plan = ConnsPlan {
        conns: options.conns,
        concurrency: options.concurrency,
    };
    let progress = Progress::new(
        "herald scale",
        options.conns as u64,
        "conns",
        options.progress,
    );
    let outcome = run_conns(&driver, &plan, Some(server.probe()), &progress).await;
    progress.finish();
    server.stop().await;
    let outcome = outcome?;
    let record = Record::conns(Target::Herald.name(), "scale", &outcome);
    let mib = |kib: Option<u64>| {
        kib.map_or("?".to_owned(), |kib| {
            format!("{:.1} MiB", kib as f64 / 1024.0)
        })
    };
    let per_second = herald_loadgen::outcome::per_second(outcome.opened as u64, outcome.open_time)
        .map_or("-".to_owned(), grouped);
    let summary = format!(
        "opened {} of {} idle subscribed connections in {:.2} s ({per_second} conns/s) from {} \
         source address(es)\nbroker RSS {} -> {} ({} KiB per connection)\nbroker: {}\n",
        grouped(outcome.opened as f64),
        grouped(options.conns as f64),
        outcome.open_time.as_secs_f64(),
        sources.len(),
        mib(outcome.rss_before_kib),
        mib(outcome.rss_after_kib),
        outcome
            .kib_per_conn()
            .map_or("?".to_owned(), |k| format!("{k:.2}")),
        launch.display(),
    );
    Ok((record, summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_cover_the_connections() {
        assert_eq!(source_addresses(10, None).len(), 1);
        assert_eq!(source_addresses(100_000, None).len(), 4);
        let three = source_addresses(5, Some(3));
        assert_eq!(three[2], IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)));
        assert_eq!(source_addresses(5, Some(1000)).len(), 254);
        assert_eq!(source_addresses(5, Some(0)).len(), 1);
    }

    #[test]
    fn a_low_open_files_limit_is_refused_with_the_way_out() {
        let error = check_open_files(100_000, 20_000)
            .expect_err("too low")
            .to_string();
        assert!(error.contains("ulimit -n) is 20000"), "{error}");
        assert!(error.contains("bench/scale.sh"), "{error}");
        assert!(error.contains("--conns 19488"), "{error}");
        check_open_files(10_000, 20_000).expect("enough");
    }

    #[test]
    fn the_broker_has_room_for_every_connection() {
        assert_eq!(broker_settings(1000)[0], "server.max_connections=1100");
    }
}
