//! Tokens: what the client presents to a broker that checks them
//! (PROTOCOL.md §22), and keeping it fresh.
//!
//! - [`Credentials`]: no token, a fixed token ([`ClientBuilder::token`]),
//!   or the application's async provider
//!   ([`ClientBuilder::token_provider`]).
//! - [`TokenState`] (in the client's shared state): the token last
//!   presented, the identity the broker confirmed (`welcome.user`, the
//!   token's `exp`), and whether a refresh is running.
//! - [`token_for_hello`]: the token for the next `hello`; the provider is
//!   called before every connection attempt.
//! - [`refresh`]: the `auth` envelope (replace the token in place, answered
//!   `ok` or `err unauthorized`); [`on_expiring`] runs it with the
//!   provider's token when the broker's `token_expiring` notice arrives,
//!   at most once per [`MIN_REFRESH_INTERVAL`] (a provider whose tokens
//!   live shorter than the broker's `auth.expiry_notice` would otherwise be
//!   asked again at every round trip: the broker notices such a token at
//!   once).
//!
//! A token is never logged nor put in an error message.
//!
//! [`ClientBuilder::token`]: crate::ClientBuilder::token
//! [`ClientBuilder::token_provider`]: crate::ClientBuilder::token_provider

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use herald_protocol::Envelope;
use herald_protocol::envelope::Auth;

use crate::client::{Shared, expect_ok};
use crate::error::{ClientEvent, Error};
use crate::lock;

/// Least time between two refreshes started by `token_expiring` notices; a
/// notice that comes sooner waits (it is not dropped: the broker sends one
/// per token).
pub(crate) const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// What the provider's boxed future yields: a token, or why there is none.
type ProviderFuture = Pin<Box<dyn Future<Output = Result<String, String>> + Send>>;

/// The application's token provider, boxed.
pub(crate) type Provider = Arc<dyn Fn() -> ProviderFuture + Send + Sync>;

/// Boxes an application's provider: its error becomes its `Display` text.
pub(crate) fn boxed_provider<F, Fut, E>(provider: F) -> Provider
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, E>> + Send + 'static,
    E: std::fmt::Display + 'static,
{
    Arc::new(move || {
        let future = provider();
        Box::pin(async move { future.await.map_err(|e| e.to_string()) }) as ProviderFuture
    })
}

/// Where the client's token comes from.
#[derive(Clone, Default)]
pub(crate) enum Credentials {
    /// No token: `hello` carries none.
    #[default]
    None,
    /// The same token for every connection (until
    /// [`Client::refresh_token`](crate::Client::refresh_token) replaces it).
    Fixed(String),
    /// Asked before every connection attempt and when the token expires.
    Provider(Provider),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token itself.
        f.write_str(match self {
            Credentials::None => "None",
            Credentials::Fixed(_) => "Fixed(<redacted>)",
            Credentials::Provider(_) => "Provider",
        })
    }
}

/// The identity the broker confirmed for the current token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Identity {
    /// `welcome.user`: the token's verified `sub`.
    pub(crate) user: Option<String>,
    /// The token's expiry, Unix seconds.
    pub(crate) exp: Option<u64>,
}

/// The client's token state (part of [`Shared`]).
pub(crate) struct TokenState {
    /// The provider, if the application gave one.
    provider: Option<Provider>,
    /// The token presented last (the fixed one, the provider's latest, or
    /// the one given to `refresh_token`); used by the next `hello` when
    /// there is no provider.
    current: Mutex<Option<String>>,
    /// What the broker confirmed.
    identity: Mutex<Identity>,
    /// The refreshes started by `token_expiring` notices.
    refreshes: Mutex<Refreshes>,
}

/// The refreshes started by `token_expiring` notices: one task at a time;
/// a notice that arrives while it runs (the broker's notice for the token
/// just sent, when that one is already near its `exp`) makes it run once
/// more, rather than being lost.
#[derive(Debug, Default)]
struct Refreshes {
    /// A refresh task is running.
    running: bool,
    /// A notice arrived while it ran: refresh again when done.
    again: bool,
    /// When the last refresh started.
    last: Option<tokio::time::Instant>,
}

impl std::fmt::Debug for TokenState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenState")
            .field("provider", &self.provider.is_some())
            .field("identity", &*lock(&self.identity))
            .finish_non_exhaustive()
    }
}

impl TokenState {
    /// The state for `credentials`, nothing confirmed yet.
    pub(crate) fn new(credentials: Credentials) -> TokenState {
        let (provider, current) = match credentials {
            Credentials::None => (None, None),
            Credentials::Fixed(token) => (None, Some(token)),
            Credentials::Provider(provider) => (Some(provider), None),
        };
        TokenState {
            provider,
            current: Mutex::new(current),
            identity: Mutex::new(Identity::default()),
            refreshes: Mutex::new(Refreshes::default()),
        }
    }

    /// True when the application gave a token provider.
    pub(crate) fn has_provider(&self) -> bool {
        self.provider.is_some()
    }

    /// Records what `welcome` said.
    pub(crate) fn welcomed(&self, user: Option<String>, exp: Option<u64>) {
        *lock(&self.identity) = Identity { user, exp };
    }

    /// What the broker confirmed.
    pub(crate) fn identity(&self) -> Identity {
        lock(&self.identity).clone()
    }

    /// Calls the provider (bounded by `timeout`) and remembers its token.
    async fn ask_provider(&self, provider: &Provider, timeout: Duration) -> Result<String, Error> {
        let token = tokio::time::timeout(timeout, provider())
            .await
            .map_err(|_| Error::TokenProvider(format!("no token within {timeout:?}")))?
            .map_err(Error::TokenProvider)?;
        *lock(&self.current) = Some(token.clone());
        Ok(token)
    }

    /// A fresh token from the provider; [`Error::TokenProvider`] when
    /// there is none.
    pub(crate) async fn fresh(&self, timeout: Duration) -> Result<String, Error> {
        match &self.provider {
            Some(provider) => self.ask_provider(provider, timeout).await,
            None => Err(Error::TokenProvider(
                "no token provider was configured (ClientBuilder::token_provider)".into(),
            )),
        }
    }
}

/// The token for the next `hello`: the provider's fresh one (it is called
/// before every connection attempt), else the current fixed token.
pub(crate) async fn token_for_hello(
    state: &TokenState,
    timeout: Duration,
) -> Result<Option<String>, Error> {
    match &state.provider {
        Some(provider) => state.ask_provider(provider, timeout).await.map(Some),
        None => Ok(lock(&state.current).clone()),
    }
}

/// Replaces the connection's token in place: sends `auth` and awaits `ok`
/// ([`Error::Unauthorized`] when the broker refuses it; the old token then
/// stays in force). On success the token is also the one the next `hello`
/// presents (without a provider), and its `exp` is read from it.
pub(crate) async fn refresh(shared: &Shared, token: String) -> Result<(), Error> {
    let timeout = shared.config.connect_timeout;
    let answer = shared
        .call(timeout, |id| {
            Envelope::Auth(Auth {
                id: Some(id),
                token: token.clone(),
            })
        })
        .await?;
    expect_ok(&answer)?;
    let exp = unverified_exp(&token);
    *lock(&shared.token.current) = Some(token);
    lock(&shared.token.identity).exp = exp;
    tracing::debug!(exp, "herald token refreshed");
    Ok(())
}

/// Acts on a `token_expiring` notice: with a provider, fetches a new token
/// and sends it (in a task of its own, so the reader goes on reading; one
/// refresh at a time, at most one per [`MIN_REFRESH_INTERVAL`], see
/// [`Refreshes`]); without one, reports [`ClientEvent::TokenExpiring`] so
/// the application can call `refresh_token` itself.
pub(crate) fn on_expiring(shared: &Arc<Shared>, exp: Option<u64>) {
    if exp.is_some() {
        lock(&shared.token.identity).exp = exp;
    }
    if !shared.token.has_provider() {
        shared.report(ClientEvent::TokenExpiring { exp });
        return;
    }
    {
        let mut refreshes = lock(&shared.token.refreshes);
        if refreshes.running {
            refreshes.again = true;
            return;
        }
        refreshes.running = true;
    }
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        loop {
            let result = tokio::select! {
                biased;
                () = shared.cancel.cancelled() => Ok(()),
                result = refresh_from_provider(&shared) => result,
            };
            if let Err(error) = result {
                shared.report(ClientEvent::RefreshFailed { error });
            }
            // Deciding to stop and saying so is one step, so a notice that
            // arrives meanwhile is not lost.
            let mut refreshes = lock(&shared.token.refreshes);
            if shared.cancel.is_cancelled() || !std::mem::take(&mut refreshes.again) {
                refreshes.running = false;
                break;
            }
        }
    });
}

/// One refresh with the provider's token, no sooner than
/// [`MIN_REFRESH_INTERVAL`] after the previous one started.
async fn refresh_from_provider(shared: &Shared) -> Result<(), Error> {
    let earliest = lock(&shared.token.refreshes)
        .last
        .map(|at| at + MIN_REFRESH_INTERVAL);
    if let Some(earliest) = earliest {
        tokio::time::sleep_until(earliest).await;
    }
    lock(&shared.token.refreshes).last = Some(tokio::time::Instant::now());
    let token = shared.token.fresh(shared.config.connect_timeout).await?;
    refresh(shared, token).await
}

/// Unix seconds as a [`SystemTime`].
pub(crate) fn unix_time(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

/// The `exp` claim of a JWT, read WITHOUT verifying it (the broker does
/// that): only to tell the application when the token it gave expires.
fn unverified_exp(token: &str) -> Option<u64> {
    let payload = token.split('.').nth(1)?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&json).ok()?;
    claims.get("exp")?.as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> String {
        let encode = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!(
            "{}.{}.c2lnbmF0dXJl",
            encode(r#"{"alg":"HS256"}"#),
            encode(claims)
        )
    }

    #[test]
    fn exp_is_read_from_the_token_payload() {
        assert_eq!(
            unverified_exp(&jwt(r#"{"sub":"u","exp":1893456000}"#)),
            Some(1_893_456_000)
        );
        assert_eq!(unverified_exp(&jwt(r#"{"sub":"u"}"#)), None);
        assert_eq!(unverified_exp(&jwt(r#"{"exp":"soon"}"#)), None);
        assert_eq!(unverified_exp("not a jwt"), None);
        assert_eq!(unverified_exp("a.!!!.c"), None);
        assert_eq!(unverified_exp(""), None);
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let shown = format!("{:?}", Credentials::Fixed("s3cret-token".into()));
        assert!(!shown.contains("s3cret"), "{shown}");
        let state = TokenState::new(Credentials::Fixed("s3cret-token".into()));
        let shown = format!("{state:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[tokio::test]
    async fn provider_errors_and_timeouts_are_token_provider_errors() {
        let failing = boxed_provider(|| async { Err::<String, _>("vault is down") });
        let state = TokenState::new(Credentials::Provider(failing));
        assert_eq!(
            token_for_hello(&state, Duration::from_secs(1)).await,
            Err(Error::TokenProvider("vault is down".into()))
        );
        let slow = boxed_provider(|| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, String>("late".to_owned())
        });
        let state = TokenState::new(Credentials::Provider(slow));
        assert!(matches!(
            token_for_hello(&state, Duration::from_millis(20)).await,
            Err(Error::TokenProvider(message)) if message.contains("no token within")
        ));
        let none = TokenState::new(Credentials::None);
        assert_eq!(
            token_for_hello(&none, Duration::from_secs(1)).await,
            Ok(None)
        );
        assert!(matches!(
            none.fresh(Duration::from_secs(1)).await,
            Err(Error::TokenProvider(_))
        ));
    }
}
