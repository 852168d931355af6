//! `herald bench`: one workload against one broker URL, on a dedicated
//! single-threaded runtime, printed as a table or as JSON; or a soak, with
//! its report lines and summary.

use std::future::Future;
use std::io::Write;

use crate::BenchError;
use crate::args::BenchArgs;
use crate::conns::run_conns;
use crate::driver::Driver;
use crate::flow::run_flow;
use crate::herald::HeraldDriver;
use crate::procfs::{ProcessProbe, find_listener_pid};
use crate::progress::Progress;
use crate::report::{Record, loss_line, render_table};
use crate::scrape::metrics_url;
use crate::soak::{BrokerView, run_soak};
use crate::workload::{Plan, Workload};

/// Runs `herald bench`: the workload of `args` against the broker at `url`
/// (`ws://HOST:PORT`, or the full endpoint URL), then prints the result on
/// stdout. Loss is reported, not an error; an unreachable broker, a refused
/// subscription or bad options are. A soak is the exception: it fails
/// ([`BenchError::SoakFailed`]) on any loss or error.
///
/// The load runs on its own thread with a single-threaded runtime, whatever
/// runtime the caller uses.
pub async fn run_bench(url: &str, args: BenchArgs) -> Result<(), BenchError> {
    if args.workload == Workload::Soak {
        return run_soak_command(url, args).await;
    }
    let plan = args.plan()?;
    let driver = HeraldDriver::new(url, &args.namespace)?;
    let probe = args.server_pid.map(ProcessProbe::new).transpose()?;
    let workload = args.workload;
    let visible = !args.no_progress;
    let record = on_load_thread(move || {
        run_on_current_thread(async {
            measure(&driver, workload, &plan, probe.as_ref(), visible).await
        })?
    })
    .await?;
    let mut stdout = std::io::stdout().lock();
    if args.json {
        let json = serde_json::to_string_pretty(&[&record])
            .map_err(|e| BenchError::Runtime(format!("cannot encode the result: {e}")))?;
        writeln!(stdout, "{json}")?;
    } else {
        write!(stdout, "{}", render_table(std::slice::from_ref(&record)))?;
        if let Some(line) = loss_line(&record) {
            writeln!(stdout, "{line}")?;
        }
        if record.msgs_per_server_cpu_sec.is_none() && record.kib_per_conn.is_none() {
            writeln!(
                stdout,
                "(server CPU and memory figures need --server-pid of a local broker)"
            )?;
        }
    }
    Ok(())
}

/// Runs `load` on a thread of its own and waits for its result, whatever
/// runtime the caller uses.
async fn on_load_thread<T: Send + 'static>(
    load: impl FnOnce() -> Result<T, BenchError> + Send + 'static,
) -> Result<T, BenchError> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("herald-bench-load".to_owned())
        .spawn(move || {
            let _ = sender.send(load());
        })
        .map_err(|e| BenchError::Runtime(format!("cannot start the load thread: {e}")))?;
    receiver
        .await
        .map_err(|_| BenchError::Runtime("the load thread stopped without a result".into()))?
}

/// `herald bench soak`: the report lines as the soak goes (on stdout, or
/// on stderr with `--json`), then the summary; an error when it failed.
///
/// Without `--server-pid`, a broker URL on a loopback address is looked up
/// among this machine's listening sockets for the broker's process.
async fn run_soak_command(url: &str, args: BenchArgs) -> Result<(), BenchError> {
    let plan = args.soak_plan()?;
    let driver = HeraldDriver::new(url, &args.namespace)?;
    let (probe, found_on) = match args.server_pid {
        Some(pid) => (Some(ProcessProbe::new(pid)?), None),
        None => match loopback_port(driver.url())
            .and_then(|port| Some((port, find_listener_pid(port)?)))
        {
            Some((port, pid)) => (ProcessProbe::new(pid).ok(), Some(port)),
            None => (None, None),
        },
    };
    let metrics_url = match &args.metrics_url {
        Some(url) => url.clone(),
        None => metrics_url(driver.url())?,
    };
    let json = args.json;
    on_load_thread(move || {
        let mut lines: Box<dyn Write> = if json {
            Box::new(std::io::stderr())
        } else {
            Box::new(std::io::stdout())
        };
        if let (Some(port), Some(probe)) = (found_on, &probe) {
            writeln!(
                lines,
                "broker: process {} (listening on port {port})",
                probe.pid()
            )?;
        }
        let view = BrokerView {
            probe: probe.as_ref(),
            metrics_url: Some(&metrics_url),
        };
        let summary = run_on_current_thread(run_soak(&driver, &plan, view, &mut lines))??;
        let mut stdout = std::io::stdout().lock();
        if json {
            let text = serde_json::to_string_pretty(&summary)
                .map_err(|e| BenchError::Runtime(format!("cannot encode the result: {e}")))?;
            writeln!(stdout, "{text}")?;
        } else {
            write!(stdout, "{}", summary.render())?;
        }
        stdout.flush()?;
        if summary.passed() {
            Ok(())
        } else {
            Err(BenchError::SoakFailed(summary.failures.join("; ")))
        }
    })
    .await
}

/// The port of a `ws://` endpoint URL whose host is a loopback address.
pub fn loopback_port(url: &str) -> Option<u16> {
    let authority = url.strip_prefix("ws://")?.split('/').next()?;
    let (host, port) = authority.rsplit_once(':')?;
    let host = host.trim_matches(['[', ']']);
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    loopback.then(|| port.parse().ok()).flatten()
}

/// Runs `future` to completion on a new single-threaded tokio runtime on
/// the current thread: the load generator uses one core.
pub fn run_on_current_thread<F: Future>(future: F) -> Result<F::Output, BenchError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| BenchError::Runtime(format!("cannot build the runtime: {e}")))?;
    Ok(runtime.block_on(future))
}

/// Runs one workload against `driver` and returns its record; draws a
/// progress bar when `visible`.
pub async fn measure<D: Driver>(
    driver: &D,
    workload: Workload,
    plan: &Plan,
    probe: Option<&ProcessProbe>,
    visible: bool,
) -> Result<Record, BenchError> {
    let label = format!("{} {workload}", driver.name());
    match plan {
        Plan::Flow(flow) => {
            let progress = Progress::new(&label, flow.expected_deliveries(), "msgs", visible);
            let outcome = run_flow(driver, flow, probe, &progress).await;
            progress.finish();
            Ok(Record::flow(driver.name(), workload.name(), &outcome?))
        }
        Plan::Conns(conns) => {
            let progress = Progress::new(&label, conns.conns as u64, "conns", visible);
            let outcome = run_conns(driver, conns, probe, &progress).await;
            progress.finish();
            Ok(Record::conns(driver.name(), workload.name(), &outcome?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_urls_give_a_port() {
        assert_eq!(loopback_port("ws://127.0.0.1:7400/v1/ws"), Some(7400));
        assert_eq!(loopback_port("ws://localhost:81/v1/ws"), Some(81));
        assert_eq!(loopback_port("ws://[::1]:82/v1/ws"), Some(82));
        assert_eq!(loopback_port("ws://10.0.0.5:7400/v1/ws"), None);
        assert_eq!(loopback_port("ws://example.org:7400/v1/ws"), None);
        assert_eq!(loopback_port("ws://127.0.0.1/v1/ws"), None);
    }
}
