//! Semantic checks on a deserialized [`Settings`].

use std::time::Duration;

use crate::error::ConfigError;
use crate::settings::{AuthMode, Settings};

/// Largest accepted `limits.max_payload_bytes` (64 MiB).
pub const MAX_PAYLOAD_BYTES_LIMIT: usize = 64 * 1024 * 1024;

/// Largest accepted `delivery.queue_capacity`.
pub const MAX_QUEUE_CAPACITY: usize = 1_000_000;

/// Smallest accepted `delivery.max_queued_bytes`.
const MIN_QUEUED_BYTES: usize = 1024;
/// Largest accepted `delivery.max_queued_bytes` (4 GiB).
const MAX_QUEUED_BYTES: usize = 4 * 1024 * 1024 * 1024;

/// Paths the broker serves itself, which the echo endpoint may not take.
const RESERVED_PATHS: &[&str] = &["/v1/ws", "/healthz", "/readyz", "/metrics"];

/// Longest accepted `socketio.ping_interval` / `socketio.ping_timeout`
/// (clients keep timers in 32-bit milliseconds).
const MAX_ENGINEIO_TIMER: Duration = Duration::from_secs(24 * 60 * 60);

/// Largest accepted rate, burst or count in `[rate_limits]`.
const MAX_RATE: usize = 100_000_000;

/// Shortest accepted `server.operator_token`.
const MIN_TOKEN_LEN: usize = 16;
/// Longest accepted `auth.leeway` and `auth.expiry_grace`.
const MAX_AUTH_SLACK: Duration = Duration::from_secs(60 * 60);

/// The JWT algorithms `auth.algorithms` accepts.
pub const JWT_ALGORITHMS: &[&str] = &[
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
    "ES384", "EdDSA",
];

/// The kind of key an algorithm is verified with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Hmac,
    Public,
}

fn algorithm_family(name: &str) -> Result<Family, String> {
    if name.eq_ignore_ascii_case("none") {
        return Err(format!("{name:?}: unsigned tokens are never accepted"));
    }
    if !JWT_ALGORITHMS.contains(&name) {
        return Err(format!(
            "unknown algorithm {name:?}; expected some of: {}",
            JWT_ALGORITHMS.join(", ")
        ));
    }
    Ok(if name.starts_with("HS") {
        Family::Hmac
    } else {
        Family::Public
    })
}

/// Level names accepted in `log.level`.
const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];

impl Settings {
    /// Checks the rules that types alone cannot express (ranges, ordering of
    /// heartbeat durations, the log filter syntax).
    ///
    /// Returns the first violation as [`ConfigError::Invalid`] naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let server = &self.server;
        at_least_one("server.max_connections", server.max_connections)?;
        non_zero("server.handshake_timeout", server.handshake_timeout)?;
        non_zero("server.message_timeout", server.message_timeout)?;
        non_zero("server.heartbeat_interval", server.heartbeat_interval)?;
        non_zero("server.heartbeat_timeout", server.heartbeat_timeout)?;
        if server.heartbeat_timeout <= server.heartbeat_interval {
            return Err(ConfigError::invalid(
                "server.heartbeat_timeout",
                format!(
                    "must be greater than server.heartbeat_interval ({} <= {})",
                    humantime::format_duration(server.heartbeat_timeout),
                    humantime::format_duration(server.heartbeat_interval),
                ),
            ));
        }

        let limits = &self.limits;
        in_range(
            "limits.max_payload_bytes",
            limits.max_payload_bytes,
            MAX_PAYLOAD_BYTES_LIMIT,
        )?;
        at_least_one(
            "limits.max_subscriptions_per_connection",
            limits.max_subscriptions_per_connection,
        )?;
        at_least_one(
            "limits.max_rooms_per_connection",
            limits.max_rooms_per_connection,
        )?;
        at_least_one(
            "limits.max_pending_requests_per_connection",
            limits.max_pending_requests_per_connection,
        )?;
        non_zero("limits.max_request_timeout", limits.max_request_timeout)?;

        in_range(
            "delivery.queue_capacity",
            self.delivery.queue_capacity,
            MAX_QUEUE_CAPACITY,
        )?;
        let queued = self.delivery.max_queued_bytes;
        if !(MIN_QUEUED_BYTES..=MAX_QUEUED_BYTES).contains(&queued) {
            return Err(ConfigError::invalid(
                "delivery.max_queued_bytes",
                format!("must be between {MIN_QUEUED_BYTES} and {MAX_QUEUED_BYTES}, got {queued}"),
            ));
        }
        non_zero("delivery.write_timeout", self.delivery.write_timeout)?;
        check_path(&self.testing.echo_endpoint)
            .map_err(|message| ConfigError::invalid("testing.echo_endpoint", message))?;
        self.validate_socketio()?;
        self.validate_tls()?;

        check_log_filter(&self.log.level)
            .map_err(|message| ConfigError::invalid("log.level", message))?;
        self.validate_cluster()?;
        self.validate_operator()?;
        self.validate_rate_limits()?;
        self.validate_history()?;
        self.validate_auth()?;
        self.validate_admin()
    }

    /// `[admin]`: one way to give the token, its shape, the hash's shape,
    /// a credential under `auth.mode = "jwt"`, the tail rate and the
    /// Socket.IO namespace.
    fn validate_admin(&self) -> Result<(), ConfigError> {
        let admin = &self.admin;
        if !admin.token.is_empty() && !admin.token_file.is_empty() {
            return Err(ConfigError::invalid(
                "admin.token_file",
                "set either admin.token or admin.token_file, not both",
            ));
        }
        if !admin.token.is_empty() {
            check_operator_token(&admin.token)
                .map_err(|why| ConfigError::invalid("admin.token", why))?;
        }
        let hash = admin.password_hash.as_str();
        if !hash.is_empty()
            && !["$argon2id$", "$argon2i$", "$argon2d$"]
                .iter()
                .any(|prefix| hash.starts_with(prefix))
        {
            return Err(ConfigError::invalid(
                "admin.password_hash",
                "must be an argon2 PHC string starting with $argon2id$ (or $argon2i$, $argon2d$)",
            ));
        }
        if admin.username.is_empty() || admin.username.contains(':') {
            return Err(ConfigError::invalid(
                "admin.username",
                "must be non-empty and must not contain ':' (HTTP Basic)",
            ));
        }
        if !(1..=10_000).contains(&admin.tail_rate) {
            return Err(ConfigError::invalid(
                "admin.tail_rate",
                format!("must be between 1 and 10000, got {}", admin.tail_rate),
            ));
        }
        if !admin.socketio_namespace.is_empty() {
            herald_protocol::names::validate_namespace(&admin.socketio_namespace)
                .map_err(|e| ConfigError::invalid("admin.socketio_namespace", e.to_string()))?;
            if admin.socketio_namespace == "/" {
                return Err(ConfigError::invalid(
                    "admin.socketio_namespace",
                    "\"/\" is every client's default namespace: name one of its own, such as \"/admin\"",
                ));
            }
        }
        if admin.enabled && self.auth.mode == AuthMode::Jwt && !admin.has_credential() {
            return Err(ConfigError::invalid(
                "admin.token",
                "with auth.mode = \"jwt\" the admin console needs a credential: set admin.token, admin.token_file or admin.password_hash",
            ));
        }
        Ok(())
    }

    /// `[history]`: namespace names or patterns, and sizes and ages above
    /// zero.
    fn validate_history(&self) -> Result<(), ConfigError> {
        let history = &self.history;
        at_least_one("history.replay_limit", history.replay_limit)?;
        at_least_one("history.max_mids", history.max_mids)?;
        non_zero("history.mid_window", history.mid_window)?;
        for entry in &history.namespaces {
            herald_protocol::names::validate_namespace_pattern(&entry.namespace).map_err(|e| {
                ConfigError::invalid(
                    "history.namespaces",
                    format!(
                        "{:?} is not a namespace name or pattern: {e}",
                        entry.namespace
                    ),
                )
            })?;
            let named = |key: &str| format!("history.namespaces ({}).{key}", entry.namespace);
            at_least_one(&named("size"), entry.size)?;
            non_zero(&named("ttl"), entry.ttl)?;
        }
        Ok(())
    }

    /// `server.allowed_origins` and the operator endpoints' address and
    /// token.
    fn validate_operator(&self) -> Result<(), ConfigError> {
        let server = &self.server;
        for origin in &server.allowed_origins {
            check_origin(origin)
                .map_err(|message| ConfigError::invalid("server.allowed_origins", message))?;
        }
        if !server.operator_listen.is_empty() {
            let Some(addr) = server.operator_addr() else {
                return Err(ConfigError::invalid(
                    "server.operator_listen",
                    format!(
                        "{:?} is not a socket address: use IP:port such as \"127.0.0.1:7401\", or empty for server.listen",
                        server.operator_listen
                    ),
                ));
            };
            if addr == server.listen && addr.port() != 0 {
                return Err(ConfigError::invalid(
                    "server.operator_listen",
                    format!("{addr} is already server.listen; leave it empty to share that port"),
                ));
            }
        }
        if !server.operator_token.is_empty() && !server.operator_token_file.is_empty() {
            return Err(ConfigError::invalid(
                "server.operator_token_file",
                "set either server.operator_token or server.operator_token_file, not both",
            ));
        }
        let token = server.operator_token.as_str();
        if !token.is_empty() {
            check_operator_token(token)
                .map_err(|why| ConfigError::invalid("server.operator_token", why))?;
        }
        Ok(())
    }

    /// `[rate_limits]`: bucket sizes and the map bound at least 1, rates
    /// within what a bucket can count.
    fn validate_rate_limits(&self) -> Result<(), ConfigError> {
        let r = &self.rate_limits;
        for (key, value) in [
            (
                "rate_limits.connections_per_ip_per_second",
                r.connections_per_ip_per_second,
            ),
            (
                "rate_limits.max_connections_per_ip",
                r.max_connections_per_ip,
            ),
            ("rate_limits.messages_per_second", r.messages_per_second),
            (
                "rate_limits.max_rate_limited_messages",
                r.max_rate_limited_messages,
            ),
        ] {
            if value > MAX_RATE {
                return Err(ConfigError::invalid(
                    key,
                    format!("must be between 0 (off) and {MAX_RATE}, got {value}"),
                ));
            }
        }
        in_range("rate_limits.connection_burst", r.connection_burst, MAX_RATE)?;
        in_range("rate_limits.message_burst", r.message_burst, MAX_RATE)?;
        in_range("rate_limits.max_tracked_ips", r.max_tracked_ips, MAX_RATE)
    }

    /// `[auth]`: known algorithms of one family, the key source that family
    /// needs, bounded durations. Key files are read (and their errors named)
    /// when the broker starts.
    fn validate_auth(&self) -> Result<(), ConfigError> {
        let auth = &self.auth;
        check_id("auth.claim", &auth.claim, false)?;
        for (key, value) in [
            ("auth.leeway", auth.leeway),
            ("auth.expiry_grace", auth.expiry_grace),
        ] {
            if value > MAX_AUTH_SLACK {
                return Err(ConfigError::invalid(
                    key,
                    format!(
                        "must be at most {}",
                        humantime::format_duration(MAX_AUTH_SLACK)
                    ),
                ));
            }
        }
        let mut families = Vec::new();
        for name in &auth.algorithms {
            let family = algorithm_family(name)
                .map_err(|message| ConfigError::invalid("auth.algorithms", message))?;
            if !families.contains(&family) {
                families.push(family);
            }
        }
        if auth.mode == AuthMode::None {
            return Ok(());
        }
        let hmac = !auth.secret.is_empty() || !auth.secret_file.is_empty();
        let public = !auth.public_key_file.is_empty() || !auth.jwks_file.is_empty();
        match families.as_slice() {
            [] => Err(ConfigError::invalid(
                "auth.algorithms",
                "must name at least one algorithm when auth.mode = \"jwt\"",
            )),
            [_, _, ..] => Err(ConfigError::invalid(
                "auth.algorithms",
                "mixes shared-secret (HS*) and public-key algorithms: one key source serves one family",
            )),
            [Family::Hmac] if !hmac => Err(ConfigError::invalid(
                "auth.secret",
                "HS* algorithms need auth.secret or auth.secret_file",
            )),
            [Family::Hmac] if !auth.secret.is_empty() && !auth.secret_file.is_empty() => {
                Err(ConfigError::invalid(
                    "auth.secret_file",
                    "give auth.secret or auth.secret_file, not both",
                ))
            }
            [Family::Hmac] if public => Err(ConfigError::invalid(
                "auth.public_key_file",
                "a public key (auth.public_key_file / auth.jwks_file) does not serve HS* algorithms",
            )),
            [Family::Public] if !public => Err(ConfigError::invalid(
                "auth.public_key_file",
                "public-key algorithms need auth.public_key_file or auth.jwks_file",
            )),
            [Family::Public] if !auth.public_key_file.is_empty() && !auth.jwks_file.is_empty() => {
                Err(ConfigError::invalid(
                    "auth.jwks_file",
                    "give auth.public_key_file or auth.jwks_file, not both",
                ))
            }
            [Family::Public] if hmac => Err(ConfigError::invalid(
                "auth.secret",
                "a shared secret does not serve public-key algorithms",
            )),
            _ => Ok(()),
        }
    }

    /// `[socketio]` and the Engine.IO echo endpoint: timers, sizes, names,
    /// and paths apart from each other and from the broker's own.
    fn validate_socketio(&self) -> Result<(), ConfigError> {
        let sio = &self.socketio;
        check_path(&sio.path).map_err(|message| ConfigError::invalid("socketio.path", message))?;
        if sio.path.is_empty() {
            return Err(ConfigError::invalid(
                "socketio.path",
                "must be an absolute path such as \"/socket.io/\"",
            ));
        }
        for (key, value) in [
            ("socketio.ping_interval", sio.ping_interval),
            ("socketio.ping_timeout", sio.ping_timeout),
        ] {
            non_zero(key, value)?;
            if value > MAX_ENGINEIO_TIMER {
                return Err(ConfigError::invalid(
                    key,
                    format!(
                        "must be at most {}",
                        humantime::format_duration(MAX_ENGINEIO_TIMER)
                    ),
                ));
            }
        }
        in_range(
            "socketio.max_payload",
            sio.max_payload,
            MAX_PAYLOAD_BYTES_LIMIT,
        )?;
        non_zero("socketio.connect_timeout", sio.connect_timeout)?;
        for namespace in &sio.namespaces {
            herald_protocol::names::validate_namespace(namespace).map_err(|e| {
                ConfigError::invalid(
                    "socketio.namespaces",
                    format!("{namespace:?} is not a valid Herald namespace: {e}"),
                )
            })?;
        }
        let engineio_echo = &self.testing.engineio_echo_endpoint;
        check_path(engineio_echo)
            .map_err(|message| ConfigError::invalid("testing.engineio_echo_endpoint", message))?;
        let taken = [
            ("testing.echo_endpoint", self.testing.echo_endpoint.as_str()),
            ("socketio.path", sio.path.as_str()),
        ];
        for (other, path) in taken {
            if !engineio_echo.is_empty() && same_path(engineio_echo, path) {
                return Err(ConfigError::invalid(
                    "testing.engineio_echo_endpoint",
                    format!("{engineio_echo:?} is already the path of {other}"),
                ));
            }
        }
        if same_path(&sio.path, &self.testing.echo_endpoint) {
            return Err(ConfigError::invalid(
                "socketio.path",
                format!(
                    "{:?} is already the path of testing.echo_endpoint",
                    sio.path
                ),
            ));
        }
        Ok(())
    }

    /// `[tls]`: the certificate and its key come together, and mutual TLS
    /// needs TLS. (The files themselves are read and checked by the broker
    /// at start, each error naming its key.)
    fn validate_tls(&self) -> Result<(), ConfigError> {
        let tls = &self.tls;
        match (tls.cert_file.is_empty(), tls.key_file.is_empty()) {
            (false, true) => {
                return Err(ConfigError::invalid(
                    "tls.cert_file",
                    "is set but tls.key_file is empty: set both (TLS) or neither (plain TCP)",
                ));
            }
            (true, false) => {
                return Err(ConfigError::invalid(
                    "tls.key_file",
                    "is set but tls.cert_file is empty: set both (TLS) or neither (plain TCP)",
                ));
            }
            _ => {}
        }
        if !tls.client_ca_file.is_empty() && !tls.enabled() {
            return Err(ConfigError::invalid(
                "tls.client_ca_file",
                "needs tls.cert_file and tls.key_file (mutual TLS is TLS)",
            ));
        }
        Ok(())
    }

    fn validate_cluster(&self) -> Result<(), ConfigError> {
        let cluster = &self.cluster;
        check_redis_url(&cluster.redis_url)
            .map_err(|message| ConfigError::invalid("cluster.redis_url", message))?;
        check_id("cluster.prefix", &cluster.prefix, false)?;
        check_id("cluster.node_id", &cluster.node_id, true)?;
        non_zero("cluster.heartbeat_interval", cluster.heartbeat_interval)?;
        non_zero("cluster.node_ttl", cluster.node_ttl)?;
        if cluster.node_ttl <= cluster.heartbeat_interval {
            return Err(ConfigError::invalid(
                "cluster.node_ttl",
                format!(
                    "must be greater than cluster.heartbeat_interval ({} <= {})",
                    humantime::format_duration(cluster.node_ttl),
                    humantime::format_duration(cluster.heartbeat_interval),
                ),
            ));
        }
        non_zero("cluster.command_timeout", cluster.command_timeout)?;
        in_range(
            "cluster.queue_capacity",
            cluster.queue_capacity,
            MAX_QUEUE_CAPACITY,
        )
    }
}

fn at_least_one(key: &str, value: usize) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::invalid(key, "must be at least 1, got 0"));
    }
    Ok(())
}

fn in_range(key: &str, value: usize, max: usize) -> Result<(), ConfigError> {
    if !(1..=max).contains(&value) {
        return Err(ConfigError::invalid(
            key,
            format!("must be between 1 and {max}, got {value}"),
        ));
    }
    Ok(())
}

/// Longest accepted `cluster.prefix` and `cluster.node_id`.
const MAX_ID_LEN: usize = 64;

/// A key prefix or node id: `[A-Za-z0-9_-]`, at most 64 characters, empty
/// only when `may_be_empty`.
fn check_id(key: &str, value: &str, may_be_empty: bool) -> Result<(), ConfigError> {
    if value.is_empty() && may_be_empty {
        return Ok(());
    }
    let valid = !value.is_empty()
        && value.len() <= MAX_ID_LEN
        && value
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-'));
    if valid {
        return Ok(());
    }
    Err(ConfigError::invalid(
        key,
        format!(
            "{value:?} is not valid: use 1 to {MAX_ID_LEN} characters of A-Z, a-z, 0-9, '_' or '-'"
        ),
    ))
}

/// A Redis URL: `redis://host[:port][/db]` (or `redis+unix://` /
/// `unix://` for a socket path).
fn check_redis_url(url: &str) -> Result<(), String> {
    let rest = ["redis://", "redis+unix://", "unix://"]
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme));
    match rest {
        None => Err(format!(
            "{url:?} is not a Redis URL: expected redis://host[:port][/db]"
        )),
        Some("") => Err(format!("{url:?} names no host")),
        Some(_) => Ok(()),
    }
}

/// An endpoint path: empty (none), or an absolute path of visible ASCII
/// (no query) that is not one of the broker's own, with or without a
/// trailing slash (the Engine.IO endpoints answer both spellings).
fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Ok(());
    }
    if !path.starts_with('/')
        || path.contains(['?', '#'])
        || !path.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(format!(
            "must be empty or an absolute path such as \"/v1/echo\", got {path:?}"
        ));
    }
    let bare = path.trim_end_matches('/');
    if bare.is_empty() {
        return Err(format!("{path:?} would take every path of the broker"));
    }
    if RESERVED_PATHS
        .iter()
        .any(|reserved| same_path(path, reserved))
        || bare == "/v1/emit"
        || bare.starts_with("/v1/emit/")
    {
        return Err(format!("{path:?} is a path the broker already serves"));
    }
    Ok(())
}

/// Whether two endpoint paths name the same endpoint (a trailing slash
/// aside); an empty path is no endpoint.
fn same_path(a: &str, b: &str) -> bool {
    !a.is_empty() && !b.is_empty() && a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// Checks an operator token (`server.operator_token`, or the contents of
/// `server.operator_token_file`): at least 16 characters that an
/// `Authorization: Bearer` header can carry (RFC 6750 `b64token`).
pub fn check_operator_token(token: &str) -> Result<(), String> {
    let valid = token.len() >= MIN_TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b));
    if valid {
        return Ok(());
    }
    Err(format!(
        "must be at least {MIN_TOKEN_LEN} characters of A-Z, a-z, 0-9 and -._~+/= \
         (what an Authorization: Bearer header can carry)"
    ))
}

/// An entry of `server.allowed_origins`: `*`, or an origin as browsers
/// send it in the `Origin` header, `scheme://host[:port]` (no path).
fn check_origin(origin: &str) -> Result<(), String> {
    if origin == "*" {
        return Ok(());
    }
    let valid = origin.split_once("://").is_some_and(|(scheme, authority)| {
        !scheme.is_empty()
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
            && !authority.is_empty()
            && !authority.contains(['/', '?', '#', '@'])
            && authority.bytes().all(|b| b.is_ascii_graphic())
    });
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{origin:?} is not an origin: use \"*\" or scheme://host[:port] such as \"https://app.example.com\" (no path, no trailing slash)"
        ))
    }
}

fn non_zero(key: &str, value: Duration) -> Result<(), ConfigError> {
    if value.is_zero() {
        return Err(ConfigError::invalid(key, "must be greater than zero"));
    }
    Ok(())
}

/// Checks a log filter: non-empty, comma-separated directives, each a level
/// or `target=level` where the target is a Rust module path
/// (letters, digits, `_`, `-`, `::`-separated).
fn check_log_filter(filter: &str) -> Result<(), String> {
    if filter.trim().is_empty() {
        return Err("must not be empty (e.g. \"info\")".to_owned());
    }
    for directive in filter.split(',') {
        let directive = directive.trim();
        let level = match directive.split_once('=') {
            None => directive,
            Some((target, level)) => {
                check_target(target.trim())
                    .map_err(|why| format!("directive {directive:?}: {why}"))?;
                level.trim()
            }
        };
        if !LEVELS.iter().any(|known| known.eq_ignore_ascii_case(level)) {
            return Err(format!(
                "directive {directive:?}: unknown level {level:?}, expected one of: {} \
                 (or target=level)",
                LEVELS.join(", ")
            ));
        }
    }
    Ok(())
}

fn check_target(target: &str) -> Result<(), String> {
    if target.is_empty() {
        return Err("target before '=' is empty".to_owned());
    }
    let valid_segment = |segment: &str| {
        !segment.is_empty()
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if !target.split("::").all(valid_segment) {
        return Err(format!(
            "invalid target {target:?} (expected a module path such as herald_broker::session)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_filters_accepted() {
        for ok in [
            "info",
            "OFF",
            "warn,herald_broker=debug",
            "herald_broker::session=trace, tokio=off",
            "error,hyper-util=warn",
        ] {
            assert_eq!(check_log_filter(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn log_filters_refused() {
        for bad in [
            "",
            "  ",
            "verbose",
            "info,",
            "=debug",
            "herald=",
            "herald=loud",
            "a b=info",
            "herald::=info",
            "herald[span]=info",
        ] {
            assert!(check_log_filter(bad).is_err(), "{bad:?} accepted");
        }
    }
}
