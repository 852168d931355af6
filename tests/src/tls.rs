//! TLS for the end-to-end tests: certificates made in the test with rcgen
//! (a CA, a server certificate for `127.0.0.1` and `localhost`, client
//! certificates), written as PEM files for the broker's `[tls]` settings
//! and the SDK's `ca_file` / `client_cert`; and a raw TLS client
//! (tokio-rustls, ring) for HTTPS requests, `wss://` upgrades and reading
//! the leaf certificate a broker serves.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use herald_config::Settings;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::{HttpResponse, TIMEOUT, parse_http_response};

/// A certificate authority made for one test.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, PEM.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// The certificate (PEM).
    pub cert_pem: String,
    /// Its private key (PKCS#8 PEM).
    pub key_pem: String,
    /// The certificate (DER), to compare with what a server presents.
    pub der: CertificateDer<'static>,
}

impl Ca {
    /// A new CA named `name`.
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("no names");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("a key");
        Ca {
            issuer: CertifiedIssuer::self_signed(params, key).expect("a CA certificate"),
        }
    }

    /// The CA certificate (PEM).
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `127.0.0.1` and `localhost`.
    pub fn server(&self) -> Leaf {
        self.leaf("herald test server", ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate with common name `name`.
    pub fn client(&self, name: &str) -> Leaf {
        self.leaf(name, ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn leaf(&self, name: &str, usage: ExtendedKeyUsagePurpose) -> Leaf {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("valid names");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("a key");
        let cert = params.signed_by(&key, &self.issuer).expect("signed");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }
}

/// PEM files in a temporary directory, for one test.
pub struct Files {
    dir: TempDir,
}

impl Default for Files {
    fn default() -> Files {
        Files::new()
    }
}

impl Files {
    /// An empty directory.
    pub fn new() -> Files {
        Files {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    /// The path of `name` in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `contents` to `name` (replacing it in one rename, as a
    /// deployment tool would) and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path(name);
        let staging = self.path(&format!(".{name}.new"));
        std::fs::write(&staging, contents).expect("write a PEM file");
        std::fs::rename(&staging, &path).expect("rename a PEM file");
        path
    }

    /// Writes `leaf` as `cert.pem` and `key.pem`.
    pub fn write_leaf(&self, leaf: &Leaf) -> (PathBuf, PathBuf) {
        (
            self.write("cert.pem", &leaf.cert_pem),
            self.write("key.pem", &leaf.key_pem),
        )
    }
}

/// Sets `[tls]` to serve `leaf` (written to `files`).
pub fn serve(settings: &mut Settings, files: &Files, leaf: &Leaf) {
    let (cert, key) = files.write_leaf(leaf);
    settings.tls.cert_file = text(&cert);
    settings.tls.key_file = text(&key);
}

/// A path as the UTF-8 string the settings hold.
pub fn text(path: &Path) -> String {
    path.to_str().expect("a UTF-8 temporary path").to_owned()
}

/// A client configuration trusting `ca_pem` only, presenting `client`
/// when given.
pub fn client_config(ca_pem: &str, client: Option<&Leaf>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("a CA certificate");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some(leaf) => {
            let chain = vec![leaf.der.clone()];
            let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).expect("key PEM");
            builder
                .with_client_auth_cert(chain, key)
                .expect("a client certificate")
        }
    };
    Arc::new(config)
}

/// A TLS connection to `addr` (server name `127.0.0.1`), handshake done.
pub async fn connect(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::IpAddress(addr.ip().into());
    let connect = TlsConnector::from(config.clone()).connect(name, tcp);
    tokio::time::timeout(TIMEOUT, connect)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake"))?
}

/// The leaf certificate the broker at `addr` presents now.
pub async fn served_leaf(addr: SocketAddr, config: &Arc<ClientConfig>) -> CertificateDer<'static> {
    let stream = connect(addr, config).await.expect("a TLS handshake");
    let (_, session) = stream.get_ref();
    session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .expect("the server presents a certificate")
        .clone()
        .into_owned()
}

/// One HTTPS request (`Connection: close` is added), read to its end.
/// For a refused handshake use [`try_https`].
pub async fn https(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    method: &str,
    path: &str,
    body: &[u8],
) -> HttpResponse {
    match try_https(addr, config, method, path, body).await {
        Ok(response) => response,
        Err(error) => panic!("{method} https://{addr}{path} failed: {error}"),
    }
}

/// [`https`], with a failed connection or handshake as an error.
pub async fn try_https(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    let exchange = async {
        let mut stream = connect(addr, config).await?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        let mut raw = Vec::new();
        // A server that closes without close_notify still answered.
        if let Err(e) = stream.read_to_end(&mut raw).await {
            if e.kind() != std::io::ErrorKind::UnexpectedEof || raw.is_empty() {
                return Err(e);
            }
        }
        Ok(raw)
    };
    let raw = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"))??;
    Ok(parse_http_response(&raw))
}

/// A WebSocket over TLS.
pub type Wss = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A `wss://` upgrade to `path` at `addr`, offering `subprotocol` if given.
pub async fn wss(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    path: &str,
    subprotocol: Option<&str>,
) -> Result<Wss, tokio_tungstenite::tungstenite::Error> {
    let mut request = format!("wss://{addr}{path}")
        .into_client_request()
        .expect("a valid URL");
    if let Some(subprotocol) = subprotocol {
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            subprotocol.parse().expect("a header value"),
        );
    }
    let connector = Connector::Rustls(config.clone());
    let upgrade =
        tokio_tungstenite::connect_async_tls_with_config(request, None, false, Some(connector));
    let (ws, _) = tokio::time::timeout(TIMEOUT, upgrade)
        .await
        .expect("the wss upgrade within the timeout")?;
    Ok(ws)
}
