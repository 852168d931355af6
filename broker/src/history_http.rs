//! `GET /v1/history/{event-or-pattern}?namespace=/chat&since=SEQ&limit=N`:
//! reading a namespace's history over HTTP, so a service can load what it
//! missed before going live.
//!
//! The same conventions as `POST /v1/emit` (`publish`): names checked by
//! admission (reading needs the token's `subscribe` permission for the
//! pattern), JSON errors `{"error":{"code","message"}}`. The answer is JSON
//! (payloads decoded from MessagePack) or, when `Accept` names
//! `application/msgpack`, MessagePack (payloads as they were emitted).

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::Full;
use serde::Serialize;
use thiserror::Error;

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use herald_protocol::ErrorCode;
use serde::Deserialize;

use crate::admission::{self, Denied};
use crate::auth::Grant;
use crate::history::{Gap, Page, Stored};
use crate::http::{Body, QueryRefusal, error, json, query_params};
use crate::outbox::Outbox;
use crate::state::Shared;
use crate::wire::Answer;

/// The request a connection sends to read a namespace's history; the
/// broker answers it itself (PROTOCOL.md §25.4).
pub(crate) const READ_EVENT: &str = "$history.read";

/// The path of the history endpoint; the event name or pattern follows.
pub(crate) const HISTORY_PATH: &str = "/v1/history";

/// Events answered when the request names no `limit`.
const DEFAULT_LIMIT: usize = 100;

/// Whether `path` is the history endpoint.
pub(crate) fn is_history_path(path: &str) -> bool {
    path.strip_prefix(HISTORY_PATH)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Why a history read was refused.
#[derive(Debug, Error)]
enum HistoryError {
    #[error("unknown query parameter {0:?}: namespace, since and limit are accepted")]
    UnknownParameter(String),
    #[error("query parameter {0:?} is given more than once")]
    RepeatedParameter(String),
    #[error("{name} must be an integer{range}, got {value:?}")]
    BadNumber {
        name: &'static str,
        range: String,
        value: String,
    },
    #[error(
        "namespace {0:?} keeps no history: add a [[history.namespaces]] entry \
         matching it to the broker's configuration"
    )]
    NoHistory(String),
    #[error("since {since} is ahead of the namespace's last seq {last}")]
    Ahead { since: u64, last: u64 },
    #[error("{}", .0.message)]
    Denied(Denied),
    #[error("{}", crate::auth::UNAUTHORIZED)]
    Unauthorized,
}

impl HistoryError {
    fn status(&self) -> StatusCode {
        match self {
            HistoryError::NoHistory(_) => StatusCode::NOT_FOUND,
            HistoryError::Unauthorized => StatusCode::UNAUTHORIZED,
            HistoryError::Denied(denied)
                if denied.code == herald_protocol::ErrorCode::Forbidden =>
            {
                StatusCode::FORBIDDEN
            }
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            HistoryError::UnknownParameter(_)
            | HistoryError::RepeatedParameter(_)
            | HistoryError::BadNumber { .. }
            | HistoryError::Ahead { .. } => "invalid_query",
            HistoryError::NoHistory(_) => "no_history",
            HistoryError::Denied(denied)
                if denied.code == herald_protocol::ErrorCode::Forbidden =>
            {
                "forbidden"
            }
            HistoryError::Denied(_) => "invalid_name",
            HistoryError::Unauthorized => "unauthorized",
        }
    }
}

/// What a history read asks for.
#[derive(Debug, PartialEq, Eq)]
struct Query {
    namespace: String,
    pattern: String,
    since: u64,
    limit: usize,
}

impl Query {
    fn parse(uri: &Uri, max_limit: usize) -> Result<Query, HistoryError> {
        let pattern = uri
            .path()
            .strip_prefix(HISTORY_PATH)
            .map(|rest| rest.strip_prefix('/').unwrap_or(rest))
            .unwrap_or_default();
        let [namespace, since, limit] = query_params(uri, ["namespace", "since", "limit"])
            .map_err(|refusal| match refusal {
                QueryRefusal::Unknown(key) => HistoryError::UnknownParameter(key),
                QueryRefusal::Repeated(key) => HistoryError::RepeatedParameter(key),
            })?;
        let since = match since {
            None => 0,
            Some(value) => value.parse().map_err(|_| HistoryError::BadNumber {
                name: "since",
                range: " >= 0".into(),
                value,
            })?,
        };
        let limit = match limit {
            None => DEFAULT_LIMIT.min(max_limit),
            Some(value) => value
                .parse()
                .ok()
                .filter(|n| (1..=max_limit).contains(n))
                .ok_or_else(|| HistoryError::BadNumber {
                    name: "limit",
                    range: format!(" from 1 to {max_limit} (history.replay_limit)"),
                    value,
                })?,
        };
        Ok(Query {
            namespace: namespace.unwrap_or_else(|| "/".to_owned()),
            pattern: pattern.to_owned(),
            since,
            limit,
        })
    }
}

/// One event of the answer; `D` is the payload (a JSON value, or the
/// MessagePack bytes).
#[derive(Serialize)]
struct EventOut<'a, D> {
    seq: u64,
    mid: Cow<'a, str>,
    ev: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    room: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    args: bool,
    d: D,
}

/// The answer: the namespace's epoch and last `seq`, whether the page
/// starts right after `since`, and the events.
#[derive(Serialize)]
struct PageOut<'a, D> {
    namespace: &'a str,
    epoch: &'a str,
    last: u64,
    complete: bool,
    events: Vec<EventOut<'a, D>>,
}

fn page_out<'a, D>(
    namespace: &'a str,
    page: &'a Page,
    payload: impl Fn(&'a Stored) -> D,
) -> PageOut<'a, D> {
    PageOut {
        namespace,
        epoch: &page.epoch,
        last: page.last,
        complete: page.complete,
        events: page
            .events
            .iter()
            .map(|e| EventOut {
                seq: e.seq,
                mid: e.mid_or_derived(&page.epoch),
                ev: e.event(),
                room: e.room(),
                from: e.from(),
                args: e.args(),
                d: payload(e),
            })
            .collect(),
    }
}

/// Answers one history read.
pub(crate) async fn history<B>(req: &Request<B>, shared: &Shared) -> Response<Body> {
    if shared.mirror.is_some() {
        // In a cluster, this node's mirror of Redis first catches up.
        let position = Query::parse(req.uri(), shared.settings.history.replay_limit)
            .map(|query| (query.namespace, query.since));
        if let Ok((namespace, since)) = position {
            crate::mirror::catch_up(shared, &namespace, since).await;
        }
    }
    match read(req, shared) {
        Ok(response) => response,
        Err(refusal) => {
            tracing::debug!(code = refusal.code(), error = %refusal, "history read refused");
            error(refusal.status(), refusal.code(), &refusal.to_string())
        }
    }
}

fn read<B>(req: &Request<B>, shared: &Shared) -> Result<Response<Body>, HistoryError> {
    let query = Query::parse(req.uri(), shared.settings.history.replay_limit)?;
    let grant =
        crate::auth::authenticate(shared, crate::auth::bearer_token(req.headers()).as_deref())
            .map_err(|_| HistoryError::Unauthorized)?;
    let key = admission::subscription(&query.namespace, &query.pattern, None, false)
        .map_err(HistoryError::Denied)?;
    admission::subscribe(shared, grant.as_ref(), &key).map_err(HistoryError::Denied)?;
    let history = shared
        .router
        .history()
        .filter(|h| h.covers(&query.namespace))
        .ok_or_else(|| HistoryError::NoHistory(query.namespace.clone()))?;
    let page = history
        .read(&query.namespace, query.since, query.limit, &|e| {
            key.pattern.matches(e)
        })
        .map_err(|gap| match gap {
            Gap::Ahead => HistoryError::Ahead {
                since: query.since,
                last: history
                    .read(&query.namespace, 0, 1, &|_| false)
                    .map_or(0, |p| p.last),
            },
            _ => HistoryError::NoHistory(query.namespace.clone()),
        })?;
    let wants_msgpack = req
        .headers()
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("msgpack"));
    if wants_msgpack {
        let out = page_out(&query.namespace, &page, |e| {
            serde_bytes::Bytes::new(e.payload())
        });
        let body = rmp_serde::to_vec_named(&out).unwrap_or_default();
        let mut response = Response::new(Full::new(Bytes::from(body)));
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/msgpack"),
        );
        return Ok(response);
    }
    let out = page_out(&query.namespace, &page, |e| {
        rmp_serde::from_slice::<serde_json::Value>(e.payload()).unwrap_or(serde_json::Value::Null)
    });
    let value = serde_json::to_value(&out).unwrap_or_default();
    Ok(json(StatusCode::OK, &value))
}

/// What a connection's `$history.read` request carries (a MessagePack
/// map; every key optional).
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Ask {
    /// An event name or pattern (default `>`: every event).
    pattern: String,
    since: u64,
    limit: Option<usize>,
}

impl Default for Ask {
    fn default() -> Ask {
        Ask {
            pattern: ">".to_owned(),
            since: 0,
            limit: None,
        }
    }
}

fn invalid(message: String) -> Denied {
    Denied {
        code: ErrorCode::InvalidEnvelope,
        message,
    }
}

/// A connection's `$history.read` request in `namespace`: the same page as
/// the HTTP endpoint (payloads as emitted), as the payload of a `reply` to
/// `ack`. Checked here (payload, names, permissions, history on); read on
/// a task of its own, since in a cluster the mirror first catches up with
/// Redis and the reader must not wait for it.
pub(crate) fn request(
    shared: &Arc<Shared>,
    conn: &Outbox,
    grant: Option<&Grant>,
    (namespace, ack, payload): (&str, u64, &[u8]),
) -> Result<(), Denied> {
    let ask: Ask = admission::broker_request(READ_EVENT, "{pattern?, since?, limit?}", payload)?;
    let max = shared.settings.history.replay_limit;
    let limit = ask.limit.unwrap_or(DEFAULT_LIMIT.min(max));
    if !(1..=max).contains(&limit) {
        return Err(invalid(format!(
            "limit must be from 1 to {max} (history.replay_limit), got {limit}"
        )));
    }
    let key = admission::subscription(namespace, &ask.pattern, None, false)?;
    admission::subscribe(shared, grant, &key)?;
    if !shared.router.history().is_some_and(|h| h.covers(namespace)) {
        return Err(invalid(
            HistoryError::NoHistory(namespace.to_owned()).to_string(),
        ));
    }
    admission::reserve_request(shared, conn)?;
    let (shared, conn) = (shared.clone(), conn.clone());
    let namespace = namespace.to_owned();
    tokio::spawn(async move {
        crate::mirror::catch_up(&shared, &namespace, ask.since).await;
        let read = shared
            .router
            .history()
            .map(|history| history.read(&namespace, ask.since, limit, &|e| key.pattern.matches(e)));
        let (ok, payload) = match read {
            Some(Ok(page)) => {
                let out = page_out(&namespace, &page, |e| serde_bytes::Bytes::new(e.payload()));
                (true, rmp_serde::to_vec_named(&out).unwrap_or_default())
            }
            Some(Err(gap)) => (false, error_payload(&gap.to_string())),
            None => (false, error_payload("this broker keeps no history")),
        };
        conn.answer_with(&Answer::Reply {
            namespace: &namespace,
            ack,
            ok,
            payload: &Bytes::from(payload),
            args: false,
        });
        conn.pending_requests.fetch_sub(1, Relaxed);
    });
    Ok(())
}

/// The payload of a failed reply: the message, as a responder's error is.
fn error_payload(message: &str) -> Vec<u8> {
    rmp_serde::to_vec(message).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn query(uri: &str) -> Result<Query, HistoryError> {
        Query::parse(&uri.parse().expect("a URI"), 50)
    }

    #[test]
    fn queries_are_parsed_and_bad_ones_named() {
        let q = query("/v1/history/chat.*?namespace=%2Fchat&since=7&limit=3").unwrap();
        assert_eq!(
            q,
            Query {
                namespace: "/chat".into(),
                pattern: "chat.*".into(),
                since: 7,
                limit: 3,
            }
        );
        assert_eq!(query("/v1/history/x").unwrap().limit, 50);
        for (uri, says) in [
            ("/v1/history/x?since=-1", "since must be an integer"),
            ("/v1/history/x?since=abc", "since must be an integer"),
            (
                "/v1/history/x?limit=0",
                "limit must be an integer from 1 to 50",
            ),
            ("/v1/history/x?limit=51", "history.replay_limit"),
            ("/v1/history/x?sinc=1", "unknown query parameter \"sinc\""),
            ("/v1/history/x?since=1&since=2", "more than once"),
        ] {
            let text = query(uri).unwrap_err().to_string();
            assert!(text.contains(says), "{uri}: {text}");
        }
        assert!(is_history_path("/v1/history/a"));
        assert!(!is_history_path("/v1/historyx"));
    }
}
