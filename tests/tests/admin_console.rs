//! The admin console page (`GET /admin`) in headless Chromium, driven over
//! the DevTools protocol, against a broker carrying real traffic: a native
//! SDK service, a Node socket.io-client user and a raw publisher. The test
//! waits (bounded polls of the DOM) until the page shows what the broker
//! has (connections, namespaces and rooms, rates per namespace, the tail
//! with its pattern filter, counters), uses each action (leave a room,
//! emit, disconnect) and checks its effect on the clients, and saves
//! screenshots under the target dir (`admin-console/*.png`).
//!
//! When Chromium cannot run here the test says why and skips, except
//! under CI (`CI` set), where that is a failure.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use herald_client::Event;
use herald_tests::admin::{ADMIN_TOKEN, admin_get, bearer, ok_json, with_admin};
use herald_tests::devtools::DevTools;
use herald_tests::sioclient::{ClientKind, SioDriver, Transports};
use herald_tests::{emit, start_broker};
use serde_json::json;

/// Longest the page may take to show something (it polls every 2 s and
/// the rates come every second).
const PAGE_WAIT: Duration = Duration::from_secs(15);

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("admin-console")
}

fn msgpack(value: serde_json::Value) -> Vec<u8> {
    rmp_serde::to_vec_named(&value).unwrap()
}

/// Sets an input's value as typing would (an `input` event follows).
fn set_value(id: &str, value: &str) -> String {
    format!(
        "(() => {{ const e = document.getElementById({id:?}); e.value = {value:?}; \
         e.dispatchEvent(new Event('input')); return true; }})()"
    )
}

#[tokio::test]
async fn the_console_shows_live_traffic_and_its_actions_reach_the_clients() {
    let broker = start_broker(|s| {
        with_admin(s);
        s.admin.tail_rate = 50;
    })
    .await;
    let url = format!("http://{}", broker.addr());

    // The browser first: without it there is nothing to test here.
    let page_url = format!("{url}/admin#token={ADMIN_TOKEN}");
    let mut page = match DevTools::start(&page_url, 1440, 1600).await {
        Ok(page) => page,
        Err(reason) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED the admin console browser test: {reason}");
            broker.shutdown().await;
            return;
        }
        Err(reason) => panic!("the admin console browser test cannot run under CI: {reason}"),
    };

    // Real clients: a native SDK service, a Node socket.io-client user, and
    // a raw publisher generating traffic in two namespaces.
    let service = herald_tests::sdk::client(&broker, "billing-service").await;
    let orders = service.of("/orders");
    let _orders_sub = orders
        .on_event("order.*", |_: Event<rmpv::Value>| async {})
        .await
        .unwrap();
    orders.join("eu").await.unwrap();
    let mut driver = SioDriver::start(ClientKind::Node).await;
    let alice = driver
        .connect("alice", &url, "/chat", Transports::Websocket)
        .await;
    assert_eq!(
        driver.call("alice", "$join", json!(["lobby"])).await,
        vec![json!({"ok": true})]
    );
    let mut publisher = broker.connect().await;
    publisher.hello().await;
    let traffic = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(40));
        for n in 0u64.. {
            tick.tick().await;
            let order = json!({"id": n, "total": 19.99, "items": ["tea", "scones"]});
            publisher
                .emit(emit("/orders", "order.created", msgpack(order)))
                .await;
            if n % 3 == 0 {
                let chat = json!({"text": format!("message {n}")});
                publisher
                    .emit(emit("/chat", "chat.message", msgpack(chat)))
                    .await;
            }
            if n % 5 == 0 {
                publisher
                    .emit(emit("/orders", "cart.viewed", msgpack(json!({"sku": n}))))
                    .await;
            }
        }
    });

    // The numbers match the broker's.
    let api = ok_json(&admin_get(broker.addr(), "/admin/api/overview", Some(&bearer())).await);
    assert_eq!(api["connections"], 3);
    page.wait_for(
        "3 connections shown",
        "document.getElementById('stat-connections').textContent === '3'",
        PAGE_WAIT,
    )
    .await;
    let row = format!("#conn-table tr[data-sid=\"{}\"]", alice.sid);
    let alice_row = page
        .wait_for(
            "alice's row",
            &format!("document.querySelector('{row}')?.textContent"),
            PAGE_WAIT,
        )
        .await;
    assert!(
        alice_row.as_str().unwrap().contains("socketio-websocket"),
        "{alice_row}"
    );
    let table = page
        .eval("document.getElementById('conn-table').textContent")
        .await;
    assert!(
        table.as_str().unwrap().contains("billing-service"),
        "{table}"
    );
    page.wait_for(
        "the lobby with one member",
        "document.querySelector('#ns-table tr[data-ns=\"/chat\"] [data-room=\"lobby\"]')?.textContent.includes('1')",
        PAGE_WAIT,
    )
    .await;
    page.wait_for(
        "rates for /orders and /chat",
        "Number(document.getElementById('stat-rate').dataset.value) > 0 && \
         document.getElementById('legend').textContent.includes('/orders') && \
         document.getElementById('legend').textContent.includes('/chat')",
        PAGE_WAIT,
    )
    .await;
    page.wait_for(
        "events received counted",
        "Number(document.querySelector('[data-counter=events_received]')?.textContent.replace(/,/g, '')) > 0",
        PAGE_WAIT,
    )
    .await;

    // The tail with a pattern: only order.* once applied.
    page.eval(&set_value("t-pattern", "order.*")).await;
    page.eval("document.getElementById('t-apply').click(), true")
        .await;
    page.wait_for(
        "the tail's new filter live, with three events",
        "document.getElementById('t-status').textContent.includes('order.*') && \
         document.querySelectorAll('#tail-list .event').length >= 3",
        PAGE_WAIT,
    )
    .await;
    let names = page
        .eval("[...document.querySelectorAll('#tail-list .event')].map(e => e.dataset.event)")
        .await;
    assert!(
        names
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n == "order.created"),
        "the tail shows only order.*: {names}"
    );
    let payload = page
        .eval("document.querySelector('#tail-list .event pre').textContent")
        .await;
    assert!(
        payload
            .as_str()
            .unwrap()
            .contains("\"items\":[\"tea\",\"scones\"]"),
        "{payload}"
    );
    // A few seconds of rates drawn before the picture.
    page.wait_for(
        "eight seconds of rates in the chart",
        "Number(document.getElementById('chart').dataset.points) >= 8",
        PAGE_WAIT,
    )
    .await;
    page.screenshot(&screenshots().join("admin-console.png"))
        .await;

    // Leave: alice is taken out of the lobby.
    page.eval(&format!(
        "document.querySelector('button[data-action=leave][data-sid=\"{}\"][data-room=lobby]').click(), true",
        alice.sid
    ))
    .await;
    page.wait_for(
        "the lobby chip gone from alice's row",
        &format!("!document.querySelector('{row}').textContent.includes('lobby')"),
        PAGE_WAIT,
    )
    .await;
    let listed = ok_json(
        &admin_get(
            broker.addr(),
            &format!("/admin/api/connections/{}", alice.sid),
            Some(&bearer()),
        )
        .await,
    );
    assert_eq!(listed["rooms"], json!([]));

    // Emit: alice gets it.
    page.eval(&set_value("e-namespace", "/chat")).await;
    page.eval(&set_value("e-event", "announce")).await;
    page.eval(&set_value("e-payload", r#"{"text":"from the console"}"#))
        .await;
    page.eval("document.getElementById('e-send').click(), true")
        .await;
    driver
        .expect_event_args("alice", "announce", &json!([{"text": "from the console"}]))
        .await;
    page.wait_for(
        "the emit's receivers",
        "document.getElementById('e-result').dataset.receivers === '1'",
        PAGE_WAIT,
    )
    .await;

    // Disconnect: alice's client is disconnected by the server.
    page.eval(&format!(
        "document.querySelector('button[data-action=disconnect][data-sid=\"{}\"]').click(), true",
        alice.sid
    ))
    .await;
    let gone = driver
        .expect("alice to be disconnected", |v| {
            v["type"] == "disconnect" && v["id"] == "alice"
        })
        .await;
    assert_eq!(gone["reason"], "io server disconnect");
    page.wait_for(
        "alice's row gone and 2 connections",
        &format!(
            "!document.querySelector('{row}') && \
             document.getElementById('stat-connections').textContent === '2'"
        ),
        PAGE_WAIT,
    )
    .await;
    page.screenshot(&screenshots().join("admin-console-after-actions.png"))
        .await;
    page.eval("document.getElementById('theme').click(), true")
        .await;
    page.screenshot(&screenshots().join("admin-console-other-theme.png"))
        .await;
    eprintln!("screenshots in {}", screenshots().display());

    traffic.abort();
    page.close().await;
    driver.exit().await;
    drop(service);
    broker.shutdown().await;
}

/// The stock Socket.IO Admin UI (`@socket.io/admin-ui`'s built page, from
/// the npm pin of `tests/socketio`) in Chromium, pointed at Herald: it
/// connects to the `/admin` namespace and lists the broker's connections,
/// a native one included.
#[tokio::test]
async fn the_stock_socketio_admin_ui_lists_herald_connections() {
    let ui_dir =
        herald_tests::sioclient::socketio_dir().join("node_modules/@socket.io/admin-ui/ui/dist");
    assert!(
        ui_dir.join("index.html").is_file(),
        "the Admin UI is not installed ({}): run `bash scripts/socketio-deps.sh`",
        ui_dir.display()
    );
    let hash = herald_tests::admin::password_hash("ui-password");
    let broker = start_broker(move |s| {
        with_admin(s);
        s.admin.password_hash = hash;
        // The UI is a page of another origin.
        s.server.allowed_origins = vec!["*".to_owned()];
    })
    .await;
    let url = format!("http://{}", broker.addr());
    let (ui_addr, ui_server) = herald_tests::admin::serve_dir(ui_dir).await;
    let mut page = match DevTools::start(&format!("http://{ui_addr}/"), 1440, 1000).await {
        Ok(page) => page,
        Err(reason) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED the stock Admin UI browser test: {reason}");
            broker.shutdown().await;
            return;
        }
        Err(reason) => panic!("the stock Admin UI browser test cannot run under CI: {reason}"),
    };

    // A session id for the UI, as it gets one after a password login.
    let mut driver = SioDriver::start(ClientKind::Node).await;
    // In `/`, the namespace the UI shows first.
    let user = driver
        .connect("user", &url, "/", Transports::Websocket)
        .await;
    let mut login = SioDriver::connect_cmd("login", &url, "/admin", Transports::Websocket);
    login["auth"] = json!({"username": "admin", "password": "ui-password"});
    driver.open(login).await.unwrap();
    let session = driver.expect_event("login", "session").await;
    let mut native = broker.connect().await;
    let native_sid = native.hello().await.session;
    native.subscribe("/", "order.*", None, false).await;

    // The UI's saved connection, then its sockets page.
    page.eval(&format!(
        "localStorage.setItem('server_url', {url:?}); localStorage.setItem('ws_only', 'true'); \
         localStorage.setItem('path', '/socket.io/'); localStorage.setItem('namespace', '/admin'); \
         localStorage.setItem('session_id', {:?}); true",
        session[0].as_str().unwrap()
    ))
    .await;
    page.eval("location.hash = '#/sockets'; setTimeout(() => location.reload(), 10); true")
        .await;
    page.wait_for(
        "the Admin UI to list the Socket.IO socket and the native connection",
        &format!(
            "document.body.innerText.includes({:?}) && document.body.innerText.includes({:?})",
            user.sid, native_sid
        ),
        PAGE_WAIT,
    )
    .await;
    page.screenshot(&screenshots().join("stock-admin-ui-sockets.png"))
        .await;
    page.close().await;
    ui_server.abort();
    driver.exit().await;
    broker.shutdown().await;
}
