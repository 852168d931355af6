//! The command-line options of `herald bench` (a clap `Args` struct the
//! `herald` CLI embeds as its `bench` subcommand).

use crate::BenchError;
use crate::herald::DEFAULT_NAMESPACE;
use crate::workload::{Overrides, Plan, QUICK_SCALE, Workload};

/// `herald bench <WORKLOAD> [OPTIONS]`: measure a Herald broker.
///
/// The broker URL comes from the CLI's global `--url`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    about = "Measure a broker: fanout, pairs, latency or conns",
    long_about = "Measure a Herald broker with one of the benchmark workloads:\n\
                  \n  fanout   1 publisher, 100 subscribers on one event, 100,000 messages as fast as accepted\
                  \n  pairs    10 publishers, each to its own event with one subscriber, 100,000 messages each\
                  \n  latency  1 publisher at 10,000 msgs/s for 10 s to 10 subscribers: p50/p99/p99.9\
                  \n  conns    10,000 idle connections, each subscribed to its own event\n\n\
                  Payloads are 128 bytes; the first 8 carry the send time. Publishers do not ask \
                  for acknowledgements (fire-and-forget) and keep at most --window messages in \
                  flight. Loss (deliveries due and never received) is always reported. The \
                  server's CPU and memory figures need --server-pid (a broker on this machine).",
    after_help = "Examples:\n  herald bench fanout\n  herald bench latency --rate 5000 --duration 30s\n  \
                  herald bench conns --conns 20000 --server-pid $(pidof herald-broker)\n  \
                  herald bench pairs --quick --json"
)]
pub struct BenchArgs {
    /// The workload to run.
    #[arg(value_enum)]
    pub workload: Workload,
    /// Subscribers of each publisher's event (default fanout: 100, pairs: 1, latency: 10).
    #[arg(long, value_name = "N")]
    pub subscribers: Option<usize>,
    /// Publishers, each to its own event (default fanout: 1, pairs: 10, latency: 1).
    #[arg(long, value_name = "N")]
    pub publishers: Option<usize>,
    /// Messages per publisher (default 100000; latency: rate x duration).
    #[arg(long, value_name = "N")]
    pub messages: Option<u64>,
    /// Payload size in bytes, at least 8 (default 128).
    #[arg(long, value_name = "BYTES")]
    pub payload: Option<usize>,
    /// Fixed rate per publisher, messages per second (default latency: 10000; others: as fast as accepted).
    #[arg(long, value_name = "MSGS_PER_SEC")]
    pub rate: Option<u64>,
    /// How long to publish, e.g. 30s: with a rate and no --messages, rate x DURATION
    /// messages; otherwise a time limit (default latency: 10s).
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<humantime::Duration>,
    /// Idle connections for `conns` (default 10000).
    #[arg(long, value_name = "N")]
    pub conns: Option<usize>,
    /// Messages a publisher may have in flight, 0 for no limit (default 1000).
    #[arg(long, value_name = "N")]
    pub window: Option<u64>,
    /// Messages fed before each flush (default 64).
    #[arg(long, value_name = "N")]
    pub batch: Option<usize>,
    /// Multiply message counts, durations and connections by FACTOR.
    #[arg(long, value_name = "FACTOR", conflicts_with = "quick")]
    pub scale: Option<f64>,
    /// A smoke run: --scale 0.05.
    #[arg(long)]
    pub quick: bool,
    /// Stop waiting for receipts this long after the last one (default 5s).
    #[arg(long, value_name = "DURATION")]
    pub drain_timeout: Option<humantime::Duration>,
    /// The broker's process id (on this machine): adds its CPU and memory figures.
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// The namespace to publish in.
    #[arg(long, value_name = "NS", default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Print the result as JSON (an array of records) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Do not draw the progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

impl BenchArgs {
    /// The options as overrides of the workload's defaults.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            subscribers: self.subscribers,
            publishers: self.publishers,
            messages: self.messages,
            payload_bytes: self.payload,
            rate: self.rate,
            duration: self.duration.map(Into::into),
            conns: self.conns,
            window: self.window,
            batch: self.batch,
            scale: if self.quick {
                Some(QUICK_SCALE)
            } else {
                self.scale
            },
            drain_timeout: self.drain_timeout.map(Into::into),
        }
    }

    /// The validated plan of the run these options ask for.
    pub fn plan(&self) -> Result<Plan, BenchError> {
        self.workload.plan(&self.overrides())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::workload::FlowPlan;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn parse(args: &[&str]) -> Result<BenchArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied())).map(|c| c.bench)
    }

    #[test]
    fn options_reach_the_plan() {
        let args = parse(&[
            "latency",
            "--rate",
            "500",
            "--duration",
            "2s",
            "--subscribers",
            "3",
            "--payload",
            "64",
        ])
        .expect("valid options");
        let Plan::Flow(FlowPlan {
            rate,
            messages,
            subscribers,
            payload_bytes,
            ..
        }) = args.plan().expect("valid plan")
        else {
            panic!("latency is a flow workload");
        };
        assert_eq!(
            (rate, messages, subscribers, payload_bytes),
            (Some(500), 1000, 3, 64)
        );
    }

    #[test]
    fn quick_scales_down() {
        let args = parse(&["fanout", "--quick"]).expect("valid options");
        let Plan::Flow(plan) = args.plan().expect("valid plan") else {
            panic!("fanout is a flow workload");
        };
        assert_eq!(plan.messages, 5_000);
        assert!(parse(&["fanout", "--quick", "--scale", "2"]).is_err());
    }

    #[test]
    fn help_describes_every_workload() {
        let help = parse(&["--help"])
            .expect_err("help is an early exit")
            .to_string();
        for text in [
            "fanout",
            "pairs",
            "latency",
            "conns",
            "--server-pid",
            "fire-and-forget",
        ] {
            assert!(help.contains(text), "{text} missing from:\n{help}");
        }
    }

    #[test]
    fn bad_options_are_refused() {
        assert!(parse(&["nope"]).is_err(), "unknown workload");
        assert!(parse(&["fanout", "--payload", "-1"]).is_err());
        assert!(parse(&["fanout", "--duration", "soon"]).is_err());
        let args = parse(&["fanout", "--payload", "3"]).expect("parses");
        let error = args.plan().expect_err("too small");
        assert!(error.to_string().contains("--payload"), "{error}");
    }
}
