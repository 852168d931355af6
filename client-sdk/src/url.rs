//! Broker URL normalisation.
//!
//! Users may give a broker's base URL (`ws://host:7400`, `ws://host:7400/`)
//! or its full endpoint (`ws://host:7400/v1/ws`, or another path when a
//! proxy maps one). A base URL gets [`herald_protocol::WS_PATH`] appended; a
//! URL with any other path is used as given.

use url::Url;

use crate::error::Error;

/// Parses and normalises one broker URL into the endpoint to connect to.
pub(crate) fn normalize(input: &str) -> Result<Url, Error> {
    let bad = |why: &str| Error::InvalidUrl(format!("{input:?}: {why}"));
    let mut url = Url::parse(input.trim()).map_err(|e| bad(&e.to_string()))?;
    match url.scheme() {
        "ws" | "wss" => {}
        other => return Err(bad(&format!("scheme {other:?} is not ws:// or wss://"))),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if url.fragment().is_some() {
        return Err(bad("a fragment (#...) has no meaning here"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("credentials in the url are not supported"));
    }
    if url.path().is_empty() || url.path() == "/" {
        url.set_path(herald_protocol::WS_PATH);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(input: &str) -> String {
        normalize(input).expect("valid url").to_string()
    }

    #[test]
    fn base_url_gets_the_endpoint_path() {
        assert_eq!(n("ws://127.0.0.1:7400"), "ws://127.0.0.1:7400/v1/ws");
        assert_eq!(n("ws://127.0.0.1:7400/"), "ws://127.0.0.1:7400/v1/ws");
        assert_eq!(n("  ws://broker  "), "ws://broker/v1/ws");
        assert_eq!(n("ws://broker?x=1"), "ws://broker/v1/ws?x=1");
    }

    #[test]
    fn full_endpoint_is_kept() {
        assert_eq!(n("ws://127.0.0.1:7400/v1/ws"), "ws://127.0.0.1:7400/v1/ws");
        assert_eq!(n("ws://proxy/herald/v1/ws"), "ws://proxy/herald/v1/ws");
    }

    #[test]
    fn wss_urls_are_accepted() {
        assert_eq!(n("wss://broker:7400"), "wss://broker:7400/v1/ws");
        assert_eq!(n("wss://broker/v1/ws"), "wss://broker/v1/ws");
    }

    #[test]
    fn bad_urls_are_invalid() {
        for bad in [
            "http://127.0.0.1:7400",
            "tcp://x",
            "127.0.0.1:7400",
            "",
            "ws://",
            "ws://host/#frag",
            "ws://user:pw@host",
        ] {
            assert!(
                matches!(normalize(bad), Err(Error::InvalidUrl(_))),
                "{bad:?} should be refused"
            );
        }
    }
}
