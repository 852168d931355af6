//! The daemon's allocator: mimalloc, set up to give freed memory back to
//! the OS as soon as it is free (part of the `herald-broker` binary only).
//!
//! mimalloc returns ("purges") freed pages to the OS only once they have
//! been free for `purge_delay` (1 s by default), and it checks that delay
//! only when a thread next allocates or frees. A broker that goes idle
//! after a burst therefore kept everything: 1 GiB resident after a 1 GiB
//! burst of queued events, with no connection left (issue #9). With
//! `MIMALLOC_PURGE_DELAY=0`, the free that empties a span of an arena
//! returns it at once (`madvise(MADV_DONTNEED)`, mimalloc's default
//! `purge_decommits`); memory that threads keep for reuse (the pages of
//! small objects) is not affected, so the hot path stays as it was
//! (BENCHMARKS.md has the figures).
//!
//! mimalloc reads its options from the environment as the process starts,
//! before `main`; setting one later through its C API takes `unsafe`, which
//! the workspace forbids. So the daemon re-executes itself once with the
//! option set, when it is not set already: an operator's own
//! `MIMALLOC_PURGE_DELAY` (or any other `MIMALLOC_` option) is left alone.

use std::ffi::OsString;

/// mimalloc's option, in milliseconds (`-1`: never purge).
pub(crate) const PURGE_DELAY: &str = "MIMALLOC_PURGE_DELAY";
/// What the daemon sets it to: purge when freed.
const PURGE_AT_ONCE: &str = "0";

/// How mimalloc's purge delay was settled.
#[derive(Debug)]
pub(crate) enum PurgeDelay {
    /// The environment sets it (the operator did, or the daemon's
    /// re-execution): this value.
    Set(OsString),
    /// The daemon could not re-execute itself with it set: mimalloc's
    /// default applies, and freed memory may stay resident while idle.
    Default(std::io::Error),
}

/// Re-executes the daemon with `MIMALLOC_PURGE_DELAY=0` unless the
/// environment sets it; returns only when it is set, or the re-execution
/// failed. Call it first, before any thread starts.
#[cfg(unix)]
pub(crate) fn purge_when_freed() -> PurgeDelay {
    use std::os::unix::process::CommandExt;

    if let Some(value) = std::env::var_os(PURGE_DELAY) {
        return PurgeDelay::Set(value);
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(error) => return PurgeDelay::Default(error),
    };
    let mut args = std::env::args_os();
    let mut command = std::process::Command::new(exe);
    if let Some(arg0) = args.next() {
        command.arg0(arg0);
    }
    // `exec` replaces this process (same PID, same descriptors) and
    // returns only on failure.
    let error = command.args(args).env(PURGE_DELAY, PURGE_AT_ONCE).exec();
    PurgeDelay::Default(error)
}

/// Off Unix the option is left to the environment.
#[cfg(not(unix))]
pub(crate) fn purge_when_freed() -> PurgeDelay {
    match std::env::var_os(PURGE_DELAY) {
        Some(value) => PurgeDelay::Set(value),
        None => PurgeDelay::Default(std::io::Error::other("not re-executed off Unix")),
    }
}

impl PurgeDelay {
    /// Says in the log how freed memory is returned.
    pub(crate) fn log(&self) {
        match self {
            PurgeDelay::Set(value) => tracing::info!(
                "allocator: mimalloc, {PURGE_DELAY}={} (ms before freed memory goes back to the OS)",
                value.to_string_lossy()
            ),
            PurgeDelay::Default(error) => tracing::warn!(
                %error,
                "allocator: mimalloc with its default purge delay: could not re-execute \
                 with {PURGE_DELAY}={PURGE_AT_ONCE}, so memory freed after a burst may \
                 stay resident while the broker is idle; set {PURGE_DELAY}=0 in the \
                 environment"
            ),
        }
    }
}
