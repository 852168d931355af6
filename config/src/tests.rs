//! Loading, layering, error reporting and round-trip tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use config::{Config, File, FileFormat, Source, ValueKind};

use crate::*;

/// A TOML file in the temp dir, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(contents: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "herald-config-test-{}-{}.toml",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, contents).expect("write temp config");
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn env(vars: &[(&str, &str)]) -> Option<HashMap<String, String>> {
    Some(
        vars.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
}

fn overrides(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Loads with no file, an empty environment and the given overrides.
fn load_overrides(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    Settings::load(&Sources {
        file: None,
        env: env(&[]),
        overrides: overrides(pairs),
    })
}

fn load_env(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    Settings::load(&Sources {
        file: None,
        env: env(vars),
        overrides: Vec::new(),
    })
}

fn load_file(contents: &str) -> Result<Settings, ConfigError> {
    let file = TempFile::new(contents);
    Settings::load(&Sources {
        file: Some(file.path()),
        env: env(&[]),
        overrides: Vec::new(),
    })
}

/// Asserts `result` is an `Invalid` error for `key` whose message names the
/// key, and returns the rendered message.
#[track_caller]
fn assert_invalid(result: Result<Settings, ConfigError>, key: &str) -> String {
    let err = result.expect_err("expected an error");
    let text = err.to_string();
    assert!(
        matches!(&err, ConfigError::Invalid { key: k, .. } if k == key),
        "expected Invalid for {key}, got {err:?}"
    );
    assert!(text.contains(key), "message does not name {key}: {text}");
    text
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

// ---------------------------------------------------------------- defaults

#[test]
fn defaults_load_validate_and_match_the_documentation() {
    let s = Settings::defaults();
    s.validate().expect("defaults validate");

    let expected = Settings {
        server: ServerSettings {
            listen: "127.0.0.1:7400".parse().unwrap(),
            max_connections: 100_000,
            handshake_timeout: secs(10),
            heartbeat_interval: secs(15),
            heartbeat_timeout: secs(45),
            shutdown_grace: secs(10),
            message_timeout: secs(30),
            allowed_origins: Vec::new(),
            operator_listen: String::new(),
            operator_token: String::new(),
            operator_token_file: String::new(),
        },
        limits: LimitSettings {
            max_payload_bytes: 1_048_576,
            max_subscriptions_per_connection: 1024,
            max_rooms_per_connection: 256,
            max_pending_requests_per_connection: 1024,
            max_request_timeout: secs(60),
        },
        delivery: DeliverySettings {
            queue_capacity: 4096,
            slow_consumer: SlowConsumerPolicy::Disconnect,
            max_queued_bytes: 8 * 1024 * 1024,
            write_timeout: secs(10),
        },
        log: LogSettings {
            level: "info".to_owned(),
            format: LogFormat::Pretty,
        },
        cluster: ClusterSettings {
            backend: ClusterBackend::None,
            redis_url: "redis://127.0.0.1:6379".to_owned(),
            prefix: "herald".to_owned(),
            node_id: String::new(),
            heartbeat_interval: secs(1),
            node_ttl: secs(5),
            command_timeout: secs(2),
            queue_capacity: 65536,
        },
        socketio: SocketioSettings {
            enabled: true,
            path: "/socket.io/".to_owned(),
            ping_interval: secs(25),
            ping_timeout: secs(20),
            max_payload: 1_000_000,
            connect_timeout: secs(45),
            namespaces: Vec::new(),
            service_powers: ServicePowers::Native,
        },
        testing: TestingSettings {
            echo_endpoint: String::new(),
            engineio_echo_endpoint: String::new(),
        },
        rate_limits: RateLimitSettings {
            connections_per_ip_per_second: 0,
            connection_burst: 20,
            max_connections_per_ip: 0,
            max_tracked_ips: 200_000,
            messages_per_second: 0,
            message_burst: 200,
            max_rate_limited_messages: 100,
        },
        auth: AuthSettings {
            mode: AuthMode::None,
            algorithms: vec!["HS256".to_owned()],
            secret: String::new(),
            secret_file: String::new(),
            public_key_file: String::new(),
            jwks_file: String::new(),
            issuer: String::new(),
            audience: String::new(),
            leeway: secs(5),
            allow_anonymous: false,
            expiry_notice: secs(30),
            expiry_grace: secs(0),
            claim: "herald".to_owned(),
            anonymous: PermissionRules::default(),
        },
        tls: TlsSettings {
            cert_file: String::new(),
            key_file: String::new(),
            client_ca_file: String::new(),
            reload_interval: secs(5),
        },
        history: HistorySettings {
            namespaces: Vec::new(),
            replay_limit: 10_000,
            mid_window: secs(120),
            max_mids: 100_000,
        },
        admin: AdminSettings {
            enabled: false,
            token: String::new(),
            token_file: String::new(),
            password_hash: String::new(),
            username: "admin".into(),
            read_only: false,
            tail_rate: 100,
            socketio_namespace: "/admin".into(),
        },
    };
    assert_eq!(s, expected);
}

#[test]
fn load_without_file_env_or_overrides_equals_defaults() {
    assert_eq!(load_env(&[]).unwrap(), Settings::defaults());
}

/// Every key in herald.toml has a comment and names its environment
/// variable, so the documentation cannot drift from the key set.
#[test]
fn default_toml_documents_every_key() {
    let table: toml::Table = DEFAULT_TOML.parse().unwrap();
    let lines: Vec<&str> = DEFAULT_TOML.lines().collect();
    let mut count = 0;
    for (section, keys) in &table {
        let keys = keys.as_table().expect("top level holds only sections");
        for key in keys.keys() {
            count += 1;
            let dotted = format!("{section}.{key}");
            let env_line = format!("# Env: {}", env_var_name(&dotted));
            assert!(
                DEFAULT_TOML.contains(&env_line),
                "{dotted}: missing `{env_line}`"
            );
            let at = lines
                .iter()
                .position(|l| l.starts_with(&format!("{key} = ")))
                .unwrap_or_else(|| panic!("{dotted} not found"));
            assert!(
                at > 0 && lines[at - 1].starts_with("# "),
                "{dotted} has no comment right above it"
            );
        }
    }
    assert_eq!(count, 77, "a key was added or removed: update this test");
}

#[test]
fn env_var_names() {
    assert_eq!(env_var_name("server.listen"), "HERALD__SERVER__LISTEN");
    assert_eq!(
        env_var_name("limits.max_payload_bytes"),
        "HERALD__LIMITS__MAX_PAYLOAD_BYTES"
    );
}

// -------------------------------------------------------------- precedence

#[test]
fn one_key_through_all_four_layers() {
    let key = "server.max_connections";
    let file = TempFile::new("[server]\nmax_connections = 10\n");
    let env_var = [("HERALD__SERVER__MAX_CONNECTIONS", "20")];

    let mut sources = Sources {
        file: None,
        env: env(&[]),
        overrides: Vec::new(),
    };
    assert_eq!(
        Settings::load(&sources).unwrap().server.max_connections,
        100_000
    );

    sources.file = Some(file.path());
    assert_eq!(Settings::load(&sources).unwrap().server.max_connections, 10);

    sources.env = env(&env_var);
    assert_eq!(Settings::load(&sources).unwrap().server.max_connections, 20);

    sources.overrides = overrides(&[(key, "30")]);
    assert_eq!(Settings::load(&sources).unwrap().server.max_connections, 30);

    // Each layer only replaces the keys it sets.
    let s = Settings::load(&sources).unwrap();
    assert_eq!(s.limits, Settings::defaults().limits);
}

#[test]
fn file_sets_only_what_it_mentions() {
    let s = load_file(
        "[delivery]\nslow_consumer = \"drop\"\n[log]\nformat = \"json\"\nlevel = \"warn,herald_broker=debug\"\n",
    )
    .unwrap();
    assert_eq!(s.delivery.slow_consumer, SlowConsumerPolicy::Drop);
    assert_eq!(s.delivery.queue_capacity, 4096);
    assert_eq!(s.log.format, LogFormat::Json);
    assert_eq!(s.log.level, "warn,herald_broker=debug");
    assert_eq!(s.server, Settings::defaults().server);
}

#[test]
fn env_strings_numbers_and_durations() {
    let s = load_env(&[
        ("HERALD__SERVER__LISTEN", "0.0.0.0:7400"),
        ("HERALD__LOG__LEVEL", "debug"),
        ("HERALD__LOG__FORMAT", "json"),
        ("HERALD__LIMITS__MAX_PAYLOAD_BYTES", "2048"),
        ("HERALD__SERVER__HANDSHAKE_TIMEOUT", "500ms"),
        ("HERALD__SERVER__HEARTBEAT_TIMEOUT", "1m"),
        ("HERALD__DELIVERY__SLOW_CONSUMER", "drop"),
    ])
    .unwrap();
    assert_eq!(
        s.server.listen,
        "0.0.0.0:7400".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(s.log.level, "debug");
    assert_eq!(s.log.format, LogFormat::Json);
    assert_eq!(s.limits.max_payload_bytes, 2048);
    assert_eq!(s.server.handshake_timeout, Duration::from_millis(500));
    assert_eq!(s.server.heartbeat_timeout, secs(60));
    assert_eq!(s.delivery.slow_consumer, SlowConsumerPolicy::Drop);
}

#[test]
fn env_ipv6_listen_address() {
    let s = load_env(&[("HERALD__SERVER__LISTEN", "[::1]:9000")]).unwrap();
    assert_eq!(s.server.listen, "[::1]:9000".parse::<SocketAddr>().unwrap());
}

#[test]
fn unrelated_env_vars_are_ignored() {
    let s = load_env(&[
        ("HERALD_URL", "ws://example.invalid"),
        ("HERALD", "x"),
        ("HERALD_SERVER__LISTEN", "nonsense"),
        ("PATH", "/bin"),
        ("SERVER__LISTEN", "nonsense"),
    ])
    .unwrap();
    assert_eq!(s, Settings::defaults());
}

#[test]
fn overrides_are_converted_from_strings() {
    let s = load_overrides(&[
        ("server.listen", "127.0.0.1:0"),
        ("limits.max_payload_bytes", "4096"),
        ("server.heartbeat_interval", "1m"),
        ("server.heartbeat_timeout", "3m"),
        ("delivery.slow_consumer", "drop"),
    ])
    .unwrap();
    assert_eq!(s.server.listen.port(), 0);
    assert_eq!(s.limits.max_payload_bytes, 4096);
    assert_eq!(s.server.heartbeat_interval, secs(60));
    assert_eq!(s.server.heartbeat_timeout, secs(180));
    assert_eq!(s.delivery.slow_consumer, SlowConsumerPolicy::Drop);
}

// --------------------------------------------------------------- validation

#[test]
fn each_validation_rule_names_its_key() {
    let cases: &[(&str, &str, &str)] = &[
        ("server.max_connections", "0", "at least 1"),
        ("server.handshake_timeout", "0s", "greater than zero"),
        ("server.heartbeat_interval", "0s", "greater than zero"),
        ("server.heartbeat_timeout", "0s", "greater than zero"),
        (
            "server.heartbeat_timeout",
            "15s",
            "server.heartbeat_interval",
        ),
        (
            "server.heartbeat_timeout",
            "5s",
            "server.heartbeat_interval",
        ),
        ("limits.max_payload_bytes", "0", "between 1 and 67108864"),
        (
            "limits.max_payload_bytes",
            "67108865",
            "between 1 and 67108864",
        ),
        ("limits.max_subscriptions_per_connection", "0", "at least 1"),
        ("limits.max_rooms_per_connection", "0", "at least 1"),
        (
            "limits.max_pending_requests_per_connection",
            "0",
            "at least 1",
        ),
        ("limits.max_request_timeout", "0s", "greater than zero"),
        ("delivery.queue_capacity", "0", "between 1 and 1000000"),
        ("delivery.max_queued_bytes", "10", "between 1024 and"),
        ("delivery.write_timeout", "0s", "greater than zero"),
        ("server.message_timeout", "0s", "greater than zero"),
        ("testing.echo_endpoint", "echo", "absolute path"),
        ("testing.echo_endpoint", "/v1/ws", "already serves"),
        (
            "delivery.queue_capacity",
            "1000001",
            "between 1 and 1000000",
        ),
        ("delivery.slow_consumer", "bogus", "disconnect, drop"),
        ("delivery.slow_consumer", "Drop", "disconnect, drop"),
        ("log.level", "verbose", "unknown level"),
        ("log.level", "", "must not be empty"),
        ("log.level", "info,herald=loud", "unknown level"),
        ("log.format", "xml", "pretty, json"),
        ("server.listen", "localhost", "socket address"),
        ("server.handshake_timeout", "10", "time unit needed"),
        ("server.shutdown_grace", "soon", "invalid duration"),
        ("cluster.backend", "etcd", "none, redis"),
        ("cluster.redis_url", "http://x", "not a Redis URL"),
        ("cluster.redis_url", "redis://", "names no host"),
        ("cluster.prefix", "", "is not valid"),
        ("cluster.prefix", "a:b", "is not valid"),
        ("cluster.node_id", "node 1", "is not valid"),
        ("cluster.heartbeat_interval", "0s", "greater than zero"),
        ("cluster.node_ttl", "1s", "cluster.heartbeat_interval"),
        ("cluster.command_timeout", "0s", "greater than zero"),
        ("cluster.queue_capacity", "0", "between 1 and 1000000"),
        ("socketio.enabled", "maybe", "boolean"),
        ("socketio.path", "", "absolute path"),
        ("socketio.path", "socket.io", "absolute path"),
        ("socketio.path", "/", "every path"),
        ("socketio.path", "/healthz/", "already serves"),
        ("socketio.path", "/v1/emit/x", "already serves"),
        ("socketio.path", "/sio?x=1", "absolute path"),
        ("socketio.ping_interval", "0s", "greater than zero"),
        ("socketio.ping_timeout", "0s", "greater than zero"),
        ("socketio.ping_timeout", "25h", "at most"),
        ("socketio.max_payload", "0", "between 1 and 67108864"),
        ("socketio.max_payload", "67108865", "between 1 and 67108864"),
        ("socketio.connect_timeout", "0s", "greater than zero"),
        ("server.allowed_origins", "example.com", "not an origin"),
        (
            "server.allowed_origins",
            "https://a.example/",
            "not an origin",
        ),
        ("server.allowed_origins", "https://", "not an origin"),
        (
            "server.operator_listen",
            "localhost",
            "not a socket address",
        ),
        (
            "server.operator_listen",
            "127.0.0.1:7400",
            "already server.listen",
        ),
        ("server.operator_token", "short", "at least 16"),
        ("admin.token", "short", "at least 16"),
        ("admin.password_hash", "plain", "argon2 PHC"),
        ("admin.username", "a:b", "must not contain"),
        ("admin.tail_rate", "0", "between 1 and 10000"),
        ("admin.tail_rate", "10001", "between 1 and 10000"),
        ("admin.socketio_namespace", "admin", "namespace"),
        ("admin.socketio_namespace", "/", "default namespace"),
        (
            "server.operator_token",
            "has spaces in the token",
            "at least 16",
        ),
        (
            "rate_limits.connections_per_ip_per_second",
            "-1",
            "non-negative integer",
        ),
        (
            "rate_limits.messages_per_second",
            "100000001",
            "between 0 (off) and 100000000",
        ),
        (
            "rate_limits.max_connections_per_ip",
            "1.5",
            "non-negative integer",
        ),
        ("rate_limits.connection_burst", "0", "between 1 and"),
        ("rate_limits.message_burst", "0", "between 1 and"),
        ("rate_limits.max_tracked_ips", "0", "between 1 and"),
        (
            "rate_limits.max_rate_limited_messages",
            "100000001",
            "between 0 (off)",
        ),
        (
            "socketio.namespaces",
            "chat",
            "not a valid Herald namespace",
        ),
        (
            "socketio.namespaces",
            "/, /a b",
            "not a valid Herald namespace",
        ),
        ("socketio.service_powers", "all", "native, none"),
        (
            "testing.engineio_echo_endpoint",
            "engine.io",
            "absolute path",
        ),
        (
            "testing.engineio_echo_endpoint",
            "/metrics",
            "already serves",
        ),
        (
            "testing.engineio_echo_endpoint",
            "/socket.io",
            "socketio.path",
        ),
        ("tls.cert_file", "/etc/herald/cert.pem", "tls.key_file"),
        ("tls.key_file", "/etc/herald/key.pem", "tls.cert_file"),
        ("tls.client_ca_file", "/etc/herald/ca.pem", "tls.cert_file"),
        ("tls.reload_interval", "often", "invalid duration"),
    ];
    for (key, value, expected) in cases {
        let text = assert_invalid(load_overrides(&[(key, value)]), key);
        assert!(
            text.contains(expected),
            "{key}={value:?}: {text:?} lacks {expected:?}"
        );
    }
}

#[test]
fn boundary_values_are_accepted() {
    let s = load_overrides(&[
        ("server.max_connections", "1"),
        ("limits.max_payload_bytes", "67108864"),
        ("delivery.queue_capacity", "1000000"),
        ("server.heartbeat_interval", "44s"),
        ("server.shutdown_grace", "0s"),
        ("log.level", "OFF"),
    ])
    .unwrap();
    assert_eq!(s.limits.max_payload_bytes, MAX_PAYLOAD_BYTES_LIMIT);
    assert_eq!(s.server.shutdown_grace, Duration::ZERO);
}

#[test]
fn socketio_lists_come_from_arrays_or_comma_separated_strings() {
    let s = load_file(
        "[server]\nallowed_origins = [\"*\"]\n[socketio]\nnamespaces = [\"/\", \"/custom\", \"/chat\"]\n",
    )
    .unwrap();
    assert_eq!(s.server.allowed_origins, vec!["*"]);
    assert_eq!(s.socketio.namespaces, vec!["/", "/custom", "/chat"]);
    let s = load_env(&[
        (
            "HERALD__SERVER__ALLOWED_ORIGINS",
            "https://a.example, http://127.0.0.1:8080",
        ),
        ("HERALD__SOCKETIO__NAMESPACES", "/orders"),
        ("HERALD__SOCKETIO__PING_INTERVAL", "300ms"),
        ("HERALD__SOCKETIO__ENABLED", "false"),
    ])
    .unwrap();
    assert_eq!(
        s.server.allowed_origins,
        vec!["https://a.example", "http://127.0.0.1:8080"]
    );
    assert_eq!(s.socketio.namespaces, vec!["/orders"]);
    assert_eq!(s.socketio.ping_interval, Duration::from_millis(300));
    assert!(!s.socketio.enabled);
    let s = load_overrides(&[
        ("socketio.namespaces", ""),
        ("socketio.service_powers", "none"),
        ("testing.engineio_echo_endpoint", "/engine.io/"),
    ])
    .unwrap();
    assert!(s.socketio.namespaces.is_empty());
    assert_eq!(s.socketio.service_powers, ServicePowers::None);
    assert_eq!(s.testing.engineio_echo_endpoint, "/engine.io/");
    // The echo endpoints may not share a path.
    assert_invalid(
        load_overrides(&[
            ("testing.echo_endpoint", "/echo"),
            ("testing.engineio_echo_endpoint", "/echo/"),
        ]),
        "testing.engineio_echo_endpoint",
    );
    assert_invalid(
        load_overrides(&[("testing.echo_endpoint", "/socket.io")]),
        "socketio.path",
    );
}

#[test]
fn validate_checks_a_hand_built_value() {
    let mut s = Settings::defaults();
    s.limits.max_payload_bytes = 0;
    let err = s.validate().unwrap_err();
    assert_eq!(err.key(), Some("limits.max_payload_bytes"));
}

// ------------------------------------------------------------ unknown keys

#[test]
fn unknown_key_in_file_is_named() {
    let text = assert_invalid(
        load_file("[server]\nlisen = \"127.0.0.1:1\"\n"),
        "server.lisen",
    );
    assert!(text.contains("unknown"), "{text}");
    assert!(text.contains("listen"), "should list known keys: {text}");
}

#[test]
fn unknown_section_in_file_is_named() {
    let text = assert_invalid(load_file("[bogus]\nx = 1\n"), "bogus");
    assert!(text.contains("unknown section"), "{text}");
}

#[test]
fn unknown_key_in_env_is_named_with_its_variable() {
    let text = assert_invalid(load_env(&[("HERALD__SERVER__BOGUS", "1")]), "server.bogus");
    assert!(text.contains("unknown"), "{text}");
    assert!(text.contains("HERALD__SERVER__BOGUS"), "{text}");
}

#[test]
fn unknown_override_key_is_named() {
    let text = assert_invalid(load_overrides(&[("log.colour", "yes")]), "log.colour");
    assert!(text.contains("unknown"), "{text}");
}

#[test]
fn malformed_override_key_is_named() {
    assert_invalid(load_overrides(&[("server..listen", "x")]), "server..listen");
}

#[test]
fn section_set_to_a_value_is_named() {
    let text = assert_invalid(load_env(&[("HERALD__SERVER", "5")]), "server");
    assert!(text.contains("HERALD__SERVER"), "{text}");
    assert_invalid(load_file("server = 5\n"), "server");
    assert_invalid(load_file("[server.listen]\nport = 1\n"), "server.listen");
}

/// The serde-level `deny_unknown_fields` backstop names the full key too
/// (the `config` crate reports only the bare field name there).
#[test]
fn deny_unknown_fields_error_is_mapped_to_the_dotted_key() {
    let layered = Config::builder()
        .add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml))
        .add_source(File::from_str("[server]\nlisen = 1\n", FileFormat::Toml))
        .build()
        .unwrap();
    let err = crate::load::deserialize(layered).unwrap_err();
    assert_eq!(err.key(), Some("server.lisen"), "{err}");
    assert!(err.to_string().contains("unknown key"), "{err}");

    let layered = Config::builder()
        .add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml))
        .add_source(File::from_str("[bogus]\n", FileFormat::Toml))
        .build()
        .unwrap();
    let err = crate::load::deserialize(layered).unwrap_err();
    assert_eq!(err.key(), Some("bogus"), "{err}");
}

// -------------------------------------------------------------- type errors

#[test]
fn wrong_type_in_env_names_the_key() {
    for value in ["abc", "1.5", "true", "-1", "99999999999999999999999"] {
        let text = assert_invalid(
            load_env(&[("HERALD__LIMITS__MAX_PAYLOAD_BYTES", value)]),
            "limits.max_payload_bytes",
        );
        assert!(text.contains("integer"), "{value}: {text}");
    }
}

#[test]
fn wrong_type_in_file_names_the_key() {
    assert_invalid(
        load_file("[server]\nmax_connections = \"many\"\n"),
        "server.max_connections",
    );
    assert_invalid(
        load_file("[server]\nmax_connections = 2.5\n"),
        "server.max_connections",
    );
    let text = assert_invalid(
        load_file("[server]\nheartbeat_interval = 15\n"),
        "server.heartbeat_interval",
    );
    assert!(text.contains("invalid duration \"15\""), "{text}");
    assert_invalid(load_file("[log]\nformat = 1\n"), "log.format");
    assert_invalid(load_file("[log]\nlevel = [\"info\"]\n"), "log.level");
}

// -------------------------------------------------------------------- files

#[test]
fn missing_file_names_the_path() {
    let path = std::env::temp_dir().join("herald-config-test-does-not-exist.toml");
    let err = Settings::load(&Sources {
        file: Some(&path),
        env: env(&[]),
        overrides: Vec::new(),
    })
    .unwrap_err();
    assert!(
        matches!(&err, ConfigError::File { path: p, .. } if p == &path),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn malformed_file_names_the_path() {
    let file = TempFile::new("[server\nlisten = \n");
    let err = Settings::load(&Sources {
        file: Some(file.path()),
        env: env(&[]),
        overrides: Vec::new(),
    })
    .unwrap_err();
    assert!(matches!(&err, ConfigError::File { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&file.path().display().to_string()),
        "{err}"
    );
}

#[test]
fn empty_file_changes_nothing() {
    assert_eq!(load_file("").unwrap(), Settings::defaults());
}

#[test]
fn the_moved_socketio_allowed_origins_names_its_new_key() {
    for result in [
        load_file("[socketio]\nallowed_origins = [\"*\"]\n"),
        load_env(&[("HERALD__SOCKETIO__ALLOWED_ORIGINS", "*")]),
        load_overrides(&[("socketio.allowed_origins", "*")]),
    ] {
        let text = assert_invalid(result, "socketio.allowed_origins");
        assert!(text.contains("server.allowed_origins"), "{text}");
    }
}

#[test]
fn the_operator_token_is_set_in_one_place_only() {
    let text = assert_invalid(
        load_overrides(&[
            ("server.operator_token", "0123456789abcdef"),
            ("server.operator_token_file", "/run/secrets/token"),
        ]),
        "server.operator_token_file",
    );
    assert!(text.contains("not both"), "{text}");
    let s = load_overrides(&[
        ("server.operator_token", "0123456789abcdef"),
        ("server.operator_listen", "[::1]:9400"),
    ])
    .unwrap();
    assert_eq!(
        s.server.operator_addr(),
        Some("[::1]:9400".parse().unwrap())
    );
    assert_eq!(Settings::defaults().server.operator_addr(), None);
}

#[test]
fn rate_limits_accept_zero_as_off_and_their_bounds() {
    let s = load_env(&[
        ("HERALD__RATE_LIMITS__CONNECTIONS_PER_IP_PER_SECOND", "10"),
        ("HERALD__RATE_LIMITS__CONNECTION_BURST", "1"),
        ("HERALD__RATE_LIMITS__MAX_CONNECTIONS_PER_IP", "100000000"),
        ("HERALD__RATE_LIMITS__MESSAGES_PER_SECOND", "0"),
        ("HERALD__RATE_LIMITS__MAX_RATE_LIMITED_MESSAGES", "0"),
    ])
    .unwrap();
    assert_eq!(s.rate_limits.connections_per_ip_per_second, 10);
    assert_eq!(s.rate_limits.connection_burst, 1);
    assert_eq!(s.rate_limits.max_connections_per_ip, 100_000_000);
    assert_eq!(s.rate_limits.max_rate_limited_messages, 0);
}

// ---------------------------------------------------------------- to_toml

#[test]
fn to_toml_round_trips_through_load() {
    let custom = load_overrides(&[
        ("server.listen", "[::1]:9000"),
        ("server.handshake_timeout", "1500ms"),
        ("server.heartbeat_timeout", "1h 30m"),
        ("limits.max_payload_bytes", "2048"),
        ("delivery.slow_consumer", "drop"),
        ("log.level", "warn,herald_broker::session=trace"),
        ("log.format", "json"),
        ("server.allowed_origins", "*"),
        ("server.operator_listen", "127.0.0.1:0"),
        ("server.operator_token_file", "/run/secrets/herald-metrics"),
        ("rate_limits.messages_per_second", "50"),
        ("rate_limits.max_connections_per_ip", "10"),
        ("socketio.namespaces", "/, /chat"),
        ("socketio.ping_interval", "300ms"),
    ])
    .unwrap();
    for settings in [Settings::defaults(), custom] {
        let text = settings.to_toml();
        let back = load_file(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(back, settings, "{text}");
    }
}

#[test]
fn to_toml_prints_humantime_durations_and_lowercase_enums() {
    let text = Settings::defaults().to_toml();
    assert!(text.contains("handshake_timeout = \"10s\""), "{text}");
    assert!(text.contains("max_request_timeout = \"1m\""), "{text}");
    assert!(text.contains("slow_consumer = \"disconnect\""), "{text}");
    assert!(text.contains("format = \"pretty\""), "{text}");
    assert!(text.contains("listen = \"127.0.0.1:7400\""), "{text}");
}

/// to_toml covers every key the defaults define, and no others.
#[test]
fn to_toml_has_the_same_keys_as_the_defaults() {
    fn keys(text: &str) -> Vec<String> {
        let cfg = Config::builder()
            .add_source(File::from_str(text, FileFormat::Toml))
            .build()
            .unwrap();
        let mut out = Vec::new();
        for (section, value) in cfg.collect().unwrap() {
            let ValueKind::Table(table) = value.kind else {
                panic!("{section} is not a section");
            };
            out.extend(table.into_keys().map(|k| format!("{section}.{k}")));
        }
        out.sort();
        out
    }
    assert_eq!(keys(&Settings::defaults().to_toml()), keys(DEFAULT_TOML));
}

// -------------------------------------------------------------------- enums

#[test]
fn enums_parse_and_print_their_config_spelling() {
    assert_eq!(
        "drop".parse::<SlowConsumerPolicy>(),
        Ok(SlowConsumerPolicy::Drop)
    );
    assert_eq!(SlowConsumerPolicy::Disconnect.to_string(), "disconnect");
    assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
    assert_eq!(LogFormat::Pretty.as_str(), "pretty");
    let err = "JSON".parse::<LogFormat>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown value \"JSON\", expected one of: pretty, json"
    );
}

// --------------------------------------------------------------------- auth

#[test]
fn auth_jwt_needs_a_matching_key_source() {
    let jwt = |extra: &[(&str, &str)]| {
        let mut pairs = vec![("auth.mode", "jwt")];
        pairs.extend_from_slice(extra);
        load_overrides(&pairs)
    };
    assert_invalid(jwt(&[]), "auth.secret");
    assert!(jwt(&[("auth.secret", "s3cret")]).is_ok());
    assert_invalid(
        jwt(&[("auth.secret", "a"), ("auth.secret_file", "/x")]),
        "auth.secret_file",
    );
    assert_invalid(
        jwt(&[("auth.secret", "a"), ("auth.public_key_file", "/k.pem")]),
        "auth.public_key_file",
    );
    assert_invalid(jwt(&[("auth.algorithms", "EdDSA")]), "auth.public_key_file");
    assert!(
        jwt(&[
            ("auth.algorithms", "EdDSA"),
            ("auth.public_key_file", "/k.pem")
        ])
        .is_ok()
    );
    assert!(
        jwt(&[
            ("auth.algorithms", "RS256,ES256"),
            ("auth.jwks_file", "/k.json")
        ])
        .is_ok()
    );
    assert_invalid(
        jwt(&[
            ("auth.algorithms", "RS256"),
            ("auth.public_key_file", "/k.pem"),
            ("auth.jwks_file", "/k.json"),
        ]),
        "auth.jwks_file",
    );
    assert_invalid(
        jwt(&[
            ("auth.algorithms", "RS256"),
            ("auth.public_key_file", "/k.pem"),
            ("auth.secret", "x"),
        ]),
        "auth.secret",
    );
    let mixed = assert_invalid(
        jwt(&[("auth.algorithms", "HS256,RS256"), ("auth.secret", "x")]),
        "auth.algorithms",
    );
    assert!(mixed.contains("mixes"), "{mixed}");
    assert_invalid(
        jwt(&[("auth.algorithms", ""), ("auth.secret", "x")]),
        "auth.algorithms",
    );
}

#[test]
fn auth_algorithms_refuse_none_and_unknown_names_in_any_mode() {
    for bad in ["none", "NONE", "HS257", "hs256"] {
        let message = assert_invalid(
            load_overrides(&[("auth.algorithms", bad)]),
            "auth.algorithms",
        );
        assert!(message.contains(bad), "{message}");
    }
    let message = assert_invalid(
        load_overrides(&[("auth.algorithms", "none")]),
        "auth.algorithms",
    );
    assert!(message.contains("never accepted"), "{message}");
}

#[test]
fn auth_durations_and_claim_are_bounded() {
    assert_invalid(load_overrides(&[("auth.leeway", "2h")]), "auth.leeway");
    assert_invalid(
        load_overrides(&[("auth.expiry_grace", "2h")]),
        "auth.expiry_grace",
    );
    assert_invalid(load_overrides(&[("auth.claim", "")]), "auth.claim");
    assert_invalid(load_overrides(&[("auth.claim", "a.b")]), "auth.claim");
    assert_invalid(load_overrides(&[("auth.mode", "basic")]), "auth.mode");
}

#[test]
fn auth_anonymous_permissions_come_from_the_file() {
    let s = load_file(
        r#"
[auth]
mode = "jwt"
secret = "x"
allow_anonymous = true

[auth.anonymous.ns."/public".subscribe]
allow = ["news.>"]
deny = ["news.secret"]

[auth.anonymous.ns."*".join]
allow = ["lobby"]
"#,
    )
    .unwrap();
    let public = &s.auth.anonymous.ns["/public"];
    assert_eq!(public.subscribe.allow, ["news.>"]);
    assert_eq!(public.subscribe.deny, ["news.secret"]);
    assert!(public.publish.allow.is_empty());
    assert!(!public.powers);
    assert_eq!(s.auth.anonymous.ns["*"].join.allow, ["lobby"]);
    let back = load_file(&s.to_toml()).unwrap();
    assert_eq!(back, s);

    let typo = load_file(
        r#"
[auth.anonymous.ns."/public".subscribe]
alow = ["news.>"]
"#,
    );
    let message = typo.expect_err("unknown field").to_string();
    assert!(message.contains("alow"), "{message}");
}

#[test]
fn tls_is_off_by_default_and_on_with_a_certificate_and_key() {
    assert!(!load_overrides(&[]).expect("defaults").tls.enabled());
    let s = load_env(&[
        ("HERALD__TLS__CERT_FILE", "/etc/herald/cert.pem"),
        ("HERALD__TLS__KEY_FILE", "/etc/herald/key.pem"),
        ("HERALD__TLS__CLIENT_CA_FILE", "/etc/herald/ca.pem"),
        ("HERALD__TLS__RELOAD_INTERVAL", "0s"),
    ])
    .expect("tls settings load");
    assert!(s.tls.enabled());
    assert_eq!(s.tls.client_ca_file, "/etc/herald/ca.pem");
    assert_eq!(s.tls.reload_interval, Duration::ZERO);
}

#[test]
fn history_is_off_by_default_and_loads_from_a_file() {
    assert!(Settings::defaults().history.namespaces.is_empty());
    let s = load_file(
        "[history]\nreplay_limit = 50\n[[history.namespaces]]\nnamespace = \"/chat\"\n\
         size = 100\nttl = \"1m\"\n[[history.namespaces]]\nnamespace = \"/feeds/>\"\n\
         size = 5\nttl = \"10s\"\n",
    )
    .unwrap();
    assert_eq!(s.history.replay_limit, 50);
    assert_eq!(s.history.namespaces.len(), 2);
    assert_eq!(s.history.namespaces[1].namespace, "/feeds/>");
    assert_eq!(s.history.namespaces[1].ttl, Duration::from_secs(10));
}

#[test]
fn bad_history_settings_name_their_key() {
    let entry = |ns: &str, size: usize, ttl: &str| {
        format!("[[history.namespaces]]\nnamespace = \"{ns}\"\nsize = {size}\nttl = \"{ttl}\"\n")
    };
    let text = assert_invalid(load_file(&entry("chat", 1, "1s")), "history.namespaces");
    assert!(text.contains("chat"), "{text}");
    assert_invalid(
        load_file(&entry("/chat", 0, "1s")),
        "history.namespaces (/chat).size",
    );
    assert_invalid(
        load_file(&entry("/chat", 1, "0s")),
        "history.namespaces (/chat).ttl",
    );
    assert_invalid(
        load_overrides(&[("history.replay_limit", "0")]),
        "history.replay_limit",
    );
    assert_invalid(
        load_overrides(&[("history.max_mids", "0")]),
        "history.max_mids",
    );
    assert_invalid(
        load_overrides(&[("history.mid_window", "0s")]),
        "history.mid_window",
    );
}

#[test]
fn the_admin_console_needs_a_credential_under_jwt() {
    let jwt = [
        ("auth.mode", "jwt"),
        ("auth.secret", "0123456789abcdef0123456789abcdef"),
        ("admin.enabled", "true"),
    ];
    let err = load_overrides(&jwt).unwrap_err();
    assert_eq!(err.key(), Some("admin.token"), "{err}");
    assert!(err.to_string().contains("needs a credential"), "{err}");
    let mut with_token = jwt.to_vec();
    with_token.push(("admin.token", "0123456789abcdef-admin"));
    let settings = load_overrides(&with_token).unwrap();
    assert!(settings.admin.enabled && settings.admin.has_credential());
    let both = [
        ("admin.token", "0123456789abcdef-admin"),
        ("admin.token_file", "/tmp/x"),
    ];
    assert_eq!(
        load_overrides(&both).unwrap_err().key(),
        Some("admin.token_file")
    );
    let defaults = Settings::defaults().admin;
    assert!(!defaults.enabled && !defaults.read_only);
    assert_eq!(defaults.socketio_namespace, "/admin");
}
