//! Stock Socket.IO clients against a Socket.IO server running the
//! conformance handlers of issue #10: `socket.io-client` on Node,
//! python-socketio and `socket.io-client` in headless Chromium, each over
//! websocket only, polling only and polling upgraded to websocket.
//!
//! The server is [`Target::start`]'s (`HERALD_SIO_TARGET`): Herald (a
//! broker and the conformance service) by default; pointed at the Node
//! reference server (`HERALD_SIO_TARGET=reference`), the same scenarios
//! check the client rig itself and record what a Socket.IO server does. Each test is named `SCENARIO::CLIENT_TRANSPORT`
//! (e.g. `rooms::python_polling`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use herald_tests::sioclient::{ClientKind, SioDriver, Target, Transports, bin, raw};
use serde_json::{Value, json};

/// A test per client and transport for `scenario(kind, transports)`.
macro_rules! every_client {
    ($scenario:ident) => {
        mod $scenario {
            every_client!(@case $scenario, node_websocket, Node, Websocket);
            every_client!(@case $scenario, node_polling, Node, Polling);
            every_client!(@case $scenario, node_upgrade, Node, Upgrade);
            every_client!(@case $scenario, python_websocket, Python, Websocket);
            every_client!(@case $scenario, python_polling, Python, Polling);
            every_client!(@case $scenario, python_upgrade, Python, Upgrade);
            every_client!(@case $scenario, browser_websocket, Browser, Websocket);
            every_client!(@case $scenario, browser_polling, Browser, Polling);
            every_client!(@case $scenario, browser_upgrade, Browser, Upgrade);
        }
    };
    (@case $scenario:ident, $name:ident, $kind:ident, $transports:ident) => {
        #[tokio::test]
        async fn $name() {
            super::$scenario(
                super::ClientKind::$kind,
                super::Transports::$transports,
            )
            .await;
        }
    };
}

every_client!(events_and_acks);
every_client!(rooms);
every_client!(thousand_events_in_order);
every_client!(reconnection);

/// Checks (waiting for the upgrade where there is one) that socket `id`
/// is on the transport `transports` ends on.
async fn settle(client: &mut SioDriver, id: &str, transports: Transports) {
    client.wait_transport(id, transports.settled()).await;
}

/// Connects socket `id` to `namespace` and consumes the `auth` event the
/// conformance handlers send on `/` and `/custom`.
async fn connect_with_auth(
    client: &mut SioDriver,
    target: &Target,
    id: &str,
    namespace: &str,
    transports: Transports,
    auth: Option<Value>,
) -> String {
    let mut cmd = target.connect_cmd(id, namespace, transports);
    if let Some(auth) = &auth {
        cmd["auth"] = auth.clone();
    }
    let connected = match client.open(cmd).await {
        Ok(connected) => connected,
        Err(error) => panic!("{}: {id} did not connect: {error}", client.label()),
    };
    assert!(!connected.sid.is_empty(), "a connected socket has an id");
    let expected = auth.unwrap_or_else(|| json!({}));
    assert_eq!(
        client.expect_event(id, "auth").await,
        vec![expected],
        "the server's `auth` event carries the CONNECT payload"
    );
    settle(client, id, transports).await;
    connected.sid
}

/// Connects socket `id` to `namespace` (one without an `auth` event) and
/// waits until it is on its final transport.
async fn connect(
    client: &mut SioDriver,
    target: &Target,
    id: &str,
    namespace: &str,
    transports: Transports,
) {
    if let Err(error) = client
        .open(target.connect_cmd(id, namespace, transports))
        .await
    {
        panic!("{}: {id} did not connect: {error}", client.label());
    }
    settle(client, id, transports).await;
}

/// Arguments of every JSON kind, with binary at the top level and nested.
fn mixed_args() -> Value {
    json!([
        1,
        "two",
        {"three": 3.5, "nested": {"bin": bin(&[0, 1, 2, 255]), "list": [true, false, null]}},
        bin(&[7u8; 1000]),
        null,
        [bin(b"x"), -12, "\u{e9}\u{1F600}"],
    ])
}

/// `/`: the CONNECT payload comes back as `auth`; `message` is answered
/// `message-back` with the same arguments, `message-with-ack` with an ack
/// carrying them; `/custom` with no payload sends `auth` `{}`; a namespace
/// the server does not serve is refused with `Invalid namespace`.
async fn events_and_acks(kind: ClientKind, transports: Transports) {
    let target = Target::start().await;
    let mut client = SioDriver::start(kind).await;
    let auth = json!({"token": "t-1", "n": [1, 2], "nested": {"k": "v"}});
    connect_with_auth(&mut client, &target, "a", "/", transports, Some(auth)).await;

    let args = mixed_args();
    client.emit("a", "message", args.clone()).await;
    assert_eq!(
        Value::Array(client.expect_event("a", "message-back").await),
        args,
        "message-back repeats every argument, binary included, in order"
    );
    assert_eq!(
        Value::Array(client.call("a", "message-with-ack", args.clone()).await),
        args,
        "the ack carries every argument"
    );
    // Object keys keep their order (the raw line shows it; `Value` sorts).
    let ordered = r#"[{"z":1,"a":{"y":true,"b":null},"m":[3,"x"]}]"#;
    client
        .send_text(&format!(
            r#"{{"req":{{req}},"cmd":"emit","id":"a","event":"message","args":{ordered}}}"#
        ))
        .await;
    let back = client.expect_event_output("a", "message-back").await;
    assert!(
        raw(&back).contains(&format!(r#""args":{ordered}"#)),
        "message-back keeps the object keys' order: {}",
        raw(&back)
    );
    assert_eq!(
        client.call("a", "message-with-ack", json!([])).await,
        Vec::<Value>::new(),
        "an ack of no arguments"
    );

    connect_with_auth(&mut client, &target, "b", "/custom", transports, None).await;

    let refused = client
        .open(target.connect_cmd("c", "/not-served", transports))
        .await;
    match refused {
        Ok(connected) => panic!("a namespace the server does not serve connected: {connected:?}"),
        Err(error) => assert_eq!(error["message"], "Invalid namespace", "{error}"),
    }
    settle(&mut client, "a", transports).await;
    client.exit().await;
}

/// Sends an ack round trip on `/chat` socket `id`: once it is back,
/// everything the server sent that socket before has arrived.
async fn barrier(client: &mut SioDriver, id: &str) {
    assert_eq!(
        client.call(id, "echo", json!(["barrier"])).await,
        vec![json!("barrier")]
    );
}

/// `/chat`: join and leave rooms, publish to a room (every other member
/// gets `broadcast`, the ack counts them) and to the whole namespace
/// (`room` null); `echo` acks its arguments, binary included.
async fn rooms(kind: ClientKind, transports: Transports) {
    let target = Target::start().await;
    let mut client = SioDriver::start(kind).await;
    for id in ["a", "b", "c"] {
        connect(&mut client, &target, id, "/chat", transports).await;
    }
    let args = mixed_args();
    assert_eq!(
        Value::Array(client.call("a", "echo", args.clone()).await),
        args
    );

    let room = unique("room");
    for id in ["a", "b"] {
        assert_eq!(
            client.call(id, "join", json!([room])).await,
            vec![json!({"ok": true, "room": room})]
        );
    }
    let data = json!({"x": 1, "bin": bin(b"\x00room\xff")});
    assert_eq!(
        client
            .call("a", "publish", json!([{"room": room, "data": data}]))
            .await,
        vec![json!({"ok": true, "recipients": 1})],
        "a room of two: the publisher's ack counts the other member"
    );
    let broadcast = json!([{"room": room, "data": data}]);
    client.expect_event_args("b", "broadcast", &broadcast).await;
    barrier(&mut client, "c").await;
    client.assert_not_received("a", "broadcast", &broadcast);
    client.assert_not_received("c", "broadcast", &broadcast);

    let everyone = json!({"everyone": unique("data")});
    let ack = client
        .call("c", "publish", json!([{"room": null, "data": everyone}]))
        .await;
    if target.is_private() {
        assert_eq!(
            ack,
            vec![json!({"ok": true, "recipients": 2})],
            "room null: every other socket of /chat"
        );
    } else {
        assert!(ack[0]["recipients"].as_u64() >= Some(2), "{ack:?}");
    }
    let broadcast = json!([{"room": null, "data": everyone}]);
    for id in ["a", "b"] {
        client.expect_event_args(id, "broadcast", &broadcast).await;
    }
    client.assert_not_received("c", "broadcast", &broadcast);

    assert_eq!(
        client.call("b", "leave", json!([room])).await,
        vec![json!({"ok": true, "room": room})]
    );
    assert_eq!(
        client
            .call("a", "publish", json!([{"room": room, "data": 2}]))
            .await,
        vec![json!({"ok": true, "recipients": 0})],
        "after the leave, the publisher is alone in the room"
    );
    barrier(&mut client, "b").await;
    client.assert_not_received("b", "broadcast", &json!([{"room": room, "data": 2}]));
    client.exit().await;
}

/// A name no other test (nor another run on a shared server) uses.
fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{nanos}-{n}", std::process::id())
}

/// 1,000 events emitted back to back come back in the order sent.
async fn thousand_events_in_order(kind: ClientKind, transports: Transports) {
    const COUNT: u64 = 1000;
    let target = Target::start().await;
    let mut client = SioDriver::start(kind).await;
    connect_with_auth(&mut client, &target, "a", "/", transports, None).await;
    client
        .send(json!({"cmd": "emit_seq", "id": "a", "event": "message", "count": COUNT}))
        .await;
    for i in 0..COUNT {
        let args = client.expect_event("a", "message-back").await;
        assert_eq!(args, vec![json!(i)], "event {i} of {COUNT} out of order");
    }
    settle(&mut client, "a", transports).await;
    client.exit().await;
}

/// The server dies and comes back on the same port: the client notices,
/// reconnects by itself (a new socket id, `auth` again) and works.
async fn reconnection(kind: ClientKind, transports: Transports) {
    let mut target = Target::start().await;
    let mut client = SioDriver::start(kind).await;
    let mut cmd = target.connect_cmd("a", "/", transports);
    cmd["reconnection"] = json!(true);
    cmd["auth"] = json!({"session": 1});
    let first = match client.open(cmd).await {
        Ok(connected) => connected,
        Err(error) => panic!("did not connect: {error}"),
    };
    assert_eq!(
        client.expect_event("a", "auth").await,
        vec![json!({"session": 1})]
    );
    settle(&mut client, "a", transports).await;

    target.restart().await;
    let gone = client
        .expect("the disconnect after the server died", |v| {
            v["type"] == "disconnect" && v["id"] == "a"
        })
        .await;
    let reason = gone["reason"].as_str().unwrap_or_default().to_owned();
    assert!(
        !reason.contains("client disconnect") && !reason.contains("server disconnect"),
        "a dead server is a transport failure, not a disconnect by either side: {gone}"
    );
    client
        .expect("the reconnection", |v| {
            v["type"] == "reconnect" && v["id"] == "a"
        })
        .await;
    let back = client
        .expect("the socket to connect again", |v| {
            v["type"] == "connected" && v["id"] == "a"
        })
        .await;
    assert_ne!(
        back["sid"],
        json!(first.sid),
        "a new server session, a new socket id"
    );
    assert_eq!(
        client.expect_event("a", "auth").await,
        vec![json!({"session": 1})],
        "the reconnection sends the same CONNECT payload"
    );
    settle(&mut client, "a", transports).await;
    assert_eq!(
        client.call("a", "message-with-ack", json!(["after"])).await,
        vec![json!("after")]
    );
    client.exit().await;
}

/// Node (websocket), Python (polling) and the browser (upgrade) in one
/// `/chat` room: what each publishes reaches the other two.
#[tokio::test]
async fn three_clients_share_a_room() {
    let target = Target::start().await;
    let room = unique("mixed");
    let mut clients = [
        (
            SioDriver::start(ClientKind::Node).await,
            Transports::Websocket,
        ),
        (
            SioDriver::start(ClientKind::Python).await,
            Transports::Polling,
        ),
        (
            SioDriver::start(ClientKind::Browser).await,
            Transports::Upgrade,
        ),
    ];
    for (client, transports) in &mut clients {
        connect(client, &target, "m", "/chat", *transports).await;
        assert_eq!(
            client.call("m", "join", json!([room])).await,
            vec![json!({"ok": true, "room": room})]
        );
    }
    for sender in 0..clients.len() {
        let label = clients[sender].0.label().to_owned();
        let data = json!({"from": label, "bin": bin(label.as_bytes())});
        let ack = clients[sender]
            .0
            .call("m", "publish", json!([{"room": room, "data": data}]))
            .await;
        assert_eq!(
            ack,
            vec![json!({"ok": true, "recipients": 2})],
            "{label}'s publish"
        );
        let broadcast = json!([{"room": room, "data": data}]);
        for (receiver, (client, _)) in clients.iter_mut().enumerate() {
            if receiver != sender {
                client.expect_event_args("m", "broadcast", &broadcast).await;
            }
        }
    }
    for (client, _) in clients {
        client.exit().await;
    }
}
