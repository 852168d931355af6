//! TLS on the broker's one port (`[tls]`, PROTOCOL.md §23), with
//! certificates made in each test (rcgen): `wss://` with the SDK trusting
//! a custom CA, Engine.IO / Socket.IO over TLS (long-polling and
//! WebSocket), the HTTP publish API and `/healthz` over HTTPS; a plain
//! client, an untrusted certificate and mutual TLS refusals (each clean,
//! the other connections unharmed); and a certificate reload during
//! traffic (new connections get the new certificate, open ones keep
//! exchanging events, a broken reload keeps the old one).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use herald_client::{Client, Error};
use herald_config::Settings;
use herald_tests::sdk::{bounded, forward, recv};
use herald_tests::tls::{self, Ca, Files, Leaf};
use herald_tests::{TestBroker, http_get, short_grace, start_broker};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// A broker serving `leaf` over TLS, configured further by `more`.
async fn tls_broker(files: &Files, leaf: &Leaf, more: impl FnOnce(&mut Settings)) -> TestBroker {
    start_broker(|s| {
        short_grace(s);
        tls::serve(s, files, leaf);
        more(s);
    })
    .await
}

fn wss_url(broker: &TestBroker) -> String {
    format!("wss://{}", broker.addr())
}

/// The SDK trusting `ca` (written to `files`).
async fn sdk_client(broker: &TestBroker, files: &Files, ca: &Ca) -> Client {
    let ca_file = files.write("ca.pem", &ca.pem());
    bounded(
        "the SDK to connect over wss",
        Client::builder(wss_url(broker)).ca_file(ca_file).connect(),
    )
    .await
    .expect("the SDK connects over wss with the custom CA")
}

/// Subscribes `subscriber` to `/t` `tick` and checks that `count` events
/// from `publisher`, numbered from `from`, all arrive in order.
async fn exchange(subscriber: &Client, publisher: &Client, from: u64, count: u64) {
    let (tx, mut rx) = mpsc::channel(64);
    let subscription = subscriber
        .of("/t")
        .on("tick", forward::<u64>(&tx))
        .await
        .expect("subscribed");
    for n in from..from + count {
        publisher.of("/t").emit("tick", &n).await.expect("emit");
    }
    for n in from..from + count {
        assert_eq!(recv(&mut rx).await, n, "events arrive whole and in order");
    }
    drop(subscription);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_speaks_wss_with_a_custom_ca() {
    let (ca, files) = (Ca::new("test CA"), Files::new());
    let broker = tls_broker(&files, &ca.server(), |_| {}).await;
    let subscriber = sdk_client(&broker, &files, &ca).await;
    let publisher = sdk_client(&broker, &files, &ca).await;
    exchange(&subscriber, &publisher, 0, 200).await;
    // Large events cross several TLS records in both directions.
    let (tx, mut rx) = mpsc::channel(4);
    let _sub = subscriber
        .of("/big")
        .on("blob", forward::<Vec<u8>>(&tx))
        .await
        .expect("subscribed");
    let blob: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    publisher
        .of("/big")
        .emit("blob", &blob)
        .await
        .expect("emit");
    assert_eq!(recv(&mut rx).await, blob);
    assert_eq!(broker.stats().tls_handshakes_failed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_api_health_and_metrics_are_served_over_https() {
    let (ca, files) = (Ca::new("test CA"), Files::new());
    let broker = tls_broker(&files, &ca.server(), |_| {}).await;
    let config = tls::client_config(&ca.pem(), None);
    let addr = broker.addr();
    let health = tls::https(addr, &config, "GET", "/healthz", b"").await;
    assert_eq!(health.status, 200, "{health:?}");
    let subscriber = sdk_client(&broker, &files, &ca).await;
    let (tx, mut rx) = mpsc::channel(4);
    let _sub = subscriber
        .of("/shop")
        .on("order.created", forward::<serde_json::Value>(&tx))
        .await
        .expect("subscribed");
    let published = tls::https(
        addr,
        &config,
        "POST",
        "/v1/emit/order.created?namespace=/shop",
        br#"{"id":7}"#,
    )
    .await;
    assert_eq!(published.status, 200, "{published:?}");
    assert_eq!(recv(&mut rx).await, serde_json::json!({"id": 7}));
    let metrics = tls::https(addr, &config, "GET", "/metrics", b"").await;
    assert!(
        metrics
            .body
            .contains("herald_tls_handshake_failures_total 0"),
        "{}",
        metrics.body
    );
    assert!(
        metrics
            .body
            .contains("herald_tls_reloads_total{result=\"error\"} 0"),
        "{}",
        metrics.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engineio_and_socketio_run_over_tls() {
    let (ca, files) = (Ca::new("test CA"), Files::new());
    let broker = tls_broker(&files, &ca.server(), |_| {}).await;
    let config = tls::client_config(&ca.pem(), None);
    let addr = broker.addr();
    // Long-polling: the open packet, then a Socket.IO CONNECT and its answer.
    let open = tls::https(
        addr,
        &config,
        "GET",
        "/socket.io/?EIO=4&transport=polling",
        b"",
    )
    .await;
    assert_eq!(open.status, 200, "{open:?}");
    let handshake: serde_json::Value =
        serde_json::from_str(open.body.strip_prefix('0').expect("an open packet")).unwrap();
    let sid = handshake["sid"].as_str().expect("a sid").to_owned();
    let poll = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    let sent = tls::https(addr, &config, "POST", &poll, b"40").await;
    assert_eq!(sent.status, 200, "{sent:?}");
    let connected = tls::https(addr, &config, "GET", &poll, b"").await;
    assert!(connected.body.starts_with("40{\"sid\":"), "{connected:?}");
    // WebSocket: open, CONNECT, and an event from the SDK delivered to it.
    let mut ws = tls::wss(addr, &config, "/socket.io/?EIO=4&transport=websocket", None)
        .await
        .expect("a wss upgrade on the Socket.IO path");
    let first = bounded("the open packet", ws.next())
        .await
        .unwrap()
        .unwrap();
    assert!(first.to_text().unwrap().starts_with('0'), "{first:?}");
    ws.send(Message::text("40")).await.unwrap();
    let answer = bounded("CONNECT's answer", ws.next())
        .await
        .unwrap()
        .unwrap();
    assert!(answer.to_text().unwrap().starts_with("40{"), "{answer:?}");
    let publisher = sdk_client(&broker, &files, &ca).await;
    let event = async {
        loop {
            publisher.of("/").emit("hello", &"tls").await.expect("emit");
            let message = bounded("an event", ws.next()).await.unwrap().unwrap();
            let text = message.into_text().unwrap();
            if text.starts_with("42") {
                return text;
            }
        }
    };
    let text = bounded("the event on the Socket.IO socket", event).await;
    assert_eq!(text.as_str(), r#"42["hello","tls"]"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_client_on_the_tls_port_is_refused_cleanly() {
    let (ca, files) = (Ca::new("test CA"), Files::new());
    let broker = tls_broker(&files, &ca.server(), |_| {}).await;
    let subscriber = sdk_client(&broker, &files, &ca).await;
    let publisher = sdk_client(&broker, &files, &ca).await;
    // Plain HTTP: no HTTP answer, the connection ends.
    let mut plain = tokio::net::TcpStream::connect(broker.addr()).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    let _ = bounded(
        "the broker to end the plain connection",
        plain.read_to_end(&mut raw),
    )
    .await;
    assert!(
        !raw.starts_with(b"HTTP/"),
        "no HTTP answer in plain text: {raw:?}"
    );
    // A plain ws:// client fails its upgrade.
    let ws = tokio_tungstenite::connect_async(format!("ws://{}/v1/ws", broker.addr())).await;
    assert!(ws.is_err(), "a plain WebSocket client is not served");
    broker
        .wait_for_stats("the failed handshakes to be counted", |s| {
            s.tls_handshakes_failed >= 1
        })
        .await;
    // The TLS clients are unharmed.
    exchange(&subscriber, &publisher, 0, 20).await;
    let health = http_get_tls(&broker, &ca).await;
    assert_eq!(health, 200);
}

async fn http_get_tls(broker: &TestBroker, ca: &Ca) -> u16 {
    let config = tls::client_config(&ca.pem(), None);
    tls::https(broker.addr(), &config, "GET", "/healthz", b"")
        .await
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_refused_by_the_sdk() {
    let (ca, files) = (Ca::new("test CA"), Files::new());
    let broker = tls_broker(&files, &ca.server(), |_| {}).await;
    // The system roots do not know the test CA; another CA is no better.
    let other = Ca::new("another CA");
    for ca_file in [None, Some(files.write("other.pem", &other.pem()))] {
        let mut builder = Client::builder(wss_url(&broker));
        if let Some(path) = ca_file {
            builder = builder.ca_file(path);
        }
        let error = bounded("the refused connect", builder.connect())
            .await
            .expect_err("an untrusted certificate is refused");
        let Error::Tls(message) = &error else {
            panic!("expected Error::Tls, got {error:?}");
        };
        assert!(
            message.contains("invalid peer certificate") && message.contains("ca_file"),
            "{message}"
        );
    }
    // A CA file that does not exist is named.
    let missing = files.path("missing.pem");
    let error = Client::builder(wss_url(&broker))
        .ca_file(&missing)
        .connect()
        .await
        .expect_err("a missing CA file");
    assert!(
        matches!(&error, Error::Tls(m) if m.contains("missing.pem") && m.contains("cannot read")),
        "{error:?}"
    );
    assert_eq!(http_get_tls(&broker, &ca).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_requires_a_client_certificate_from_the_client_ca() {
    let (ca, files) = (Ca::new("server CA"), Files::new());
    let clients_ca = Ca::new("client CA");
    let client_ca_file = files.write("clients.pem", &clients_ca.pem());
    let broker = tls_broker(&files, &ca.server(), |s| {
        s.tls.client_ca_file = tls::text(&client_ca_file);
    })
    .await;
    let ca_file = files.write("ca.pem", &ca.pem());
    let builder = || Client::builder(wss_url(&broker)).ca_file(&ca_file);

    // No client certificate.
    let error = bounded("refused without a certificate", builder().connect())
        .await
        .expect_err("no client certificate is refused");
    assert!(
        matches!(error, Error::Tls(_) | Error::Connect(_)),
        "{error:?}"
    );

    // A certificate from a CA the broker does not trust.
    let stranger = Ca::new("stranger CA").client("mallory");
    let cert = files.write("mallory.pem", &stranger.cert_pem);
    let key = files.write("mallory.key", &stranger.key_pem);
    let error = bounded(
        "refused with a foreign certificate",
        builder().client_cert(&cert, &key).connect(),
    )
    .await
    .expect_err("a certificate from another CA is refused");
    assert!(
        matches!(error, Error::Tls(_) | Error::Connect(_)),
        "{error:?}"
    );
    let failed = broker
        .wait_for_stats("both refusals counted", |s| s.tls_handshakes_failed >= 2)
        .await;
    assert_eq!(failed.connections_opened, 0);

    // The right certificate works; so does HTTPS with it, not without.
    let alice = clients_ca.client("alice");
    let cert = files.write("alice.pem", &alice.cert_pem);
    let key = files.write("alice.key", &alice.key_pem);
    let subscriber = bounded(
        "the connect with a client certificate",
        builder().client_cert(&cert, &key).connect(),
    )
    .await
    .expect("a trusted client certificate is accepted");
    let publisher = builder().client_cert(&cert, &key).connect().await.unwrap();
    exchange(&subscriber, &publisher, 0, 20).await;
    let with = tls::client_config(&ca.pem(), Some(&alice));
    let health = tls::https(broker.addr(), &with, "GET", "/healthz", b"").await;
    assert_eq!(health.status, 200);
    let without = tls::client_config(&ca.pem(), None);
    assert!(
        tls::try_https(broker.addr(), &without, "GET", "/healthz", b"")
            .await
            .is_err(),
        "HTTPS without a client certificate is refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_serves_the_new_certificate_while_open_connections_go_on() {
    let (ca, files) = (Ca::new("test CA"), Files::new());
    let first = ca.server();
    let broker = tls_broker(&files, &first, |s| {
        s.tls.reload_interval = Duration::from_millis(100);
    })
    .await;
    let trust = tls::client_config(&ca.pem(), None);
    assert_eq!(tls::served_leaf(broker.addr(), &trust).await, first.der);
    let subscriber = sdk_client(&broker, &files, &ca).await;
    let publisher = sdk_client(&broker, &files, &ca).await;
    let (tx, mut rx) = mpsc::channel(1024);
    let _sub = subscriber
        .of("/t")
        .on("tick", forward::<u64>(&tx))
        .await
        .expect("subscribed");

    // Traffic runs on the open connections across the reload.
    let traffic = tokio::spawn(async move {
        for n in 0..400u64 {
            publisher.of("/t").emit("tick", &n).await.expect("emit");
            if n % 20 == 0 {
                tokio::task::yield_now().await;
            }
        }
        publisher
    });
    let second = ca.server();
    files.write_leaf(&second);
    let served = bounded("the new certificate to be served", async {
        loop {
            let leaf = tls::served_leaf(broker.addr(), &trust).await;
            if leaf != first.der {
                return leaf;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(
        served, second.der,
        "new connections get the new certificate"
    );
    let publisher = traffic.await.unwrap();
    for n in 0..400u64 {
        assert_eq!(recv(&mut rx).await, n, "no event lost across the reload");
    }
    assert!(broker.stats().tls_reloads_ok >= 1);

    // A broken key file: the reload fails, the old certificate stays, and
    // the open connections keep going.
    files.write("key.pem", "not a key");
    broker
        .wait_for_stats("the failed reload", |s| s.tls_reloads_failed >= 1)
        .await;
    assert_eq!(tls::served_leaf(broker.addr(), &trust).await, second.der);
    publisher.of("/t").emit("tick", &400u64).await.unwrap();
    assert_eq!(recv(&mut rx).await, 400);
    // A new SDK connection is served with the kept certificate.
    let late = sdk_client(&broker, &files, &ca).await;
    exchange(&late, &subscriber, 1000, 5).await;
}

#[tokio::test]
async fn the_plain_broker_is_unchanged() {
    let broker = start_broker(|_| {}).await;
    assert_eq!(http_get(broker.addr(), "/healthz").await.status, 200);
    let config = tls::client_config(&Ca::new("CA").pem(), None);
    assert!(
        tls::try_https(broker.addr(), &config, "GET", "/healthz", b"")
            .await
            .is_err(),
        "a plain broker speaks no TLS"
    );
}

/// The write deadline holds over TLS: a `wss` subscriber that stops
/// reading is closed as `slow_consumer` when its writes (encrypted records
/// waiting in the broker's buffer for the socket) make no progress for
/// `delivery.write_timeout`; the publisher and the broker are unharmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wss_peer_that_stops_reading_is_closed_at_the_write_deadline() {
    let (ca, files) = (Ca::new("test CA"), Files::new());
    let broker = tls_broker(&files, &ca.server(), |s| {
        s.delivery.write_timeout = Duration::from_millis(500);
        s.delivery.queue_capacity = 65_536;
        s.delivery.max_queued_bytes = 256 << 20;
    })
    .await;
    let config = tls::client_config(&ca.pem(), None);
    let open = || async {
        let ws = tls::wss(
            broker.addr(),
            &config,
            "/v1/ws",
            Some(herald_protocol::SUBPROTOCOL),
        )
        .await
        .expect("a wss connection");
        let mut client = herald_tests::RawClient::new(ws);
        client.hello().await;
        client
    };
    let mut stuck = open().await;
    stuck.subscribe("/stuck", "flood", None, false).await;
    // From here on `stuck` never reads.
    let mut publisher = open().await;
    for seq in 0..400 {
        publisher
            .emit(herald_tests::emit(
                "/stuck",
                "flood",
                herald_tests::seq_payload(seq, 64 * 1024),
            ))
            .await;
    }
    broker
        .wait_for_stats("the stuck reader's write-deadline close", |s| {
            s.closed(herald_protocol::CloseReason::SlowConsumer) == 1
        })
        .await;
    publisher.assert_no_event().await;
    assert_eq!(http_get_tls(&broker, &ca).await, 200);
    drop(stuck);
}

/// Real Socket.IO clients (socket.io-client on Node, python-socketio)
/// over `https://` / `wss://`, trusting the test CA: long-polling then the
/// upgrade to WebSocket, and an event from a native publisher delivered.
/// Needs `scripts/socketio-deps.sh` (the clients), as the other
/// real-client tests do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_socketio_clients_connect_over_tls() {
    use herald_tests::sioclient::{ClientKind, SioDriver, Transports};
    let (ca, files) = (Ca::new("test CA"), Files::new());
    let broker = tls_broker(&files, &ca.server(), |_| {}).await;
    let ca_file = files.write("ca.pem", &ca.pem());
    let url = format!("https://localhost:{}", broker.addr().port());
    let publisher = sdk_client(&broker, &files, &ca).await;
    for kind in [ClientKind::Node, ClientKind::Python] {
        let mut client = SioDriver::start_trusting(kind, &ca_file).await;
        for (id, transports) in [("up", Transports::Upgrade), ("ws", Transports::Websocket)] {
            client.connect(id, &url, "/", transports).await;
            client.wait_transport(id, "websocket").await;
        }
        publisher
            .of("/")
            .emit("news", &"over tls")
            .await
            .expect("emit");
        for id in ["up", "ws"] {
            let args = client.expect_event(id, "news").await;
            assert_eq!(args, [serde_json::json!("over tls")], "{kind:?} {id}");
        }
        client.exit().await;
    }
}

/// A client that opens TCP and never starts the TLS handshake is closed
/// at `server.handshake_timeout`, and counted.
#[tokio::test]
async fn a_silent_client_is_closed_at_the_handshake_timeout() {
    let (ca, files) = (Ca::new("test CA"), Files::new());
    let timeout = Duration::from_millis(300);
    let broker = tls_broker(&files, &ca.server(), |s| {
        s.server.handshake_timeout = timeout;
    })
    .await;
    let started = std::time::Instant::now();
    let mut silent = tokio::net::TcpStream::connect(broker.addr()).await.unwrap();
    let mut rest = Vec::new();
    let _ = bounded(
        "the broker to close the silent client",
        silent.read_to_end(&mut rest),
    )
    .await;
    assert!(started.elapsed() >= timeout, "closed before the timeout");
    assert!(
        rest.is_empty(),
        "nothing is sent to a client that said nothing"
    );
    let stats = broker
        .wait_for_stats("the timed-out handshake counted", |s| {
            s.tls_handshakes_failed == 1
        })
        .await;
    assert_eq!(stats.connections_opened, 0);
}

/// A client configuration trusting `ca` that offers TLS 1.2 only.
fn tls12_config(ca: &Ca) -> std::sync::Arc<rustls::ClientConfig> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca.pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    std::sync::Arc::new(config)
}

/// The broker's record layer (rustls' unbuffered connection, PROTOCOL.md
/// §23) over both protocol versions: on the echo endpoint, a TLS 1.2 and a
/// TLS 1.3 client get messages of one record and of many back whole; a
/// TLS 1.3 client that asks for a key update before each message (the
/// broker must answer with its own before it sends anything more) keeps
/// exchanging; each then closes cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls12_and_key_updates_over_wss() {
    let (ca, files) = (Ca::new("test CA"), Files::new());
    let broker = tls_broker(&files, &ca.server(), |s| {
        s.testing.echo_endpoint = "/echo".into();
    })
    .await;
    let addr = broker.addr();
    let payload = |len: usize| -> Vec<u8> { (0..len).map(|i| (i % 251) as u8).collect() };
    let tls13 = tls::client_config(&ca.pem(), None);
    for config in [tls12_config(&ca), tls13.clone()] {
        let mut ws = tls::wss(addr, &config, "/echo", None)
            .await
            .expect("a wss upgrade on the echo path");
        for len in [10, 40_000, 200_000] {
            let sent = payload(len);
            ws.send(Message::binary(sent.clone())).await.unwrap();
            let back = bounded("the echo", ws.next()).await.unwrap().unwrap();
            assert_eq!(back.into_data(), sent, "{len} bytes echoed whole");
        }
        ws.close(None).await.unwrap();
        let closed = bounded("the close answered", ws.next()).await;
        assert!(
            matches!(closed, Some(Ok(Message::Close(_))) | None),
            "{closed:?}"
        );
    }
    let stream = tls::connect(addr, &tls13)
        .await
        .expect("a TLS 1.3 handshake");
    let (mut ws, _) = tokio_tungstenite::client_async(format!("wss://{addr}/echo"), stream)
        .await
        .expect("a WebSocket upgrade");
    for round in 0..3 {
        ws.get_mut()
            .get_mut()
            .1
            .refresh_traffic_keys()
            .expect("a TLS 1.3 key update");
        let sent = payload(1000 + round * 30_000);
        ws.send(Message::binary(sent.clone())).await.unwrap();
        let back = bounded("the echo after a key update", ws.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back.into_data(), sent, "round {round}");
    }
    ws.close(None).await.unwrap();
    assert_eq!(broker.stats().tls_handshakes_failed, 0);
}
