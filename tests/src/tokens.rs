//! Tokens for the tests that drive a `auth.mode = "jwt"` broker through
//! the SDK and the CLI (`tests/tests/sdk_auth.rs`, `cli/tests/auth.rs`),
//! on top of [`crate::auth`] (which mints them): [`jwt_broker`], tokens
//! with a short life ([`expiring`]), and the expiry clock settings
//! ([`expiry`]).

use std::time::Duration;

use herald_config::Settings;
use serde_json::{Value, json};

use crate::auth::{hs256, now};
use crate::{TestBroker, start_broker};

/// A broker checking HS256 tokens signed with
/// [`SECRET`](crate::auth::SECRET), after `configure` has adjusted the
/// settings further.
pub async fn jwt_broker(configure: impl FnOnce(&mut Settings)) -> TestBroker {
    start_broker(|settings| {
        hs256(settings);
        configure(settings);
    })
    .await
}

/// Sets how long before `exp` the broker sends `token_expiring` and the
/// grace after `exp` before it closes with `token_expired`.
pub fn expiry(settings: &mut Settings, notice: Duration, grace: Duration) {
    settings.auth.expiry_notice = notice;
    settings.auth.expiry_grace = grace;
}

/// Claims for user `sub` with permissions `ns` (the `herald.ns` map),
/// expiring `ttl` seconds from now.
pub fn expiring(sub: &str, ttl: u64, ns: Value) -> Value {
    json!({ "sub": sub, "exp": now() + ttl, "herald": { "ns": ns } })
}

/// Permissions (`herald.ns`) to publish and subscribe `patterns` in
/// `namespace`.
pub fn pubsub(namespace: &str, patterns: &[&str]) -> Value {
    json!({
        namespace: {
            "publish": { "allow": patterns },
            "subscribe": { "allow": patterns },
        }
    })
}
