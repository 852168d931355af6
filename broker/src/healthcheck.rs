//! The health probe behind `herald-broker healthcheck`: one HTTP/1.1
//! `GET` of a broker's `/healthz`, bounded by a timeout, that succeeds only
//! on a 2xx answer.
//!
//! Container runtimes run it as the image's `HEALTHCHECK` (the runtime
//! image has no curl). [`default_url`] turns the configured listen address
//! into the URL to probe, so the probe follows `server.listen` wherever it
//! was set (file, environment or flag).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http::header::HOST;
use http::uri::{Scheme, Uri};
use http::{HeaderValue, Request, StatusCode};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use thiserror::Error;
use tokio::net::TcpStream;
use tokio_util::task::AbortOnDropHandle;

/// The path the probe asks for by default.
pub const HEALTH_PATH: &str = "/healthz";

/// Why a health probe failed. Each message names the URL probed.
#[derive(Debug, Error)]
pub enum HealthcheckError {
    /// The URL is not an `http://host[:port]/path` URL.
    #[error("invalid health-check URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No TCP connection could be opened (nothing listening, name not
    /// resolved, ...).
    #[error("cannot connect to {authority} for {url}: {source}")]
    Connect {
        /// The URL probed.
        url: String,
        /// Its `host:port`.
        authority: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The HTTP exchange failed (connection reset, not HTTP, ...).
    #[error("{url}: the HTTP exchange failed: {source}")]
    Http {
        /// The URL probed.
        url: String,
        /// What hyper reported.
        source: hyper::Error,
    },
    /// No answer within the timeout.
    #[error("{url} did not answer within {}", humantime::format_duration(*.timeout))]
    Timeout {
        /// The URL probed.
        url: String,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The server answered, but not with a 2xx status.
    #[error("{url} answered {status}")]
    Unhealthy {
        /// The URL probed.
        url: String,
        /// The status it answered.
        status: StatusCode,
    },
}

/// The `/healthz` URL of a broker listening on `listen`. An unspecified
/// address (`0.0.0.0`, `[::]`), which cannot be connected to, becomes the
/// loopback address of the same family.
pub fn default_url(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}{HEALTH_PATH}", SocketAddr::new(ip, listen.port()))
}

/// GETs `url` and returns the status when it is 2xx. The whole exchange
/// (name resolution, connect, request, response head) is bounded by
/// `timeout`.
pub async fn probe(url: &str, timeout: Duration) -> Result<StatusCode, HealthcheckError> {
    let target = Target::parse(url)?;
    let status = tokio::time::timeout(timeout, target.get(url))
        .await
        .map_err(|_| HealthcheckError::Timeout {
            url: url.to_owned(),
            timeout,
        })??;
    if status.is_success() {
        Ok(status)
    } else {
        Err(HealthcheckError::Unhealthy {
            url: url.to_owned(),
            status,
        })
    }
}

/// A parsed `http://` URL: where to connect and what to ask for.
struct Target {
    host: String,
    port: u16,
    authority: HeaderValue,
    path: Uri,
}

impl Target {
    fn parse(url: &str) -> Result<Target, HealthcheckError> {
        let invalid = |reason: &str| HealthcheckError::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = url.parse().map_err(|e: http::uri::InvalidUri| {
            invalid(&format!("{e}; expected e.g. http://127.0.0.1:7400/healthz"))
        })?;
        if uri.scheme() != Some(&Scheme::HTTP) {
            return Err(invalid("only http:// URLs are supported"));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| invalid("the URL names no host"))?;
        // `Uri::host` keeps the brackets of an IPv6 literal; a socket
        // address lookup wants it bare.
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let path = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
        Ok(Target {
            host,
            port: authority.port_u16().unwrap_or(80),
            authority: HeaderValue::from_str(authority.as_str())
                .map_err(|e| invalid(&e.to_string()))?,
            path,
        })
    }

    /// One `GET` over a fresh connection; the response head's status.
    async fn get(&self, url: &str) -> Result<StatusCode, HealthcheckError> {
        let stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|source| HealthcheckError::Connect {
                url: url.to_owned(),
                authority: if self.host.contains(':') {
                    format!("[{}]:{}", self.host, self.port)
                } else {
                    format!("{}:{}", self.host, self.port)
                },
                source,
            })?;
        let http = |source| HealthcheckError::Http {
            url: url.to_owned(),
            source,
        };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(http)?;
        let mut request = Request::new(Empty::<Bytes>::new());
        *request.uri_mut() = self.path.clone();
        request.headers_mut().insert(HOST, self.authority.clone());
        // The connection is driven in its own task until the answer
        // arrives; if it ends first, hyper fails the request with why.
        let _driver = AbortOnDropHandle::new(tokio::spawn(connection));
        let response = sender.send_request(request).await.map_err(http)?;
        Ok(response.status())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_listen_addresses_are_probed_on_loopback() {
        let url = |addr: &str| default_url(addr.parse().expect("a socket address"));
        assert_eq!(url("0.0.0.0:7400"), "http://127.0.0.1:7400/healthz");
        assert_eq!(url("[::]:7401"), "http://[::1]:7401/healthz");
        assert_eq!(url("10.1.2.3:80"), "http://10.1.2.3:80/healthz");
        assert_eq!(url("[fe80::1]:9"), "http://[fe80::1]:9/healthz");
    }

    #[test]
    fn urls_are_parsed_into_host_port_and_path() {
        let target = Target::parse("http://[::1]:7400/readyz?x=1").expect("a valid URL");
        assert_eq!(target.host, "::1");
        assert_eq!(target.port, 7400);
        assert_eq!(target.authority, "[::1]:7400");
        assert_eq!(target.path, "/readyz?x=1");
        let target = Target::parse("http://broker").expect("a valid URL");
        assert_eq!((target.host.as_str(), target.port), ("broker", 80));
        assert_eq!(target.path, "/");
    }

    #[test]
    fn bad_urls_are_refused_with_the_reason() {
        for (url, reason) in [
            ("https://127.0.0.1:7400/healthz", "only http://"),
            ("127.0.0.1:7400", "only http://"),
            ("/healthz", "only http://"),
            ("http://exa mple/healthz", "invalid"),
            ("", "expected e.g."),
        ] {
            match Target::parse(url) {
                Err(error @ HealthcheckError::InvalidUrl { .. }) => {
                    let text = error.to_string();
                    assert!(text.contains(reason), "{url:?}: {text}");
                    assert!(text.contains(&format!("{url:?}")), "{url:?}: {text}");
                }
                Err(other) => panic!("{url:?}: expected InvalidUrl, got {other}"),
                Ok(_) => panic!("{url:?} should be refused"),
            }
        }
    }
}
