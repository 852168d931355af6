//! `herald bench`: one workload against one broker URL, on a dedicated
//! single-threaded runtime, printed as a table or as JSON.

use std::future::Future;
use std::io::Write;

use crate::BenchError;
use crate::args::BenchArgs;
use crate::conns::run_conns;
use crate::driver::Driver;
use crate::flow::run_flow;
use crate::herald::HeraldDriver;
use crate::procfs::ProcessProbe;
use crate::progress::Progress;
use crate::report::{Record, loss_line, render_table};
use crate::workload::{Plan, Workload};

/// Runs `herald bench`: the workload of `args` against the broker at `url`
/// (`ws://HOST:PORT`, or the full endpoint URL), then prints the result on
/// stdout. Loss is reported, not an error; an unreachable broker, a refused
/// subscription or bad options are.
///
/// The load runs on its own thread with a single-threaded runtime, whatever
/// runtime the caller uses.
pub async fn run_bench(url: &str, args: BenchArgs) -> Result<(), BenchError> {
    let plan = args.plan()?;
    let driver = HeraldDriver::new(url, &args.namespace)?;
    let probe = args.server_pid.map(ProcessProbe::new).transpose()?;
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let workload = args.workload;
    let visible = !args.no_progress;
    std::thread::Builder::new()
        .name("herald-bench-load".to_owned())
        .spawn(move || {
            let result = run_on_current_thread(async {
                measure(&driver, workload, &plan, probe.as_ref(), visible).await
            })
            .and_then(|result| result);
            let _ = sender.send(result);
        })
        .map_err(|e| BenchError::Runtime(format!("cannot start the load thread: {e}")))?;
    let record = receiver
        .await
        .map_err(|_| BenchError::Runtime("the load thread stopped without a result".into()))??;
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
