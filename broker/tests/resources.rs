//! Process tests of the daemon within the machine's limits (issue #9,
//! defects 6 and 7), on the real binary:
//!
//! - Under a low open-files limit (`RLIMIT_NOFILE`) the broker raises its
//!   soft limit to the hard one, lowers its connection limit to what the
//!   descriptors allow less a reserve, says so in the log, and keeps
//!   answering at that limit: upgrades get 503 `connection_limit`,
//!   `/healthz` gets 200.
//! - After a burst of about 1 GiB of queued events whose clients then go
//!   away, the broker's resident memory falls back below 256 MiB.
//!
//! Every wait is bounded; the daemon is killed (by PID) when a test ends.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use herald_protocol::envelope::Subscription;
use herald_protocol::{Envelope, SUBPROTOCOL};
use herald_tests::cluster::free_port;
use herald_tests::{MuteSocket, RawClient, client_frame, connect_raw, emit, http_get, refused};
use support::{Process, broker_bin, wait_serving};
use tokio::process::Command;

const MIB: u64 = 1 << 20;

/// Starts the daemon on a free loopback port with `args`, through `sh -c
/// PREFIX; exec BROKER ARGS…` (e.g. to set limits first), and waits until
/// it serves.
async fn start(shell_prefix: &str, args: &[&str]) -> (Process, SocketAddr) {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let listen = addr.to_string();
    let bin = broker_bin();
    let mut command = Command::new("sh");
    command
        .env_clear()
        .arg("-c")
        .arg(format!("{shell_prefix} exec \"$0\" \"$@\""))
        .arg(&bin)
        .args(["--listen", &listen, "--log-level", "warn"])
        .args(args);
    let mut daemon = Process::spawn(&mut command);
    wait_serving(&mut daemon, addr).await;
    (daemon, addr)
}

/// An upgraded, greeted session; the `Err` of a refused upgrade.
async fn session(addr: SocketAddr) -> Result<RawClient, herald_tests::HttpResponse> {
    match connect_raw(addr, Some(SUBPROTOCOL)).await {
        Ok(mut client) => {
            client.hello().await;
            Ok(client)
        }
        Err(error) => Err(refused(Err(error))),
    }
}

#[tokio::test]
async fn at_the_open_files_limit_upgrades_get_503_and_healthz_still_answers() {
    // Soft 256, hard 320: the broker raises the soft limit to 320 and keeps
    // a reserve of max(64, 320 / 10) = 64 descriptors for everything that
    // is not a session (listener, HTTP requests, logs, Redis).
    let (daemon, addr) = start("ulimit -Sn 256 && ulimit -Hn 320 &&", &[]).await;
    let effective = 320 - 64;

    let mut sessions = Vec::new();
    let refusal = loop {
        assert!(
            sessions.len() <= effective,
            "{} sessions accepted under an open-files limit of 320",
            sessions.len()
        );
        match session(addr).await {
            Ok(client) => sessions.push(client),
            Err(response) => break response,
        }
    };
    assert_eq!(
        sessions.len(),
        effective,
        "sessions accepted before the refusal"
    );
    assert_eq!(refusal.status, 503, "{refusal:?}");
    assert!(
        refusal.body.contains("\"code\":\"connection_limit\""),
        "{refusal:?}"
    );
    for needle in [
        &format!("{effective} sessions"),
        "server.max_connections = 100000",
        "open-files limit",
        "320",
    ] {
        assert!(
            refusal.body.contains(needle),
            "{needle:?} missing: {refusal:?}"
        );
    }

    // At the limit the broker still answers everything else.
    let health = http_get(addr, "/healthz").await;
    assert_eq!(health.status, 200, "{health:?}");
    let metrics = http_get(addr, "/metrics").await;
    assert!(
        metrics
            .body
            .lines()
            .any(|l| l == format!("herald_connection_limit {effective}")),
        "{}",
        metrics.body
    );
    match session(addr).await {
        Ok(_) => panic!("a session was accepted past the limit"),
        Err(again) => assert_eq!(again.status, 503, "{again:?}"),
    }

    // A session that leaves makes room for a new one.
    sessions.pop().expect("sessions are open").close().await;
    let mut replacement = None;
    for _ in 0..100 {
        if let Ok(client) = session(addr).await {
            replacement = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(replacement.is_some(), "no session accepted after one left");

    let log = daemon.stderr_so_far();
    for needle in [
        "server.max_connections",
        "100000",
        &effective.to_string(),
        "open-files limit",
        "raised from 256",
    ] {
        assert!(
            log.contains(needle),
            "{needle:?} missing in the log:\n{log}"
        );
    }
}

/// The resident set size of process `pid`, from `/proc/PID/status`.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status:\n{status}"));
    kib * 1024
}

/// Connections of the burst: each holds up to 256 MiB
/// (`delivery.max_queued_bytes`), so together they can queue twice the
/// gibibyte the test needs without any of them reaching its bound.
const BURST_CLIENTS: usize = 8;
/// The burst is over once the broker holds this much.
const BURST_RSS: u64 = 1024 * MIB;
/// Rounds of one 1 MiB emit per client: at most 3 GiB in all.
const MAX_ROUNDS: usize = 384;
/// Where the broker's memory must be once the clients are gone, and how
/// long it may take to get there.
const SETTLED_RSS: u64 = 256 * MIB;
const SETTLE_WITHIN: Duration = Duration::from_secs(30);

#[tokio::test]
async fn memory_goes_back_after_a_one_gib_burst_once_its_clients_leave() {
    let (daemon, addr) = start(
        "",
        &[
            "--set",
            "delivery.max_queued_bytes=268435456",
            "--set",
            "limits.max_payload_bytes=1048576",
            // The clients never read: only memory is under test here, not
            // the write deadline that would close them.
            "--set",
            "delivery.write_timeout=5m",
        ],
    )
    .await;
    let pid = daemon.pid();
    let idle = rss_bytes(pid);

    // Each client subscribes to its own event, then emits 1 MiB payloads
    // to it and never reads: every event stays queued in the broker.
    let payload = Bytes::from(vec![0x5a; MIB as usize]);
    let mut clients = Vec::new();
    for i in 0..BURST_CLIENTS {
        let mut socket = MuteSocket::connect(addr).await;
        socket.send_hello().await;
        let event = format!("burst.{i}");
        socket
            .send(&Envelope::Subscribe(Subscription {
                id: Some(1),
                namespace: "/".into(),
                event: event.clone(),
                group: None,
                responder: false,
            }))
            .await;
        let frame = client_frame(&Envelope::Emit(emit("/", &event, payload.clone())));
        clients.push((socket, frame, true));
    }
    let mut peak = idle;
    for _ in 0..MAX_ROUNDS {
        for (socket, frame, taking) in &mut clients {
            // A broker that stops reading a client (push-back) is not an
            // error here: that client is simply done.
            if *taking {
                *taking = socket.try_send_bytes(frame, Duration::from_secs(2)).await;
            }
        }
        peak = rss_bytes(pid);
        if peak >= BURST_RSS || !clients.iter().any(|(_, _, taking)| *taking) {
            break;
        }
    }
    assert!(
        peak >= BURST_RSS,
        "the burst took the broker only to {} MiB",
        peak / MIB
    );

    drop(clients);
    let left = tokio::time::Instant::now();
    let mut samples = Vec::new();
    let settled = loop {
        let rss = rss_bytes(pid);
        samples.push(rss / MIB);
        if rss < SETTLED_RSS {
            break rss;
        }
        assert!(
            left.elapsed() < SETTLE_WITHIN,
            "broker RSS still {} MiB {SETTLE_WITHIN:?} after the burst's clients left \
             (idle {} MiB, peak {} MiB; MiB every second: {:?})",
            rss / MIB,
            idle / MIB,
            peak / MIB,
            samples.iter().step_by(10).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!(
        "broker RSS: idle {} MiB, burst peak {} MiB, {} MiB {:?} after the clients left",
        idle / MIB,
        peak / MIB,
        settled / MIB,
        left.elapsed()
    );
    let health = http_get(addr, "/healthz").await;
    assert_eq!(health.status, 200, "{health:?}");
}
