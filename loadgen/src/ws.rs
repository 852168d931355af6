//! Opening client WebSockets for the load generator: optional source
//! address (to spread many connections over 127.0.0.x), TCP_NODELAY,
//! buffer sizes, a bounded connect time, and refused upgrades turned into
//! errors that carry the server's answer.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, http::Uri};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::BenchError;

/// A client WebSocket over TCP, or TLS for `wss://` URLs.
pub type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The read buffer of connections that carry traffic. Tungstenite
/// zero-fills this many bytes before every socket read, so a larger one
/// costs the load generator more than it saves (128 KiB spent over a
/// quarter of its CPU on `memset`).
pub const BUSY_READ_BUFFER: usize = 16 * 1024;
/// The read buffer of connections that stay idle.
pub const IDLE_READ_BUFFER: usize = 4 * 1024;
/// How long opening one connection (TCP and upgrade) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How to open one WebSocket.
#[derive(Debug, Clone, Copy)]
pub struct WsOptions<'a> {
    /// The target's name, for errors.
    pub target: &'a str,
    /// `Sec-WebSocket-Protocol` to offer, if any.
    pub subprotocol: Option<&'a str>,
    /// Bind the client socket to this address first.
    pub source: Option<IpAddr>,
    /// tungstenite's read buffer size.
    pub read_buffer: usize,
    /// The TLS client configuration `wss://` URLs need.
    pub tls: Option<&'a std::sync::Arc<rustls::ClientConfig>>,
}

impl<'a> WsOptions<'a> {
    /// Options for a busy connection to `target`, without subprotocol.
    pub fn new(target: &'a str) -> WsOptions<'a> {
        WsOptions {
            target,
            subprotocol: None,
            source: None,
            read_buffer: BUSY_READ_BUFFER,
            tls: None,
        }
    }
}

/// The socket address a `ws://` URL points at (loopback names resolve).
pub async fn resolve(target: &str, url: &str) -> Result<SocketAddr, BenchError> {
    let uri: Uri = url.parse().map_err(|e| BenchError::Connect {
        target: target.to_owned(),
        address: url.to_owned(),
        reason: format!("not a URL: {e}"),
    })?;
    let host = uri.host().unwrap_or_default();
    let default_port = if uri.scheme_str() == Some("wss") {
        443
    } else {
        80
    };
    let port = uri.port_u16().unwrap_or(default_port);
    let connect_error = |reason: String| BenchError::Connect {
        target: target.to_owned(),
        address: url.to_owned(),
        reason,
    };
    let mut addrs = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|e| connect_error(format!("cannot resolve {host}: {e}")))?;
    addrs
        .next()
        .ok_or_else(|| connect_error(format!("{host} has no address")))
}

/// Opens a WebSocket to `url`, bounded by [`CONNECT_TIMEOUT`].
pub async fn connect(url: &str, options: WsOptions<'_>) -> Result<WsStream, BenchError> {
    let connect_error = |reason: String| BenchError::Connect {
        target: options.target.to_owned(),
        address: url.to_owned(),
        reason,
    };
    let opening = async {
        let mut request = url
            .into_client_request()
            .map_err(|e| connect_error(format!("not a WebSocket URL: {e}")))?;
        if let Some(protocol) = options.subprotocol {
            let value = HeaderValue::from_str(protocol)
                .map_err(|e| connect_error(format!("bad subprotocol {protocol:?}: {e}")))?;
            request
                .headers_mut()
                .insert("Sec-WebSocket-Protocol", value);
        }
        let connector = match (url.starts_with("wss://"), options.tls) {
            (false, _) => None,
            (true, Some(tls)) => Some(Connector::Rustls(tls.clone())),
            (true, None) => {
                return Err(connect_error(
                    "wss:// needs a TLS configuration (the herald-wss target makes one)".into(),
                ));
            }
        };
        let addr = resolve(options.target, url).await?;
        let stream = open_tcp(addr, options.source)
            .await
            .map_err(|e| connect_error(e.to_string()))?;
        let config = WebSocketConfig::default().read_buffer_size(options.read_buffer);
        let upgrade = tokio_tungstenite::client_async_tls_with_config(
            request,
            stream,
            Some(config),
            connector,
        );
        match upgrade.await {
            Ok((ws, _response)) => Ok(ws),
            Err(WsError::Http(response)) => {
                let body = response.body().as_deref().unwrap_or_default();
                let body: String = String::from_utf8_lossy(body).chars().take(500).collect();
                Err(BenchError::Refused {
                    target: options.target.to_owned(),
                    address: url.to_owned(),
                    status: response.status().as_u16(),
                    body,
                })
            }
            Err(error) => Err(connect_error(format!("WebSocket upgrade failed: {error}"))),
        }
    };
    tokio::time::timeout(CONNECT_TIMEOUT, opening)
        .await
        .map_err(|_| connect_error(format!("no answer within {CONNECT_TIMEOUT:?}")))?
}

async fn open_tcp(addr: SocketAddr, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let stream = match source {
        None => TcpStream::connect(addr).await?,
        Some(source) => {
            let socket = if addr.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            socket.bind(SocketAddr::new(source, 0)).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot bind source address {source}: {e}"),
                )
            })?;
            socket.connect(addr).await?
        }
    };
    // Small frames must not wait for Nagle's algorithm.
    stream.set_nodelay(true)?;
    Ok(stream)
}
