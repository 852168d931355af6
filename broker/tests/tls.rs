//! The daemon with `[tls]` (PROTOCOL.md §23): unusable certificate files
//! stop start-up with exit status 2 and a message naming the key; SIGHUP
//! reloads the certificate (no polling here: `reload_interval = 0s`); and
//! the broker memory an idle `wss` connection costs, next to a plain `ws`
//! one, measured as the `conns` workload does.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use herald_loadgen::conns::run_conns;
use herald_loadgen::herald::HeraldDriver;
use herald_loadgen::procfs::ProcessProbe;
use herald_loadgen::progress::Progress;
use herald_loadgen::workload::Overrides;
use herald_loadgen::{Plan, Workload};
use herald_protocol::SUBPROTOCOL;
use herald_tests::RawClient;
use herald_tests::tls::{self, Ca, Files};
use rustls::ClientConfig;
use support::{Process, Served, broker};

/// The `HERALD__TLS__*` variables serving `files`' `cert.pem` / `key.pem`.
fn tls_env(files: &Files) -> Vec<(&'static str, String)> {
    vec![
        ("HERALD__TLS__CERT_FILE", tls::text(&files.path("cert.pem"))),
        ("HERALD__TLS__KEY_FILE", tls::text(&files.path("key.pem"))),
    ]
}

fn refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[tokio::test]
async fn unusable_certificate_files_stop_start_up_naming_the_key() {
    let (ca, files) = (Ca::new("test CA"), Files::new());
    let leaf = ca.server();
    let listen = ("HERALD__SERVER__LISTEN", "127.0.0.1:0");
    // Missing files, garbage, a key that is no key or not the
    // certificate's, a CA file that is missing: each named.
    let cases: [(&str, &str, &str, &str); 5] = [
        ("missing.pem", "key.pem", "", "tls.cert_file"),
        ("garbage.pem", "key.pem", "", "tls.cert_file"),
        ("cert.pem", "garbage.pem", "", "tls.key_file"),
        ("cert.pem", "other.key", "", "tls.key_file"),
        ("cert.pem", "key.pem", "missing.pem", "tls.client_ca_file"),
    ];
    files.write_leaf(&leaf);
    files.write("garbage.pem", "this is not PEM\n");
    // A valid key, not the certificate's.
    files.write("other.key", &ca.server().key_pem);
    for (cert, key, client_ca, named) in cases {
        let cert = tls::text(&files.path(cert));
        let key = tls::text(&files.path(key));
        let client_ca = if client_ca.is_empty() {
            String::new()
        } else {
            tls::text(&files.path(client_ca))
        };
        let env = [
            listen,
            ("HERALD__TLS__CERT_FILE", cert.as_str()),
            ("HERALD__TLS__KEY_FILE", key.as_str()),
            ("HERALD__TLS__CLIENT_CA_FILE", client_ca.as_str()),
        ];
        let done = Process::run(&mut broker(&[], &env)).await;
        assert_eq!(done.status.code(), Some(2), "{named}: {done:?}");
        assert!(done.stderr.contains(named), "{named} not named: {done:?}");
    }
    // A certificate without its key is a configuration error too.
    let cert = tls::text(&files.path("cert.pem"));
    let env = [listen, ("HERALD__TLS__CERT_FILE", cert.as_str())];
    let done = Process::run(&mut broker(&[], &env)).await;
    assert_eq!(done.status.code(), Some(2), "{done:?}");
    assert!(done.stderr.contains("tls.cert_file"), "{done:?}");
}

#[tokio::test]
async fn sighup_reloads_the_certificate() {
    let (ca, files) = (Ca::new("test CA"), Files::new());
    let first = ca.server();
    files.write_leaf(&first);
    let mut env = tls_env(&files);
    env.push(("HERALD__TLS__RELOAD_INTERVAL", "0s".to_owned()));
    let served = Served::start(&refs(&env)).await;
    let trust = tls::client_config(&ca.pem(), None);
    assert_eq!(tls::served_leaf(served.addr, &trust).await, first.der);
    let mut open = tls::wss(served.addr, &trust, "/v1/ws", Some(SUBPROTOCOL))
        .await
        .map(RawClient::new)
        .expect("a wss connection");
    open.hello().await;

    let second = ca.server();
    files.write_leaf(&second);
    // No polling: the old certificate is served until the signal.
    assert_eq!(tls::served_leaf(served.addr, &trust).await, first.der);
    served.process.signal("HUP").await;
    let ok = "herald_tls_reloads_total{result=\"ok\"}";
    served_metric(&served, &trust, ok, 1.0).await;
    assert_eq!(tls::served_leaf(served.addr, &trust).await, second.der);

    // A failed reload keeps the certificate and is counted.
    files.write("cert.pem", "-----BEGIN CERTIFICATE-----\nnope\n");
    served.process.signal("HUP").await;
    served_metric(
        &served,
        &trust,
        "herald_tls_reloads_total{result=\"error\"}",
        1.0,
    )
    .await;
    assert_eq!(tls::served_leaf(served.addr, &trust).await, second.der);
    assert!(
        served.process.stderr_so_far().contains("TLS reload failed"),
        "the failed reload is logged"
    );
    // The connection opened before both reloads is still served.
    open.subscribe("/t", "ping", None, false).await;
}

/// `/metrics` over TLS (the daemon serves nothing in plain text).
async fn served_metric(served: &Served, trust: &Arc<ClientConfig>, series: &str, at_least: f64) {
    for _ in 0..500 {
        let body = tls::https(served.addr, trust, "GET", "/metrics", b"")
            .await
            .body;
        let value = body
            .lines()
            .find_map(|line| line.strip_prefix(series))
            .and_then(|rest| rest.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        if value >= at_least {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "{series} never reached {at_least}; stderr:\n{}",
        served.process.stderr_so_far()
    );
}

/// Broker RSS per idle subscribed connection, as the `conns` benchmark
/// measures it (`herald_loadgen::conns::run_conns`: `CONNS` connections
/// opened concurrently, each subscribed to its own event, the daemon's
/// RSS before and after), over `ws://`, or `wss://` when `tls` is given.
async fn idle_kib(tls: Option<(&Files, &Ca)>) -> f64 {
    const CONNS: usize = 5000;
    let env = tls.map(|(files, _)| tls_env(files)).unwrap_or_default();
    let served = Served::start(&refs(&env)).await;
    let driver = match tls {
        None => HeraldDriver::new(&format!("ws://{}", served.addr), "/bench"),
        Some((_, ca)) => HeraldDriver::new(&format!("wss://{}", served.addr), "/bench")
            .map(|d| d.with_tls(tls::client_config(&ca.pem(), None))),
    }
    .expect("a driver");
    let overrides = Overrides {
        conns: Some(CONNS),
        ..Overrides::default()
    };
    let Ok(Plan::Conns(plan)) = Workload::Conns.plan(&overrides) else {
        panic!("conns is the idle-connections workload");
    };
    let probe = ProcessProbe::new(served.process.pid()).expect("the daemon's /proc entry");
    let outcome = run_conns(&driver, &plan, Some(&probe), &Progress::hidden())
        .await
        .expect("the connections open");
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    let (Some(before), Some(after)) = (outcome.rss_before_kib, outcome.rss_after_kib) else {
        panic!("the probe measured the daemon's RSS");
    };
    after.saturating_sub(before) as f64 / outcome.opened as f64
}

/// What an idle `wss` connection costs the broker: the goal of issue #11
/// is at most 12 KiB. Beyond a plain one it holds rustls' connection state
/// (the unbuffered connection inline, its record keys in two boxes, the
/// handshake's end state) and nothing else: the broker drives rustls'
/// unbuffered API with buffers of its own that exist only while bytes are
/// in flight (`broker/src/tls/stream.rs`), so no read or write buffer is
/// held while idle; no session cache, no tickets. Measured (5,000
/// connections): release build ws 6.6–7.0 KiB, wss 10.3–10.6 KiB; debug
/// build ws 7.3–8.1 KiB, wss 10.9–11.6 KiB (with rustls' buffered connection, whose
/// 4 KiB incoming-record buffer stays once a record was read: release
/// 14.7 KiB). A buffer held while idle (4 KiB or more) breaks the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_wss_connection_costs_at_most_12_kib() {
    let plain = idle_kib(None).await;
    let (ca, files) = (Ca::new("test CA"), Files::new());
    files.write_leaf(&ca.server());
    let wss = idle_kib(Some((&files, &ca))).await;
    eprintln!("broker RSS per idle connection: ws {plain:.2} KiB, wss {wss:.2} KiB");
    // The goal is the release build's (HERALD_BROKER_BIN, as CI's release
    // runs set it); a debug broker measures up to 1 KiB more, so it gets 13.
    let goal = if std::env::var_os("HERALD_BROKER_BIN").is_none() && cfg!(debug_assertions) {
        13.0
    } else {
        12.0
    };
    assert!(
        wss <= goal,
        "an idle wss connection costs {wss:.2} KiB (at most {goal}), a plain one {plain:.2} KiB"
    );
    assert!(
        wss - plain <= 5.5,
        "an idle wss connection costs {wss:.2} KiB, a plain one {plain:.2} KiB"
    );
}
