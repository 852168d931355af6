//! Reading a broker's `GET /metrics` (Prometheus text) over plain HTTP:
//! one bounded request per scrape, and the few figures the soak needs.
//!
//! The request is HTTP/1.0, so the broker answers with the whole body and
//! closes (no chunked encoding, no keep-alive to manage).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::BenchError;

/// How long one scrape may take, connect to last byte.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest metrics answer read; Herald's is a few KiB.
pub const MAX_SCRAPE_BYTES: u64 = 4 << 20;

/// The metrics endpoint of the broker whose WebSocket endpoint is `ws_url`
/// (as [`crate::herald::endpoint_url`] writes it): the same host and port.
pub fn metrics_url(ws_url: &str) -> Result<String, BenchError> {
    let rest = ws_url
        .strip_prefix("ws://")
        .ok_or_else(|| BenchError::invalid("--url", format!("expected ws://, got {ws_url:?}")))?;
    let authority = rest.split('/').next().unwrap_or_default();
    Ok(format!("http://{authority}/metrics"))
}

/// The host:port and path of an `http://` URL.
fn split_http_url(url: &str) -> Result<(&str, &str), BenchError> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        BenchError::invalid(
            "--metrics-url",
            format!("expected http://HOST:PORT/PATH, got {url:?}"),
        )
    })?;
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, "/metrics"),
    };
    if authority.is_empty() {
        return Err(BenchError::invalid(
            "--metrics-url",
            format!("no host in {url:?}"),
        ));
    }
    Ok((authority, path))
}

/// Checks that `url` is one [`scrape`] can fetch.
pub fn check_url(url: &str) -> Result<(), BenchError> {
    split_http_url(url).map(|_| ())
}

/// One sample line of the text format: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// The samples of one scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    samples: Vec<Sample>,
}

impl Metrics {
    /// Parses Prometheus text; lines it does not understand are skipped
    /// (comments, and anything a newer broker adds).
    pub fn parse(text: &str) -> Metrics {
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(parse_sample)
            .collect();
        Metrics { samples }
    }

    /// The value of the unlabelled series `name`.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels.is_empty())
            .map(|s| s.value)
    }

    /// Every series of `name` with its value of `label` (e.g. each
    /// `reason` of `herald_connections_closed_total`).
    pub fn by_label(&self, name: &str, label: &str) -> Vec<(String, f64)> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter_map(|s| {
                let (_, value) = s.labels.iter().find(|(key, _)| key == label)?;
                Some((value.clone(), s.value))
            })
            .collect()
    }
}

fn parse_sample(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    let (series, rest) = match line.find('{') {
        Some(open) => {
            let close = line[open..].find('}')? + open;
            (&line[..close + 1], &line[close + 1..])
        }
        None => line.split_at(line.find(char::is_whitespace)?),
    };
    // A timestamp may follow the value.
    let value = rest.split_whitespace().next()?.parse().ok()?;
    let (name, labels) = match series.split_once('{') {
        Some((name, labels)) => (name, parse_labels(labels.strip_suffix('}')?)?),
        None => (series, Vec::new()),
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// `a="x",b="y"`; values without quotes, commas or escapes inside (the
/// broker's label values are close reasons).
fn parse_labels(text: &str) -> Option<Vec<(String, String)>> {
    text.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=')?;
            let value = value.trim().strip_prefix('"')?.strip_suffix('"')?;
            Some((key.trim().to_owned(), value.to_owned()))
        })
        .collect()
}

/// Fetches and parses the metrics at `url` (`http://HOST:PORT/PATH`),
/// bounded by [`SCRAPE_TIMEOUT`] and [`MAX_SCRAPE_BYTES`].
pub async fn scrape(url: &str) -> Result<Metrics, BenchError> {
    let (authority, path) = split_http_url(url)?;
    let failed = |reason: String| BenchError::target("metrics", format!("GET {url}: {reason}"));
    let exchange = async {
        let mut stream = TcpStream::connect(authority)
            .await
            .map_err(|e| failed(format!("cannot connect: {e}")))?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| failed(e.to_string()))?;
        let mut raw = Vec::new();
        let read = (&mut stream)
            .take(MAX_SCRAPE_BYTES + 1)
            .read_to_end(&mut raw)
            .await
            .map_err(|e| failed(e.to_string()))?;
        if read as u64 > MAX_SCRAPE_BYTES {
            return Err(failed(format!(
                "the answer is over {MAX_SCRAPE_BYTES} bytes"
            )));
        }
        Ok(raw)
    };
    let raw = tokio::time::timeout(SCRAPE_TIMEOUT, exchange)
        .await
        .map_err(|_| failed(format!("no answer within {SCRAPE_TIMEOUT:?}")))??;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| failed("not an HTTP response".to_owned()))?;
    let status = head.split_whitespace().nth(1).unwrap_or_default();
    if status != "200" {
        let first = head.lines().next().unwrap_or_default();
        return Err(failed(format!("answered {first:?}")));
    }
    Ok(Metrics::parse(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP herald_connections WebSocket sessions open now.\n\
                        # TYPE herald_connections gauge\n\
                        herald_connections 42\n\
                        herald_connections_closed_total{reason=\"client_closed\"} 7\n\
                        herald_connections_closed_total{reason=\"slow_consumer\"} 2 1700000000\n\
                        herald_request_duration_seconds_bucket{le=\"0.5\"} 3\n\
                        herald_events_dropped_total 0\n\
                        this line is not a sample\n";

    #[test]
    fn samples_and_labels_are_read() {
        let metrics = Metrics::parse(TEXT);
        assert_eq!(metrics.get("herald_connections"), Some(42.0));
        assert_eq!(metrics.get("herald_events_dropped_total"), Some(0.0));
        assert_eq!(metrics.get("herald_connections_closed_total"), None);
        assert_eq!(metrics.get("nope"), None);
        assert_eq!(
            metrics.by_label("herald_connections_closed_total", "reason"),
            [
                ("client_closed".to_owned(), 7.0),
                ("slow_consumer".to_owned(), 2.0)
            ]
        );
        assert_eq!(
            metrics.by_label("herald_request_duration_seconds_bucket", "le"),
            [("0.5".to_owned(), 3.0)]
        );
    }

    #[test]
    fn urls() {
        assert_eq!(
            metrics_url("ws://127.0.0.1:7400/v1/ws").expect("valid"),
            "http://127.0.0.1:7400/metrics"
        );
        assert!(metrics_url("http://x").is_err());
        assert_eq!(
            split_http_url("http://h:1/m").expect("valid"),
            ("h:1", "/m")
        );
        assert_eq!(
            split_http_url("http://h:1").expect("valid"),
            ("h:1", "/metrics")
        );
        for bad in ["https://h:1/m", "h:1/m", "http:///m"] {
            let error = check_url(bad).expect_err("refused");
            assert!(error.to_string().contains("--metrics-url"), "{error}");
        }
    }
}
