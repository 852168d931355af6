//! The `herald-wss` target: the Herald broker with `[tls]` on, measured by
//! the same Herald driver over `wss://`, so wss fanout per CPU can be
//! reported beside ws. The certificates are made for the run (rcgen): a CA
//! the driver trusts and a server certificate for `127.0.0.1`, written as
//! PEM files to a temporary directory kept until the process ends.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::{ClientConfig, RootCertStore};

/// The target name in results.
pub const TARGET: &str = "herald-wss";

/// The run's certificates.
struct Pki {
    _dir: tempfile::TempDir,
    cert_file: PathBuf,
    key_file: PathBuf,
    client: Arc<ClientConfig>,
}

static PKI: OnceLock<Result<Pki, String>> = OnceLock::new();

fn pki() -> Result<&'static Pki, String> {
    PKI.get_or_init(make).as_ref().map_err(Clone::clone)
}

fn make() -> Result<Pki, String> {
    let error = |e: &dyn std::fmt::Display| format!("making the herald-wss certificates: {e}");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(|e| error(&e))?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().map_err(|e| error(&e))?;
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(|e| error(&e))?;
    let params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .map_err(|e| error(&e))?;
    let key = KeyPair::generate().map_err(|e| error(&e))?;
    let cert = params.signed_by(&key, &ca).map_err(|e| error(&e))?;
    let dir = tempfile::tempdir().map_err(|e| error(&e))?;
    let cert_file = dir.path().join("cert.pem");
    let key_file = dir.path().join("key.pem");
    std::fs::write(&cert_file, cert.pem()).map_err(|e| error(&e))?;
    std::fs::write(&key_file, key.serialize_pem()).map_err(|e| error(&e))?;
    let mut roots = RootCertStore::empty();
    roots.add(ca.der().clone()).map_err(|e| error(&e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| error(&e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Pki {
        _dir: dir,
        cert_file,
        key_file,
        client: Arc::new(client),
    })
}

/// The `--set` values that turn TLS on with the run's certificate.
pub fn settings() -> Result<Vec<String>, String> {
    let pki = pki()?;
    Ok(vec![
        format!("tls.cert_file={}", pki.cert_file.display()),
        format!("tls.key_file={}", pki.key_file.display()),
    ])
}

/// The client configuration trusting the run's CA.
pub fn client_config() -> Result<Arc<ClientConfig>, String> {
    Ok(pki()?.client.clone())
}
