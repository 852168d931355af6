//! The round-trip workloads: `acked` (Herald's `emit_acked`, an emit the
//! broker acknowledges with its count of receivers) and `request`
//! (request/reply through the broker to one responder), measured through
//! the clients applications use: `herald-client` for Herald
//! ([`crate::sdk`]), `async-nats` for NATS, whose `request` is what both
//! are compared with (core NATS has no publish acknowledgement).
//!
//! [`REQUESTERS`] clients each keep [`IN_FLIGHT`] calls going (a new one
//! as soon as one is answered) until [`CALLS`] (× scale) are done; the
//! `request` responder is one more client, echoing the payload. Every
//! payload is 128 bytes. Figures: completed calls per second, per server
//! CPU-second, the load generator's CPU, and the round-trip latency.

use std::cell::RefCell;
use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::join_all;
use herald_loadgen::latency::LatencyHistogram;
use herald_loadgen::procfs::ProcessProbe;
use herald_loadgen::workload::DEFAULT_PAYLOAD_BYTES;
use herald_loadgen::{BenchError, Record};
use serde_bytes::ByteBuf;

use crate::sdk::{SdkDriver, sdk_error};

/// Clients making calls.
pub const REQUESTERS: usize = 10;
/// Calls each requester keeps in flight.
pub const IN_FLIGHT: usize = 8;
/// Calls in all, at scale 1.
pub const CALLS: u64 = 200_000;
/// How long one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The event (subject) called.
const SUBJECT: &str = "bench.rpc";

/// A round-trip workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum RoundTrip {
    /// Emit with the broker's acknowledgement (Herald `emit_acked`).
    Acked,
    /// Request/reply to one responder.
    Request,
}

impl RoundTrip {
    /// Both, in the order results are shown.
    pub const ALL: [RoundTrip; 2] = [RoundTrip::Acked, RoundTrip::Request];

    /// The workload's name in results.
    pub fn name(self) -> &'static str {
        match self {
            RoundTrip::Acked => "acked",
            RoundTrip::Request => "request",
        }
    }
}

impl fmt::Display for RoundTrip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The calls of one run: [`CALLS`] × `scale`, at least one per loop.
pub fn calls(scale: f64) -> u64 {
    ((CALLS as f64 * scale).round() as u64).max((REQUESTERS * IN_FLIGHT) as u64)
}

/// What makes one call of a workload.
#[allow(
    async_fn_in_trait,
    reason = "the calls are polled on one task; they need no Send bound"
)]
pub trait Caller {
    /// One round trip carrying `payload`.
    async fn call(&self, payload: &[u8]) -> Result<(), BenchError>;
}

/// `emit_acked` through `herald-client`.
pub struct AckedCaller(herald_client::Namespace);

impl Caller for AckedCaller {
    async fn call(&self, payload: &[u8]) -> Result<(), BenchError> {
        self.0
            .emit_acked(SUBJECT, serde_bytes::Bytes::new(payload))
            .await
            .map(drop)
            .map_err(|e| sdk_error("emit_acked", e))
    }
}

/// `request` through `herald-client`.
pub struct SdkRequestCaller(herald_client::Namespace);

impl Caller for SdkRequestCaller {
    async fn call(&self, payload: &[u8]) -> Result<(), BenchError> {
        self.0
            .request::<_, ByteBuf>(SUBJECT, serde_bytes::Bytes::new(payload), CALL_TIMEOUT)
            .await
            .map(drop)
            .map_err(|e| sdk_error("request", e))
    }
}

/// `request` through `async-nats`.
pub struct NatsCaller(async_nats::Client);

impl Caller for NatsCaller {
    async fn call(&self, payload: &[u8]) -> Result<(), BenchError> {
        let request = self.0.request(SUBJECT, Bytes::copy_from_slice(payload));
        match tokio::time::timeout(CALL_TIMEOUT, request).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(BenchError::target(
                crate::nats::TARGET,
                format!("request: {e}"),
            )),
            Err(_) => Err(BenchError::timeout(CALL_TIMEOUT, "a NATS reply")),
        }
    }
}

/// Runs `kind` through `herald-client` against the broker at `addr`.
pub async fn run_sdk(
    kind: RoundTrip,
    addr: std::net::SocketAddr,
    probe: &ProcessProbe,
    scale: f64,
) -> Result<Record, BenchError> {
    let driver = SdkDriver::new(addr)?;
    // Kept open (and answering) for the whole run.
    let mut responder = None;
    if kind == RoundTrip::Request {
        let client = driver.connect().await?;
        SdkDriver::namespace(&client)
            .on_request(SUBJECT, |payload: ByteBuf| async move {
                Ok::<_, String>(payload)
            })
            .await
            .map_err(|e| sdk_error("subscribing the responder", e))?;
        responder = Some(client);
    }
    let mut clients = Vec::with_capacity(REQUESTERS);
    for _ in 0..REQUESTERS {
        clients.push(driver.connect().await?);
    }
    let record = match kind {
        RoundTrip::Acked => {
            let callers = clients
                .iter()
                .map(|c| AckedCaller(SdkDriver::namespace(c)))
                .collect();
            drive(crate::sdk::TARGET, kind, callers, probe, scale).await
        }
        RoundTrip::Request => {
            let callers = clients
                .iter()
                .map(|c| SdkRequestCaller(SdkDriver::namespace(c)))
                .collect();
            drive(crate::sdk::TARGET, kind, callers, probe, scale).await
        }
    };
    for client in clients.iter().chain(&responder) {
        let _ = client.close().await;
    }
    record
}

/// Runs NATS's `request` through `async-nats` against the server at
/// `addr` (its `acked` is reported as skipped: core NATS has none).
pub async fn run_nats(
    kind: RoundTrip,
    addr: std::net::SocketAddr,
    probe: &ProcessProbe,
    scale: f64,
) -> Result<Record, BenchError> {
    if kind == RoundTrip::Acked {
        return Ok(Record::skipped(
            crate::nats::TARGET,
            kind.name(),
            "core NATS acknowledges no publish: Herald's acked is compared with NATS request",
        ));
    }
    let driver = crate::nats::NatsDriver::new(addr);
    let responder = driver.connect().await?;
    let mut requests = responder
        .subscribe(SUBJECT)
        .await
        .map_err(|e| BenchError::target(crate::nats::TARGET, format!("subscribing: {e}")))?;
    crate::nats::round_trip(&responder).await?;
    let answering = responder.clone();
    let answer = async move {
        while let Some(message) = requests.next().await {
            if let Some(reply) = message.reply {
                if answering.publish(reply, message.payload).await.is_err() {
                    break;
                }
            }
        }
    };
    let mut clients = Vec::with_capacity(REQUESTERS);
    for _ in 0..REQUESTERS {
        clients.push(NatsCaller(driver.connect().await?));
    }
    let run = drive(crate::nats::TARGET, kind, clients, probe, scale);
    tokio::select! {
        record = run => record,
        () = answer => Err(BenchError::target(crate::nats::TARGET, "the responder's subscription ended")),
    }
}

/// Makes the calls (each caller [`IN_FLIGHT`] at a time) and measures.
async fn drive<C: Caller>(
    target: &str,
    kind: RoundTrip,
    callers: Vec<C>,
    probe: &ProcessProbe,
    scale: f64,
) -> Result<Record, BenchError> {
    let total = calls(scale);
    let loops = (callers.len() * IN_FLIGHT) as u64;
    let latency = RefCell::new(LatencyHistogram::new());
    let failed = RefCell::new(Vec::<String>::new());
    let payload = vec![0x5a_u8; DEFAULT_PAYLOAD_BYTES];
    let this_process = ProcessProbe::new(std::process::id())?;
    let server_before = probe.cpu()?;
    let client_before = this_process.cpu()?;
    let started = Instant::now();
    let mut loop_futures = Vec::new();
    for (index, caller) in callers.iter().enumerate() {
        for slot in 0..IN_FLIGHT as u64 {
            let n = (index as u64) * IN_FLIGHT as u64 + slot;
            // Spread `total` over the loops; the first ones take the rest.
            let count = total / loops + u64::from(n < total % loops);
            let (latency, failed, payload) = (&latency, &failed, &payload);
            loop_futures.push(async move {
                let mut done = 0u64;
                for _ in 0..count {
                    let start = Instant::now();
                    match caller.call(payload).await {
                        Ok(()) => {
                            latency.borrow_mut().record(start.elapsed());
                            done += 1;
                        }
                        Err(error) => {
                            failed.borrow_mut().push(error.to_string());
                            break;
                        }
                    }
                }
                done
            });
        }
    }
    let completed: u64 = join_all(loop_futures).await.into_iter().sum();
    let elapsed = started.elapsed();
    let server_cpu = probe.cpu()?.since(server_before).as_secs_f64();
    let client_cpu = this_process.cpu()?.since(client_before).as_secs_f64();
    let latency = latency.into_inner();
    let mut errors = failed.into_inner();
    errors.dedup();
    let seconds = elapsed.as_secs_f64();
    Ok(Record {
        msgs_per_sec: (seconds > 0.0).then(|| completed as f64 / seconds),
        msgs_per_server_cpu_sec: (server_cpu > 0.0).then(|| completed as f64 / server_cpu),
        p50_us: latency.quantile_us(0.5),
        p99_us: latency.quantile_us(0.99),
        p999_us: latency.quantile_us(0.999),
        loss: Some(total - completed),
        sent: Some(total),
        delivered: Some(completed),
        seconds: Some(seconds),
        server_cpu_secs: Some(server_cpu),
        client_cpu_secs: Some(client_cpu),
        errors,
        ..Record::empty(target, kind.name())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_counts() {
        assert_eq!(RoundTrip::Acked.to_string(), "acked");
        assert_eq!(RoundTrip::Request.name(), "request");
        assert_eq!(calls(1.0), CALLS);
        assert_eq!(calls(0.05), 10_000);
        assert_eq!(calls(0.0001), (REQUESTERS * IN_FLIGHT) as u64);
    }
}
