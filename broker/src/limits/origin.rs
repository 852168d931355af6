//! Which web pages may reach the broker (`server.allowed_origins`), the
//! one rule for native WebSocket upgrades of `/v1/ws` (cross-site
//! WebSocket hijacking) and every request to the Socket.IO / Engine.IO
//! paths: no `Origin` header (a non-browser client) is allowed; a
//! same-origin page (its `Origin` names the `Host` it called) is allowed;
//! a listed origin, or any when the list is `["*"]`, is allowed; any other
//! is refused.

use http::header::{HOST, ORIGIN};
use http::{HeaderMap, HeaderValue};

/// The verdict on a request's `Origin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// No `Origin` header, or a same-origin page.
    Plain,
    /// A listed cross origin (the header's value).
    Allowed(HeaderValue),
}

/// A refused `Origin`, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused(String);

impl Refused {
    /// What the refusal says.
    pub(crate) fn message(&self) -> &str {
        &self.0
    }
}

/// Checks `Origin` against `allowed` (entries `*` or `scheme://host[:port]`).
pub(crate) fn check(headers: &HeaderMap, allowed: &[String]) -> Result<Origin, Refused> {
    let Some(origin) = headers.get(ORIGIN) else {
        return Ok(Origin::Plain);
    };
    let text = origin.to_str().unwrap_or_default();
    let listed = allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(text));
    if listed {
        return Ok(Origin::Allowed(origin.clone()));
    }
    let host = headers.get(HOST).and_then(|h| h.to_str().ok());
    let same_origin = match (text.split_once("://"), host) {
        (Some((_, authority)), Some(host)) => authority.eq_ignore_ascii_case(host),
        _ => false,
    };
    if same_origin {
        return Ok(Origin::Plain);
    }
    Err(Refused(format!(
        "origin {text:?} is not allowed: add it to server.allowed_origins \
         (or [\"*\"] for any origin)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&'static str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_static("127.0.0.1:7400"));
        if let Some(origin) = origin {
            h.insert(ORIGIN, HeaderValue::from_static(origin));
        }
        h
    }

    #[test]
    fn origins_are_allowed_listed_same_origin_or_absent() {
        let none: Vec<String> = Vec::new();
        let any = vec!["*".to_owned()];
        let one = vec!["https://app.example".to_owned()];
        assert_eq!(check(&headers(None), &none), Ok(Origin::Plain));
        assert_eq!(
            check(&headers(Some("http://127.0.0.1:7400")), &none),
            Ok(Origin::Plain)
        );
        assert!(check(&headers(Some("https://app.example")), &none).is_err());
        assert!(check(&headers(Some("http://127.0.0.1:7401")), &none).is_err());
        assert!(check(&headers(Some("null")), &none).is_err());
        assert_eq!(
            check(&headers(Some("https://APP.example")), &one),
            Ok(Origin::Allowed(HeaderValue::from_static(
                "https://APP.example"
            )))
        );
        let refused = check(&headers(Some("https://evil.example")), &one).expect_err("refused");
        assert!(refused.message().contains("server.allowed_origins"));
        assert!(refused.message().contains("evil.example"));
        assert!(matches!(
            check(&headers(Some("https://evil.example")), &any),
            Ok(Origin::Allowed(_))
        ));
    }
}
