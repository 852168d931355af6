//! Token verification with `jsonwebtoken`: signature with the configured
//! keys and algorithms, `exp`/`nbf` with the leeway, `iss`/`aud` when
//! configured, a `sub`; then the permission claim compiled. A failure is
//! a [`Failure`] with a reason from a small fixed set (for metrics and
//! logs); what the client is told never says more than `unauthorized`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use herald_config::{AuthSettings, PermissionRules};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use super::keys::{self, KeyError, Keys};
use super::permissions::Permissions;

/// Why a token was refused (the `reason` label of
/// `herald_auth_failures_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No token where one is needed.
    Missing,
    /// Malformed, bad signature, unknown key, bad claims.
    Invalid,
    /// Past `exp` (with the leeway).
    Expired,
    /// Wrong or missing `iss`.
    Issuer,
    /// Wrong or missing `aud`.
    Audience,
    /// An algorithm not in `auth.algorithms` (`none` included).
    Algorithm,
    /// A refresh naming another `sub`.
    Subject,
}

impl Failure {
    /// Every reason, in metric order.
    pub(crate) const ALL: [Failure; 7] = [
        Failure::Missing,
        Failure::Invalid,
        Failure::Expired,
        Failure::Issuer,
        Failure::Audience,
        Failure::Algorithm,
        Failure::Subject,
    ];

    /// The metric label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Failure::Missing => "missing",
            Failure::Invalid => "invalid",
            Failure::Expired => "expired",
            Failure::Issuer => "issuer",
            Failure::Audience => "audience",
            Failure::Algorithm => "algorithm",
            Failure::Subject => "subject",
        }
    }

    fn of(kind: &ErrorKind) -> Failure {
        match kind {
            ErrorKind::ExpiredSignature => Failure::Expired,
            ErrorKind::InvalidIssuer => Failure::Issuer,
            ErrorKind::InvalidAudience => Failure::Audience,
            ErrorKind::InvalidAlgorithm
            | ErrorKind::MissingAlgorithm
            | ErrorKind::InvalidAlgorithmName => Failure::Algorithm,
            ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => Failure::Issuer,
            ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => Failure::Audience,
            _ => Failure::Invalid,
        }
    }
}

/// The claims a verified token carries that the broker uses.
#[derive(Debug)]
pub(crate) struct Verified {
    pub(crate) sub: String,
    pub(crate) exp: Option<u64>,
    pub(crate) permissions: Permissions,
}

#[derive(Deserialize)]
struct RawClaims {
    sub: String,
    exp: Option<u64>,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
}

/// Verifies tokens against the keys and rules of `[auth]`.
#[derive(Debug)]
pub(crate) struct Verifier {
    keys: Keys,
    validation: Validation,
    algorithms: Vec<Algorithm>,
    claim: String,
}

impl Verifier {
    /// Loads the keys (reading their files) and builds the validation.
    pub(crate) fn new(auth: &AuthSettings) -> Result<Verifier, KeyError> {
        let algorithms = keys::algorithms(auth)?;
        let keys = keys::load(auth, &algorithms)?;
        let mut validation = Validation::new(algorithms.first().copied().unwrap_or_default());
        validation.algorithms.clone_from(&algorithms);
        validation.leeway = auth.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["sub"];
        if auth.issuer.is_empty() {
            validation.iss = None;
        } else {
            validation.set_issuer(&[&auth.issuer]);
            required.push("iss");
        }
        if auth.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&[&auth.audience]);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        Ok(Verifier {
            keys,
            validation,
            algorithms,
            claim: auth.claim.clone(),
        })
    }

    /// Verifies `token`.
    pub(crate) fn verify(&self, token: &str) -> Result<Verified, Failure> {
        self.check_algorithm(token)?;
        let header = jsonwebtoken::decode_header(token).map_err(|e| Failure::of(e.kind()))?;
        let key = self
            .keys
            .find(header.kid.as_deref())
            .ok_or(Failure::Invalid)?;
        let data = jsonwebtoken::decode::<RawClaims>(token, key, &self.validation)
            .map_err(|e| Failure::of(e.kind()))?;
        let rules = match data.claims.rest.get(&self.claim) {
            None => PermissionRules::default(),
            Some(value) => PermissionRules::deserialize(value).map_err(|_| Failure::Invalid)?,
        };
        let permissions = Permissions::compile(&rules).map_err(|_| Failure::Invalid)?;
        Ok(Verified {
            sub: data.claims.sub,
            exp: data.claims.exp,
            permissions,
        })
    }

    /// Refuses a header whose `alg` is not configured (`none` among
    /// them) as [`Failure::Algorithm`], before `jsonwebtoken` parses it
    /// (it knows no `none`, and would call that a malformed header).
    fn check_algorithm(&self, token: &str) -> Result<(), Failure> {
        let encoded = token.split('.').next().unwrap_or_default();
        let bytes = URL_SAFE_NO_PAD
            .decode(encoded.trim_end_matches('='))
            .map_err(|_| Failure::Invalid)?;
        let header: RawHeader = serde_json::from_slice(&bytes).map_err(|_| Failure::Invalid)?;
        let named = header.alg.ok_or(Failure::Algorithm)?;
        if self
            .algorithms
            .iter()
            .any(|alg| format!("{alg:?}") == named)
        {
            Ok(())
        } else {
            Err(Failure::Algorithm)
        }
    }
}
