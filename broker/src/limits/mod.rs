//! Abuse limits, origins and the operator endpoints' guard (PROTOCOL.md
//! §24), one module per job:
//! - `token_bucket`: the bucket every rate uses, refilled by timestamp.
//! - `per_ip`: new connections per second (checked at accept) and sessions
//!   at once (checked at the upgrade or Engine.IO handshake) per client
//!   address, in a bounded table.
//! - `messages`: the per-connection message rate the sessions consult.
//! - `origin`: `server.allowed_origins`, for `/v1/ws` and the Socket.IO
//!   paths.
//! - `operator`: the bearer token of `/metrics`.
//!
//! [`Limits`] holds what one broker needs of them; every limit that is
//! off costs nothing (an `Option` that is `None`).

mod messages;
pub(crate) mod operator;
pub(crate) mod origin;
mod per_ip;
mod token_bucket;

use std::net::IpAddr;
use std::sync::Arc;

use herald_config::Settings;
use herald_protocol::Envelope;
use http::header::{CONNECTION, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};
use tokio::sync::OwnedSemaphorePermit;

pub(crate) use messages::{MessageLimiter, MessageRate, Verdict};
pub(crate) use per_ip::{Accept, IpSlot, Refused};

use self::operator::OperatorToken;
use self::per_ip::PerIp;
use crate::http::{Body, error};
use crate::stats::Stats;

/// One broker's limits.
#[derive(Debug)]
pub(crate) struct Limits {
    /// Per-IP connection rate and sessions; `None` when both are off.
    per_ip: Option<Arc<PerIp>>,
    /// The per-connection message rate; `None` when off.
    pub(crate) messages: Option<MessageRate>,
    /// The operator endpoints' token (set at start, from a file maybe).
    pub(crate) operator_token: OperatorToken,
    connections_per_ip_per_second: usize,
    connection_burst: usize,
    max_connections_per_ip: usize,
    max_tracked_ips: usize,
}

/// An over-rate client message: answered `rate_limited` with `message`,
/// not handled; the connection closed (`rate_limited`) after it when
/// `close`.
#[derive(Debug)]
pub(crate) struct Limited {
    pub(crate) message: String,
    pub(crate) close: bool,
}

/// The id an `err` answering `envelope` refers to (its request, ack or
/// command id), if it carries one.
pub(crate) fn answer_id(envelope: &Envelope) -> Option<u64> {
    match envelope {
        Envelope::Subscribe(sub) | Envelope::Unsubscribe(sub) => sub.id,
        Envelope::Join(change) | Envelope::Leave(change) => change.id,
        Envelope::Emit(emit) => emit.ack.or(emit.id),
        Envelope::Reply(reply) => Some(reply.ack),
        _ => None,
    }
}

/// What a session holds while it is open: its slot under
/// `server.max_connections` and, when `rate_limits.max_connections_per_ip`
/// is on, its client address's.
#[derive(Debug)]
pub(crate) struct SessionPermit {
    _slot: OwnedSemaphorePermit,
    _ip: Option<IpSlot>,
}

impl SessionPermit {
    pub(crate) fn new(slot: OwnedSemaphorePermit, ip: Option<IpSlot>) -> SessionPermit {
        SessionPermit {
            _slot: slot,
            _ip: ip,
        }
    }
}

impl Limits {
    pub(crate) fn new(settings: &Settings) -> Limits {
        let r = &settings.rate_limits;
        Limits {
            per_ip: PerIp::new(r),
            messages: MessageRate::new(r),
            operator_token: OperatorToken::default(),
            connections_per_ip_per_second: r.connections_per_ip_per_second,
            connection_burst: r.connection_burst,
            max_connections_per_ip: r.max_connections_per_ip,
            max_tracked_ips: r.max_tracked_ips,
        }
    }

    /// The verdict on a new TCP connection from `ip`; refusals counted.
    pub(crate) fn accept(&self, ip: IpAddr, stats: &Stats) -> Accept {
        let Some(per_ip) = &self.per_ip else {
            return Accept::Serve;
        };
        let verdict = per_ip.accept(ip);
        match verdict {
            Accept::Serve => {}
            Accept::Refuse(refused) => count(stats, refused),
            Accept::Drop => count(stats, Refused::ConnectionRate),
        }
        verdict
    }

    /// Counts a new session of `ip` (`rate_limits.max_connections_per_ip`);
    /// a refusal is counted, to be answered with [`Limits::refusal`].
    pub(crate) fn open_session(
        &self,
        ip: IpAddr,
        stats: &Stats,
    ) -> Result<Option<IpSlot>, Refused> {
        let Some(per_ip) = &self.per_ip else {
            return Ok(None);
        };
        per_ip.open_session(ip).inspect_err(|refused| {
            count(stats, *refused);
            Stats::add(&stats.connections_refused, 1);
        })
    }

    /// A new connection's message limiter, when that limit is on.
    pub(crate) fn message_limiter(&self) -> Option<MessageLimiter> {
        self.messages.as_ref().map(MessageRate::limiter)
    }

    /// One more client message on the connection `limiter` belongs to:
    /// `Err` (counted) when over the rate, saying how to answer it.
    pub(crate) fn message(
        &self,
        limiter: &mut MessageLimiter,
        stats: &Stats,
    ) -> Result<(), Limited> {
        let Some(rate) = &self.messages else {
            return Ok(());
        };
        let verdict = rate.check(limiter);
        if verdict == Verdict::Allowed {
            return Ok(());
        }
        Stats::add(&stats.rate_limited_messages, 1);
        Err(Limited {
            message: rate.refusal(verdict),
            close: verdict == Verdict::Close,
        })
    }

    /// 429 `rate_limited` naming the setting, with `Retry-After`.
    pub(crate) fn refusal(&self, refused: Refused) -> Response<Body> {
        let message = match refused {
            Refused::ConnectionRate => format!(
                "too many new connections from this address: at most {} per second, {} at once \
                 (rate_limits.connections_per_ip_per_second, rate_limits.connection_burst); \
                 retry later",
                self.connections_per_ip_per_second, self.connection_burst
            ),
            Refused::ConnectionsPerIp => format!(
                "this address already holds {} sessions (rate_limits.max_connections_per_ip)",
                self.max_connections_per_ip
            ),
            Refused::TrackedIps => format!(
                "the broker tracks {} client addresses, all with open sessions \
                 (rate_limits.max_tracked_ips); retry later",
                self.max_tracked_ips
            ),
        };
        let mut response = error(StatusCode::TOO_MANY_REQUESTS, "rate_limited", &message);
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        response
    }

    /// The answer to every request of a connection refused at accept:
    /// [`Limits::refusal`], and the connection closed after it.
    pub(crate) fn refused_connection(&self, refused: Refused) -> Response<Body> {
        let mut response = self.refusal(refused);
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
        response
    }
}

fn count(stats: &Stats, refused: Refused) {
    let counter = match refused {
        Refused::ConnectionRate => &stats.rate_limited_connection_rate,
        Refused::ConnectionsPerIp => &stats.rate_limited_connections_per_ip,
        Refused::TrackedIps => &stats.rate_limited_tracked_ips,
    };
    Stats::add(counter, 1);
}
