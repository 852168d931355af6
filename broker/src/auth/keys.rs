//! The verification keys named by `[auth]`, read once at start-up: the
//! shared secret (`secret` / `secret_file`), a PEM public key
//! (`public_key_file`) or a JWKS (`jwks_file`, keys picked by `kid`).
//! Every error names the key whose value is at fault.

use std::str::FromStr;

use herald_config::AuthSettings;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};

/// Why the keys could not be loaded: the setting at fault and what is
/// wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("invalid config: {key}: {message}")]
pub(crate) struct KeyError {
    pub(crate) key: &'static str,
    pub(crate) message: String,
}

fn error(key: &'static str, message: impl Into<String>) -> KeyError {
    KeyError {
        key,
        message: message.into(),
    }
}

/// Where a token's key comes from.
pub(crate) enum Keys {
    /// One key for every token (a secret or a PEM public key).
    Single(DecodingKey),
    /// A JWKS: the key whose `kid` the token names (or the only key, when
    /// the set has one and the token names none).
    Set(Vec<(Option<String>, DecodingKey)>),
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Keys::Single(_) => f.write_str("Keys::Single"),
            Keys::Set(keys) => write!(f, "Keys::Set({} keys)", keys.len()),
        }
    }
}

impl Keys {
    /// The key for a token whose header names `kid`.
    pub(crate) fn find(&self, kid: Option<&str>) -> Option<&DecodingKey> {
        match self {
            Keys::Single(key) => Some(key),
            Keys::Set(keys) => match kid {
                Some(kid) => keys
                    .iter()
                    .find(|(k, _)| k.as_deref() == Some(kid))
                    .map(|(_, key)| key),
                None if keys.len() == 1 => keys.first().map(|(_, key)| key),
                None => None,
            },
        }
    }
}

/// The algorithms of `auth.algorithms` (the config crate has checked the
/// names).
pub(crate) fn algorithms(auth: &AuthSettings) -> Result<Vec<Algorithm>, KeyError> {
    auth.algorithms
        .iter()
        .map(|name| {
            Algorithm::from_str(name)
                .map_err(|_| error("auth.algorithms", format!("unknown algorithm {name:?}")))
        })
        .collect()
}

fn read(key: &'static str, path: &str) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|e| error(key, format!("cannot read {path:?}: {e}")))
}

/// Reads the key material `auth` names, for `algorithms`.
pub(crate) fn load(auth: &AuthSettings, algorithms: &[Algorithm]) -> Result<Keys, KeyError> {
    if !auth.secret.is_empty() {
        return Ok(Keys::Single(DecodingKey::from_secret(
            auth.secret.as_bytes(),
        )));
    }
    if !auth.secret_file.is_empty() {
        let mut secret = read("auth.secret_file", &auth.secret_file)?;
        if secret.last() == Some(&b'\n') {
            secret.pop();
            if secret.last() == Some(&b'\r') {
                secret.pop();
            }
        }
        if secret.is_empty() {
            return Err(error("auth.secret_file", "the file is empty"));
        }
        return Ok(Keys::Single(DecodingKey::from_secret(&secret)));
    }
    if !auth.public_key_file.is_empty() {
        return load_pem(&auth.public_key_file, algorithms).map(Keys::Single);
    }
    if !auth.jwks_file.is_empty() {
        return load_jwks(&auth.jwks_file);
    }
    Err(error(
        "auth.secret",
        "auth.mode = \"jwt\" needs a key: auth.secret, auth.secret_file, auth.public_key_file or auth.jwks_file",
    ))
}

fn load_pem(path: &str, algorithms: &[Algorithm]) -> Result<DecodingKey, KeyError> {
    const KEY: &str = "auth.public_key_file";
    let pem = read(KEY, path)?;
    let kind = |alg: &Algorithm| match alg {
        Algorithm::ES256 | Algorithm::ES384 => "EC",
        Algorithm::EdDSA => "Ed25519",
        _ => "RSA",
    };
    let Some(first) = algorithms.first() else {
        return Err(error("auth.algorithms", "names no algorithm"));
    };
    if algorithms.iter().any(|alg| kind(alg) != kind(first)) {
        return Err(error(
            "auth.algorithms",
            "one PEM key serves one key type (RSA, EC or Ed25519); use auth.jwks_file for several",
        ));
    }
    let key = match kind(first) {
        "EC" => DecodingKey::from_ec_pem(&pem),
        "Ed25519" => DecodingKey::from_ed_pem(&pem),
        _ => DecodingKey::from_rsa_pem(&pem),
    };
    key.map_err(|e| {
        error(
            KEY,
            format!(
                "{path:?} is not a PEM {} public key ({}): {e}",
                kind(first),
                first_name(first)
            ),
        )
    })
}

fn first_name(alg: &Algorithm) -> String {
    format!("{alg:?}")
}

fn load_jwks(path: &str) -> Result<Keys, KeyError> {
    const KEY: &str = "auth.jwks_file";
    let text = read(KEY, path)?;
    let set: JwkSet = serde_json::from_slice(&text).map_err(|e| {
        error(
            KEY,
            format!("{path:?} is not a JWKS ({{\"keys\": [...]}}): {e}"),
        )
    })?;
    if set.keys.is_empty() {
        return Err(error(KEY, format!("{path:?} holds no keys")));
    }
    let mut keys = Vec::with_capacity(set.keys.len());
    for (at, jwk) in set.keys.iter().enumerate() {
        let key = DecodingKey::from_jwk(jwk)
            .map_err(|e| error(KEY, format!("{path:?}: key {at} is not usable: {e}")))?;
        keys.push((jwk.common.key_id.clone(), key));
    }
    Ok(Keys::Set(keys))
}
