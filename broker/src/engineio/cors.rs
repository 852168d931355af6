//! Which web pages may use an Engine.IO endpoint (`socketio.allowed_origins`)
//! and the CORS headers that let them. A request without `Origin` comes
//! from a non-browser client and is allowed. A same-origin page (its
//! `Origin` names the `Host` it called) is allowed and needs no CORS
//! header. Any other origin must be listed (or the list be `["*"]`); it is
//! then echoed in `Access-Control-Allow-Origin` with credentials allowed
//! (a wildcard would forbid the cookies and credentials clients send with
//! `withCredentials`). Refused origins get 403, WebSocket upgrades too.

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS, HOST,
    ORIGIN, VARY,
};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;

use super::query::{ErrorCode, Refusal};
use crate::http::Body;

/// The verdict on a request's `Origin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// No `Origin` header, or a same-origin page: no CORS headers.
    Plain,
    /// A listed cross origin: echoed back, with credentials.
    Allowed(HeaderValue),
}

/// Checks `Origin` against `allowed` (entries `*` or `scheme://host[:port]`).
pub(crate) fn check(headers: &HeaderMap, allowed: &[String]) -> Result<Origin, Refusal> {
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
    Err(Refusal {
        status: StatusCode::FORBIDDEN,
        code: ErrorCode::Forbidden,
        detail: format!(
            "origin {text:?} is not allowed: add it to socketio.allowed_origins \
             (or [\"*\"] for any origin)"
        ),
    })
}

/// Adds the CORS headers `origin` calls for to a response.
pub(crate) fn apply(response: &mut Response<Body>, origin: &Origin) {
    if let Origin::Allowed(value) = origin {
        let h = response.headers_mut();
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, value.clone());
        h.insert(
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        // The answer depends on Origin: caches must keep them apart.
        h.insert(VARY, HeaderValue::from_static("Origin"));
    }
}

/// The answer to a CORS preflight (`OPTIONS`): 204, methods GET and POST,
/// and the headers the page asked for.
pub(crate) fn preflight(request: &HeaderMap, origin: &Origin) -> Response<Body> {
    let mut response = Response::new(Full::default());
    *response.status_mut() = StatusCode::NO_CONTENT;
    apply(&mut response, origin);
    let h = response.headers_mut();
    h.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST"),
    );
    if let Some(asked) = request.get(ACCESS_CONTROL_REQUEST_HEADERS) {
        h.insert(ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
    }
    h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    response
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
        assert_eq!(
            check(&headers(Some("https://app.example")), &one),
            Ok(Origin::Allowed(HeaderValue::from_static(
                "https://app.example"
            )))
        );
        let refused = check(&headers(Some("https://evil.example")), &one).expect_err("refused");
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert_eq!(refused.code, ErrorCode::Forbidden);
        assert!(matches!(
            check(&headers(Some("https://evil.example")), &any),
            Ok(Origin::Allowed(_))
        ));
    }
}
