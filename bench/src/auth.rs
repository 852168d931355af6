//! The `herald-auth` target: the Herald broker with `auth.mode = "jwt"`
//! (HS256, a secret made for the run), measured by the same Herald driver
//! with every connection presenting a token, so the cost of permission
//! checks (decided when subscribing, cached per event name when
//! publishing) can be reported beside `herald`. The token allows
//! publishing and subscribing to everything (`>`) in every namespace: the
//! checks run, and pass.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::RngCore;

/// The target name in results.
pub const TARGET: &str = "herald-auth";

/// How long the run's token is valid: longer than any comparison.
const TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// The run's secret (hex) and a token signed with it.
struct Credentials {
    secret: String,
    token: String,
}

static CREDENTIALS: OnceLock<Result<Credentials, String>> = OnceLock::new();

fn credentials() -> Result<&'static Credentials, String> {
    CREDENTIALS.get_or_init(make).as_ref().map_err(Clone::clone)
}

fn make() -> Result<Credentials, String> {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        + TOKEN_LIFETIME;
    let claims = serde_json::json!({
        "sub": "herald-bench",
        "exp": exp.as_secs(),
        "herald": {
            "ns": {
                "*": {
                    "publish": { "allow": [">"] },
                    "subscribe": { "allow": [">"] },
                    "respond": { "allow": [">"] },
                }
            }
        }
    });
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| format!("signing the herald-auth token: {e}"))?;
    Ok(Credentials { secret, token })
}

/// The `--set` values that turn token checks on with the run's secret.
pub fn settings() -> Result<Vec<String>, String> {
    let credentials = credentials()?;
    Ok(vec![
        "auth.mode=jwt".to_owned(),
        "auth.algorithms=HS256".to_owned(),
        format!("auth.secret={}", credentials.secret),
    ])
}

/// The token every connection of the driver presents.
pub fn token() -> Result<String, String> {
    Ok(credentials()?.token.clone())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_signed_with_the_secret_the_broker_is_given() {
        let settings = settings().unwrap();
        let secret = settings[2].strip_prefix("auth.secret=").unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(
            &token().unwrap(),
            &jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
            &validation,
        )
        .unwrap();
        assert_eq!(data.claims["sub"], "herald-bench");
        assert_eq!(data.claims["herald"]["ns"]["*"]["publish"]["allow"][0], ">");
    }
}
