//! Who may use the admin console: the credentials of `[admin]` (a bearer
//! token, and/or an argon2 password hash used with HTTP Basic and the
//! Socket.IO Admin UI's `{username, password}`), loaded once at start.
//!
//! Tokens are compared in constant time. A password is checked with
//! argon2 on a blocking thread, one check at a time (a guess costs the
//! guesser as much as the broker); the last password that passed is kept
//! so the console's polling does not hash on every request.

use std::sync::{Arc, Mutex, PoisonError};

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use base64::Engine;
use herald_config::AdminSettings;
use http::HeaderMap;
use http::header::AUTHORIZATION;
use subtle::ConstantTimeEq;

/// The console's credentials; none configured means open.
#[derive(Default)]
pub(crate) struct Credentials {
    token: Option<Box<[u8]>>,
    /// The PHC string, checked to parse at start.
    hash: Option<Arc<str>>,
    username: Box<str>,
    /// The last password that passed (so polling does not re-hash).
    verified: Mutex<Option<Box<[u8]>>>,
    /// One argon2 check at a time.
    checking: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secrets themselves.
        f.debug_struct("Credentials")
            .field("token", &self.token.is_some())
            .field("password", &self.hash.is_some())
            .finish()
    }
}

/// A request without valid admin credentials (401, as the operator
/// endpoints answer): what it lacks.
pub(crate) use crate::limits::operator::Unauthorized;

impl Credentials {
    /// The credentials of `[admin]`: the token (or the token file's
    /// contents) and the password hash, each checked.
    pub(crate) fn load(admin: &AdminSettings) -> Result<Credentials, String> {
        let token = if !admin.token.is_empty() {
            Some(admin.token.as_bytes().into())
        } else if !admin.token_file.is_empty() {
            let path = &admin.token_file;
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read admin.token_file {path:?}: {e}"))?;
            let token = text.trim();
            herald_config::check_operator_token(token)
                .map_err(|why| format!("admin.token_file {path:?}: the token {why}"))?;
            Some(token.as_bytes().into())
        } else {
            None
        };
        let hash = if admin.password_hash.is_empty() {
            None
        } else {
            PasswordHash::new(&admin.password_hash)
                .map_err(|e| format!("admin.password_hash is not a PHC string: {e}"))?;
            Some(Arc::from(admin.password_hash.as_str()))
        };
        Ok(Credentials {
            token,
            hash,
            username: admin.username.as_str().into(),
            verified: Mutex::new(None),
            checking: Arc::default(),
        })
    }

    /// True when no credential is configured (the console is open).
    pub(crate) fn is_open(&self) -> bool {
        self.token.is_none() && self.hash.is_none()
    }

    /// `Ok` when the console is open or `headers` carry a credential:
    /// `Authorization: Bearer <admin token>` or `Basic` with the user
    /// name and the password (or the token as the password).
    pub(crate) async fn authorize(&self, headers: &HeaderMap) -> Result<(), Unauthorized> {
        if self.is_open() {
            return Ok(());
        }
        let given = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().split_once(' '))
            .map(|(scheme, value)| (scheme.to_ascii_lowercase(), value.trim().to_owned()));
        match given {
            Some((scheme, token)) if scheme == "bearer" => {
                if self.token_matches(&token) {
                    Ok(())
                } else {
                    Err(Unauthorized(
                        "the bearer token is not the admin token (admin.token)",
                    ))
                }
            }
            Some((scheme, basic)) if scheme == "basic" => {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(basic)
                    .ok()
                    .and_then(|raw| String::from_utf8(raw).ok());
                let Some((user, password)) = decoded.as_deref().and_then(|d| d.split_once(':'))
                else {
                    return Err(Unauthorized("malformed Basic credentials"));
                };
                if self.check(user, password).await {
                    Ok(())
                } else {
                    Err(Unauthorized(
                        "wrong user name or password (admin.username, admin.password_hash)",
                    ))
                }
            }
            _ => Err(Unauthorized(
                "the admin console needs Authorization: Bearer <admin.token>, or Basic with \
                 admin.username and the password of admin.password_hash",
            )),
        }
    }

    fn token_matches(&self, token: &str) -> bool {
        self.token
            .as_deref()
            .is_some_and(|expected| bool::from(token.as_bytes().ct_eq(expected)))
    }

    /// Whether `user` and `password` are the admin's: the password of
    /// `admin.password_hash`, or the admin token given as the password.
    /// Always true when the console is open.
    pub(crate) async fn check(&self, user: &str, password: &str) -> bool {
        if self.is_open() || self.token_matches(password) {
            return true;
        }
        let Some(hash) = self.hash.clone() else {
            return false;
        };
        if !bool::from(user.as_bytes().ct_eq(self.username.as_bytes())) {
            return false;
        }
        let remembered = self
            .verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_deref()
            .is_some_and(|known| bool::from(known.ct_eq(password.as_bytes())));
        if remembered {
            return true;
        }
        let _one_at_a_time = self.checking.lock().await;
        let candidate = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash).is_ok_and(|parsed| {
                argon2::Argon2::default()
                    .verify_password(candidate.as_bytes(), &parsed)
                    .is_ok()
            })
        })
        .await
        .unwrap_or(false);
        if ok {
            *self.verified.lock().unwrap_or_else(PoisonError::into_inner) =
                Some(password.as_bytes().into());
        }
        ok
    }
}
