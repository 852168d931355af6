//! The stock Socket.IO Admin UI protocol (`@socket.io/admin-ui`'s server
//! side) on Herald's `/admin` namespace, driven by Node's socket.io-client
//! as the Admin UI drives it: the credentials in the CONNECT auth, the
//! `config` / `all_sockets` / `server_stats` it is sent, the live
//! `socket_connected` / `room_joined` / `room_left` / `socket_disconnected`
//! (for native connections too), and its commands `emit`, `join`,
//! `leave`, `_disconnect`, with their effect on real clients.

#![allow(clippy::unwrap_used)]

use herald_tests::admin::{ADMIN_TOKEN, password_hash, with_admin};
use herald_tests::sioclient::{ClientKind, SioDriver, Transports};
use herald_tests::{TestBroker, start_broker};
use serde_json::{Value, json};

async fn broker(read_only: bool) -> TestBroker {
    let hash = password_hash("s3cret-admin");
    start_broker(move |s| {
        with_admin(s);
        s.admin.password_hash = hash;
        s.admin.read_only = read_only;
        s.socketio.connect_timeout = std::time::Duration::from_secs(2);
    })
    .await
}

fn admin_connect(url: &str, auth: Value) -> Value {
    let mut cmd = SioDriver::connect_cmd("ui", url, "/admin", Transports::Websocket);
    cmd["auth"] = auth;
    cmd
}

/// The `(nsp, id)` of every socket in an `all_sockets` list.
fn listed(sockets: &Value) -> Vec<(String, String)> {
    sockets
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["nsp"].as_str().unwrap().to_owned(),
                s["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_admin_ui_protocol_sees_every_connection_and_its_commands_work() {
    let broker = broker(false).await;
    let url = format!("http://{}", broker.addr());
    let mut native = broker.connect().await;
    let native_sid = native.hello().await.session;
    native.subscribe("/orders", "order.*", None, false).await;
    let mut driver = SioDriver::start(ClientKind::Node).await;
    let user = driver
        .connect("user", &url, "/chat", Transports::Websocket)
        .await;

    // Wrong credentials are refused as the reference server does.
    let refused = driver
        .open(admin_connect(
            &url,
            json!({"username": "admin", "password": "nope"}),
        ))
        .await
        .unwrap_err();
    assert_eq!(refused["message"], "invalid credentials");

    let ui = driver
        .open(admin_connect(
            &url,
            json!({"username": "admin", "password": "s3cret-admin"}),
        ))
        .await
        .unwrap();
    assert!(!ui.sid.is_empty());
    let session = driver.expect_event("ui", "session").await;
    assert!(
        session[0].as_str().is_some_and(|s| s.len() == 16),
        "{session:?}"
    );
    let config = driver.expect_event("ui", "config").await;
    let features = config[0]["supportedFeatures"].as_array().unwrap();
    for feature in ["EMIT", "JOIN", "LEAVE", "DISCONNECT"] {
        assert!(features.contains(&json!(feature)), "{config:?}");
    }
    let all = driver.expect_event("ui", "all_sockets").await;
    let sockets = listed(&all[0]);
    assert!(
        sockets.contains(&("/chat".into(), user.sid.clone())),
        "{sockets:?}"
    );
    assert!(
        sockets.contains(&("/orders".into(), native_sid.clone())),
        "native too: {sockets:?}"
    );
    let native_entry = all[0]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == native_sid.as_str())
        .unwrap();
    assert_eq!(native_entry["transport"], "websocket");
    assert_eq!(native_entry["data"]["herald"], "native");
    let stats = driver.expect_event("ui", "server_stats").await;
    assert!(stats[0]["clientsCount"].as_u64().unwrap() >= 3, "{stats:?}");
    assert!(
        stats[0]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["name"] == "/chat")
    );

    // Live updates: a new socket, a native hello.
    let late = driver
        .connect("late", &url, "/chat", Transports::Websocket)
        .await;
    let connected = driver.expect_event("ui", "socket_connected").await;
    assert_eq!(
        (connected[0]["id"].as_str(), connected[0]["nsp"].as_str()),
        (Some(late.sid.as_str()), Some("/chat"))
    );
    let mut other_native = broker.connect().await;
    let other_sid = other_native.hello().await.session;
    let hello = driver.expect_event("ui", "socket_connected").await;
    assert_eq!(hello[0]["id"], other_sid.as_str());

    // join: the socket joins, room_joined is told, a room emit reaches it.
    driver
        .emit("ui", "join", json!(["/chat", "vip", user.sid]))
        .await;
    let joined = driver.expect_event("ui", "room_joined").await;
    assert_eq!(joined, vec![json!("/chat"), json!("vip"), json!(user.sid)]);
    driver
        .emit(
            "ui",
            "emit",
            json!(["/chat", "vip", "greeting", {"hello": "vip"}]),
        )
        .await;
    driver
        .expect_event_args("user", "greeting", &json!([{"hello": "vip"}]))
        .await;
    // Several arguments stay several.
    driver
        .emit("ui", "emit", json!(["/chat", null, "pair", 1, "two"]))
        .await;
    driver
        .expect_event_args("late", "pair", &json!([1, "two"]))
        .await;

    // leave
    driver
        .emit("ui", "leave", json!(["/chat", "vip", user.sid]))
        .await;
    let left = driver.expect_event("ui", "room_left").await;
    assert_eq!(left, vec![json!("/chat"), json!("vip"), json!(user.sid)]);

    // _disconnect: the socket is closed by the server; the UI is told.
    driver
        .emit("ui", "_disconnect", json!(["/chat", false, late.sid]))
        .await;
    let gone = driver
        .expect(&format!("socket {} to be disconnected", late.sid), |v| {
            v["type"] == "disconnect" && v["id"] == "late"
        })
        .await;
    assert_eq!(gone["reason"], "io server disconnect", "{gone}");
    let told = driver.expect_event("ui", "socket_disconnected").await;
    assert_eq!(
        (told[0].as_str(), told[1].as_str()),
        (Some("/chat"), Some(late.sid.as_str()))
    );
    // A native connection too.
    driver
        .emit("ui", "_disconnect", json!(["/orders", true, native_sid]))
        .await;
    let (code, reason) = native.expect_close().await;
    assert_eq!((code, reason.as_str()), (1008, "kicked"));

    // Commands with bad arguments are ignored; the admin socket goes on.
    driver.emit("ui", "_disconnect", json!([42])).await;
    driver.emit("ui", "join", json!([])).await;
    driver
        .emit("ui", "leave", json!(["/chat", {"room": 1}]))
        .await;
    driver
        .emit("ui", "emit", json!(["/chat", null, "bad..event", 1]))
        .await;
    driver.emit("ui", "nonsense", json!(["/chat"])).await;
    driver.expect_event("ui", "server_stats").await;
    driver.expect_event("ui", "server_stats").await;
    assert_eq!(driver.transport("user").await.as_deref(), Some("websocket"));

    // The admin token works as the password too, and a session id from
    // `session` lets the UI reconnect without the password.
    driver.disconnect("ui").await;
    let again = driver
        .open(admin_connect(&url, json!({"sessionId": session[0]})))
        .await;
    assert!(again.is_ok(), "{again:?}");
    driver.disconnect("ui").await;
    let token = driver
        .open(admin_connect(
            &url,
            json!({"username": "admin", "password": ADMIN_TOKEN}),
        ))
        .await;
    assert!(token.is_ok(), "{token:?}");
    drop(other_native);
    driver.exit().await;
    broker.shutdown().await;
}

#[tokio::test]
async fn a_read_only_admin_ui_gets_no_features_and_its_commands_do_nothing() {
    let broker = broker(true).await;
    let url = format!("http://{}", broker.addr());
    let mut driver = SioDriver::start(ClientKind::Node).await;
    let user = driver
        .connect("user", &url, "/chat", Transports::Websocket)
        .await;
    driver
        .open(admin_connect(
            &url,
            json!({"username": "admin", "password": "s3cret-admin"}),
        ))
        .await
        .unwrap();
    let config = driver.expect_event("ui", "config").await;
    assert_eq!(config[0]["supportedFeatures"], json!([]));
    driver
        .emit("ui", "_disconnect", json!(["/chat", true, user.sid]))
        .await;
    driver
        .emit("ui", "join", json!(["/chat", "vip", user.sid]))
        .await;
    // The next server_stats comes after the commands were handled (one
    // connection, handled in order): the socket is still there, in no room.
    driver.expect_event("ui", "server_stats").await;
    driver.expect_event("ui", "server_stats").await;
    assert_eq!(driver.transport("user").await.as_deref(), Some("websocket"));
    let listing = herald_tests::admin::admin_get(
        broker.addr(),
        &format!("/admin/api/connections/{}", user.sid),
        Some(&herald_tests::admin::bearer()),
    )
    .await;
    let value = herald_tests::admin::ok_json(&listing);
    assert_eq!(value["rooms"], json!([]));
    driver.exit().await;
    broker.shutdown().await;
}
