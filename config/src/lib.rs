//! Configuration for the Herald broker.
//!
//! [`Settings::load`] builds the effective configuration from four layers,
//! each overriding the ones before it:
//!
//! 1. the built-in defaults, [`DEFAULT_TOML`] (`config/herald.toml`), which
//!    sets and documents every key and is the only place defaults live;
//! 2. an optional TOML config file ([`Sources::file`], `--config PATH`);
//! 3. environment variables `HERALD__SECTION__KEY`, e.g.
//!    `HERALD__SERVER__LISTEN=0.0.0.0:7400` ([`Sources::env`]); variables
//!    such as `HERALD_URL` (single underscore) are not ours and are ignored;
//! 4. command-line overrides as `(dotted key, value)` pairs, e.g.
//!    `("server.listen", "127.0.0.1:0")` ([`Sources::overrides`]).
//!
//! The merged result is checked for unknown keys, deserialized into
//! [`Settings`] and [validated](Settings::validate). Every error names the
//! offending key in dotted form (`limits.max_payload_bytes`) or the file
//! path. [`Settings::to_toml`] prints the effective configuration in the
//! same format, which loads back unchanged.

mod error;
mod load;
mod settings;
mod strict;
mod validate;

pub use error::ConfigError;
pub use load::{ENV_PREFIX, ENV_SEPARATOR, Sources, env_var_name};
pub use settings::{
    AdminSettings, AuthMode, AuthSettings, ClusterBackend, ClusterSettings, DeliverySettings,
    HistoryNamespace, HistorySettings, LimitSettings, LogFormat, LogSettings, NamespaceRules,
    PatternRule, PermissionRules, RateLimitSettings, ServerSettings, ServicePowers, Settings,
    SlowConsumerPolicy, SocketioSettings, SubscribeRule, TestingSettings, TlsSettings,
    UnknownVariant,
};
pub use validate::{
    JWT_ALGORITHMS, MAX_PAYLOAD_BYTES_LIMIT, MAX_QUEUE_CAPACITY, check_operator_token,
};

/// The documented default configuration (`config/herald.toml`), the lowest
/// layer of every [`Settings::load`] and the sole source of default values.
pub const DEFAULT_TOML: &str = include_str!("../herald.toml");

#[cfg(test)]
mod tests;
