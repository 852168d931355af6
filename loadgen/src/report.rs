//! Result records (one per target and workload), their JSON form, and the
//! table printed for people.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::outcome::{ConnsOutcome, FlowOutcome};

/// One target's result on one workload.
///
/// The first fields are the machine-readable contract of `--json`;
/// `None` is `null` (not measured, or not meaningful for the workload).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// `herald`, `herald-cluster`, `nats`, `redis`, `socketioxide` or
    /// `floor`.
    pub target: String,
    /// `fanout`, `pairs`, `latency` or `conns`.
    pub workload: String,
    /// Delivered messages per second, first send to last receipt.
    pub msgs_per_sec: Option<f64>,
    /// Delivered messages per second of the server's user + system CPU.
    pub msgs_per_server_cpu_sec: Option<f64>,
    /// Median end-to-end latency, microseconds.
    pub p50_us: Option<u64>,
    /// 99th percentile latency, microseconds.
    pub p99_us: Option<u64>,
    /// 99.9th percentile latency, microseconds.
    pub p999_us: Option<u64>,
    /// Server memory growth per idle subscribed connection, KiB (`conns`).
    pub kib_per_conn: Option<f64>,
    /// Deliveries due (sent x subscribers) that never happened.
    pub loss: Option<u64>,
    /// Messages published.
    pub sent: Option<u64>,
    /// Messages received, over all subscribers.
    pub delivered: Option<u64>,
    /// Seconds from the first send to the last receipt.
    pub seconds: Option<f64>,
    /// Server CPU seconds (user + system) the figures are based on.
    pub server_cpu_secs: Option<f64>,
    /// `server_cpu_secs` per process, when the server is several processes
    /// (a cluster's nodes and their Redis); left out otherwise.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub server_cpu_secs_by_process: BTreeMap<String, f64>,
    /// The load generator's CPU seconds meanwhile (near `seconds`: the
    /// load generator, not the server, set the pace).
    pub client_cpu_secs: Option<f64>,
    /// Connections opened (`conns`).
    pub conns: Option<u64>,
    /// Seconds to open them all (`conns`).
    pub open_secs: Option<f64>,
    /// Why the run stopped early, if it did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// Why the target was not measured, if it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

impl Record {
    /// A record with no figures yet: the base the other constructors (and
    /// tests) fill in.
    pub fn empty(target: &str, workload: &str) -> Record {
        Record {
            target: target.to_owned(),
            workload: workload.to_owned(),
            msgs_per_sec: None,
            msgs_per_server_cpu_sec: None,
            p50_us: None,
            p99_us: None,
            p999_us: None,
            kib_per_conn: None,
            loss: None,
            sent: None,
            delivered: None,
            seconds: None,
            server_cpu_secs: None,
            server_cpu_secs_by_process: BTreeMap::new(),
            client_cpu_secs: None,
            conns: None,
            open_secs: None,
            errors: Vec::new(),
            skipped: None,
        }
    }

    /// The record of a message-flow workload.
    pub fn flow(target: &str, workload: &str, outcome: &FlowOutcome) -> Record {
        Record {
            msgs_per_sec: outcome.msgs_per_sec(),
            msgs_per_server_cpu_sec: outcome.msgs_per_server_cpu_sec(),
            p50_us: outcome.latency.quantile_us(0.5),
            p99_us: outcome.latency.quantile_us(0.99),
            p999_us: outcome.latency.quantile_us(0.999),
            loss: Some(outcome.loss),
            sent: Some(outcome.sent),
            delivered: Some(outcome.delivered),
            seconds: Some(outcome.elapsed.as_secs_f64()),
            server_cpu_secs: outcome.server_cpu.map(|cpu| cpu.as_secs_f64()),
            server_cpu_secs_by_process: outcome
                .server_cpu_by_process
                .iter()
                .map(|(name, cpu)| (name.clone(), cpu.as_secs_f64()))
                .collect(),
            client_cpu_secs: outcome.client_cpu.map(|cpu| cpu.as_secs_f64()),
            errors: outcome.errors.clone(),
            ..Record::empty(target, workload)
        }
    }

    /// How busy the server and the load generator were while messages
    /// flowed, as `server%/generator%` of the elapsed time.
    pub fn busy(&self) -> Option<String> {
        let seconds = self.seconds.filter(|s| *s > 0.0)?;
        let percent = |cpu: Option<f64>| {
            cpu.map_or("?".to_owned(), |cpu| {
                format!("{:.0}%", cpu * 100.0 / seconds)
            })
        };
        Some(format!(
            "{}/{}",
            percent(self.server_cpu_secs),
            percent(self.client_cpu_secs)
        ))
    }

    /// The record of the `conns` workload.
    pub fn conns(target: &str, workload: &str, outcome: &ConnsOutcome) -> Record {
        Record {
            kib_per_conn: outcome.kib_per_conn(),
            server_cpu_secs: outcome.server_cpu.map(|cpu| cpu.as_secs_f64()),
            conns: Some(outcome.opened as u64),
            open_secs: Some(outcome.open_time.as_secs_f64()),
            errors: outcome.errors.clone(),
            ..Record::empty(target, workload)
        }
    }

    /// The record of a run that failed before it had figures, and why.
    pub fn failed(target: &str, workload: &str, error: &str) -> Record {
        Record {
            errors: vec![error.to_owned()],
            ..Record::empty(target, workload)
        }
    }

    /// The record of a target that was not measured, and why.
    pub fn skipped(target: &str, workload: &str, reason: &str) -> Record {
        Record {
            skipped: Some(reason.to_owned()),
            ..Record::empty(target, workload)
        }
    }
}

/// Writes one cell of a record.
type Cell = fn(&Record) -> String;

/// The table columns, their headers and how each cell is written.
const COLUMNS: [(&str, Cell); 11] = [
    ("target", |r| r.target.clone()),
    ("workload", |r| r.workload.clone()),
    ("msgs/s", |r| opt(r.msgs_per_sec.map(grouped))),
    ("msgs/CPU-s", |r| {
        opt(r.msgs_per_server_cpu_sec.map(grouped))
    }),
    ("p50 µs", |r| opt(r.p50_us.map(|v| grouped(v as f64)))),
    ("p99 µs", |r| opt(r.p99_us.map(|v| grouped(v as f64)))),
    ("p99.9 µs", |r| opt(r.p999_us.map(|v| grouped(v as f64)))),
    ("KiB/conn", |r| {
        opt(r.kib_per_conn.map(|v| format!("{v:.2}")))
    }),
    ("open s", |r| opt(r.open_secs.map(|v| format!("{v:.2}")))),
    ("loss", |r| opt(r.loss.map(|v| grouped(v as f64)))),
    ("CPU srv/gen", |r| opt(r.busy())),
];

fn opt(cell: Option<String>) -> String {
    cell.unwrap_or_else(|| "-".to_owned())
}

/// A number rounded to an integer with thousands separators (`1,234,567`).
pub fn grouped(value: f64) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    let rounded = value.round();
    let digits = format!("{:.0}", rounded.abs());
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if rounded < 0.0 {
        out.push('-');
    }
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// The measured records as an aligned text table (text columns left,
/// figures right), then one line per skipped target and per error.
pub fn render_table(records: &[Record]) -> String {
    let measured: Vec<&Record> = records.iter().filter(|r| r.skipped.is_none()).collect();
    let rows: Vec<Vec<String>> = measured
        .iter()
        .map(|record| COLUMNS.iter().map(|(_, cell)| cell(record)).collect())
        .collect();
    let widths: Vec<usize> = COLUMNS
        .iter()
        .enumerate()
        .map(|(i, (header, _))| {
            rows.iter()
                .map(|row| row[i].chars().count())
                .chain([header.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| -> String {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                let pad = widths[i].saturating_sub(cell.chars().count());
                if i < 2 {
                    format!("{cell}{}", " ".repeat(pad))
                } else {
                    format!("{}{cell}", " ".repeat(pad))
                }
            })
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut out = String::new();
    if !rows.is_empty() {
        out.push_str(&line(
            COLUMNS.iter().map(|(h, _)| (*h).to_owned()).collect(),
        ));
        out.push('\n');
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        out.push_str(&rule.join("  "));
        out.push('\n');
        for row in rows {
            out.push_str(&line(row));
            out.push('\n');
        }
    }
    for record in records {
        if let Some(reason) = &record.skipped {
            out.push_str(&format!(
                "skipped {} {}: {reason}\n",
                record.target, record.workload
            ));
        }
        for error in &record.errors {
            out.push_str(&format!(
                "note {} {}: {error}\n",
                record.target, record.workload
            ));
        }
    }
    out
}

/// One line saying how many deliveries were lost, for a flow record.
pub fn loss_line(record: &Record) -> Option<String> {
    let loss = record.loss?;
    let due = record.delivered.unwrap_or(0) + loss;
    let percent = if due == 0 {
        0.0
    } else {
        loss as f64 * 100.0 / due as f64
    };
    Some(format!(
        "loss: {} of {} deliveries ({percent:.3}%)",
        grouped(loss as f64),
        grouped(due as f64)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        Record {
            msgs_per_sec: Some(1_234_567.4),
            msgs_per_server_cpu_sec: Some(2_000_000.0),
            p50_us: Some(85),
            p99_us: Some(1_200),
            p999_us: Some(15_000),
            loss: Some(0),
            sent: Some(100_000),
            delivered: Some(10_000_000),
            seconds: Some(8.0),
            server_cpu_secs: Some(2.0),
            client_cpu_secs: Some(7.96),
            ..Record::empty("herald", "fanout")
        }
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(grouped(0.0), "0");
        assert_eq!(grouped(999.4), "999");
        assert_eq!(grouped(1000.0), "1,000");
        assert_eq!(grouped(1_234_567.5), "1,234,568");
        assert_eq!(grouped(-12_345.0), "-12,345");
    }

    #[test]
    fn table_aligns_columns_and_lists_skipped_targets() {
        let conns = Record {
            kib_per_conn: Some(5.4321),
            conns: Some(10_000),
            open_secs: Some(1.5),
            errors: vec!["opening stopped".to_owned()],
            ..Record::empty("nats", "conns")
        };
        let skipped = Record::skipped("redis", "fanout", "redis-server not found");
        let table = render_table(&[sample(), conns, skipped]);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("target"), "{table}");
        assert!(lines[0].contains("msgs/CPU-s"), "{table}");
        assert!(lines[1].starts_with("------"), "{table}");
        assert!(lines[2].contains("1,234,567"), "{table}");
        assert!(lines[2].contains("15,000"), "{table}");
        assert!(lines[2].ends_with("25%/100%"), "{table}");
        assert!(lines[3].contains("5.43"), "{table}");
        assert!(
            lines[3].contains(" - "),
            "missing figures are dashes: {table}"
        );
        // Every table row has the same width up to its last column.
        let width = |line: &str| line.chars().count();
        assert_eq!(width(lines[2]), width(lines[0]), "{table}");
        assert!(
            table.contains("skipped redis fanout: redis-server not found"),
            "{table}"
        );
        assert!(
            table.contains("note nats conns: opening stopped"),
            "{table}"
        );
    }

    #[test]
    fn json_has_the_contract_fields() {
        let json = serde_json::to_value(sample()).expect("serialisable");
        for key in [
            "target",
            "workload",
            "msgs_per_sec",
            "msgs_per_server_cpu_sec",
            "p50_us",
            "p99_us",
            "p999_us",
            "kib_per_conn",
            "loss",
        ] {
            assert!(json.get(key).is_some(), "missing {key} in {json}");
        }
        assert_eq!(json["kib_per_conn"], serde_json::Value::Null);
        assert!(json.get("skipped").is_none(), "only present when skipped");
        assert!(
            json.get("server_cpu_secs_by_process").is_none(),
            "only present for a server of several processes"
        );
        let back: Record = serde_json::from_value(json).expect("round trip");
        assert_eq!(back, sample());
        let mut cluster = sample();
        cluster.server_cpu_secs_by_process =
            BTreeMap::from([("node-a".to_owned(), 1.5), ("redis-server".to_owned(), 0.5)]);
        let json = serde_json::to_value(&cluster).expect("serialisable");
        assert_eq!(json["server_cpu_secs_by_process"]["node-a"], 1.5);
        let back: Record = serde_json::from_value(json).expect("round trip");
        assert_eq!(back, cluster);
    }

    #[test]
    fn loss_line_counts_due_deliveries() {
        let mut record = sample();
        record.loss = Some(10);
        record.delivered = Some(990);
        assert_eq!(
            loss_line(&record).as_deref(),
            Some("loss: 10 of 1,000 deliveries (1.000%)")
        );
        assert_eq!(loss_line(&Record::empty("x", "conns")), None);
    }
}
