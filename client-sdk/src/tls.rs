//! TLS for `wss://` brokers: a rustls client configuration (ring
//! provider) trusting the system's root certificates
//! (`rustls-native-certs`) plus, optionally, the CA certificates of a PEM
//! file ([`crate::ClientBuilder::ca_file`]), and presenting a client
//! certificate when the broker asks for one (mutual TLS,
//! [`crate::ClientBuilder::client_cert`]). Built once per client, when it
//! connects.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ClientConfig;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::Error;

/// What the builder was told about TLS.
#[derive(Debug, Clone, Default)]
pub(crate) struct TlsOptions {
    /// Extra trusted CA certificates (PEM).
    pub(crate) ca_file: Option<PathBuf>,
    /// Client certificate chain and key (PEM), for mutual TLS.
    pub(crate) client_cert: Option<(PathBuf, PathBuf)>,
}

impl TlsOptions {
    /// The client configuration for `wss://` URLs.
    pub(crate) fn client_config(&self) -> Result<Arc<ClientConfig>, Error> {
        let mut roots = RootCertStore::empty();
        // Unreadable system certificates are skipped: a custom CA may be
        // all this client needs.
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        if let Some(path) = &self.ca_file {
            for ca in certificates(path, "ca_file")? {
                roots
                    .add(ca)
                    .map_err(|e| tls_error(path, "ca_file", &e.to_string()))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_root_certificates(roots);
        let mut config = match &self.client_cert {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = certificates(cert, "client_cert")?;
                let pem = read(key, "client key")?;
                let key_der = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
                    tls_error(key, "client key", &format!("no usable private key: {e}"))
                })?;
                builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(|e| tls_error(cert, "client_cert", &e.to_string()))?
            }
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

fn tls_error(path: &Path, what: &str, message: &str) -> Error {
    Error::Tls(format!("{what} {}: {message}", path.display()))
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| tls_error(path, what, &format!("cannot read: {e}")))
}

fn certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let pem = read(path, what)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(path, what, &format!("not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(tls_error(path, what, "holds no CERTIFICATE block"));
    }
    Ok(certs)
}

/// A failed TLS handshake, said plainly: the certificate problem when
/// rustls names one.
pub(crate) fn describe(url: &url::Url, error: &std::io::Error) -> Option<Error> {
    let inner = error.get_ref()?.downcast_ref::<rustls::Error>()?;
    let hint = match inner {
        rustls::Error::InvalidCertificate(_) => {
            " (is the broker's CA trusted? see ClientBuilder::ca_file / --ca-file)"
        }
        rustls::Error::AlertReceived(_) => {
            " (the broker refused this client: a client certificate it trusts may be needed)"
        }
        _ => "",
    };
    Some(Error::Tls(format!(
        "TLS handshake with {url} failed: {inner}{hint}"
    )))
}
