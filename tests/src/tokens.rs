//! Real HS256 tokens for the tests that drive a broker with
//! `auth.mode = "jwt"` through the SDK and the CLI: [`jwt_broker`] starts
//! such a broker, [`mint`] signs claims of the PROTOCOL.md §22 shape
//! ([`claims`] builds the common case) with `jsonwebtoken`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use herald_config::{AuthMode, Settings};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::{TestBroker, start_broker};

/// The shared secret of [`jwt_broker`]'s HS256 tokens.
pub const SECRET: &str = "herald-test-secret-0123456789abcdef";

/// Unix seconds now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A broker checking HS256 tokens signed with [`SECRET`], after
/// `configure` has adjusted the settings further.
pub async fn jwt_broker(configure: impl FnOnce(&mut Settings)) -> TestBroker {
    start_broker(|settings| {
        settings.auth.mode = AuthMode::Jwt;
        settings.auth.secret = SECRET.to_owned();
        settings.auth.algorithms = vec!["HS256".to_owned()];
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

/// Claims for user `sub`, expiring `ttl` seconds from now, with `ns` as
/// the permissions (`{"/chat": {"subscribe": {"allow": [...]}}}`).
pub fn claims(sub: &str, ttl: u64, ns: Value) -> Value {
    json!({ "sub": sub, "exp": now() + ttl, "herald": { "ns": ns } })
}

/// `claims` signed with `secret` (HS256).
pub fn mint_with(secret: &str, claims: &Value) -> String {
    let key = EncodingKey::from_secret(secret.as_bytes());
    match jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key) {
        Ok(token) => token,
        Err(error) => panic!("minting a test token failed: {error}"),
    }
}

/// `claims` signed with [`SECRET`].
pub fn mint(claims: &Value) -> String {
    mint_with(SECRET, claims)
}

/// Permissions to publish and subscribe `patterns` in `namespace`.
pub fn pubsub(namespace: &str, patterns: &[&str]) -> Value {
    json!({
        namespace: {
            "publish": { "allow": patterns },
            "subscribe": { "allow": patterns },
        }
    })
}
