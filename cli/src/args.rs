//! The command line: [`Cli`], its global options ([`GlobalArgs`]) and one
//! [`Command`] per subcommand, parsed with clap.
//!
//! To add a subcommand, add a variant to [`Command`] with its own `Args`
//! struct and a match arm in [`crate::run`].

use clap::{Args, Parser, Subcommand};

/// The broker's default address (its default listen address and endpoint).
pub const DEFAULT_URL: &str = "ws://127.0.0.1:7400/v1/ws";

/// The exit code table shown by `herald --help`; the codes are those of
/// [`crate::error::exit`].
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  other error (e.g. the broker refused the operation)
  2  usage: bad arguments, invalid JSON, invalid name or URL
  3  broker unreachable, or the connection was lost
  4  request: no responders
  5  request: timed out waiting for the reply
  6  request: the responder answered with an error
  7  the broker refused the token (unauthorized), or it expired
(bench: 2 for bad options, 3 for an unreachable broker, 1 otherwise)

Errors are one line on stderr: `herald: error: ...`.";

/// `herald`: talk to a Herald broker from the command line.
#[derive(Debug, Parser)]
#[command(
    name = "herald",
    version,
    about = "Publish, subscribe and make requests against a Herald broker",
    long_about = "Publish, subscribe and make requests against a Herald broker.\n\n\
                  Payloads are given and shown as JSON; on the wire they are MessagePack.",
    after_help = EXIT_CODES_HELP,
    propagate_version = true
)]
pub struct Cli {
    /// Options every subcommand takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Broker URL: `ws://HOST:PORT` or `wss://HOST:PORT` (TLS; the endpoint
    /// path /v1/ws is added) or the full endpoint URL.
    #[arg(
        long,
        global = true,
        env = "HERALD_URL",
        default_value = DEFAULT_URL,
        hide_env_values = true,
        value_name = "URL"
    )]
    pub url: String,
    /// How long to try to connect before giving up (e.g. 500ms, 5s).
    #[arg(long, global = true, default_value = "5s", value_name = "DURATION")]
    pub connect_timeout: humantime::Duration,
    /// For wss:// URLs: a PEM file of CA certificates to trust besides the
    /// system's roots (a private or test CA).
    #[arg(long, global = true, env = "HERALD_CA_FILE", value_name = "PEM")]
    pub ca_file: Option<std::path::PathBuf>,
    /// For wss:// brokers that require client certificates (mutual TLS):
    /// this certificate chain (PEM); needs --client-key.
    #[arg(
        long,
        global = true,
        env = "HERALD_CLIENT_CERT",
        value_name = "PEM",
        requires = "client_key"
    )]
    pub client_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of --client-cert.
    #[arg(
        long,
        global = true,
        env = "HERALD_CLIENT_KEY",
        value_name = "PEM",
        requires = "client_cert"
    )]
    pub client_key: Option<std::path::PathBuf>,
    /// The token (a JWT) to present to a broker that checks tokens
    /// (`auth.mode = "jwt"`). Prefer the HERALD_TOKEN environment variable:
    /// a flag is visible to other users in the process list. Never printed.
    /// Not used by `bench`.
    #[arg(
        long,
        global = true,
        env = "HERALD_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<Token>,
}

/// A token from `--token` / `HERALD_TOKEN`: its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// The token's text, to send to the broker.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl std::str::FromStr for Token {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Token, Self::Err> {
        Ok(Token(text.to_owned()))
    }
}

/// The subcommands. The first paragraph of each one's documentation is its
/// line in `herald --help`; the whole text is its `herald CMD --help`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Subscribe and print every matching event as one JSON line.
    ///
    /// Each event goes to stdout as one line,
    /// `{"namespace":"/orders","event":"order.created","payload":{"id":42}}`,
    /// with `"room":"R"` before the payload when it was emitted to a room.
    /// Lines are flushed one by one.
    ///
    /// A note `herald: subscribed ...` goes to stderr once the broker has
    /// acknowledged the subscription (and the rooms joined). Ctrl-C stops
    /// (exit 0); losing the connection to the broker exits with code 3.
    Sub(SubArgs),
    /// Publish one event (or several with --repeat).
    ///
    /// The JSON payload is encoded as MessagePack and emitted with a
    /// request for the broker's acknowledgement, which says how many
    /// receivers the event reached. Prints `published 1 event to 3
    /// receivers`, or with --repeat one line with the total, `published 5
    /// events to 15 receivers in total`.
    #[command(name = "pub")]
    Pub(PubArgs),
    /// Send a request and print the reply as JSON.
    ///
    /// The request goes to one responder of EVENT; its reply is printed on
    /// stdout as one JSON line.
    Request(RequestArgs),
    /// Answer requests by echoing their payload back.
    ///
    /// Every request for EVENT (a name or pattern) is answered with its own
    /// payload: an echo responder, for tests and demos. A note `herald:
    /// ready ...` goes to stderr once the broker has acknowledged the
    /// responder; nothing is printed on stdout. Ctrl-C stops (exit 0).
    Reply(ReplyArgs),
    /// Measure a broker: fanout, pairs, latency, conns or soak (like `nats bench`).
    ///
    /// Runs one workload against the broker at --url from a single core,
    /// with a progress bar, then prints a table (or --json) with delivered
    /// messages per second, latency percentiles and loss (always shown).
    /// With --server-pid of a local broker it also reports the broker's CPU
    /// and memory. `soak` instead holds a mixed load for --duration, prints
    /// a report line every --report-every and a summary, and exits 1 on any
    /// loss or error. See BENCHMARKS.md for the side-by-side comparison
    /// and the soak.
    Bench(Box<herald_loadgen::BenchArgs>),
    /// Inspect a broker through its admin API: connections, namespaces, the live tail.
    ///
    /// Needs `[admin] enabled = true` on the broker (PROTOCOL.md §26). The
    /// API is reached over HTTP at --admin-url (default: the host and port
    /// of --url), with the admin token of --admin-token /
    /// HERALD_ADMIN_TOKEN when the broker has one. Tables by default,
    /// `--json` for the API's JSON. `tail` prints one line per sampled
    /// event until Ctrl-C (or --count events).
    Admin(AdminArgs),
}

/// `herald sub`.
#[derive(Debug, Clone, Args)]
#[command(
    after_help = "Payloads as JSON: MessagePack binary is shown as an array of byte values, \
                  ext values as {\"$ext\":{\"type\":T,\"data\":[...]}}, map keys that are not \
                  strings as their JSON text, NaN and infinities as strings."
)]
pub struct SubArgs {
    /// Namespace, e.g. /orders (or / for the root namespace).
    pub namespace: String,
    /// Event name or pattern: `*` matches one token, `>` the rest
    /// (order.*, order.>).
    pub pattern: String,
    /// Join queue group GROUP: each event reaches one member of the group.
    #[arg(long, short, value_name = "GROUP")]
    pub queue: Option<String>,
    /// Also join room ROOM (repeatable), so events emitted to that room
    /// reach this subscriber. As everywhere in Herald, a room only filters
    /// emits aimed at it: events emitted to no room still arrive; the
    /// "room" field of each line tells them apart.
    #[arg(long, short, value_name = "ROOM")]
    pub room: Vec<String>,
    /// Exit after printing N events.
    #[arg(long, short = 'n', value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
}

/// `herald pub`.
#[derive(Debug, Clone, Args)]
pub struct PubArgs {
    /// Namespace, e.g. /orders.
    pub namespace: String,
    /// Event name, e.g. order.created (no wildcards).
    pub event: String,
    /// The payload as JSON, e.g. '{"id":42}' (any JSON value).
    pub json: String,
    /// Deliver only to the connections in room ROOM.
    #[arg(long, short, value_name = "ROOM")]
    pub room: Option<String>,
    /// Publish the event N times, one after the other.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub repeat: u64,
}

/// `herald request`.
#[derive(Debug, Clone, Args)]
#[command(
    after_help = "Exit codes: 0 reply printed, 4 no responders, 5 no reply in time, \
                  6 the responder answered with an error (see herald --help for all)."
)]
pub struct RequestArgs {
    /// Namespace, e.g. /svc.
    pub namespace: String,
    /// Event name of the request (no wildcards).
    pub event: String,
    /// The request payload as JSON.
    pub json: String,
    /// How long to wait for the reply (e.g. 500ms, 2s, 1m).
    #[arg(long, short, default_value = "2s", value_name = "DURATION")]
    pub timeout: humantime::Duration,
}

/// `herald reply`.
#[derive(Debug, Clone, Args)]
pub struct ReplyArgs {
    /// Namespace, e.g. /svc.
    pub namespace: String,
    /// Event name or pattern to answer.
    pub event: String,
    /// Answer as a member of queue group GROUP. (Each request already goes
    /// to exactly one responder; in protocol version 1 the group does not
    /// change which one.)
    #[arg(long, short, value_name = "GROUP")]
    pub queue: Option<String>,
    /// Exit after answering N requests.
    #[arg(long, short = 'n', value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    use crate::error::exit;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("herald").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_lists_every_exit_code() {
        for code in [
            exit::OK,
            exit::ERROR,
            exit::USAGE,
            exit::UNREACHABLE,
            exit::NO_RESPONDERS,
            exit::TIMEOUT,
            exit::ERROR_REPLY,
            exit::UNAUTHORIZED,
        ] {
            assert!(
                EXIT_CODES_HELP.contains(&format!("\n  {code}  ")),
                "exit code {code} is not documented"
            );
        }
    }

    #[test]
    fn sub_parses_its_options() {
        let cli = parse(&[
            "sub", "/o", "a.*", "--queue", "g", "--room", "eu", "--room", "us", "-n", "3",
        ])
        .expect("valid");
        let Command::Sub(sub) = cli.command else {
            panic!("expected sub, got {:?}", cli.command);
        };
        assert_eq!(
            (sub.namespace.as_str(), sub.pattern.as_str()),
            ("/o", "a.*")
        );
        assert_eq!(sub.queue.as_deref(), Some("g"));
        assert_eq!(sub.room, ["eu", "us"]);
        assert_eq!(sub.count, Some(3));
    }

    #[test]
    fn global_options_go_anywhere() {
        let cli = parse(&["pub", "/o", "a", "{}", "--url", "ws://h:1"]).expect("valid");
        assert_eq!(cli.global.url, "ws://h:1");
        let cli = parse(&["--connect-timeout", "250ms", "pub", "/o", "a", "1"]).expect("valid");
        assert_eq!(
            *cli.global.connect_timeout,
            std::time::Duration::from_millis(250)
        );
    }

    #[test]
    fn the_token_is_a_global_option_and_never_shown() {
        let cli = parse(&["sub", "/o", "a", "--token", "s3cret"]).expect("valid");
        assert_eq!(cli.global.token.as_ref().map(Token::expose), Some("s3cret"));
        assert!(!format!("{cli:?}").contains("s3cret"), "{cli:?}");
        let cli = parse(&["--token", "t", "pub", "/o", "a", "1"]).expect("valid");
        assert_eq!(cli.global.token.as_ref().map(Token::expose), Some("t"));
        // clap's --help hides HERALD_TOKEN's value.
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("HERALD_TOKEN"), "{help}");
    }

    #[test]
    fn durations_and_counts_are_checked() {
        let cli = parse(&["request", "/o", "a", "{}", "--timeout", "500ms"]).expect("valid");
        let Command::Request(request) = cli.command else {
            panic!("expected request");
        };
        assert_eq!(*request.timeout, std::time::Duration::from_millis(500));
        for bad in [
            &["request", "/o", "a", "{}", "--timeout", "soon"][..],
            &["sub", "/o", "a", "--count", "0"],
            &["sub", "/o", "a", "--count", "-1"],
            &["pub", "/o", "a", "{}", "--repeat", "0"],
            &["pub", "/o", "a"],
            &["bogus"],
        ] {
            let error = parse(bad).expect_err("refused");
            assert_eq!(error.exit_code(), i32::from(exit::USAGE), "{bad:?}");
        }
    }
}

/// `herald admin`: the admin API's options and subcommand.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The admin console's base URL, `http://HOST:PORT` (the broker's
    /// `server.operator_listen` when it has one); default: the host and
    /// port of --url.
    #[arg(long, env = "HERALD_ADMIN_URL", value_name = "URL")]
    pub admin_url: Option<String>,
    /// The admin token (`admin.token`). Prefer the HERALD_ADMIN_TOKEN
    /// environment variable. Never printed.
    #[arg(
        long,
        env = "HERALD_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub admin_token: Option<Token>,
    /// Print the API's JSON (one document; for `tail`, one line per
    /// message) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// What to show.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// The `herald admin` subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// This node's connections, with their queue depth and drops.
    Connections(AdminFilterArgs),
    /// Namespaces with their connections, subscriptions and rooms.
    Namespaces,
    /// The live event tail (sampled by the broker), one line per event.
    Tail(AdminTailArgs),
}

/// The filters of `herald admin connections`.
#[derive(Debug, Clone, Default, Args)]
pub struct AdminFilterArgs {
    /// Only connections subscribed in this namespace.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Only connections in this room.
    #[arg(long)]
    pub room: Option<String>,
    /// Only connections of this user (the token's `sub`).
    #[arg(long)]
    pub user: Option<String>,
    /// Only connections on this transport: websocket, socketio-websocket
    /// or socketio-polling.
    #[arg(long)]
    pub transport: Option<String>,
    /// Only connections whose client name contains this.
    #[arg(long)]
    pub client: Option<String>,
    /// At most this many connections (1 to 10000; the broker's default 500).
    #[arg(long)]
    pub limit: Option<usize>,
}

/// The options of `herald admin tail`.
#[derive(Debug, Clone, Default, Args)]
pub struct AdminTailArgs {
    /// Only events of this namespace.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Only events matching this pattern (`order.*`, `chat.>`).
    #[arg(long)]
    pub pattern: Option<String>,
    /// Stop after this many events.
    #[arg(long)]
    pub count: Option<u64>,
}
