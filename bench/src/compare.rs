//! `herald-bench compare`: every selected workload against every selected
//! target, each on a freshly started server (so CPU, memory and
//! subscriptions start clean), then the table, the ratios of Herald to each
//! peer and the targets.

use std::net::SocketAddr;
use std::path::Path;

use herald_loadgen::herald::{DEFAULT_NAMESPACE, HeraldDriver};
use herald_loadgen::procfs::ProcessProbe;
use herald_loadgen::workload::{DEFAULT_BATCH, DEFAULT_DRAIN_TIMEOUT, DEFAULT_WINDOW, Overrides};
use herald_loadgen::{BenchError, Plan, Record, Workload, measure};

use crate::floor_client::FloorDriver;
use crate::nats::NatsDriver;
use crate::redis_target::RedisDriver;
use crate::rpc::RoundTrip;
use crate::sdk::SdkDriver;
use crate::server::{ServerProcess, free_local_addr};
use crate::socketio_client::SocketIoDriver;
use crate::targets::{Programs, Target};

/// What to compare, and how.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// The targets, in order.
    pub targets: Vec<Target>,
    /// The workloads, in order.
    pub workloads: Vec<Workload>,
    /// The round-trip workloads, run for the targets measured through an
    /// application client (`herald-sdk`, `nats`) after the others.
    pub round_trips: Vec<RoundTrip>,
    /// Scale and other changes to the workloads' defaults.
    pub overrides: Overrides,
    /// The CPU servers are pinned to, if any.
    pub server_cpu: Option<usize>,
    /// Whether to draw progress bars.
    pub progress: bool,
}

/// The results of a comparison, and the server command lines used.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    /// One record per target and workload (skipped ones included).
    pub records: Vec<Record>,
    /// `target: command line` of each server started.
    pub commands: Vec<String>,
}

impl Comparison {
    /// Records one run's outcome (its error, if it failed) and says how it
    /// went on stderr.
    fn push(&mut self, target: Target, workload: &str, result: Result<Record, String>) {
        let record = result.unwrap_or_else(|error| Record::failed(target.name(), workload, &error));
        eprintln!("{}", summary(&record));
        self.records.push(record);
    }
}

/// Runs the comparison. A target that is not installed is recorded as
/// skipped; a run that fails is recorded with its error and no figures.
pub async fn compare(options: &CompareOptions, programs: &Programs, log_dir: &Path) -> Comparison {
    let mut comparison = Comparison::default();
    for &target in &options.targets {
        for &workload in &options.workloads {
            let result = run_one(
                target,
                workload,
                options,
                programs,
                log_dir,
                &mut comparison.commands,
            )
            .await;
            comparison.push(target, workload.name(), result);
        }
        if !matches!(target, Target::HeraldSdk | Target::Nats) {
            continue;
        }
        for &kind in &options.round_trips {
            let result = run_round_trip(
                target,
                kind,
                options,
                programs,
                log_dir,
                &mut comparison.commands,
            )
            .await;
            comparison.push(target, kind.name(), result);
        }
    }
    comparison
}

/// Starts `target`'s server for one workload; `Err(Ok(record))` when the
/// target is skipped (not installed, not built).
async fn start_server(
    target: Target,
    workload: &str,
    options: &CompareOptions,
    programs: &Programs,
    log_dir: &Path,
    commands: &mut Vec<String>,
) -> Result<(ServerProcess, SocketAddr), Result<Record, String>> {
    let addr = free_local_addr().map_err(|e| Err(e.to_string()))?;
    let launch = match programs.launch(target, addr, &[]) {
        Ok(launch) => launch,
        Err(reason) => return Err(Ok(Record::skipped(target.name(), workload, &reason))),
    };
    let command = format!("{target}: {}", launch.display());
    if !commands
        .iter()
        .any(|c| c.split(' ').next() == command.split(' ').next())
    {
        commands.push(command);
    }
    let server = ServerProcess::start(target.name(), &launch, addr, options.server_cpu, log_dir)
        .await
        .map_err(|e| Err(e.to_string()))?;
    Ok((server, addr))
}

/// One round-trip workload against a fresh server of `target`.
async fn run_round_trip(
    target: Target,
    kind: RoundTrip,
    options: &CompareOptions,
    programs: &Programs,
    log_dir: &Path,
    commands: &mut Vec<String>,
) -> Result<Record, String> {
    let (mut server, addr) =
        match start_server(target, kind.name(), options, programs, log_dir, commands).await {
            Ok(started) => started,
            Err(settled) => return settled,
        };
    let scale = options.overrides.scale.unwrap_or(1.0);
    let result = if target == Target::Nats {
        crate::rpc::run_nats(kind, addr, server.probe(), scale).await
    } else {
        crate::rpc::run_sdk(kind, addr, server.probe(), scale).await
    };
    let crashed = server.crashed();
    server.stop().await;
    settle(result, crashed)
}

/// One line saying how a run went, for stderr while the comparison runs.
fn summary(record: &Record) -> String {
    let head = format!("{} {}", record.target, record.workload);
    if let Some(reason) = &record.skipped {
        return format!("{head}: skipped ({reason})");
    }
    if record.msgs_per_sec.is_none() && record.kib_per_conn.is_none() && !record.errors.is_empty() {
        return format!("{head}: FAILED: {}", record.errors.join("; "));
    }
    let mut line = format!("{head}: done");
    if let Some(loss) = record.loss {
        line.push_str(&format!(", loss {loss}"));
    }
    for error in &record.errors {
        line.push_str(&format!("; {error}"));
    }
    line
}

async fn run_one(
    target: Target,
    workload: Workload,
    options: &CompareOptions,
    programs: &Programs,
    log_dir: &Path,
    commands: &mut Vec<String>,
) -> Result<Record, String> {
    let plan = workload
        .plan(&options.overrides)
        .map_err(|e| e.to_string())?;
    if matches!(target, Target::HeraldCluster | Target::HeraldClusterHistory) {
        return crate::cluster::run(
            (target, workload),
            &plan,
            options.server_cpu,
            programs,
            log_dir,
            options.progress,
            commands,
        )
        .await;
    }
    let (mut server, addr) = match start_server(
        target,
        workload.name(),
        options,
        programs,
        log_dir,
        commands,
    )
    .await
    {
        Ok(started) => started,
        Err(settled) => return settled,
    };
    let result = measure_on(
        target,
        addr,
        workload,
        &plan,
        server.probe(),
        options.progress,
    )
    .await;
    let crashed = server.crashed();
    server.stop().await;
    settle(result, crashed)
}

/// A workload's outcome together with what the server's crash (if it
/// crashed meanwhile) says: the record keeps the crash as an error.
pub(crate) fn settle(
    result: Result<Record, impl std::fmt::Display>,
    crashed: Option<String>,
) -> Result<Record, String> {
    match (result, crashed) {
        (Ok(mut record), Some(crash)) => {
            record.errors.push(crash);
            Ok(record)
        }
        (Ok(record), None) => Ok(record),
        (Err(error), Some(crash)) => Err(format!("{error}; {crash}")),
        (Err(error), None) => Err(error.to_string()),
    }
}

/// Runs `workload` against the `target` server listening on `addr`. The
/// cluster target has two nodes: it is measured with
/// [`crate::cluster::measure_cross_node`], and refused here.
pub async fn measure_on(
    target: Target,
    addr: SocketAddr,
    workload: Workload,
    plan: &Plan,
    probe: &ProcessProbe,
    progress: bool,
) -> Result<Record, BenchError> {
    let probe = Some(probe);
    match target {
        Target::Herald => {
            let driver = HeraldDriver::new(&format!("ws://{addr}"), DEFAULT_NAMESPACE)?;
            measure(&driver, workload, plan, probe, progress).await
        }
        Target::HeraldWss => {
            let tls = crate::wss::client_config()
                .map_err(|e| BenchError::target(crate::wss::TARGET, e))?;
            let driver = HeraldDriver::new(&format!("wss://{addr}"), DEFAULT_NAMESPACE)?
                .with_tls(tls)
                .named(crate::wss::TARGET);
            measure(&driver, workload, plan, probe, progress).await
        }
        Target::HeraldAuth => {
            let token =
                crate::auth::token().map_err(|e| BenchError::target(crate::auth::TARGET, e))?;
            let driver = HeraldDriver::new(&format!("ws://{addr}"), DEFAULT_NAMESPACE)?
                .with_token(token)
                .named(crate::auth::TARGET);
            measure(&driver, workload, plan, probe, progress).await
        }
        Target::HeraldHistory => {
            let driver = HeraldDriver::new(&format!("ws://{addr}"), DEFAULT_NAMESPACE)?
                .named(crate::history::TARGET);
            measure(&driver, workload, plan, probe, progress).await
        }
        Target::HeraldSdk => measure(&SdkDriver::new(addr)?, workload, plan, probe, progress).await,
        Target::HeraldCluster | Target::HeraldClusterHistory => Err(BenchError::target(
            target.name(),
            "a cluster has two nodes: measure it with cluster::measure_cross_node",
        )),
        Target::Nats => measure(&NatsDriver::new(addr), workload, plan, probe, progress).await,
        Target::Redis => measure(&RedisDriver::new(addr)?, workload, plan, probe, progress).await,
        Target::HeraldSocketio => {
            measure(
                &SocketIoDriver::herald(addr),
                workload,
                plan,
                probe,
                progress,
            )
            .await
        }
        Target::Socketioxide => {
            measure(&SocketIoDriver::new(addr), workload, plan, probe, progress).await
        }
        Target::Floor => measure(&FloorDriver::new(addr), workload, plan, probe, progress).await,
    }
}

/// The report printed after a comparison: how it ran, the table, the
/// ratios and the targets.
pub fn report(comparison: &Comparison, options: &CompareOptions, machine: &str) -> String {
    let records = &comparison.records;
    let mut out = String::new();
    out.push_str(&format!("machine: {machine}\n"));
    let pinning = match options.server_cpu {
        Some(cpu) => format!("each server pinned to CPU {cpu}, the load generator to the other"),
        None => "NOT pinned (figures are less comparable)".to_owned(),
    };
    let scale = options.overrides.scale.unwrap_or(1.0);
    out.push_str(&format!(
        "setup: loopback; {pinning}; every server restarted for every workload; scale {scale}; \
         publishers fire-and-forget, at most {DEFAULT_WINDOW} messages in flight, flush every \
         {DEFAULT_BATCH}; receipts awaited until {DEFAULT_DRAIN_TIMEOUT:?} after the last\n\n"
    ));
    out.push_str(&herald_loadgen::report::render_table(records));
    let ratios = crate::verdict::ratios_table(records);
    if !ratios.is_empty() {
        out.push_str("\nherald ÷ peer (above 1 is better for msgs/s and msgs/CPU-s, below 1 for p50 and KiB/conn):\n");
        out.push_str(&ratios);
    }
    let socketio = crate::verdict::socketio_ratios_table(records);
    if !socketio.is_empty() {
        out.push_str(&format!(
            "\n{} ÷ Socket.IO server (same client; above 1 is better for msgs/s and msgs/CPU-s, below 1 for p50 and KiB/conn):\n",
            crate::socketio_client::HERALD_TARGET
        ));
        out.push_str(&socketio);
    }
    let sdk = crate::verdict::sdk_ratios_table(records);
    if !sdk.is_empty() {
        out.push_str(&format!(
            "\n{} ÷ {} (application clients: herald-client against async-nats; above 1 is better \
             for msgs/s and msgs/CPU-s, below 1 for p50):\n",
            crate::sdk::TARGET,
            crate::nats::TARGET
        ));
        out.push_str(&sdk);
    }
    let variants = crate::verdict::variant_ratios(records);
    if !variants.is_empty() {
        out.push_str(&format!(
            "\n{} with a feature on ÷ {} (same driver; above 1 is better for msgs/s and msgs/CPU-s):\n",
            crate::HERALD,
            crate::HERALD
        ));
        out.push_str(&variants);
    }
    if let Some(line) = crate::verdict::cluster_ratios(records) {
        out.push_str(&format!("\n{line}\n"));
    }
    out.push_str("\ntargets:\n");
    for check in crate::verdict::checks(records) {
        out.push_str(&format!("{check}\n"));
    }
    if !comparison.commands.is_empty() {
        out.push_str("\nservers:\n");
        for command in &comparison.commands {
            out.push_str(&format!("  {command}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_say_what_happened() {
        let skipped = Record::skipped("nats", "fanout", "not installed");
        assert_eq!(summary(&skipped), "nats fanout: skipped (not installed)");
        let failed = Record::failed("redis", "pairs", "refused");
        assert_eq!(summary(&failed), "redis pairs: FAILED: refused");
        let mut done = Record::failed("herald", "fanout", "note");
        done.msgs_per_sec = Some(1.0);
        done.loss = Some(0);
        assert_eq!(summary(&done), "herald fanout: done, loss 0; note");
    }
}
