//! The command-line options of `herald bench` (a clap `Args` struct the
//! `herald` CLI embeds as its `bench` subcommand).

use crate::BenchError;
use crate::herald::DEFAULT_NAMESPACE;
use crate::soak::plan::SoakPlan;
use crate::workload::{Overrides, Plan, QUICK_SCALE, Workload};

/// `herald bench <WORKLOAD> [OPTIONS]`: measure a Herald broker.
///
/// The broker URL comes from the CLI's global `--url`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    about = "Measure a broker: fanout, pairs, latency, conns or soak",
    long_about = "Measure a Herald broker with one of the benchmark workloads:\n\
                  \n  fanout   1 publisher, 100 subscribers on one event, 100,000 messages as fast as accepted\
                  \n  pairs    10 publishers, each to its own event with one subscriber, 100,000 messages each\
                  \n  latency  1 publisher at 10,000 msgs/s for 10 s to 10 subscribers: p50/p99/p99.9\
                  \n  conns    10,000 idle connections, each subscribed to its own event\
                  \n  soak     a mixed load (fanout, pairs, requests, connection churn) at fixed rates \
                  for --duration (default 30m), a report line every --report-every (default 1m): \
                  broker RSS and CPU, open connections, deliveries, loss, errors; fails (exit 1) \
                  on any loss or error\n\n\
                  Payloads are 128 bytes; the first 8 carry the send time. Publishers do not ask \
                  for acknowledgements (fire-and-forget) and keep at most --window messages in \
                  flight. Loss (deliveries due and never received) is always reported. The \
                  server's CPU and memory figures need --server-pid (a broker on this machine).",
    after_help = "Examples:\n  herald bench fanout\n  herald bench latency --rate 5000 --duration 30s\n  \
                  herald bench conns --conns 20000 --server-pid $(pidof herald-broker)\n  \
                  herald bench pairs --quick --json\n  \
                  herald bench soak --duration 60s --report-every 10s"
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
    /// Print the result as JSON (an array of records; for soak, its summary)
    /// instead of a table. A soak's report lines then go to stderr.
    #[arg(long)]
    pub json: bool,
    /// Do not draw the progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Soak: print a report line this often (default 1m).
    #[arg(long, value_name = "DURATION", help_heading = "Soak options")]
    pub report_every: Option<humantime::Duration>,
    /// Soak: multiply every rate by FACTOR (the defaults are half of the
    /// peak measured on a 2-CPU machine, so 2 is about that peak).
    #[arg(long, value_name = "FACTOR", help_heading = "Soak options")]
    pub load: Option<f64>,
    /// Soak: subscribers of the fanout event (default 50).
    #[arg(long, value_name = "N", help_heading = "Soak options")]
    pub fanout_subscribers: Option<usize>,
    /// Soak: emits per second to the fanout event, 0 for none (default 3000).
    #[arg(long, value_name = "MSGS_PER_SEC", help_heading = "Soak options")]
    pub fanout_rate: Option<u64>,
    /// Soak: publisher/subscriber pairs, each on its own event (default 10).
    #[arg(long, value_name = "N", help_heading = "Soak options")]
    pub pairs: Option<usize>,
    /// Soak: messages per second of each pair, 0 for none (default 3000).
    #[arg(long, value_name = "MSGS_PER_SEC", help_heading = "Soak options")]
    pub pairs_rate: Option<u64>,
    /// Soak: responders, which echo every request (default 2).
    #[arg(long, value_name = "N", help_heading = "Soak options")]
    pub responders: Option<usize>,
    /// Soak: requester connections (default 4).
    #[arg(long, value_name = "N", help_heading = "Soak options")]
    pub requesters: Option<usize>,
    /// Soak: requests per second of each requester, 0 for none (default 750).
    #[arg(long, value_name = "PER_SEC", help_heading = "Soak options")]
    pub request_rate: Option<u64>,
    /// Soak: the broker's timeout for each request, its `tmo` (default 10s).
    #[arg(long, value_name = "DURATION", help_heading = "Soak options")]
    pub request_timeout: Option<humantime::Duration>,
    /// Soak: churn clients (connect, subscribe, receive, leave) started per
    /// second, 0 for none (default 60).
    #[arg(long, value_name = "PER_SEC", help_heading = "Soak options")]
    pub churn_rate: Option<u64>,
    /// Soak: events each churn client receives before it leaves (default 5).
    #[arg(long, value_name = "N", help_heading = "Soak options")]
    pub churn_events: Option<u64>,
    /// Soak: emits per second to the churn clients' event (default 600).
    #[arg(long, value_name = "MSGS_PER_SEC", help_heading = "Soak options")]
    pub churn_event_rate: Option<u64>,
    /// Soak: how long to watch the broker's memory settle after the clients
    /// left (default 30s).
    #[arg(long, value_name = "DURATION", help_heading = "Soak options")]
    pub settle_timeout: Option<humantime::Duration>,
    /// Soak: the broker's metrics (default: /metrics on the --url host and port).
    #[arg(long, value_name = "URL", help_heading = "Soak options")]
    pub metrics_url: Option<String>,
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

    /// The validated plan of the run these options ask for (not for
    /// `soak`: see [`BenchArgs::soak_plan`]).
    pub fn plan(&self) -> Result<Plan, BenchError> {
        if let Some(option) = self.soak_options_given().first() {
            return Err(BenchError::invalid(
                option,
                format!(
                    "applies to `herald bench soak` only, not to {}",
                    self.workload
                ),
            ));
        }
        self.workload.plan(&self.overrides())
    }

    /// The soak options given on the command line.
    fn soak_options_given(&self) -> Vec<&'static str> {
        [
            ("--report-every", self.report_every.is_some()),
            ("--load", self.load.is_some()),
            ("--fanout-subscribers", self.fanout_subscribers.is_some()),
            ("--fanout-rate", self.fanout_rate.is_some()),
            ("--pairs", self.pairs.is_some()),
            ("--pairs-rate", self.pairs_rate.is_some()),
            ("--responders", self.responders.is_some()),
            ("--requesters", self.requesters.is_some()),
            ("--request-rate", self.request_rate.is_some()),
            ("--request-timeout", self.request_timeout.is_some()),
            ("--churn-rate", self.churn_rate.is_some()),
            ("--churn-events", self.churn_events.is_some()),
            ("--churn-event-rate", self.churn_event_rate.is_some()),
            ("--settle-timeout", self.settle_timeout.is_some()),
            ("--metrics-url", self.metrics_url.is_some()),
        ]
        .into_iter()
        .filter_map(|(option, given)| given.then_some(option))
        .collect()
    }

    /// The validated plan of a soak (`herald bench soak`).
    pub fn soak_plan(&self) -> Result<SoakPlan, BenchError> {
        let not_for_soak = [
            (
                "--subscribers",
                "--fanout-subscribers",
                self.subscribers.is_some(),
            ),
            ("--publishers", "--pairs", self.publishers.is_some()),
            ("--messages", "--duration", self.messages.is_some()),
            (
                "--rate",
                "--fanout-rate, --pairs-rate, --request-rate or --load",
                self.rate.is_some(),
            ),
            ("--conns", "--churn-rate", self.conns.is_some()),
            ("--batch", "--window", self.batch.is_some()),
            ("--scale", "--load or --duration", self.scale.is_some()),
            ("--quick", "--duration", self.quick),
        ];
        if let Some((option, instead, _)) = not_for_soak.iter().find(|(_, _, given)| *given) {
            return Err(BenchError::invalid(
                option,
                format!("does not apply to soak; use {instead}"),
            ));
        }
        let defaults = SoakPlan::default();
        let plan = SoakPlan {
            duration: self.duration.map_or(defaults.duration, Into::into),
            report_every: self.report_every.map_or(defaults.report_every, Into::into),
            fanout_subscribers: self
                .fanout_subscribers
                .unwrap_or(defaults.fanout_subscribers),
            fanout_rate: self.fanout_rate.unwrap_or(defaults.fanout_rate),
            pairs: self.pairs.unwrap_or(defaults.pairs),
            pairs_rate: self.pairs_rate.unwrap_or(defaults.pairs_rate),
            responders: self.responders.unwrap_or(defaults.responders),
            requesters: self.requesters.unwrap_or(defaults.requesters),
            request_rate: self.request_rate.unwrap_or(defaults.request_rate),
            request_timeout: self
                .request_timeout
                .map_or(defaults.request_timeout, Into::into),
            churn_rate: self.churn_rate.unwrap_or(defaults.churn_rate),
            churn_events: self.churn_events.unwrap_or(defaults.churn_events),
            churn_event_rate: self.churn_event_rate.unwrap_or(defaults.churn_event_rate),
            payload_bytes: self.payload.unwrap_or(defaults.payload_bytes),
            window: self.window.unwrap_or(defaults.window),
            drain_timeout: self
                .drain_timeout
                .map_or(defaults.drain_timeout, Into::into),
            settle_timeout: self
                .settle_timeout
                .map_or(defaults.settle_timeout, Into::into),
        };
        let plan = plan.with_load(self.load.unwrap_or(1.0))?;
        plan.validate()?;
        if let Some(url) = &self.metrics_url {
            crate::scrape::check_url(url)?;
        }
        Ok(plan)
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
            "soak",
            "--report-every",
            "--server-pid",
            "fire-and-forget",
        ] {
            assert!(help.contains(text), "{text} missing from:\n{help}");
        }
    }

    #[test]
    fn soak_options_reach_the_soak_plan_only() {
        let args = parse(&[
            "soak",
            "--duration",
            "60s",
            "--report-every",
            "10s",
            "--fanout-rate",
            "100",
            "--churn-rate",
            "0",
            "--load",
            "2",
            "--payload",
            "32",
        ])
        .expect("valid options");
        let plan = args.soak_plan().expect("a valid soak plan");
        assert_eq!(plan.duration, std::time::Duration::from_secs(60));
        assert_eq!(plan.report_every, std::time::Duration::from_secs(10));
        assert_eq!(plan.fanout_rate, 200, "--load doubles the rate");
        assert_eq!(plan.churn_rate, 0);
        assert_eq!(plan.payload_bytes, 32);
        assert!(args.plan().is_err(), "soak is not a compared workload");

        let error = parse(&["fanout", "--fanout-rate", "5"])
            .expect("parses")
            .plan()
            .expect_err("a soak option on another workload");
        assert!(error.to_string().contains("--fanout-rate"), "{error}");
        let error = parse(&["soak", "--rate", "5"])
            .expect("parses")
            .soak_plan()
            .expect_err("a flow option on soak");
        assert!(error.to_string().contains("--pairs-rate"), "{error}");
        let error = parse(&["soak", "--metrics-url", "nope"])
            .expect("parses")
            .soak_plan()
            .expect_err("not an http URL");
        assert!(error.to_string().contains("--metrics-url"), "{error}");
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
