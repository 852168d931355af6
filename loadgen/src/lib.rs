//! Load generation for Herald and its peers: the benchmark workloads,
//! latency histograms and result tables.
//!
//! - [`workload`]: the four workloads (`fanout`, `pairs`, `latency`,
//!   `conns`), their defaults and validated [`Plan`]s.
//! - [`driver`]: the [`Driver`] / [`Subscriber`] / [`Publisher`] traits a
//!   target implements; [`herald`] is Herald's (raw WebSocket +
//!   `herald-protocol`, with [`event_scan`] as its fast path for events),
//!   `herald-bench` adds NATS, Redis, socket.io and the floor forwarder.
//! - [`flow`] and [`conns`]: the workload runners; [`outcome`] the
//!   arithmetic of their results; [`report`] the records, JSON and table.
//! - [`soak`]: the long mixed load of `herald bench soak` (Herald only),
//!   reading the broker's `/metrics` through [`scrape`].
//! - [`procfs`]: server CPU time and memory from /proc, and the local
//!   process listening on a port.
//! - [`args`] and [`command`]: `herald bench` ([`BenchArgs`],
//!   [`run_bench`]), which the `herald` CLI wires in as a subcommand.
//!
//! The load generator drives every connection from one task on a
//! single-threaded runtime: it is meant to use one core, the other being the
//! server's.

pub mod args;
pub mod clock;
pub mod command;
pub mod conns;
pub mod driver;
mod error;
pub mod event_scan;
pub mod flow;
pub mod herald;
pub mod latency;
pub mod open;
pub mod outcome;
pub mod procfs;
pub mod progress;
pub mod report;
pub mod scrape;
pub mod soak;
pub mod workload;
pub mod ws;

pub use args::BenchArgs;
pub use command::{measure, run_bench, run_on_current_thread};
pub use driver::{Driver, Publisher, Subscriber};
pub use error::BenchError;
pub use report::Record;
pub use workload::{DEFAULT_OPEN_CONCURRENCY, Plan, Workload};
