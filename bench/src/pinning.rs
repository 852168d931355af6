//! Pinning: the load generator on CPU 1, every server on CPU 0.
//!
//! `compare` and `scale` re-execute herald-bench under `taskset -c 1` (with
//! [`PINNED_ENV`] set so the child does not do it again); the child then
//! starts each server under `taskset -c 0`, which overrides the affinity it
//! inherited.

use std::process::{Command, ExitStatus};

/// Set in the re-executed, pinned process.
pub const PINNED_ENV: &str = "HERALD_BENCH_PINNED";
/// The CPU the servers run on.
pub const SERVER_CPU: usize = 0;
/// The CPU the load generator runs on.
pub const LOAD_CPU: usize = 1;

/// What [`reexec_pinned`] did.
#[derive(Debug)]
pub enum Pinning {
    /// This process is the pinned one: servers go to [`SERVER_CPU`].
    Pinned,
    /// Pinning is not possible here (why); run unpinned.
    Unavailable(String),
    /// A pinned copy ran; this is its exit status.
    Ran(ExitStatus),
}

/// Re-executes this program with the same arguments on [`LOAD_CPU`], unless
/// this process is already the pinned one or pinning is impossible.
pub fn reexec_pinned() -> Pinning {
    if std::env::var_os(PINNED_ENV).is_some() {
        return Pinning::Pinned;
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus <= LOAD_CPU {
        return Pinning::Unavailable(format!(
            "this process may use {cpus} CPU(s); pinning needs CPUs {SERVER_CPU} and {LOAD_CPU}"
        ));
    }
    if crate::targets::find_program("taskset").is_none() {
        return Pinning::Unavailable(
            "taskset is not installed (apt-get install -y util-linux)".to_owned(),
        );
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(error) => return Pinning::Unavailable(format!("cannot find this program: {error}")),
    };
    let status = Command::new("taskset")
        .arg("-c")
        .arg(LOAD_CPU.to_string())
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(PINNED_ENV, "1")
        .status();
    match status {
        Ok(status) => Pinning::Ran(status),
        Err(error) => Pinning::Unavailable(format!("taskset failed: {error}")),
    }
}
