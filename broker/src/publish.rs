//! `POST /v1/emit/{event}?namespace=/orders&room=eu`: publishing over
//! HTTP, for services that cannot hold a WebSocket.
//!
//! A request goes through the same router path as a WebSocket `emit`:
//! names checked with `herald_protocol::names`, the payload limit
//! (`limits.max_payload_bytes`), the `events_received` counter and the room
//! filter; there is no sender connection, so nothing is excluded. A JSON
//! body is re-encoded as MessagePack, so WebSocket subscribers decode it
//! like any SDK payload; an `application/msgpack` body must hold exactly
//! one MessagePack value and is routed byte for byte. The body is read
//! with a limit and a deadline, never buffered without bound.
//!
//! HTTP publishing is fire-and-forget: it answers how many receivers the
//! event reached. Request/reply needs a WebSocket, where the reply can come
//! back.

use std::time::Duration;

use bytes::Bytes;
use herald_protocol::ErrorCode;
use herald_protocol::envelope::Emit;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Body as HttpBody;
use serde::Deserialize;
use serde::de::IgnoredAny;
use thiserror::Error;
use tracing::debug;

use crate::admission::{self, Denied, EmitNames};
use crate::http::{Body, QueryRefusal, error, json, query_params};
use crate::state::Shared;
use crate::stats::Stats;

/// The path of the HTTP publish endpoint; the event name follows it.
pub(crate) const EMIT_PATH: &str = "/v1/emit";

/// Whether `path` is the HTTP publish endpoint (`/v1/emit/{event}`).
pub(crate) fn is_emit_path(path: &str) -> bool {
    path.strip_prefix(EMIT_PATH)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Why an HTTP publish was refused. The message says what to fix.
#[derive(Debug, Error)]
pub(crate) enum PublishError {
    #[error("the broker is shutting down; publish to another node or later")]
    ShuttingDown,
    #[error(
        "unknown query parameter {0:?}: only namespace and room are accepted \
         (HTTP publishing is fire-and-forget; request/reply needs a WebSocket)"
    )]
    UnknownParameter(String),
    #[error("query parameter {0:?} is given more than once")]
    RepeatedParameter(String),
    #[error("Content-Type {0:?} is not supported: send application/json or application/msgpack")]
    UnsupportedMediaType(String),
    #[error("the body exceeds limits.max_payload_bytes = {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("the payload is {size} bytes as MessagePack, over limits.max_payload_bytes = {limit}")]
    PayloadTooLarge { size: usize, limit: usize },
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(serde_json::Error),
    #[error("the body is not exactly one valid MessagePack value: {0}")]
    InvalidMsgpack(String),
    #[error("the body did not arrive within {0:?} (server.handshake_timeout)")]
    BodyTimeout(Duration),
    #[error("the body could not be read: {0}")]
    BodyRead(String),
    #[error("the JSON value could not be re-encoded as MessagePack: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    /// Refused by admission: a name, or (403) the token's permissions or
    /// the service powers.
    #[error("{}", .0.message)]
    Denied(Denied),
    #[error("{}", crate::auth::UNAUTHORIZED)]
    Unauthorized,
    /// A clustered history could not store the event (Redis unreachable).
    #[error("the event was not stored: {0}")]
    Unavailable(String),
}

impl PublishError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            PublishError::ShuttingDown | PublishError::Unavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            PublishError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            PublishError::BodyTooLarge { .. } | PublishError::PayloadTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            PublishError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            PublishError::Encode(_) => StatusCode::INTERNAL_SERVER_ERROR,
            PublishError::Denied(denied) => match denied.code {
                ErrorCode::Forbidden => StatusCode::FORBIDDEN,
                ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::BAD_REQUEST,
            },
            PublishError::Unauthorized => StatusCode::UNAUTHORIZED,
            PublishError::UnknownParameter(_)
            | PublishError::RepeatedParameter(_)
            | PublishError::InvalidJson(_)
            | PublishError::InvalidMsgpack(_)
            | PublishError::BodyRead(_) => StatusCode::BAD_REQUEST,
        }
    }

    pub(crate) fn code(&self) -> &'static str {
        match self {
            PublishError::ShuttingDown => "shutting_down",
            PublishError::UnknownParameter(_) | PublishError::RepeatedParameter(_) => {
                "invalid_query"
            }
            PublishError::UnsupportedMediaType(_) => "unsupported_media_type",
            PublishError::BodyTooLarge { .. } | PublishError::PayloadTooLarge { .. } => {
                "payload_too_large"
            }
            PublishError::InvalidJson(_) => "invalid_json",
            PublishError::InvalidMsgpack(_) => "invalid_msgpack",
            PublishError::BodyTimeout(_) => "body_timeout",
            PublishError::BodyRead(_) => "bad_body",
            PublishError::Encode(_) | PublishError::Unavailable(_) => "internal",
            PublishError::Denied(denied) => match denied.code {
                ErrorCode::Forbidden => "forbidden",
                ErrorCode::PayloadTooLarge => "payload_too_large",
                _ => "invalid_name",
            },
            PublishError::Unauthorized => "unauthorized",
        }
    }
}

/// Where an HTTP publish goes: from the path and the query string.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    namespace: String,
    event: String,
    room: Option<String>,
}

impl Target {
    /// Reads `/v1/emit/{event}?namespace=..&room=..` (names are checked by
    /// admission); the namespace defaults to `/`. The event name is taken
    /// from the path as it is (its characters need no percent-encoding);
    /// query values are form-decoded.
    fn parse(uri: &Uri) -> Result<Target, PublishError> {
        let event = uri
            .path()
            .strip_prefix(EMIT_PATH)
            .map(|rest| rest.strip_prefix('/').unwrap_or(rest))
            .unwrap_or_default();
        let [namespace, room] =
            query_params(uri, ["namespace", "room"]).map_err(|refusal| match refusal {
                QueryRefusal::Unknown(key) => PublishError::UnknownParameter(key),
                QueryRefusal::Repeated(key) => PublishError::RepeatedParameter(key),
            })?;
        let namespace = namespace.unwrap_or_else(|| "/".to_owned());
        Ok(Target {
            namespace,
            event: event.to_owned(),
            room,
        })
    }
}

/// How the body encodes the payload, from `Content-Type` (JSON when the
/// header is absent; parameters such as `charset` are ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyFormat {
    Json,
    MessagePack,
}

impl BodyFormat {
    fn of(headers: &HeaderMap) -> Result<BodyFormat, PublishError> {
        let Some(value) = headers.get(CONTENT_TYPE) else {
            return Ok(BodyFormat::Json);
        };
        let text = String::from_utf8_lossy(value.as_bytes());
        let media_type = text.split(';').next().unwrap_or_default().trim();
        match media_type.to_ascii_lowercase().as_str() {
            "application/json" => Ok(BodyFormat::Json),
            "application/msgpack" | "application/x-msgpack" | "application/vnd.msgpack" => {
                Ok(BodyFormat::MessagePack)
            }
            _ => Err(PublishError::UnsupportedMediaType(text.into_owned())),
        }
    }

    /// The payload to route: MessagePack bytes.
    fn payload(self, body: Bytes) -> Result<Bytes, PublishError> {
        match self {
            BodyFormat::Json => {
                let value: serde_json::Value =
                    serde_json::from_slice(&body).map_err(PublishError::InvalidJson)?;
                Ok(Bytes::from(rmp_serde::to_vec(&value)?))
            }
            BodyFormat::MessagePack => {
                check_one_msgpack_value(&body).map_err(PublishError::InvalidMsgpack)?;
                Ok(body)
            }
        }
    }
}

/// Deepest nesting of arrays and maps accepted in a MessagePack body (as
/// serde_json allows for JSON). The check recurses once per level, so this
/// bounds its stack use.
const MAX_MSGPACK_DEPTH: usize = 128;

/// Checks that `bytes` is exactly one well-formed MessagePack value,
/// nothing after it. Streams over the bytes without building the value, so
/// checking a large body allocates nothing in proportion to its element
/// count.
fn check_one_msgpack_value(bytes: &[u8]) -> Result<(), String> {
    let mut decoder = rmp_serde::Deserializer::new(std::io::Cursor::new(bytes));
    decoder.set_max_depth(MAX_MSGPACK_DEPTH);
    IgnoredAny::deserialize(&mut decoder).map_err(|e| e.to_string())?;
    let used = usize::try_from(decoder.position()).unwrap_or(usize::MAX);
    match bytes.len().saturating_sub(used) {
        0 => Ok(()),
        extra => Err(format!(
            "{extra} trailing byte(s) after the first value; send exactly one value"
        )),
    }
}

/// Reads the whole body, at most `limit` bytes and within `deadline`.
pub(crate) async fn read_body<B>(
    body: B,
    limit: usize,
    deadline: Duration,
) -> Result<Bytes, PublishError>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if body.size_hint().lower() > limit as u64 {
        // Content-Length says it will not fit: answer before reading it.
        return Err(PublishError::BodyTooLarge { limit });
    }
    let collected = tokio::time::timeout(deadline, Limited::new(body, limit).collect())
        .await
        .map_err(|_| PublishError::BodyTimeout(deadline))?;
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(PublishError::BodyTooLarge { limit }),
        Err(error) => Err(PublishError::BodyRead(error.to_string())),
    }
}

/// Publishes one event; answers `{"receivers": N}` or a JSON error.
pub(crate) async fn publish<B>(req: Request<B>, shared: &Shared) -> Response<Body>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match try_publish(req, shared).await {
        Ok(receivers) => {
            Stats::add(&shared.stats.http_publishes, 1);
            json(
                StatusCode::OK,
                &serde_json::json!({ "receivers": receivers }),
            )
        }
        Err(refusal) => {
            Stats::add(&shared.stats.http_publishes_refused, 1);
            debug!(code = refusal.code(), error = %refusal, "HTTP publish refused");
            error(refusal.status(), refusal.code(), &refusal.to_string())
        }
    }
}

async fn try_publish<B>(req: Request<B>, shared: &Shared) -> Result<u64, PublishError>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if !shared.is_ready() {
        return Err(PublishError::ShuttingDown);
    }
    let target = Target::parse(req.uri())?;
    // One admission for the emit (names, the token's publish permission,
    // the service power of a session-id room), before the body is read;
    // the payload size is checked once it is re-encoded, below.
    let mut grant =
        crate::auth::authenticate(shared, crate::auth::bearer_token(req.headers()).as_deref())
            .map_err(|_| PublishError::Unauthorized)?;
    let names = EmitNames {
        namespace: &target.namespace,
        event: &target.event,
        room: target.room.as_deref(),
        except: None,
        payload: &Bytes::new(),
    };
    admission::emit(shared, None, grant.as_mut(), &names).map_err(PublishError::Denied)?;
    let format = BodyFormat::of(req.headers())?;
    let limit = shared.settings.limits.max_payload_bytes;
    let deadline = shared.settings.server.handshake_timeout;
    let body = read_body(req.into_body(), limit, deadline).await?;
    let payload = format.payload(body)?;
    if payload.len() > limit {
        return Err(PublishError::PayloadTooLarge {
            size: payload.len(),
            limit,
        });
    }
    let emit = Emit {
        namespace: target.namespace,
        event: target.event,
        room: target.room,
        payload,
        ..Emit::default()
    };
    let published = shared.router.publish(None, &emit);
    if let Some(pending) = published.pending {
        // A clustered history numbers the event in Redis first: answer
        // once it is stored (or say it is not).
        return match pending.await {
            Ok(Ok(_)) => Ok(0),
            Ok(Err(message)) => Err(PublishError::Unavailable(message)),
            Err(_) => Err(PublishError::ShuttingDown),
        };
    }
    // An HTTP publisher is held back like a WebSocket one: its answer waits
    // until a receiver past its high-water mark has drained.
    if let Some(receiver) = published.back_pressure {
        receiver.wait_drained().await;
    }
    Ok(published.receivers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(uri: &str) -> Result<Target, PublishError> {
        Target::parse(&uri.parse::<Uri>().expect("a valid test URI"))
    }

    #[test]
    fn emit_paths_are_recognised() {
        assert!(is_emit_path("/v1/emit/order.created"));
        assert!(is_emit_path("/v1/emit/"));
        assert!(is_emit_path("/v1/emit"));
        assert!(!is_emit_path("/v1/emitter"));
        assert!(!is_emit_path("/v1/ws"));
    }

    #[test]
    fn targets_are_parsed_and_decoded() {
        let parsed = target("/v1/emit/order.created?namespace=%2Forders&room=eu+west")
            .expect("a valid target");
        assert_eq!(
            parsed,
            Target {
                namespace: "/orders".into(),
                event: "order.created".into(),
                room: Some("eu west".into()),
            }
        );
        let default = target("/v1/emit/tick").expect("a valid target");
        assert_eq!((default.namespace.as_str(), default.room), ("/", None));
    }

    #[test]
    fn bad_targets_name_the_problem() {
        let cases = [
            ("/v1/emit/", "invalid event name"),
            ("/v1/emit/order.*", "invalid event name"),
            ("/v1/emit/a/b", "invalid event name"),
            ("/v1/emit/x?namespace=orders", "invalid namespace"),
            ("/v1/emit/x?room=", "invalid room"),
            ("/v1/emit/x?ns=/a", "unknown query parameter \"ns\""),
            (
                "/v1/emit/x?room=a&room=b",
                "\"room\" is given more than once",
            ),
        ];
        for (uri, expected) in cases {
            let checked = target(uri).and_then(|t| {
                let names = EmitNames {
                    namespace: &t.namespace,
                    event: &t.event,
                    room: t.room.as_deref(),
                    except: None,
                    payload: &Bytes::new(),
                };
                admission::names(&names).map_err(PublishError::Denied)
            });
            match checked {
                Ok(()) => panic!("{uri} was accepted"),
                Err(error) => assert!(error.to_string().contains(expected), "{uri}: {error}"),
            }
        }
    }

    #[test]
    fn content_types_choose_the_format() {
        let mut headers = HeaderMap::new();
        assert_eq!(BodyFormat::of(&headers).ok(), Some(BodyFormat::Json));
        for (value, format) in [
            ("application/json; charset=utf-8", Some(BodyFormat::Json)),
            ("Application/MsgPack", Some(BodyFormat::MessagePack)),
            ("application/x-msgpack", Some(BodyFormat::MessagePack)),
            ("text/plain", None),
        ] {
            headers.insert(CONTENT_TYPE, http::HeaderValue::from_static(value));
            assert_eq!(BodyFormat::of(&headers).ok(), format, "{value}");
        }
    }

    #[test]
    fn json_becomes_messagepack() {
        let payload = BodyFormat::Json
            .payload(Bytes::from_static(br#"{"id":42,"tags":["a"]}"#))
            .expect("valid JSON");
        let value: serde_json::Value = rmp_serde::from_slice(&payload).expect("MessagePack");
        assert_eq!(value, serde_json::json!({"id": 42, "tags": ["a"]}));
    }

    #[test]
    fn messagepack_must_be_exactly_one_value() {
        let one =
            rmp_serde::to_vec(&serde_json::json!({"id": [1, 2.5, "x", null]})).expect("encodes");
        assert!(check_one_msgpack_value(&one).is_ok());
        // An ext value (type 5, 1 byte) and a str with invalid UTF-8 are
        // still well-formed MessagePack.
        assert!(check_one_msgpack_value(&[0xd4, 0x05, 0x01]).is_ok());
        assert!(check_one_msgpack_value(&[0xa1, 0xff]).is_ok());
        let mut two = one.clone();
        two.push(0xc0);
        let trailing = check_one_msgpack_value(&two).expect_err("trailing byte");
        assert!(trailing.contains("1 trailing byte(s)"), "{trailing}");
        assert!(check_one_msgpack_value(&one[..one.len() - 1]).is_err());
        assert!(check_one_msgpack_value(&[]).is_err());
        assert!(check_one_msgpack_value(&[0xc1]).is_err(), "reserved marker");
        // An array claiming 4 billion elements is refused without
        // allocating for them.
        assert!(check_one_msgpack_value(&[0xdd, 0xff, 0xff, 0xff, 0xff]).is_err());
        let mut nested = vec![0x91; MAX_MSGPACK_DEPTH - 1];
        nested.push(0xc0);
        assert!(check_one_msgpack_value(&nested).is_ok(), "127 levels");
        let deep = vec![0x91; 100_000];
        let error = check_one_msgpack_value(&deep).expect_err("too deep");
        assert!(error.contains("depth"), "{error}");
    }
}
