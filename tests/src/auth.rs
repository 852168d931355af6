//! Helpers for the auth tests (`tests/tests/auth*.rs`): tokens minted in
//! the test with `jsonwebtoken` (HS256 with a shared secret, EdDSA with an
//! Ed25519 key generated per test), an `alg: none` token crafted by hand,
//! a native `hello` carrying a token, a WebSocket upgrade and an HTTP
//! publish with `Authorization: Bearer`, and a raw Socket.IO client over
//! the Engine.IO WebSocket transport.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::pkcs8::spki::EncodePublicKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use futures_util::{SinkExt, StreamExt};
use herald_config::{AuthMode, Settings};
use herald_protocol::envelope::{Auth, Hello};
use herald_protocol::{Envelope, PROTOCOL_VERSION, SUBPROTOCOL, WS_PATH};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::{HttpResponse, RawClient, TIMEOUT, Ws, http_request_bytes};

/// The HS256 secret of [`hs256`] brokers.
pub const SECRET: &str = "herald-test-secret-0123456789abcdef";

/// Unix seconds now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A `configure` for `start_broker`: `auth.mode = "jwt"` with HS256 and
/// [`SECRET`].
pub fn hs256(settings: &mut Settings) {
    settings.auth.mode = AuthMode::Jwt;
    settings.auth.algorithms = vec!["HS256".into()];
    settings.auth.secret = SECRET.into();
}

/// Claims for `sub` with `herald` permissions, expiring in an hour.
pub fn claims(sub: &str, herald: Value) -> Value {
    json!({"sub": sub, "exp": now() + 3600, "herald": herald})
}

/// An HS256 token of `claims` signed with `secret`.
pub fn mint_with(secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("the token encodes")
}

/// An HS256 token of `claims` signed with [`SECRET`].
pub fn mint(claims: &Value) -> String {
    mint_with(SECRET, claims)
}

/// An unsigned token (`alg: none`), as an attacker would craft it.
pub fn alg_none(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.")
}

/// An Ed25519 key pair generated for one test: the private key signs, the
/// public key is a PEM file for `auth.public_key_file`.
pub struct EdKey {
    encoding: EncodingKey,
    /// The PEM public key file.
    pub public_pem: tempfile::NamedTempFile,
}

impl EdKey {
    /// A fresh random key.
    pub fn generate() -> EdKey {
        let secret: [u8; 32] = rand::random();
        let signing = ed25519_dalek::SigningKey::from_bytes(&secret);
        let private = signing
            .to_pkcs8_pem(LineEnding::LF)
            .expect("the private key encodes");
        let public = signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("the public key encodes");
        let public_pem = tempfile::NamedTempFile::new().expect("a temp file");
        std::fs::write(public_pem.path(), public).expect("the PEM file is written");
        EdKey {
            encoding: EncodingKey::from_ed_pem(private.as_bytes()).expect("a valid Ed25519 key"),
            public_pem,
        }
    }

    /// An EdDSA token of `claims`.
    pub fn mint(&self, claims: &Value) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), claims, &self.encoding)
            .expect("the token encodes")
    }

    /// A `configure` for `start_broker`: `auth.mode = "jwt"`, EdDSA, this
    /// key's PEM file.
    pub fn settings(&self, settings: &mut Settings) {
        settings.auth.mode = AuthMode::Jwt;
        settings.auth.algorithms = vec!["EdDSA".into()];
        settings.auth.public_key_file = self.public_pem.path().display().to_string();
    }
}

impl RawClient {
    /// Sends `hello` with `token` and returns the broker's answer
    /// (`welcome`, or `err` before a close).
    pub async fn hello_token(&mut self, token: Option<&str>) -> Envelope {
        self.send(&Envelope::Hello(Hello {
            version: PROTOCOL_VERSION,
            client: Some("herald-tests".into()),
            token: token.map(str::to_owned),
            ..Hello::default()
        }))
        .await;
        self.recv().await
    }

    /// Sends `auth` with `token` and a fresh id; returns the id.
    pub async fn send_auth(&mut self, token: &str) -> u64 {
        let id = self.next_id();
        self.send(&Envelope::Auth(Auth {
            id: Some(id),
            token: token.to_owned(),
        }))
        .await;
        id
    }
}

/// A WebSocket with the `herald.v1` subprotocol and
/// `Authorization: Bearer token`.
pub async fn connect_bearer(addr: SocketAddr, token: &str) -> RawClient {
    let mut request = format!("ws://{addr}{WS_PATH}")
        .into_client_request()
        .expect("a valid request");
    let headers = request.headers_mut();
    headers.insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    headers.insert(
        "Authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).expect("a valid header"),
    );
    let connect = tokio_tungstenite::connect_async_with_config(request, None, true);
    let (ws, _) = tokio::time::timeout(TIMEOUT, connect)
        .await
        .expect("connect in time")
        .expect("the upgrade is accepted");
    RawClient::new(ws)
}

/// `POST /v1/emit/{path}` with a JSON body and, when given,
/// `Authorization: Bearer token`.
pub async fn publish(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> HttpResponse {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "POST /v1/emit/{path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    http_request_bytes(addr, request.as_bytes()).await
}

/// A raw Socket.IO client over the Engine.IO WebSocket transport: it
/// sends and reads Socket.IO packets as text (`40/ns,{…}`, `42/ns,[…]`),
/// answering the broker's pings itself.
pub struct SioRaw {
    ws: Ws,
}

impl SioRaw {
    /// Opens `/socket.io/?EIO=4&transport=websocket` (with
    /// `Authorization: Bearer`, when given) and reads the open packet.
    pub async fn open(addr: SocketAddr, bearer: Option<&str>) -> SioRaw {
        let mut request = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket")
            .into_client_request()
            .expect("a valid request");
        if let Some(token) = bearer {
            request.headers_mut().insert(
                "Authorization",
                HeaderValue::from_str(&format!("Bearer {token}")).expect("a valid header"),
            );
        }
        let connect = tokio_tungstenite::connect_async_with_config(request, None, true);
        let (ws, _) = tokio::time::timeout(TIMEOUT, connect)
            .await
            .expect("connect in time")
            .expect("the upgrade is accepted");
        let mut client = SioRaw { ws };
        let open = client.recv_engine().await;
        assert!(
            open.starts_with('0'),
            "expected the open packet, got {open:?}"
        );
        client
    }

    /// Sends one Socket.IO packet (its text without the Engine.IO `4`).
    pub async fn send(&mut self, packet: &str) {
        self.ws
            .send(Message::text(format!("4{packet}")))
            .await
            .expect("the packet is sent");
    }

    async fn recv_engine(&mut self) -> String {
        loop {
            let message = tokio::time::timeout(TIMEOUT, self.ws.next())
                .await
                .expect("a message in time");
            match message {
                Some(Ok(Message::Text(text))) if text.as_str() == "2" => {
                    self.ws.send(Message::text("3")).await.expect("pong");
                }
                Some(Ok(Message::Text(text))) => return text.as_str().to_owned(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!("expected an Engine.IO text packet, got {other:?}"),
            }
        }
    }

    /// The next Socket.IO packet (text after the Engine.IO `4`).
    pub async fn recv(&mut self) -> String {
        let text = self.recv_engine().await;
        match text.strip_prefix('4') {
            Some(packet) => packet.to_owned(),
            None => panic!("expected an Engine.IO message, got {text:?}"),
        }
    }

    /// CONNECT to `namespace` with `auth` (none: no payload); returns the
    /// answer (`0/ns,{"sid"…}` or `4/ns,{…}`).
    pub async fn connect(&mut self, namespace: &str, auth: Option<&Value>) -> String {
        let payload = auth.map(Value::to_string).unwrap_or_default();
        self.send(&format!("0{namespace},{payload}")).await;
        self.recv().await
    }

    /// The next event in `namespace` as `[name, args…]`, skipping nothing:
    /// any other packet is a test failure.
    pub async fn expect_event(&mut self, namespace: &str) -> Value {
        let packet = self.recv().await;
        let prefix = format!("2{namespace},");
        let Some(body) = packet.strip_prefix(&prefix) else {
            panic!("expected an event in {namespace}, got {packet:?}");
        };
        serde_json::from_str(body).expect("the event is JSON")
    }

    /// Emits `event` with `arg` and ack id `id`; returns the ack's
    /// arguments.
    pub async fn call(&mut self, namespace: &str, id: u64, event: &str, arg: &Value) -> Value {
        self.send(&format!("2{namespace},{id}{}", json!([event, arg])))
            .await;
        let packet = self.recv().await;
        let prefix = format!("3{namespace},{id}");
        let Some(body) = packet.strip_prefix(&prefix) else {
            panic!("expected the ack {id} in {namespace}, got {packet:?}");
        };
        serde_json::from_str(body).expect("the ack is JSON")
    }

    /// Reads until the WebSocket ends; returns whether it did within
    /// [`TIMEOUT`].
    pub async fn expect_end(&mut self) {
        loop {
            match tokio::time::timeout(TIMEOUT, self.ws.next()).await {
                Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return,
                Ok(Some(Ok(_))) => {}
                Err(_) => panic!("the Socket.IO connection did not end"),
            }
        }
    }
}
