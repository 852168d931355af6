//! Authentication and permissions (`[auth]`, PROTOCOL.md §22).
//!
//! - `keys`: the verification keys `[auth]` names, read at start-up.
//! - `verify`: JWT verification (`jsonwebtoken`) and the failure reasons.
//! - `permissions`: the permission claim compiled into patterns, and the
//!   publish / subscribe / respond / join / powers decisions.
//! - `grant`: one connection's identity and permissions, with its
//!   publish-decision cache.
//! - `expiry`: the per-connection clock of the `token_expiring` notice and
//!   the `token_expired` close.
//!
//! This module decides; `admission` asks it, and the sessions hold the
//! [`Grant`]. With `auth.mode = "none"` there is no [`Authenticator`] and
//! no grant: admission consults no permissions at all.

mod expiry;
mod grant;
mod keys;
mod permissions;
mod verify;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use herald_config::{AuthMode, AuthSettings};
use herald_protocol::envelope::Revoked;
use http::HeaderMap;
use http::header::AUTHORIZATION;

pub(crate) use expiry::{Expiry, ExpiryClock, next as next_expiry};
pub(crate) use grant::Grant;
pub(crate) use keys::KeyError;
pub(crate) use verify::Failure;

use permissions::Permissions;
use verify::Verifier;

use crate::outbox::Outbox;
use crate::router::SubKey;
use crate::state::Shared;

/// Verifies tokens and hands out grants (`auth.mode = "jwt"`).
#[derive(Debug)]
pub(crate) struct Authenticator {
    verifier: Verifier,
    /// `auth.anonymous`, when `auth.allow_anonymous`.
    anonymous: Option<Arc<Permissions>>,
    expiry_notice: Duration,
    expiry_grace: Duration,
}

impl Authenticator {
    /// The authenticator `[auth]` asks for: none with `mode = "none"`;
    /// with `jwt`, its keys loaded (an error names the key at fault).
    pub(crate) fn from_settings(auth: &AuthSettings) -> Result<Option<Authenticator>, KeyError> {
        if auth.mode == AuthMode::None {
            return Ok(None);
        }
        let verifier = Verifier::new(auth)?;
        let anonymous = if auth.allow_anonymous {
            let compiled = Permissions::compile(&auth.anonymous).map_err(|e| KeyError {
                key: "auth.anonymous",
                message: e.to_string(),
            })?;
            Some(Arc::new(compiled))
        } else {
            None
        };
        Ok(Some(Authenticator {
            verifier,
            anonymous,
            expiry_notice: auth.expiry_notice,
            expiry_grace: auth.expiry_grace,
        }))
    }

    /// The grant of a connection presenting `token` (none: anonymous).
    pub(crate) fn grant(&self, token: Option<&str>) -> Result<Grant, Failure> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return self
                .anonymous
                .as_ref()
                .map(|permissions| Grant::new(None, None, permissions.clone()))
                .ok_or(Failure::Missing);
        };
        let verified = self.verifier.verify(token)?;
        Ok(Grant::new(
            Some(verified.sub.into()),
            verified.exp,
            Arc::new(verified.permissions),
        ))
    }

    /// The expiry clock of `grant`, if its token has an `exp`.
    pub(crate) fn clock(&self, grant: &Grant) -> Option<Box<ExpiryClock>> {
        expiry::clock_for(grant.exp, self.expiry_notice, self.expiry_grace)
    }
}

/// An action a permission governs (the `action` label of
/// `herald_forbidden_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Publish,
    Subscribe,
    Respond,
    Join,
    Powers,
}

impl Action {
    /// Every action, in metric order.
    pub(crate) const ALL: [Action; 5] = [
        Action::Publish,
        Action::Subscribe,
        Action::Respond,
        Action::Join,
        Action::Powers,
    ];

    /// The metric label and the word in a refusal.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Action::Publish => "publish",
            Action::Subscribe => "subscribe",
            Action::Respond => "respond",
            Action::Join => "join",
            Action::Powers => "powers",
        }
    }
}

/// The auth counters (`/metrics`; no per-user labels).
#[derive(Debug, Default)]
pub(crate) struct AuthStats {
    failures: [AtomicU64; Failure::ALL.len()],
    forbidden: [AtomicU64; Action::ALL.len()],
    pub(crate) refreshes: AtomicU64,
    pub(crate) expired: AtomicU64,
}

impl AuthStats {
    pub(crate) fn failed(&self, failure: Failure) {
        if let Some(at) = Failure::ALL.iter().position(|f| *f == failure) {
            self.failures[at].fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn forbidden(&self, action: Action) {
        if let Some(at) = Action::ALL.iter().position(|a| *a == action) {
            self.forbidden[at].fetch_add(1, Relaxed);
        }
    }

    /// `(reason, count)` of the failures.
    pub(crate) fn failures(&self) -> Vec<(&'static str, u64)> {
        Failure::ALL
            .iter()
            .zip(&self.failures)
            .map(|(f, n)| (f.as_str(), n.load(Relaxed)))
            .collect()
    }

    /// `(action, count)` of the refusals.
    pub(crate) fn forbiddens(&self) -> Vec<(&'static str, u64)> {
        Action::ALL
            .iter()
            .zip(&self.forbidden)
            .map(|(a, n)| (a.as_str(), n.load(Relaxed)))
            .collect()
    }
}

/// The connection's grant for `token`: `Ok(None)` with `mode = "none"`;
/// a failure is counted.
pub(crate) fn authenticate(shared: &Shared, token: Option<&str>) -> Result<Option<Grant>, Failure> {
    let Some(auth) = shared.auth.as_ref() else {
        return Ok(None);
    };
    auth.grant(token).map(Some).inspect_err(|failure| {
        shared.stats.auth.failed(*failure);
    })
}

/// A session's grant as it keeps it (boxed: one pointer in every session),
/// with the token's expiry clock when the token has an `exp`.
pub(crate) fn install(
    shared: &Shared,
    grant: Option<Grant>,
) -> (Option<Box<Grant>>, Option<Box<ExpiryClock>>) {
    let clock = grant
        .as_ref()
        .zip(shared.auth.as_ref())
        .and_then(|(grant, auth)| auth.clock(grant));
    (grant.map(Box::new), clock)
}

/// A refresh: the new token's grant, which must name the same user.
pub(crate) fn refresh(
    shared: &Shared,
    old: Option<&Grant>,
    token: &str,
) -> Result<Option<Grant>, Failure> {
    let Some(auth) = shared.auth.as_ref() else {
        return Ok(None);
    };
    let result = auth.grant(Some(token)).and_then(|grant| {
        let old_user = old.and_then(|g| g.user.as_deref());
        if old_user.is_some() && old_user != grant.user.as_deref() {
            return Err(Failure::Subject);
        }
        Ok(grant)
    });
    match result {
        Ok(grant) => {
            shared.stats.auth.refreshes.fetch_add(1, Relaxed);
            Ok(Some(grant))
        }
        Err(failure) => {
            shared.stats.auth.failed(failure);
            Err(failure)
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// Whether `grant` still allows the subscription `key`.
pub(crate) fn allows_subscription(grant: &Grant, key: &SubKey) -> bool {
    grant.may_subscribe(
        &key.namespace,
        &key.pattern,
        key.group.as_deref(),
        key.responder,
    )
}

/// How a revoked subscription is reported.
pub(crate) fn revoked_subscription(key: &SubKey) -> Revoked {
    Revoked {
        ns: key.namespace.to_string(),
        ev: Some(key.pattern.to_string()),
        q: key.group.as_deref().map(str::to_owned),
        r: key.responder,
        room: None,
    }
}

/// Takes `conn` out of the rooms (of `namespace`, or all) that `grant`
/// does not let it join; returns them as revocations.
pub(crate) fn revoke_rooms(shared: &Shared, conn: &Outbox, grant: &Grant) -> Vec<Revoked> {
    let refused: Vec<(Box<str>, Box<str>)> = conn
        .rooms()
        .iter()
        .filter(|(ns, room)| !grant.may_join(ns, room))
        .map(|(ns, room)| (ns.as_ref().into(), room.as_ref().into()))
        .collect();
    refused
        .into_iter()
        .map(|(ns, room)| {
            shared.router.leave(conn, &ns, &room);
            Revoked {
                ns: ns.into(),
                room: Some(room.into()),
                ..Revoked::default()
            }
        })
        .collect()
}

/// The message of a `revoked` notice.
pub(crate) fn revoked_message(count: usize) -> String {
    format!(
        "the connection's new token no longer allows {count} subscription(s) or room(s); they were removed"
    )
}

/// The message of a `token_expiring` notice.
pub(crate) fn expiring_message(exp: u64) -> String {
    format!("the token expires at {exp} (Unix seconds): send a new one (auth) to stay connected")
}

/// The message of an `unauthorized` refusal: the same for every reason,
/// so it reveals nothing.
pub(crate) const UNAUTHORIZED: &str = "missing, invalid or expired token";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_from_the_authorization_header() {
        let token = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, http::HeaderValue::from_static(value));
            bearer_token(&headers)
        };
        assert_eq!(token("Bearer abc.def.ghi").as_deref(), Some("abc.def.ghi"));
        assert_eq!(token("bearer  abc ").as_deref(), Some("abc"));
        assert_eq!(token("Basic dXNlcjpwYXNz"), None);
        assert_eq!(token("Bearer"), None);
        assert_eq!(token("Bearer "), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }
}
