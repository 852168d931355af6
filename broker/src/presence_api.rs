//! `GET /v1/presence/{namespace}?room=…&limit=N`: who is connected, in a
//! namespace or one of its rooms, on this node and (clustered) on every
//! other live node (PROTOCOL.md §6.7). Socket.IO's `fetchSockets()` is
//! the model.
//!
//! The path after `/v1/presence` is the namespace (`/v1/presence` alone
//! is `/`). The answer is JSON, or MessagePack when the request's `Accept`
//! names `application/msgpack`: `{namespace, room, count, members,
//! truncated, complete}`, members sorted by session id and at most
//! `limit` of them (default 100, at most 1000); `count` is the whole
//! number. `complete` is false when the other nodes could not be read
//! (Redis unreachable): the members are then this node's only. Admission
//! is that of the other `/v1` routes: the bearer token under `auth.mode =
//! "jwt"`, and permission to subscribe to `$presence.join` there (and to
//! join the room, for a room).

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use herald_protocol::ErrorCode;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Uri};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tracing::debug;

use crate::admission::{self, Denied};
use crate::auth::Grant;
use crate::backplane::Member;
use crate::http::{Body, QueryRefusal, error, json, query_params};
use crate::outbox::Outbox;
use crate::state::Shared;
use crate::wire::Answer;

/// The request a connection sends (with `ack`) for the same listing.
pub(crate) const LIST_EVENT: &str = "$presence.list";

/// The path of the presence endpoint; the namespace follows it.
pub(crate) const PRESENCE_PATH: &str = "/v1/presence";
/// Members answered when the request gives no `limit`.
const DEFAULT_LIMIT: usize = 100;
/// The largest `limit` accepted.
pub(crate) const MAX_LIMIT: usize = 1000;

/// Whether `path` is the presence endpoint.
pub(crate) fn is_presence_path(path: &str) -> bool {
    path.strip_prefix(PRESENCE_PATH)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Why a presence request was refused.
#[derive(Debug, Error)]
enum PresenceError {
    #[error("the broker is shutting down; ask another node or later")]
    ShuttingDown,
    #[error("unknown query parameter {0:?}: only room and limit are accepted")]
    UnknownParameter(String),
    #[error("query parameter {0:?} is given more than once")]
    RepeatedParameter(String),
    #[error("limit {0:?} is not a whole number from 1 to {MAX_LIMIT}")]
    BadLimit(String),
    #[error("{}", .0.message)]
    Denied(Denied),
    #[error("{}", crate::auth::UNAUTHORIZED)]
    Unauthorized,
}

impl PresenceError {
    fn status(&self) -> StatusCode {
        match self {
            PresenceError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            PresenceError::Denied(denied) if denied.code == ErrorCode::Forbidden => {
                StatusCode::FORBIDDEN
            }
            PresenceError::Unauthorized => StatusCode::UNAUTHORIZED,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            PresenceError::ShuttingDown => "shutting_down",
            PresenceError::UnknownParameter(_)
            | PresenceError::RepeatedParameter(_)
            | PresenceError::BadLimit(_) => "invalid_query",
            PresenceError::Denied(denied) => denied.code.as_str(),
            PresenceError::Unauthorized => "unauthorized",
        }
    }
}

/// What a presence request asks for.
#[derive(Debug, PartialEq, Eq)]
struct Query {
    namespace: String,
    room: Option<String>,
    limit: usize,
}

impl Query {
    fn parse(uri: &Uri) -> Result<Query, PresenceError> {
        let rest = uri.path().strip_prefix(PRESENCE_PATH).unwrap_or_default();
        let namespace = if rest.is_empty() || rest == "/" {
            "/".to_owned()
        } else {
            rest.to_owned()
        };
        let [room, limit] =
            query_params(uri, ["room", "limit"]).map_err(|refusal| match refusal {
                QueryRefusal::Unknown(key) => PresenceError::UnknownParameter(key),
                QueryRefusal::Repeated(key) => PresenceError::RepeatedParameter(key),
            })?;
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(text) => usize::from_str(&text)
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or(PresenceError::BadLimit(text))?,
        };
        Ok(Query {
            namespace,
            room,
            limit,
        })
    }
}

/// The answer.
#[derive(Debug, Serialize)]
struct Listing {
    namespace: String,
    room: Option<String>,
    count: usize,
    members: Vec<Member>,
    truncated: bool,
    complete: bool,
}

/// Answers one presence request.
pub(crate) async fn presence<B>(req: Request<B>, shared: &Shared) -> Response<Body> {
    match listing(&req, shared).await {
        Ok(listing) => encode(req.headers(), &listing),
        Err(refusal) => {
            debug!(code = refusal.code(), error = %refusal, "presence request refused");
            error(refusal.status(), refusal.code(), &refusal.to_string())
        }
    }
}

async fn listing<B>(req: &Request<B>, shared: &Shared) -> Result<Listing, PresenceError> {
    if !shared.is_ready() {
        return Err(PresenceError::ShuttingDown);
    }
    let query = Query::parse(req.uri())?;
    let grant =
        crate::auth::authenticate(shared, crate::auth::bearer_token(req.headers()).as_deref())
            .map_err(|_| PresenceError::Unauthorized)?;
    admission::presence(
        shared,
        grant.as_ref(),
        &query.namespace,
        query.room.as_deref(),
    )
    .map_err(PresenceError::Denied)?;
    Ok(list(shared, query).await)
}

/// Who is in `query.namespace` (or its room): this node's members, and
/// the other nodes' when clustered. Admission is the caller's.
async fn list(shared: &Shared, query: Query) -> Listing {
    let room = query.room.as_deref();
    let mut members = shared.router.presence(&query.namespace, room);
    let mut complete = true;
    if let Some(backplane) = &shared.backplane {
        match backplane.presence(&query.namespace).await {
            Ok(remote) => members.extend(
                remote
                    .into_iter()
                    .filter(|m| room.is_none_or(|room| m.rooms.iter().any(|r| r == room))),
            ),
            Err(unreachable) => {
                debug!(%unreachable, "presence lists this node's members only");
                complete = false;
            }
        }
    }
    members.sort_unstable_by(|a, b| a.sid.cmp(&b.sid));
    members.dedup_by(|a, b| a.sid == b.sid);
    let count = members.len();
    members.truncate(query.limit);
    Listing {
        namespace: query.namespace,
        room: query.room,
        count,
        members,
        truncated: count > query.limit,
        complete,
    }
}

/// What a connection's `$presence.list` request carries (a MessagePack
/// map; both keys optional).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Ask {
    room: Option<String>,
    limit: Option<usize>,
}

/// A connection's `$presence.list` request in `namespace` (PROTOCOL.md
/// §6.7): the same listing as the HTTP endpoint, as the payload of a
/// `reply` to `ack`. Checked here (payload, names, permissions); the
/// listing is made on a task of its own, since reading the other nodes
/// awaits Redis and the reader must not.
pub(crate) fn request(
    shared: &Arc<Shared>,
    conn: &Outbox,
    grant: Option<&Grant>,
    (namespace, ack, payload): (&str, u64, &[u8]),
) -> Result<(), Denied> {
    let ask: Ask = admission::broker_request(LIST_EVENT, "{room?, limit?}", payload)?;
    let limit = ask.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Denied {
            code: ErrorCode::InvalidEnvelope,
            message: PresenceError::BadLimit(limit.to_string()).to_string(),
        });
    }
    admission::presence(shared, grant, namespace, ask.room.as_deref())?;
    // Counted as a request in flight until answered, so a connection
    // cannot have more listings under way than requests.
    admission::reserve_request(shared, conn)?;
    let query = Query {
        namespace: namespace.to_owned(),
        room: ask.room,
        limit,
    };
    let shared = shared.clone();
    let conn = conn.clone();
    tokio::spawn(async move {
        let listing = list(&shared, query).await;
        let payload = Bytes::from(rmp_serde::to_vec_named(&listing).unwrap_or_default());
        conn.answer_with(&Answer::Reply {
            namespace: &listing.namespace,
            ack,
            ok: true,
            payload: &payload,
            args: false,
        });
        conn.pending_requests.fetch_sub(1, Relaxed);
    });
    Ok(())
}

/// JSON, or MessagePack when `Accept` asks for it.
fn encode(headers: &HeaderMap, listing: &Listing) -> Response<Body> {
    let msgpack = headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/msgpack"));
    if !msgpack {
        let value = serde_json::to_value(listing).unwrap_or_default();
        return json(StatusCode::OK, &value);
    }
    let body = rmp_serde::to_vec_named(listing).unwrap_or_default();
    let mut response = Response::new(Body::new(Bytes::from(body)));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/msgpack"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(uri: &str) -> Result<Query, PresenceError> {
        Query::parse(&uri.parse::<Uri>().expect("a valid test URI"))
    }

    #[test]
    fn paths_name_the_namespace() {
        assert!(is_presence_path("/v1/presence"));
        assert!(is_presence_path("/v1/presence/chat"));
        assert!(!is_presence_path("/v1/presences"));
        let root = query("/v1/presence").expect("valid");
        assert_eq!((root.namespace.as_str(), root.limit), ("/", DEFAULT_LIMIT));
        let chat = query("/v1/presence/chat/eu?room=lobby+1&limit=5").expect("valid");
        assert_eq!(
            chat,
            Query {
                namespace: "/chat/eu".into(),
                room: Some("lobby 1".into()),
                limit: 5
            }
        );
    }

    #[test]
    fn bad_queries_name_the_problem() {
        for (uri, expected) in [
            ("/v1/presence/a?limit=0", "limit \"0\""),
            ("/v1/presence/a?limit=1001", "limit \"1001\""),
            ("/v1/presence/a?limit=x", "limit \"x\""),
            ("/v1/presence/a?ns=/b", "unknown query parameter \"ns\""),
            ("/v1/presence/a?room=a&room=b", "more than once"),
        ] {
            match query(uri) {
                Ok(q) => panic!("{uri} was accepted: {q:?}"),
                Err(e) => assert!(e.to_string().contains(expected), "{uri}: {e}"),
            }
        }
    }
}
