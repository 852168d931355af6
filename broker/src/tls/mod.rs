//! TLS on the listener (`[tls]`, PROTOCOL.md §23): the rustls server
//! configuration built from the PEM files (ring provider, TLS 1.2 and 1.3,
//! ALPN `http/1.1`, client certificates verified against
//! `tls.client_ca_file` when set), held behind a lock so a reload swaps
//! it for new connections while open ones keep the session they
//! negotiated.
//!
//! Reload: on SIGHUP, and when a file's modification time changes (looked
//! at every `tls.reload_interval`). A reload that fails keeps the
//! configuration in use and logs an error; each is counted
//! (`herald_tls_reloads_total{result}`).
//!
//! Idle memory: no session tickets and no session cache (a resumed
//! session would be kept per client in the broker), so what a connection
//! holds after its handshake is rustls' state and record keys; its
//! buffers exist only while bytes are in flight (see [`stream`]).

pub(crate) mod stream;

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

use herald_config::TlsSettings;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::stats::Stats;

/// Why the TLS configuration could not be built; names the key.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A file could not be read or holds nothing usable.
    #[error("{key} ({path}): {message}")]
    File {
        /// The setting, e.g. `tls.cert_file`.
        key: &'static str,
        /// The path it gave.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the certificate, key or CA set.
    #[error("{key}: {source}")]
    Rustls {
        /// The setting most likely at fault.
        key: &'static str,
        /// What rustls said.
        source: rustls::Error,
    },
    /// The client CA set could not make a verifier.
    #[error("tls.client_ca_file: {0}")]
    ClientCa(String),
}

/// The configured TLS: the current server configuration, and what a
/// reload needs.
#[derive(Debug)]
pub(crate) struct Tls {
    settings: TlsSettings,
    current: RwLock<Arc<ServerConfig>>,
    /// Modification times of the files when last (re)loaded.
    stamps: Mutex<Vec<Option<SystemTime>>>,
}

impl Tls {
    /// Loads the files named in `settings`; `None` when TLS is off.
    pub(crate) fn load(settings: &TlsSettings) -> Result<Option<Arc<Tls>>, TlsError> {
        if !settings.enabled() {
            return Ok(None);
        }
        let stamps = stamps(settings);
        let config = server_config(settings)?;
        Ok(Some(Arc::new(Tls {
            settings: settings.clone(),
            current: RwLock::new(Arc::new(config)),
            stamps: Mutex::new(stamps),
        })))
    }

    /// The configuration in force now (for a new connection).
    pub(crate) fn config(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reads the files again; on success new connections get the new
    /// certificate, on failure the old one stays. Counted either way.
    pub(crate) fn reload(&self, stats: &Stats, why: &str) -> Result<(), TlsError> {
        let stamps = stamps(&self.settings);
        *self.stamps.lock().unwrap_or_else(PoisonError::into_inner) = stamps;
        match server_config(&self.settings) {
            Ok(config) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(config);
                Stats::add(&stats.tls_reloads_ok, 1);
                info!(why, "reloaded the TLS certificate");
                Ok(())
            }
            Err(e) => {
                Stats::add(&stats.tls_reloads_failed, 1);
                error!(why, error = %e, "TLS reload failed; keeping the certificate in use");
                Err(e)
            }
        }
    }

    /// True when a file's modification time differs from the last load.
    fn changed(&self) -> bool {
        let now = stamps(&self.settings);
        *self.stamps.lock().unwrap_or_else(PoisonError::into_inner) != now
    }

    /// Reloads on SIGHUP and, every `tls.reload_interval` (unless zero),
    /// when a file changed; until `stop`.
    pub(crate) fn spawn_reloader(self: Arc<Self>, stats: Arc<Stats>, stop: CancellationToken) {
        let interval = self.settings.reload_interval;
        tokio::spawn(async move {
            let mut hangup = hangup_signal();
            let mut poll = (!interval.is_zero()).then(|| {
                let mut poll = tokio::time::interval(interval);
                poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                poll
            });
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = next_hangup(&mut hangup) => {
                        let _ = self.reload(&stats, "SIGHUP");
                    }
                    () = next_tick(&mut poll) => {
                        if self.changed() {
                            let _ = self.reload(&stats, "file changed");
                        }
                    }
                }
            }
        });
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

#[cfg(unix)]
fn hangup_signal() -> Hangup {
    use tokio::signal::unix::{SignalKind, signal};
    signal(SignalKind::hangup()).ok()
}

#[cfg(not(unix))]
fn hangup_signal() -> Hangup {
    None
}

async fn next_hangup(hangup: &mut Hangup) {
    #[cfg(unix)]
    if let Some(signal) = hangup {
        if signal.recv().await.is_some() {
            return;
        }
    }
    let _ = hangup;
    std::future::pending::<()>().await;
}

async fn next_tick(poll: &mut Option<tokio::time::Interval>) {
    match poll {
        Some(poll) => {
            poll.tick().await;
        }
        None => std::future::pending::<()>().await,
    }
}

fn stamps(settings: &TlsSettings) -> Vec<Option<SystemTime>> {
    [
        &settings.cert_file,
        &settings.key_file,
        &settings.client_ca_file,
    ]
    .into_iter()
    .map(|path| std::fs::metadata(path).and_then(|m| m.modified()).ok())
    .collect()
}

/// The rustls provider everything here uses (ring).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn server_config(settings: &TlsSettings) -> Result<ServerConfig, TlsError> {
    let chain = certificates("tls.cert_file", &settings.cert_file)?;
    let key = private_key(&settings.key_file)?;
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Rustls {
            key: "tls.cert_file",
            source,
        })?;
    let builder = if settings.client_ca_file.is_empty() {
        builder.with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for ca in certificates("tls.client_ca_file", &settings.client_ca_file)? {
            roots.add(ca).map_err(|source| TlsError::Rustls {
                key: "tls.client_ca_file",
                source,
            })?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| TlsError::ClientCa(e.to_string()))?;
        builder.with_client_cert_verifier(verifier)
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|source| TlsError::Rustls {
            key: "tls.key_file",
            source,
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // No resumption state kept per client (memory per connection and per
    // client is the budget that matters here).
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(NoServerSessionStorage {});
    Ok(config)
}

fn read(key: &'static str, path: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(Path::new(path)).map_err(|e| file_error(key, path, format!("cannot read: {e}")))
}

fn file_error(key: &'static str, path: &str, message: String) -> TlsError {
    TlsError::File {
        key,
        path: path.to_owned(),
        message,
    }
}

fn certificates(key: &'static str, path: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(key, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(key, path, format!("not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(file_error(key, path, "holds no CERTIFICATE block".into()));
    }
    Ok(certs)
}

fn private_key(path: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    let key = "tls.key_file";
    let pem = read(key, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        file_error(
            key,
            path,
            format!("no usable private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}"),
        )
    })
}
