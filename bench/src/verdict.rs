//! Herald against each peer: the ratios table and the targets as
//! PASS / FAIL / SKIP lines. A missing figure (a peer not installed, a run
//! that failed) is SKIP for a peer and FAIL for Herald, never PASS. The
//! two-node cluster is not a peer: it gets a line of its own, its figures
//! over the single node's. Herald's Socket.IO front end is compared with
//! the Socket.IO servers only (same client, same dialect of workloads),
//! in a table and checks of its own.

use std::fmt;

use herald_loadgen::Record;
use herald_loadgen::report::grouped;

use crate::HERALD;
use crate::cluster::{HISTORY_TARGET as CLUSTER_HISTORY, TARGET as CLUSTER};
use crate::nats::TARGET as NATS;
use crate::sdk::TARGET as SDK;
use crate::socketio_client::{HERALD_TARGET as HERALD_SIO, TARGET as SOCKETIOXIDE};

/// The Socket.IO servers Herald's Socket.IO front end is compared with.
const SOCKETIO_PEERS: [&str; 1] = [SOCKETIOXIDE];
/// Herald itself with a feature on: compared with plain Herald, never a
/// peer.
const HERALD_VARIANTS: [&str; 3] = [
    crate::wss::TARGET,
    crate::auth::TARGET,
    crate::history::TARGET,
];

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The target is met.
    Pass,
    /// The target is missed, or Herald's figure is missing.
    Fail,
    /// The peer's figure is missing: nothing to compare with.
    Skip,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Skip => "SKIP",
        })
    }
}

/// One checked target.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// What is checked.
    pub name: String,
    /// The outcome.
    pub verdict: Verdict,
    /// The figures behind it.
    pub detail: String,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}  {}: {}", self.verdict, self.name, self.detail)
    }
}

/// A figure of a record.
type Figure = fn(&Record) -> Option<f64>;

fn msgs_per_sec(record: &Record) -> Option<f64> {
    record.msgs_per_sec
}

fn msgs_per_cpu(record: &Record) -> Option<f64> {
    record.msgs_per_server_cpu_sec
}

fn p50(record: &Record) -> Option<f64> {
    record.p50_us.map(|v| v as f64)
}

fn kib_per_conn(record: &Record) -> Option<f64> {
    record.kib_per_conn
}

/// Deliveries (or completed calls) per CPU-second of the load generator:
/// the client's cost, what the SDK is judged on.
fn msgs_per_client_cpu(record: &Record) -> Option<f64> {
    match (record.delivered, record.client_cpu_secs) {
        (Some(delivered), Some(cpu)) if cpu > 0.0 => Some(delivered as f64 / cpu),
        _ => None,
    }
}

fn figure(records: &[Record], target: &str, workload: &str, figure: Figure) -> Option<f64> {
    match lookup(records, target, workload, figure) {
        Found::Value(value) => Some(value),
        _ => None,
    }
}

/// What the records hold for one target, workload and figure.
enum Found {
    /// The workload did not run for that target.
    NotRun,
    /// The target was skipped (not installed, not built), and why.
    Skipped(String),
    /// It ran but has no such figure (it failed).
    Missing,
    /// The figure.
    Value(f64),
}

fn lookup(records: &[Record], target: &str, workload: &str, figure: Figure) -> Found {
    let Some(record) = records
        .iter()
        .find(|r| r.target == target && r.workload == workload)
    else {
        return Found::NotRun;
    };
    if let Some(reason) = &record.skipped {
        return Found::Skipped(reason.clone());
    }
    figure(record).map_or(Found::Missing, Found::Value)
}

/// The figure of `subject` (a Herald target), or the verdict when there is
/// none: a workload that was not selected is SKIP; Herald skipped or
/// failed is FAIL.
fn herald_figure(found: Found, subject: &str, workload: &str) -> Result<f64, (Verdict, String)> {
    match found {
        Found::Value(value) => Ok(value),
        Found::NotRun => Err((Verdict::Skip, format!("{workload} was not run"))),
        Found::Skipped(reason) => Err((Verdict::Fail, format!("{subject} was skipped: {reason}"))),
        Found::Missing => Err((
            Verdict::Fail,
            format!("no figure for {subject} (the run failed)"),
        )),
    }
}

/// A check's name: the native broker's checks name no subject.
fn check_name(subject: &str, what: &str) -> String {
    if subject == HERALD {
        what.to_owned()
    } else {
        format!("{subject} {what}")
    }
}

/// "The subject's figure ≥ factor × the peer's" (or ≤, when `at_most`),
/// `versus` being (subject, peer).
fn relative(
    records: &[Record],
    workload: &str,
    label: &str,
    get: Figure,
    (subject, peer): (&str, &str),
    factor: f64,
    at_most: bool,
) -> Check {
    let relation = if at_most { "≤" } else { "≥" };
    let factor_text = if factor == 1.0 {
        String::new()
    } else {
        format!("{factor}× ")
    };
    let name = check_name(
        subject,
        &format!("{workload} {label} {relation} {factor_text}{peer}"),
    );
    let herald = herald_figure(lookup(records, subject, workload, get), subject, workload);
    let (verdict, detail) = match herald {
        Err(missing) => missing,
        Ok(h) => match lookup(records, peer, workload, get) {
            Found::Value(p) => {
                let ok = if at_most {
                    h <= factor * p
                } else {
                    h >= factor * p
                };
                let ratio = if p > 0.0 {
                    format!("{:.2}×", h / p)
                } else {
                    "n/a".to_owned()
                };
                (
                    if ok { Verdict::Pass } else { Verdict::Fail },
                    format!(
                        "{subject} {} vs {peer} {} ({ratio})",
                        grouped(h),
                        grouped(p)
                    ),
                )
            }
            Found::Skipped(reason) => (Verdict::Skip, format!("{peer} skipped: {reason}")),
            Found::NotRun => (Verdict::Skip, format!("{peer} was not run")),
            Found::Missing => (
                Verdict::Skip,
                format!("no figure for {peer} (its run failed)"),
            ),
        },
    };
    Check {
        name,
        verdict,
        detail,
    }
}

/// The targets of the benchmark issue, checked against `records`; those of
/// Herald's Socket.IO front end when it was measured.
pub fn checks(records: &[Record]) -> Vec<Check> {
    let native = |workload, label, get, peer, factor, at_most| {
        relative(
            records,
            workload,
            label,
            get,
            (HERALD, peer),
            factor,
            at_most,
        )
    };
    let mut checks = vec![
        native(
            "fanout",
            "msgs/server-CPU-s",
            msgs_per_cpu,
            "nats",
            2.0,
            false,
        ),
        native(
            "fanout",
            "msgs/server-CPU-s",
            msgs_per_cpu,
            "floor",
            0.8,
            false,
        ),
        native("pairs", "msgs/s", msgs_per_sec, "nats", 1.3, false),
        native("latency", "p50", p50, "nats", 1.0, true),
        conns_per_connection(records, HERALD),
    ];
    if records.iter().any(|r| r.target == HERALD_SIO) {
        checks.push(relative(
            records,
            "fanout",
            "msgs/server-CPU-s",
            msgs_per_cpu,
            (HERALD_SIO, SOCKETIOXIDE),
            4.0,
            false,
        ));
        checks.push(conns_per_connection(records, HERALD_SIO));
    }
    if records.iter().any(|r| r.target == SDK) {
        for workload in ["fanout", "pairs"] {
            checks.push(relative(
                records,
                workload,
                "msgs/s",
                msgs_per_sec,
                (SDK, NATS),
                1.0,
                false,
            ));
        }
    }
    checks.push(no_loss(records));
    checks
}

/// "`subject`'s broker grows by at most 8 KiB per idle connection".
fn conns_per_connection(records: &[Record], subject: &str) -> Check {
    let (verdict, detail) = match herald_figure(
        lookup(records, subject, "conns", kib_per_conn),
        subject,
        "conns",
    ) {
        Err(missing) => missing,
        Ok(kib) => (
            if kib <= 8.0 {
                Verdict::Pass
            } else {
                Verdict::Fail
            },
            format!("{subject} {kib:.2} KiB/conn"),
        ),
    };
    Check {
        name: check_name(subject, "conns ≤ 8 KiB/conn"),
        verdict,
        detail,
    }
}

/// Every Herald message workload that ran lost nothing: the single node's
/// (native and Socket.IO), and the cluster's cross-node fanout when it ran
/// (its other workloads are skipped by design).
fn no_loss(records: &[Record]) -> Check {
    let herald_flows: Vec<&Record> = records
        .iter()
        .filter(|r| {
            ([HERALD, HERALD_SIO, SDK].contains(&r.target.as_str()) && r.workload != "conns")
                || ([CLUSTER, CLUSTER_HISTORY].contains(&r.target.as_str()) && r.skipped.is_none())
        })
        .collect();
    let problems: Vec<String> = herald_flows
        .iter()
        .filter(|r| r.loss != Some(0))
        .map(|r| {
            let what = if r.target == HERALD {
                r.workload.clone()
            } else {
                format!("{} {}", r.target, r.workload)
            };
            match (&r.skipped, r.loss) {
                (Some(reason), _) => format!("{what} was skipped ({reason})"),
                (None, Some(loss)) => format!("{what} lost {}", grouped(loss as f64)),
                (None, None) => format!("{what} has no loss figure (the run failed)"),
            }
        })
        .collect();
    let (verdict, detail) = if herald_flows.is_empty() {
        (
            Verdict::Skip,
            "no herald message workload was run".to_owned(),
        )
    } else if problems.is_empty() {
        (
            Verdict::Pass,
            format!("0 lost in {} herald workloads", herald_flows.len()),
        )
    } else {
        (Verdict::Fail, problems.join(", "))
    };
    Check {
        name: "no loss".to_owned(),
        verdict,
        detail,
    }
}

/// Herald's figures divided by each peer's, per workload: above 1 is
/// better for msgs/s and msgs/CPU-s, below 1 better for p50 and KiB/conn.
/// Herald's Socket.IO front end and the cluster are not peers.
pub fn ratios_table(records: &[Record]) -> String {
    ratios_of(records, HERALD, |target| {
        target != HERALD
            && target != CLUSTER
            && target != CLUSTER_HISTORY
            && target != HERALD_SIO
            && target != SDK
            && !HERALD_VARIANTS.contains(&target)
    })
}

/// Herald with a feature on (TLS, token checks) divided by plain Herald,
/// one table per variant measured, as [`ratios_table`].
pub fn variant_ratios(records: &[Record]) -> String {
    HERALD_VARIANTS
        .iter()
        .filter(|variant| records.iter().any(|r| r.target == **variant))
        .map(|variant| {
            format!(
                "{variant}:\n{}",
                ratios_of(records, variant, |target| target == HERALD)
            )
        })
        .collect()
}

/// Herald's Socket.IO front end's figures divided by each Socket.IO
/// server's (socketioxide), as [`ratios_table`].
pub fn socketio_ratios_table(records: &[Record]) -> String {
    ratios_of(records, HERALD_SIO, |target| {
        SOCKETIO_PEERS.contains(&target)
    })
}

/// `subject`'s figures divided by those of each target `is_peer` accepts.
fn ratios_of(records: &[Record], subject: &str, is_peer: impl Fn(&str) -> bool) -> String {
    let columns: [(&str, Figure); 4] = [
        ("msgs/s", msgs_per_sec),
        ("msgs/CPU-s", msgs_per_cpu),
        ("p50", p50),
        ("KiB/conn", kib_per_conn),
    ];
    let mut peers: Vec<&str> = Vec::new();
    for record in records {
        let peer = is_peer(&record.target);
        if peer && !peers.contains(&record.target.as_str()) {
            peers.push(&record.target);
        }
    }
    let mut workloads: Vec<&str> = Vec::new();
    for record in records {
        if !workloads.contains(&record.workload.as_str()) {
            workloads.push(&record.workload);
        }
    }
    let mut rows = vec![
        [format!("{subject} ÷"), "workload".to_owned()]
            .into_iter()
            .chain(columns.iter().map(|(name, _)| (*name).to_owned()))
            .collect::<Vec<_>>(),
    ];
    for peer in &peers {
        for workload in &workloads {
            rows.extend(ratio_row(
                records,
                &columns,
                (subject, workload),
                (peer, workload),
                (*peer).to_owned(),
            ));
        }
    }
    render(rows)
}

/// Herald through its SDK divided by NATS through `async-nats`, per
/// workload, with the load generator's CPU beside the server's: the SDK's
/// cost is client CPU. Herald's `acked` is divided by NATS's `request`
/// (core NATS acknowledges no publish).
pub fn sdk_ratios_table(records: &[Record]) -> String {
    let columns: [(&str, Figure); 4] = [
        ("msgs/s", msgs_per_sec),
        ("msgs/client-CPU-s", msgs_per_client_cpu),
        ("msgs/server-CPU-s", msgs_per_cpu),
        ("p50", p50),
    ];
    let mut rows = vec![
        [format!("{SDK} ÷"), "workload".to_owned()]
            .into_iter()
            .chain(columns.iter().map(|(name, _)| (*name).to_owned()))
            .collect::<Vec<_>>(),
    ];
    let mut workloads: Vec<&str> = Vec::new();
    for record in records.iter().filter(|r| r.target == SDK) {
        if !workloads.contains(&record.workload.as_str()) {
            workloads.push(&record.workload);
        }
    }
    for workload in workloads {
        let peer_workload = if workload == "acked" {
            "request"
        } else {
            workload
        };
        rows.extend(ratio_row(
            records,
            &columns,
            (SDK, workload),
            (NATS, peer_workload),
            format!("{NATS} {peer_workload}"),
        ));
    }
    render(rows)
}

/// One row of a ratios table: `subject`'s figures over `peer`'s (each a
/// target and a workload), labelled `label` and the subject's workload;
/// `None` when no column has both figures.
fn ratio_row(
    records: &[Record],
    columns: &[(&str, Figure)],
    (subject, workload): (&str, &str),
    (peer, peer_workload): (&str, &str),
    label: String,
) -> Option<Vec<String>> {
    let cells: Vec<String> = columns
        .iter()
        .map(|(_, get)| {
            match (
                figure(records, subject, workload, *get),
                figure(records, peer, peer_workload, *get),
            ) {
                (Some(h), Some(p)) if p > 0.0 => format!("{:.2}×", h / p),
                _ => "-".to_owned(),
            }
        })
        .collect();
    if cells.iter().all(|c| c == "-") {
        return None;
    }
    Some(
        [label, workload.to_owned()]
            .into_iter()
            .chain(cells)
            .collect(),
    )
}

/// Lays out a ratios table: names left-aligned, figures right-aligned;
/// empty when there is no row below the header.
fn render(rows: Vec<Vec<String>>) -> String {
    if rows.len() == 1 {
        return String::new();
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                let pad = " ".repeat(widths[i] - cell.chars().count());
                if i < 2 {
                    format!("{cell}{pad}")
                } else {
                    format!("{pad}{cell}")
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The cluster's `fanout` figures over the single node's, as one line per
/// cluster target that ran (`herald-cluster` ÷ `herald`,
/// `herald-cluster-history` ÷ `herald-history`); `None` when none ran.
pub fn cluster_ratios(records: &[Record]) -> Option<String> {
    let lines: Vec<String> = [(CLUSTER, HERALD), (CLUSTER_HISTORY, crate::history::TARGET)]
        .into_iter()
        .filter_map(|(cluster, single)| cluster_line(records, cluster, single))
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// One line of [`cluster_ratios`].
fn cluster_line(records: &[Record], target: &str, single: &str) -> Option<String> {
    let workload = crate::cluster::WORKLOAD.name();
    let cluster = records
        .iter()
        .find(|r| r.target == target && r.workload == workload)?;
    if cluster.skipped.is_some() {
        return None;
    }
    let ratio = |get: Figure| match (get(cluster), figure(records, single, workload, get)) {
        (Some(c), Some(h)) if h > 0.0 => format!("{:.2}×", c / h),
        _ => "-".to_owned(),
    };
    let split: Vec<String> = cluster
        .server_cpu_secs_by_process
        .iter()
        .map(|(process, secs)| format!("{process} {secs:.2}"))
        .collect();
    let cpu = match cluster.server_cpu_secs {
        Some(total) if !split.is_empty() => format!("{total:.2} s = {}", split.join(" + ")),
        _ => "both nodes + redis-server".to_owned(),
    };
    Some(format!(
        "{target} ÷ {single} (single node), {workload}: msgs/s {}, msgs/CPU-s {} \
         (publisher on node A, subscribers on node B; server CPU {cpu})",
        ratio(msgs_per_sec),
        ratio(msgs_per_cpu)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(target: &str, workload: &str) -> Record {
        Record::empty(target, workload)
    }

    fn flow(target: &str, workload: &str, rate: f64, per_cpu: f64, p50: u64) -> Record {
        Record {
            msgs_per_sec: Some(rate),
            msgs_per_server_cpu_sec: Some(per_cpu),
            p50_us: Some(p50),
            loss: Some(0),
            ..record(target, workload)
        }
    }

    fn verdict_of(checks: &[Check], name: &str) -> Verdict {
        checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no check {name} in {checks:?}"))
            .verdict
    }

    fn full_run() -> Vec<Record> {
        vec![
            flow("herald", "fanout", 900.0, 3000.0, 50),
            flow("nats", "fanout", 1000.0, 1000.0, 40),
            flow("floor", "fanout", 1200.0, 3500.0, 30),
            flow("herald", "pairs", 1400.0, 0.0, 50),
            flow("nats", "pairs", 1000.0, 0.0, 50),
            flow("herald", "latency", 100.0, 0.0, 70),
            flow("nats", "latency", 100.0, 0.0, 80),
            Record {
                kib_per_conn: Some(6.5),
                ..record("herald", "conns")
            },
        ]
    }

    #[test]
    fn targets_met() {
        let checks = checks(&full_run());
        for check in &checks {
            assert_eq!(check.verdict, Verdict::Pass, "{check}");
        }
        let cpu = &checks[0];
        assert_eq!(cpu.name, "fanout msgs/server-CPU-s ≥ 2× nats");
        assert_eq!(cpu.detail, "herald 3,000 vs nats 1,000 (3.00×)");
        assert_eq!(checks[3].name, "latency p50 ≤ nats");
    }

    #[test]
    fn targets_missed_fail() {
        let mut records = full_run();
        records[0].msgs_per_server_cpu_sec = Some(1500.0); // 1.5x nats, 0.43x floor
        records[3].loss = Some(7);
        records[5].p50_us = Some(90);
        records[7].kib_per_conn = Some(9.0);
        let checks = checks(&records);
        assert_eq!(
            verdict_of(&checks, "fanout msgs/server-CPU-s ≥ 2× nats"),
            Verdict::Fail
        );
        assert_eq!(
            verdict_of(&checks, "fanout msgs/server-CPU-s ≥ 0.8× floor"),
            Verdict::Fail
        );
        assert_eq!(verdict_of(&checks, "latency p50 ≤ nats"), Verdict::Fail);
        assert_eq!(verdict_of(&checks, "conns ≤ 8 KiB/conn"), Verdict::Fail);
        let loss = checks
            .iter()
            .find(|c| c.name == "no loss")
            .expect("a loss check");
        assert_eq!(loss.verdict, Verdict::Fail);
        assert_eq!(loss.detail, "pairs lost 7");
    }

    #[test]
    fn missing_peers_and_workloads_not_run_skip() {
        let records = vec![
            flow("herald", "fanout", 900.0, 3000.0, 50),
            Record::skipped("nats", "fanout", "not installed"),
        ];
        let checks = checks(&records);
        let nats = &checks[0];
        assert_eq!(nats.verdict, Verdict::Skip);
        assert_eq!(nats.detail, "nats skipped: not installed");
        assert_eq!(
            verdict_of(&checks, "pairs msgs/s ≥ 1.3× nats"),
            Verdict::Skip
        );
        assert_eq!(verdict_of(&checks, "conns ≤ 8 KiB/conn"), Verdict::Skip);
        assert_eq!(verdict_of(&checks, "no loss"), Verdict::Pass);
        assert_eq!(verdict_of(&super::checks(&[]), "no loss"), Verdict::Skip);
    }

    #[test]
    fn herald_skipped_or_failed_is_never_a_pass() {
        let records = vec![
            Record::skipped("herald", "fanout", "herald-broker is not built"),
            flow("nats", "fanout", 1000.0, 1000.0, 40),
            Record::failed("herald", "conns", "refused"),
            Record::failed("herald", "pairs", "refused"),
            flow("nats", "pairs", 1000.0, 1000.0, 40),
        ];
        let checks = checks(&records);
        let fanout = &checks[0];
        assert_eq!(fanout.verdict, Verdict::Fail);
        assert!(fanout.detail.contains("not built"), "{fanout}");
        assert_eq!(
            verdict_of(&checks, "pairs msgs/s ≥ 1.3× nats"),
            Verdict::Fail
        );
        assert_eq!(verdict_of(&checks, "conns ≤ 8 KiB/conn"), Verdict::Fail);
        assert_eq!(verdict_of(&checks, "no loss"), Verdict::Fail);
    }

    #[test]
    fn ratios_divide_herald_by_each_peer() {
        let table = ratios_table(&full_run());
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("herald ÷  workload"), "{table}");
        let nats_fanout = lines
            .iter()
            .find(|l| l.starts_with("nats") && l.contains("fanout"))
            .expect("a nats fanout row");
        assert!(nats_fanout.contains("0.90×"), "{table}");
        assert!(nats_fanout.contains("3.00×"), "{table}");
        assert!(nats_fanout.contains("1.25×"), "{table}");
        assert!(
            !lines
                .iter()
                .any(|l| l.starts_with("floor") && l.contains("pairs")),
            "rows without any figure are left out: {table}"
        );
        assert_eq!(ratios_table(&[flow("herald", "fanout", 1.0, 1.0, 1)]), "");
    }

    #[test]
    fn variants_are_divided_by_plain_herald_and_are_no_peers() {
        let mut records = full_run();
        records.push(flow("herald-auth", "fanout", 950.0, 95.0, 10));
        let peers = ratios_table(&records);
        assert!(!peers.contains("herald-auth"), "{peers}");
        let variants = variant_ratios(&records);
        assert!(variants.starts_with("herald-auth:\n"), "{variants}");
        assert!(!variants.contains("herald-wss"), "not measured: {variants}");
        let row = variants
            .lines()
            .find(|l| l.starts_with("herald ") && l.contains("fanout"))
            .expect("a fanout row against herald");
        assert!(row.contains("×"), "{variants}");
    }

    #[test]
    fn the_cluster_is_compared_with_the_single_node_not_as_a_peer() {
        let mut records = full_run();
        let mut cluster = flow("herald-cluster", "fanout", 450.0, 1000.0, 90);
        cluster.loss = Some(5);
        cluster.server_cpu_secs = Some(1.25);
        cluster.server_cpu_secs_by_process =
            [("node-a", 0.1), ("node-b", 1.1), ("redis-server", 0.05)]
                .map(|(name, secs)| (name.to_owned(), secs))
                .into();
        records.push(cluster);
        records.push(Record::skipped(
            "herald-cluster",
            "pairs",
            "cross-node: fanout only",
        ));
        let table = ratios_table(&records);
        assert!(!table.contains("herald-cluster"), "{table}");
        assert_eq!(
            cluster_ratios(&records).as_deref(),
            Some(
                "herald-cluster ÷ herald (single node), fanout: msgs/s 0.50×, msgs/CPU-s 0.33× \
                 (publisher on node A, subscribers on node B; server CPU 1.25 s = node-a 0.10 + \
                 node-b 1.10 + redis-server 0.05)"
            )
        );
        let cluster_only = vec![flow("herald-cluster", "fanout", 450.0, 1000.0, 90)];
        let line = cluster_ratios(&cluster_only).expect("a line");
        assert!(line.contains("msgs/s -, msgs/CPU-s -"), "{line}");
        assert!(
            line.ends_with("server CPU both nodes + redis-server)"),
            "{line}"
        );
        let skipped = vec![Record::skipped("herald-cluster", "fanout", "no redis")];
        assert_eq!(cluster_ratios(&skipped), None);
        assert_eq!(cluster_ratios(&full_run()), None);
        // The cluster's cross-node fanout counts in the loss check too.
        let loss = checks(&records)
            .into_iter()
            .find(|c| c.name == "no loss")
            .expect("a loss check");
        assert_eq!(loss.verdict, Verdict::Fail);
        assert_eq!(loss.detail, "herald-cluster fanout lost 5");
    }

    #[test]
    fn the_sdk_is_compared_with_nats_per_client_cpu() {
        let mut records = vec![flow("herald", "fanout", 900.0, 3000.0, 50)];
        let mut with_client = |target: &str, workload: &str, rate: f64, delivered, cpu| {
            let mut record = flow(target, workload, rate, 1000.0, 50);
            record.delivered = Some(delivered);
            record.client_cpu_secs = Some(cpu);
            records.push(record);
        };
        with_client("herald-sdk", "fanout", 900.0, 900, 1.0);
        with_client("nats", "fanout", 1000.0, 1000, 0.5);
        with_client("herald-sdk", "acked", 300.0, 300, 1.0);
        with_client("nats", "request", 100.0, 100, 1.0);
        let table = sdk_ratios_table(&records);
        assert!(table.starts_with("herald-sdk ÷"), "{table}");
        let fanout = table
            .lines()
            .find(|l| l.starts_with("nats fanout"))
            .expect("a fanout row");
        // msgs/s 0.90×, per client CPU-second 900 against 2,000: 0.45×.
        assert!(
            fanout.contains("0.90×") && fanout.contains("0.45×"),
            "{table}"
        );
        let acked = table
            .lines()
            .find(|l| l.contains("acked"))
            .expect("an acked row");
        assert!(
            acked.starts_with("nats request"),
            "acked is divided by request: {table}"
        );
        assert!(acked.contains("3.00×"), "{table}");
        assert!(!ratios_table(&records).contains("herald-sdk"), "not a peer");
        let checks = checks(&records);
        assert_eq!(
            verdict_of(&checks, "herald-sdk fanout msgs/s ≥ nats"),
            Verdict::Fail
        );
        assert_eq!(
            verdict_of(&checks, "herald-sdk pairs msgs/s ≥ nats"),
            Verdict::Skip
        );
        assert_eq!(sdk_ratios_table(&full_run()), "");
    }

    #[test]
    fn the_socketio_front_end_is_compared_with_socketio_servers_only() {
        let mut records = full_run();
        assert!(
            !checks(&records)
                .iter()
                .any(|c| c.name.starts_with("herald-socketio")),
            "no Socket.IO checks when it was not measured"
        );
        records.push(flow("herald-socketio", "fanout", 800.0, 2000.0, 60));
        records.push(flow("socketioxide", "fanout", 200.0, 400.0, 90));
        records.push(Record {
            kib_per_conn: Some(9.5),
            ..record("herald-socketio", "conns")
        });
        let checks = checks(&records);
        let fanout = checks
            .iter()
            .find(|c| c.name == "herald-socketio fanout msgs/server-CPU-s ≥ 4× socketioxide")
            .expect("a Socket.IO fanout check");
        assert_eq!(fanout.verdict, Verdict::Pass, "{fanout}");
        assert_eq!(
            fanout.detail,
            "herald-socketio 2,000 vs socketioxide 400 (5.00×)"
        );
        assert_eq!(
            verdict_of(&checks, "herald-socketio conns ≤ 8 KiB/conn"),
            Verdict::Fail
        );
        let table = ratios_table(&records);
        assert!(!table.contains("herald-socketio"), "{table}");
        let socketio = socketio_ratios_table(&records);
        assert!(socketio.starts_with("herald-socketio ÷"), "{socketio}");
        assert!(socketio.contains("5.00×"), "{socketio}");
        assert!(!socketio.contains("nats"), "{socketio}");
        // Its flows count in the loss check.
        records[8].loss = Some(3);
        let loss = super::checks(&records)
            .into_iter()
            .find(|c| c.name == "no loss")
            .expect("a loss check");
        assert_eq!(loss.detail, "herald-socketio fanout lost 3");
    }
}
