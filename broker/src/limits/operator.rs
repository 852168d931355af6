//! The operator endpoints' bearer token (`server.operator_token` or
//! `server.operator_token_file`): loaded once at start, then every
//! `/metrics` request must carry `Authorization: Bearer <token>`, compared
//! in constant time; 401 otherwise.

use herald_config::ServerSettings;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use subtle::ConstantTimeEq;

use crate::http::{Body, error};

/// The token the operator endpoints require, when one is configured.
#[derive(Default)]
pub(crate) struct OperatorToken(Option<Box<[u8]>>);

impl std::fmt::Debug for OperatorToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token itself, not even in a debug log.
        let state = if self.0.is_some() { "set" } else { "none" };
        f.debug_tuple("OperatorToken").field(&state).finish()
    }
}

impl OperatorToken {
    /// The token of `server`: `operator_token`, or the contents of
    /// `operator_token_file` (trimmed); none when both are empty.
    pub(crate) fn load(server: &ServerSettings) -> Result<OperatorToken, String> {
        if !server.operator_token.is_empty() {
            return Ok(OperatorToken(Some(server.operator_token.as_bytes().into())));
        }
        let path = &server.operator_token_file;
        if path.is_empty() {
            return Ok(OperatorToken(None));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read server.operator_token_file {path:?}: {e}"))?;
        let token = text.trim();
        herald_config::check_operator_token(token)
            .map_err(|why| format!("server.operator_token_file {path:?}: the token {why}"))?;
        Ok(OperatorToken(Some(token.as_bytes().into())))
    }

    /// `Ok` when no token is configured or `headers` carry it; why not
    /// otherwise.
    pub(crate) fn authorize(&self, headers: &HeaderMap) -> Result<(), Unauthorized> {
        let Some(expected) = &self.0 else {
            return Ok(());
        };
        let given = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            });
        match given {
            Some(token) if bool::from(token.as_bytes().ct_eq(expected)) => Ok(()),
            Some(_) => Err(Unauthorized(
                "the bearer token is not the operator token (server.operator_token)",
            )),
            None => Err(Unauthorized(
                "this endpoint needs Authorization: Bearer <token> \
                 (server.operator_token or server.operator_token_file)",
            )),
        }
    }
}

/// A request without the operator token; what it lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unauthorized(pub(crate) &'static str);

impl Unauthorized {
    /// 401 `unauthorized`, with `WWW-Authenticate: Bearer`.
    pub(crate) fn response(self) -> Response<Body> {
        let mut response = error(StatusCode::UNAUTHORIZED, "unauthorized", self.0);
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(text: &str) -> OperatorToken {
        OperatorToken(Some(text.as_bytes().into()))
    }

    fn bearer(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn only_the_configured_bearer_token_passes() {
        let t = token("0123456789abcdef");
        assert!(t.authorize(&bearer("Bearer 0123456789abcdef")).is_ok());
        assert!(t.authorize(&bearer("bearer  0123456789abcdef ")).is_ok());
        for wrong in [
            "Bearer 0123456789abcdeF",
            "Bearer 0123456789abcde",
            "Bearer 0123456789abcdef0",
            "Basic 0123456789abcdef",
            "0123456789abcdef",
            "Bearer",
        ] {
            let refused = t.authorize(&bearer(wrong)).expect_err(wrong).response();
            assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "{wrong}");
            assert!(refused.headers().contains_key(WWW_AUTHENTICATE));
        }
        assert!(t.authorize(&HeaderMap::new()).is_err());
        assert!(
            OperatorToken::default()
                .authorize(&HeaderMap::new())
                .is_ok()
        );
        assert_eq!(format!("{t:?}"), "OperatorToken(\"set\")");
    }

    #[test]
    fn a_token_file_is_read_and_trimmed_and_checked() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("token");
        std::fs::write(&path, "0123456789abcdef\n").expect("write");
        let mut server = herald_config::Settings::defaults().server;
        server.operator_token_file = path.display().to_string();
        let loaded = OperatorToken::load(&server).expect("a token");
        assert!(loaded.authorize(&bearer("Bearer 0123456789abcdef")).is_ok());
        std::fs::write(&path, "short\n").expect("write");
        let error = OperatorToken::load(&server).expect_err("too short");
        assert!(error.contains("server.operator_token_file"), "{error}");
        server.operator_token_file = dir.path().join("missing").display().to_string();
        let error = OperatorToken::load(&server).expect_err("missing");
        assert!(error.contains("cannot read"), "{error}");
    }
}
