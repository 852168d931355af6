//! What an Engine.IO request asks for, from its query string (`EIO`,
//! `transport`, `sid`), and the errors the reference server answers with:
//! a JSON body `{"code":N,"message":"…"}` (we add `detail`, saying what to
//! fix; clients ignore it).

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Response, StatusCode, Uri};
use http_body_util::Full;
use url::form_urlencoded;

use super::Transport;
use crate::http::Body;

/// The error codes of the reference server, with its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorCode {
    UnknownTransport = 0,
    UnknownSid = 1,
    BadHandshakeMethod = 2,
    BadRequest = 3,
    Forbidden = 4,
    UnsupportedProtocolVersion = 5,
}

impl ErrorCode {
    fn message(self) -> &'static str {
        match self {
            ErrorCode::UnknownTransport => "Transport unknown",
            ErrorCode::UnknownSid => "Session ID unknown",
            ErrorCode::BadHandshakeMethod => "Bad handshake method",
            ErrorCode::BadRequest => "Bad request",
            ErrorCode::Forbidden => "Forbidden",
            ErrorCode::UnsupportedProtocolVersion => "Unsupported protocol version",
        }
    }
}

/// A refused Engine.IO request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    pub(crate) code: ErrorCode,
    pub(crate) detail: String,
}

impl Refusal {
    /// A 400 with `code`.
    pub(crate) fn bad(code: ErrorCode, detail: impl Into<String>) -> Refusal {
        Refusal {
            status: StatusCode::BAD_REQUEST,
            code,
            detail: detail.into(),
        }
    }

    pub(crate) fn response(&self) -> Response<Body> {
        let body = serde_json::json!({
            "code": self.code as u8,
            "message": self.code.message(),
            "detail": self.detail,
        });
        let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
        *response.status_mut() = self.status;
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }
}

/// The parameters of a valid Engine.IO v4 request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Query {
    pub(crate) transport: Transport,
    /// The session, for every request but a handshake.
    pub(crate) sid: Option<String>,
}

/// Reads `transport` (checked first, as the reference server does), then
/// `EIO`, which must be `4`; `sid` is optional. Other parameters (`t`, the
/// cache buster; an app's own) are ignored.
pub(crate) fn parse(uri: &Uri) -> Result<Query, Refusal> {
    let mut eio = None;
    let mut transport = None;
    let mut sid = None;
    for (key, value) in form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()) {
        let slot = match &*key {
            "EIO" => &mut eio,
            "transport" => &mut transport,
            "sid" => &mut sid,
            _ => continue,
        };
        *slot = Some(value.into_owned());
    }
    let transport = match transport.as_deref() {
        Some("polling") => Transport::Polling,
        Some("websocket") => Transport::WebSocket,
        other => {
            return Err(Refusal::bad(
                ErrorCode::UnknownTransport,
                format!("transport must be polling or websocket, got {other:?}"),
            ));
        }
    };
    if eio.as_deref() != Some("4") {
        return Err(Refusal::bad(
            ErrorCode::UnsupportedProtocolVersion,
            format!(
                "only Engine.IO protocol 4 is supported (EIO=4, Socket.IO v3 and later clients), got {:?}",
                eio
            ),
        ));
    }
    Ok(Query { transport, sid })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(q: &str) -> Result<Query, Refusal> {
        parse(&format!("/engine.io/?{q}").parse().expect("a URI"))
    }

    #[test]
    fn transport_then_version_then_sid() {
        assert_eq!(
            query("EIO=4&transport=polling&t=x"),
            Ok(Query {
                transport: Transport::Polling,
                sid: None
            })
        );
        assert_eq!(
            query("transport=websocket&EIO=4&sid=a%2Db"),
            Ok(Query {
                transport: Transport::WebSocket,
                sid: Some("a-b".into())
            })
        );
        let code = |q| query(q).map_err(|r| r.code).err();
        assert_eq!(code("EIO=4"), Some(ErrorCode::UnknownTransport));
        assert_eq!(
            code("EIO=4&transport=abc"),
            Some(ErrorCode::UnknownTransport)
        );
        assert_eq!(code("EIO=abc"), Some(ErrorCode::UnknownTransport));
        assert_eq!(
            code("transport=polling"),
            Some(ErrorCode::UnsupportedProtocolVersion)
        );
        assert_eq!(
            code("EIO=3&transport=polling"),
            Some(ErrorCode::UnsupportedProtocolVersion)
        );
    }
}
