//! The CORS side of the Engine.IO endpoints: which origins may call them
//! is `server.allowed_origins` (the rule is in `limits::origin`, shared
//! with `/v1/ws`); a refused origin gets 403 (Engine.IO code 4), WebSocket
//! upgrades too. A listed cross origin is echoed in
//! `Access-Control-Allow-Origin` with credentials allowed (a wildcard
//! would forbid the cookies and credentials clients send with
//! `withCredentials`); a same-origin page or a non-browser client (no
//! `Origin`) needs no CORS header.

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS, VARY,
};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;

use super::query::{ErrorCode, Refusal};
use crate::http::Body;
use crate::limits::origin;
pub(crate) use crate::limits::origin::Origin;

/// Checks `Origin` against `allowed` (`server.allowed_origins`).
pub(crate) fn check(headers: &HeaderMap, allowed: &[String]) -> Result<Origin, Refusal> {
    origin::check(headers, allowed).map_err(|refused| Refusal {
        status: StatusCode::FORBIDDEN,
        code: ErrorCode::Forbidden,
        detail: refused.message().to_owned(),
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
    use http::header::{HOST, ORIGIN};

    use super::*;

    #[test]
    fn refused_origins_are_engineio_forbidden_with_the_setting_named() {
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_static("127.0.0.1:7400"));
        h.insert(ORIGIN, HeaderValue::from_static("https://evil.example"));
        let refused = check(&h, &[]).expect_err("refused");
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert_eq!(refused.code, ErrorCode::Forbidden);
        assert!(refused.detail.contains("server.allowed_origins"));
        assert!(matches!(
            check(&h, &["*".to_owned()]),
            Ok(Origin::Allowed(_))
        ));
    }
}
