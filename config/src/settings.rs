//! The typed settings tree.
//!
//! These types carry no default values of their own: every value comes from
//! the layered sources, whose lowest layer is [`crate::DEFAULT_TOML`].
//! Every struct refuses unknown fields.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::strict;

/// The whole broker configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Listener, connection count and connection lifetime settings (`[server]`).
    pub server: ServerSettings,
    /// Per-connection resource limits (`[limits]`).
    pub limits: LimitSettings,
    /// Outbound delivery settings (`[delivery]`).
    pub delivery: DeliverySettings,
    /// Logging settings (`[log]`).
    pub log: LogSettings,
    /// Clustering several nodes over a backplane (`[cluster]`).
    pub cluster: ClusterSettings,
    /// The Socket.IO front end: Engine.IO v4 transports and Socket.IO v5
    /// sessions (`[socketio]`).
    pub socketio: SocketioSettings,
    /// Settings for conformance and test runs only (`[testing]`); off by
    /// default, never needed in production.
    pub testing: TestingSettings,
    /// Abuse limits: per-IP connection rate and concurrency, per-connection
    /// message rate (`[rate_limits]`).
    pub rate_limits: RateLimitSettings,
    /// Authentication (JWT) and permissions (`[auth]`).
    pub auth: AuthSettings,
    /// TLS on the listener, mutual TLS and certificate reload (`[tls]`);
    /// off by default (plain TCP).
    pub tls: TlsSettings,
    /// The admin console, its API and the Socket.IO Admin UI protocol
    /// (`[admin]`); off by default.
    pub admin: AdminSettings,
    /// Per-namespace event history, resume and publisher de-duplication
    /// (`[history]`); off by default (no namespace listed).
    pub history: HistorySettings,
}

/// The `[history]` section: which namespaces keep their recent events, and
/// the bounds of replay and de-duplication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistorySettings {
    /// Namespaces (names or patterns) with a history (`history.namespaces`);
    /// the first entry that matches a namespace applies. Empty: none.
    #[serde(default)]
    pub namespaces: Vec<HistoryNamespace>,
    /// Most events one resume may replay per namespace
    /// (`history.replay_limit`), at least 1; a longer gap is not recovered.
    #[serde(deserialize_with = "strict::usize")]
    pub replay_limit: usize,
    /// How long a publisher's message id is remembered to drop a repeated
    /// emit (`history.mid_window`), greater than zero.
    #[serde(with = "strict::duration")]
    pub mid_window: Duration,
    /// Most message ids remembered per namespace within that window
    /// (`history.max_mids`), at least 1.
    #[serde(deserialize_with = "strict::usize")]
    pub max_mids: usize,
}

/// One `[[history.namespaces]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryNamespace {
    /// A namespace name, or a pattern of namespace names (`*` one
    /// segment, `>` the rest) (`history.namespaces[].namespace`).
    pub namespace: String,
    /// Events kept, at least 1 (`history.namespaces[].size`).
    #[serde(deserialize_with = "strict::usize")]
    pub size: usize,
    /// How long an event is kept, greater than zero
    /// (`history.namespaces[].ttl`).
    #[serde(with = "strict::duration")]
    pub ttl: Duration,
}

/// The `[admin]` section: the admin console.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// Whether `/admin` and `/admin/api/` are served (`admin.enabled`).
    pub enabled: bool,
    /// A bearer token for the console (`admin.token`); empty means none.
    pub token: String,
    /// A file holding that token (`admin.token_file`), read once at start.
    pub token_file: String,
    /// An argon2 PHC hash of the console's password (`admin.password_hash`).
    pub password_hash: String,
    /// The user name that goes with the password (`admin.username`).
    pub username: String,
    /// Refuse the console's actions with 403 (`admin.read_only`).
    pub read_only: bool,
    /// Most events sampled per second per live tail (`admin.tail_rate`).
    #[serde(deserialize_with = "strict::usize")]
    pub tail_rate: usize,
    /// The Socket.IO namespace speaking the Admin UI protocol
    /// (`admin.socketio_namespace`); empty: not served.
    pub socketio_namespace: String,
}

impl AdminSettings {
    /// Whether any credential is configured (token, token file, password).
    pub fn has_credential(&self) -> bool {
        !self.token.is_empty() || !self.token_file.is_empty() || !self.password_hash.is_empty()
    }
}

/// The `[server]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Address the WebSocket listener binds to (`server.listen`).
    pub listen: SocketAddr,
    /// Maximum concurrent WebSocket sessions, at least 1 (`server.max_connections`).
    #[serde(deserialize_with = "strict::usize")]
    pub max_connections: usize,
    /// Time allowed to complete the WebSocket handshake and the hello frame
    /// (`server.handshake_timeout`), greater than zero.
    #[serde(with = "strict::duration")]
    pub handshake_timeout: Duration,
    /// How often the broker pings each connection (`server.heartbeat_interval`),
    /// greater than zero.
    #[serde(with = "strict::duration")]
    pub heartbeat_interval: Duration,
    /// A connection silent for this long is closed (`server.heartbeat_timeout`);
    /// greater than `heartbeat_interval`.
    #[serde(with = "strict::duration")]
    pub heartbeat_timeout: Duration,
    /// Drain time on SIGTERM / Ctrl-C (`server.shutdown_grace`); zero means
    /// close connections at once.
    #[serde(with = "strict::duration")]
    pub shutdown_grace: Duration,
    /// A WebSocket message whose first byte has arrived must be complete
    /// within this long (`server.message_timeout`), greater than zero.
    #[serde(with = "strict::duration")]
    pub message_timeout: Duration,
    /// Origins (`scheme://host[:port]`) whose web pages may use the broker
    /// across origins: native WebSocket upgrades of `/v1/ws` and the
    /// Socket.IO / Engine.IO paths (`server.allowed_origins`). `["*"]`
    /// allows any; empty allows same-origin pages (and non-browser
    /// clients, which send no `Origin`) only.
    #[serde(deserialize_with = "strict::string_list")]
    pub allowed_origins: Vec<String>,
    /// A second listen address (`IP:port`) for the operator endpoints
    /// (`/metrics`, with `/healthz` and `/readyz`) (`server.operator_listen`);
    /// empty serves them on `server.listen`. When set, `/metrics` is no
    /// longer served on `server.listen`.
    pub operator_listen: String,
    /// A bearer token required by the operator endpoints (`/metrics`)
    /// (`server.operator_token`); empty means none. Prefer
    /// `operator_token_file`, which keeps it out of the config.
    pub operator_token: String,
    /// A file holding that token (`server.operator_token_file`), read once
    /// at start (surrounding whitespace trimmed); empty means none.
    pub operator_token_file: String,
}

impl ServerSettings {
    /// `server.operator_listen` as an address; `None` when empty (the
    /// operator endpoints share `server.listen`) or invalid (refused by
    /// [`Settings::validate`]).
    pub fn operator_addr(&self) -> Option<SocketAddr> {
        self.operator_listen.parse().ok()
    }
}

/// The `[limits]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Largest accepted payload in bytes, `1..=64 MiB` (`limits.max_payload_bytes`).
    #[serde(deserialize_with = "strict::usize")]
    pub max_payload_bytes: usize,
    /// Subscriptions one connection may hold, at least 1
    /// (`limits.max_subscriptions_per_connection`).
    #[serde(deserialize_with = "strict::usize")]
    pub max_subscriptions_per_connection: usize,
    /// Rooms one connection may be in, at least 1 (`limits.max_rooms_per_connection`).
    #[serde(deserialize_with = "strict::usize")]
    pub max_rooms_per_connection: usize,
    /// Requests one connection may have awaiting a reply, at least 1
    /// (`limits.max_pending_requests_per_connection`).
    #[serde(deserialize_with = "strict::usize")]
    pub max_pending_requests_per_connection: usize,
    /// Longest timeout a client may set on a request, greater than zero
    /// (`limits.max_request_timeout`).
    #[serde(with = "strict::duration")]
    pub max_request_timeout: Duration,
}

/// The `[delivery]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverySettings {
    /// Per-connection outbound queue capacity in frames, `1..=1_000_000`
    /// (`delivery.queue_capacity`).
    #[serde(deserialize_with = "strict::usize")]
    pub queue_capacity: usize,
    /// What to do when that queue is full (`delivery.slow_consumer`).
    pub slow_consumer: SlowConsumerPolicy,
    /// Bytes one connection's outbound queue may hold, at least 1024
    /// (`delivery.max_queued_bytes`); crossing it applies the slow-consumer
    /// policy, like a full queue.
    #[serde(deserialize_with = "strict::usize")]
    pub max_queued_bytes: usize,
    /// A socket write that makes no progress for this long closes the
    /// connection as a slow consumer, whatever the policy
    /// (`delivery.write_timeout`), greater than zero.
    #[serde(with = "strict::duration")]
    pub write_timeout: Duration,
}

/// The `[testing]` section: endpoints for conformance suites.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestingSettings {
    /// Path of a WebSocket echo endpoint served by the broker's own frame
    /// reader and writer, for the Autobahn TestSuite
    /// (`testing.echo_endpoint`); empty (the default) means none.
    pub echo_endpoint: String,
    /// Path of a raw Engine.IO v4 echo endpoint (every message packet sent
    /// back unchanged) served by the broker's Engine.IO code, for the
    /// upstream Engine.IO test suite (`testing.engineio_echo_endpoint`);
    /// empty (the default) means none.
    pub engineio_echo_endpoint: String,
}

/// The `[tls]` section: TLS (rustls) on the one listener, for `wss://`,
/// the Socket.IO paths and the HTTP API alike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM file with the server certificate chain, leaf first
    /// (`tls.cert_file`); empty (the default) together with `key_file`
    /// means plain TCP.
    pub cert_file: String,
    /// PEM file with the certificate's private key (PKCS#8, PKCS#1 or
    /// SEC1) (`tls.key_file`).
    pub key_file: String,
    /// PEM file of the CA certificates that sign client certificates
    /// (`tls.client_ca_file`); set, every client must present a
    /// certificate they sign (mutual TLS). Empty: no client certificates.
    pub client_ca_file: String,
    /// How often the broker looks at the files' modification times and
    /// reloads them when one changed (`tls.reload_interval`); zero turns
    /// the polling off (SIGHUP still reloads).
    #[serde(with = "strict::duration")]
    pub reload_interval: Duration,
}

impl TlsSettings {
    /// True when TLS is configured (`cert_file` and `key_file` set).
    pub fn enabled(&self) -> bool {
        !self.cert_file.is_empty() && !self.key_file.is_empty()
    }
}

/// The `[socketio]` section: the Socket.IO front end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocketioSettings {
    /// Whether the Socket.IO endpoint is served (`socketio.enabled`).
    pub enabled: bool,
    /// Its HTTP path (`socketio.path`), e.g. `"/socket.io/"`.
    pub path: String,
    /// How often the broker sends an Engine.IO ping (`socketio.ping_interval`),
    /// greater than zero.
    #[serde(with = "strict::duration")]
    pub ping_interval: Duration,
    /// How long a client has to answer a ping with a pong
    /// (`socketio.ping_timeout`), greater than zero.
    #[serde(with = "strict::duration")]
    pub ping_timeout: Duration,
    /// Largest Engine.IO message or HTTP long-polling body a client may
    /// send, in bytes (`socketio.max_payload`), `1..=64 MiB`.
    #[serde(deserialize_with = "strict::usize")]
    pub max_payload: usize,
    /// Time a new Engine.IO session has to connect to a Socket.IO namespace
    /// (`socketio.connect_timeout`), greater than zero.
    #[serde(with = "strict::duration")]
    pub connect_timeout: Duration,
    /// Namespaces Socket.IO clients may connect to (`socketio.namespaces`);
    /// empty means every valid Herald namespace.
    #[serde(deserialize_with = "strict::string_list")]
    pub namespaces: Vec<String>,
    /// Who holds the service-side powers (emit to a session-id room, make
    /// another connection join or leave a room) (`socketio.service_powers`).
    pub service_powers: ServicePowers,
}

/// The `[rate_limits]` section: abuse limits. For every value, 0 turns
/// the limit off (the default for all of them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// New TCP connections per second from one client address (an IPv4
    /// address or an IPv6 /64), refilling a token bucket
    /// (`rate_limits.connections_per_ip_per_second`); 0 = no limit.
    #[serde(deserialize_with = "strict::usize")]
    pub connections_per_ip_per_second: usize,
    /// That bucket's size: connections an address may open at once before
    /// the rate applies (`rate_limits.connection_burst`), at least 1.
    #[serde(deserialize_with = "strict::usize")]
    pub connection_burst: usize,
    /// Sessions (native WebSocket and Socket.IO) one client address may
    /// hold at once (`rate_limits.max_connections_per_ip`); 0 = no limit.
    #[serde(deserialize_with = "strict::usize")]
    pub max_connections_per_ip: usize,
    /// Client addresses the per-IP limits keep state for, at most
    /// (`rate_limits.max_tracked_ips`), at least 1.
    #[serde(deserialize_with = "strict::usize")]
    pub max_tracked_ips: usize,
    /// Messages per second one connection may send, refilling a token
    /// bucket (`rate_limits.messages_per_second`); 0 = no limit.
    #[serde(deserialize_with = "strict::usize")]
    pub messages_per_second: usize,
    /// That bucket's size (`rate_limits.message_burst`), at least 1.
    #[serde(deserialize_with = "strict::usize")]
    pub message_burst: usize,
    /// Over-rate messages a connection may send since its bucket was last
    /// full before it is closed with `rate_limited`
    /// (`rate_limits.max_rate_limited_messages`); 0 = never closed.
    #[serde(deserialize_with = "strict::usize")]
    pub max_rate_limited_messages: usize,
}

/// Who may use the service-side powers of the Socket.IO mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum ServicePowers {
    /// Native (Herald protocol) connections (`"native"`).
    Native,
    /// Nobody (`"none"`).
    None,
}

/// The `[log]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// Log filter (`log.level`): comma-separated directives, each a level
    /// (`trace|debug|info|warn|error|off`) or `target=level`. Suitable for
    /// `tracing_subscriber::EnvFilter::try_new`.
    pub level: String,
    /// Output format (`log.format`).
    pub format: LogFormat,
}

/// The `[cluster]` section: several nodes sharing events through Redis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    /// `"none"` (one node, in memory) or `"redis"` (`cluster.backend`).
    pub backend: ClusterBackend,
    /// The Redis server, `redis://[user:password@]host[:port][/db]`
    /// (`cluster.redis_url`); used when `backend = "redis"`.
    pub redis_url: String,
    /// Prefix of every Redis key and channel (`cluster.prefix`): clusters
    /// with different prefixes can share one Redis without seeing each
    /// other. `[A-Za-z0-9_-]`, 1 to 64 characters.
    pub prefix: String,
    /// This node's id in the cluster (`cluster.node_id`); empty means a new
    /// id generated at every start. `[A-Za-z0-9_-]`, at most 64 characters.
    pub node_id: String,
    /// How often a node refreshes its liveness key and its view of the other
    /// nodes (`cluster.heartbeat_interval`), greater than zero.
    #[serde(with = "strict::duration")]
    pub heartbeat_interval: Duration,
    /// A node that has not refreshed its liveness key for this long is
    /// considered dead and its queue-group members and responders are
    /// dropped (`cluster.node_ttl`); greater than `heartbeat_interval`.
    #[serde(with = "strict::duration")]
    pub node_ttl: Duration,
    /// Time allowed for connecting to Redis and for each command
    /// (`cluster.command_timeout`), greater than zero.
    #[serde(with = "strict::duration")]
    pub command_timeout: Duration,
    /// Cross-node messages waiting to be published, at most
    /// (`cluster.queue_capacity`), `1..=1_000_000`; more are dropped and
    /// counted.
    #[serde(deserialize_with = "strict::usize")]
    pub queue_capacity: usize,
}

/// The `[auth]` section: who may connect, and what each connection may do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// `"none"` (everything allowed, no token read) or `"jwt"` (`auth.mode`).
    pub mode: AuthMode,
    /// Accepted JWT algorithms (`auth.algorithms`), e.g. `["HS256"]`;
    /// `none` is never accepted.
    #[serde(deserialize_with = "strict::string_list")]
    pub algorithms: Vec<String>,
    /// Shared secret for the HS* algorithms (`auth.secret`); empty: none.
    pub secret: String,
    /// File holding the shared secret (`auth.secret_file`); empty: none.
    pub secret_file: String,
    /// PEM public key for RS*/PS*/ES*/EdDSA (`auth.public_key_file`).
    pub public_key_file: String,
    /// JWKS (JSON Web Key Set) file; keys chosen by the token's `kid`
    /// (`auth.jwks_file`).
    pub jwks_file: String,
    /// Required `iss` (`auth.issuer`); empty: not checked.
    pub issuer: String,
    /// Required `aud` (`auth.audience`); empty: not checked.
    pub audience: String,
    /// Clock skew allowed on `exp` and `nbf` (`auth.leeway`).
    #[serde(with = "strict::duration")]
    pub leeway: Duration,
    /// Whether a connection without a token is let in with
    /// `auth.anonymous` permissions (`auth.allow_anonymous`).
    pub allow_anonymous: bool,
    /// How long before `exp` the `token_expiring` notice is sent
    /// (`auth.expiry_notice`).
    #[serde(with = "strict::duration")]
    pub expiry_notice: Duration,
    /// How long after `exp` an unrefreshed connection is closed with
    /// `token_expired` (`auth.expiry_grace`).
    #[serde(with = "strict::duration")]
    pub expiry_grace: Duration,
    /// The claim holding the permissions (`auth.claim`), `herald` by default.
    pub claim: String,
    /// Permissions of connections without a token (`auth.anonymous`), in
    /// the shape of the claim; default: nothing.
    #[serde(default)]
    pub anonymous: PermissionRules,
}

/// How connections are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum AuthMode {
    /// No authentication; every action allowed (`"none"`).
    None,
    /// A JWT per connection, carrying its permissions (`"jwt"`).
    Jwt,
}

/// Permissions as written in a token's claim or in `auth.anonymous`:
/// per namespace (exact name, or `"*"` for any namespace not listed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionRules {
    /// Rules by namespace; `"*"` applies to namespaces not listed.
    #[serde(default)]
    pub ns: BTreeMap<String, NamespaceRules>,
}

/// What a connection may do in one namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceRules {
    /// Events it may emit or request.
    #[serde(default)]
    pub publish: PatternRule,
    /// Patterns it may subscribe to.
    #[serde(default)]
    pub subscribe: SubscribeRule,
    /// Patterns it may answer requests on (responder subscriptions).
    #[serde(default)]
    pub respond: PatternRule,
    /// Rooms it may join.
    #[serde(default)]
    pub join: PatternRule,
    /// Whether it holds the service-side powers.
    #[serde(default)]
    pub powers: bool,
}

/// Allow and deny lists of patterns; deny wins, empty allows nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatternRule {
    /// Patterns allowed.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Patterns refused even when allowed.
    #[serde(default)]
    pub deny: Vec<String>,
}

/// A subscribe rule: allow and deny lists, and the queue groups a
/// subscription must name (empty: any, plain subscriptions included).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribeRule {
    /// Patterns allowed.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Patterns refused even when allowed.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Queue groups subscriptions must name, when non-empty.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// Which backplane, if any, links the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum ClusterBackend {
    /// A single node with in-memory state (`"none"`).
    None,
    /// Nodes linked through Redis pub/sub (`"redis"`).
    Redis,
}

/// Policy for a connection whose outbound queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum SlowConsumerPolicy {
    /// Close the slow connection (`"disconnect"`).
    Disconnect,
    /// Drop the frame for the slow connection and keep it open (`"drop"`).
    Drop,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum LogFormat {
    /// Human-readable output (`"pretty"`).
    Pretty,
    /// One JSON object per line (`"json"`).
    Json,
}

/// Error for a string that names no variant of a settings enum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value {value:?}, expected one of: {}", .expected.join(", "))]
pub struct UnknownVariant {
    /// The string that was given.
    pub value: String,
    /// The accepted spellings.
    pub expected: &'static [&'static str],
}

/// Implements `as_str`, `Display`, `FromStr` and `TryFrom<String>` for a
/// lowercase-named unit enum.
macro_rules! lowercase_enum {
    ($ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// The configuration spelling of this value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)+
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = UnknownVariant;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok(Self::$variant),)+
                    _ => Err(UnknownVariant {
                        value: s.to_owned(),
                        expected: &[$($name),+],
                    }),
                }
            }
        }

        impl TryFrom<String> for $ty {
            type Error = UnknownVariant;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }
    };
}

lowercase_enum!(SlowConsumerPolicy { Disconnect => "disconnect", Drop => "drop" });
lowercase_enum!(LogFormat { Pretty => "pretty", Json => "json" });
lowercase_enum!(ClusterBackend { None => "none", Redis => "redis" });
lowercase_enum!(AuthMode { None => "none", Jwt => "jwt" });
lowercase_enum!(ServicePowers { Native => "native", None => "none" });
