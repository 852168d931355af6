//! `herald-bench`: Herald against its peers on one machine.
//!
//! `compare` runs the four workloads against Herald (native, and its
//! Socket.IO front end), NATS, Redis pub/sub, a socketioxide relay and the
//! floor forwarder (and `fanout` across a
//! two-node Herald cluster); `scale` opens 100,000 idle
//! connections on one broker. The hidden `serve-floor` and `serve-socketio`
//! subcommands are the relays `compare` starts as child processes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use herald_bench::compare::{CompareOptions, compare, report};
use herald_bench::pinning::{Pinning, SERVER_CPU, reexec_pinned};
use herald_bench::rpc::RoundTrip;
use herald_bench::scale::{ScaleOptions, scale};
use herald_bench::targets::{Programs, Target};
use herald_bench::{build, floor_server, machine, socketio_relay};
use herald_loadgen::workload::{Overrides, QUICK_SCALE};
use herald_loadgen::{DEFAULT_OPEN_CONCURRENCY, Workload, run_on_current_thread};

/// Herald against NATS, Redis pub/sub, socketioxide and a floor forwarder
/// (and a two-node Herald cluster against one node).
#[derive(Debug, Parser)]
#[command(name = "herald-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the workloads against every target and compare.
    Compare(CompareArgs),
    /// Open many idle subscribed connections on one Herald broker.
    Scale(ScaleArgs),
    /// (internal) Serve the floor forwarder.
    #[command(hide = true)]
    ServeFloor(ServeArgs),
    /// (internal) Serve the socketioxide relay.
    #[command(hide = true)]
    ServeSocketio(ServeArgs),
}

/// Options shared by `compare` and `scale`.
#[derive(Debug, Args)]
struct RunArgs {
    /// Write the records as a JSON array to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Do not pin the servers to CPU 0 and the load generator to CPU 1.
    #[arg(long)]
    no_pin: bool,
    /// Do not build herald-broker first (when run through cargo).
    #[arg(long)]
    no_build: bool,
    /// Do not draw progress bars.
    #[arg(long)]
    no_progress: bool,
}

#[derive(Debug, Args)]
struct CompareArgs {
    /// Targets to measure, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = Target::ALL.to_vec())]
    targets: Vec<Target>,
    /// Workloads to run, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = Workload::ALL.to_vec())]
    workloads: Vec<Workload>,
    /// Round-trip workloads (acked, request), run for herald-sdk and nats.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = RoundTrip::ALL.to_vec())]
    round_trips: Vec<RoundTrip>,
    /// Multiply message counts, durations and connections by FACTOR.
    #[arg(long, value_name = "FACTOR", conflicts_with = "quick")]
    scale: Option<f64>,
    /// A smoke run: --scale 0.05.
    #[arg(long)]
    quick: bool,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Args)]
struct ScaleArgs {
    /// Idle subscribed connections to open.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    conns: u64,
    /// Source addresses (127.0.0.1, .2, ...) to spread them over (default one per 25,000).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=254))]
    source_ips: Option<u64>,
    /// Connections opened at the same time.
    #[arg(long, default_value_t = DEFAULT_OPEN_CONCURRENCY as u64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    concurrency: u64,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// The address to listen on.
    #[arg(long)]
    listen: SocketAddr,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::ServeFloor(args) => serve(args.listen, floor_server::serve),
        Command::ServeSocketio(args) => serve(args.listen, socketio_relay::serve),
        Command::Compare(args) => pinned(&args.run, |programs, server_cpu| {
            run_compare(&args, programs, server_cpu)
        }),
        Command::Scale(args) => pinned(&args.run, |programs, server_cpu| {
            run_scale(&args, programs, server_cpu)
        }),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("herald-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a relay on `listen` on a multi-threaded runtime (one worker per
/// CPU it may use: one, when pinned).
fn serve<Fut: Future<Output = ()>>(
    listen: SocketAddr,
    relay: impl FnOnce(tokio::net::TcpListener) -> Fut,
) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        relay(listener).await;
        Ok(ExitCode::SUCCESS)
    })
}

/// Builds herald-broker if asked, re-executes pinned to the load CPU when
/// possible, and runs `run` in the pinned process.
fn pinned(
    run_args: &RunArgs,
    run: impl FnOnce(Programs, Option<usize>) -> anyhow::Result<ExitCode>,
) -> anyhow::Result<ExitCode> {
    let first = std::env::var_os(herald_bench::pinning::PINNED_ENV).is_none();
    let herald = build::herald_broker(first && !run_args.no_build);
    if first && !build::is_release_build() {
        eprintln!(
            "herald-bench: warning: this is a debug build; its figures mean little \
             (use cargo run --release -p herald-bench)"
        );
    }
    let server_cpu = if run_args.no_pin {
        None
    } else {
        match reexec_pinned() {
            Pinning::Ran(status) => {
                return Ok(ExitCode::from(
                    status.code().unwrap_or(1).clamp(0, 255) as u8
                ));
            }
            Pinning::Pinned => Some(SERVER_CPU),
            Pinning::Unavailable(why) => {
                eprintln!("herald-bench: warning: running unpinned: {why}");
                None
            }
        }
    };
    let exe = std::env::current_exe().context("finding herald-bench itself")?;
    run(Programs::find(herald, exe), server_cpu)
}

fn log_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("herald-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn write_json(path: &Option<PathBuf>, records: &[herald_loadgen::Record]) -> anyhow::Result<()> {
    if let Some(path) = path {
        let json = serde_json::to_string_pretty(records)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
        eprintln!("herald-bench: records written to {}", path.display());
    }
    Ok(())
}

fn run_compare(
    args: &CompareArgs,
    programs: Programs,
    server_cpu: Option<usize>,
) -> anyhow::Result<ExitCode> {
    let overrides = Overrides {
        scale: if args.quick {
            Some(QUICK_SCALE)
        } else {
            args.scale
        },
        ..Overrides::default()
    };
    for workload in &args.workloads {
        workload.plan(&overrides)?;
    }
    let options = CompareOptions {
        targets: args.targets.clone(),
        workloads: args.workloads.clone(),
        round_trips: args.round_trips.clone(),
        overrides,
        server_cpu,
        progress: !args.run.no_progress,
    };
    let logs = log_dir()?;
    let comparison = run_on_current_thread(compare(&options, &programs, &logs))?;
    print!("{}", report(&comparison, &options, &machine::describe()));
    write_json(&args.run.json, &comparison.records)?;
    eprintln!("herald-bench: server logs in {}", logs.display());
    Ok(ExitCode::SUCCESS)
}

fn run_scale(
    args: &ScaleArgs,
    programs: Programs,
    server_cpu: Option<usize>,
) -> anyhow::Result<ExitCode> {
    let options = ScaleOptions {
        conns: args.conns as usize,
        source_ips: args.source_ips.map(|n| n as usize),
        concurrency: args.concurrency as usize,
        server_cpu,
        progress: !args.run.no_progress,
    };
    let logs = log_dir()?;
    let (record, summary) = run_on_current_thread(scale(&options, &programs, &logs))??;
    println!("machine: {}", machine::describe());
    print!(
        "{}",
        herald_loadgen::report::render_table(std::slice::from_ref(&record))
    );
    print!("{summary}");
    write_json(&args.run.json, &[record])?;
    Ok(ExitCode::SUCCESS)
}
