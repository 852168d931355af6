//! The targets of the comparison, how each server is started, and why one
//! is skipped when it cannot be.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A server measured by `herald-bench compare`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum Target {
    /// The Herald broker daemon (`herald-broker`, release build).
    Herald,
    /// The Herald broker daemon with TLS (`[tls]`), measured over
    /// `wss://` by the same driver ([`crate::wss`]).
    HeraldWss,
    /// The Herald broker daemon checking tokens (`auth.mode = "jwt"`),
    /// every connection of the same driver presenting one
    /// ([`crate::auth`]).
    HeraldAuth,
    /// The Herald broker daemon with a history on the benchmark's
    /// namespace (`[[history.namespaces]]`), measured by the same driver
    /// ([`crate::history`]).
    HeraldHistory,
    /// The Herald broker daemon driven through the SDK, `herald-client`
    /// (typed handlers, fire-and-forget `emit`), compared with NATS driven
    /// through `async-nats` ([`crate::sdk`]).
    HeraldSdk,
    /// Two `herald-broker` nodes clustered over a `redis-server`: the
    /// publisher on one node, the subscribers on the other
    /// ([`crate::cluster`]; `fanout` only).
    HeraldCluster,
    /// The same two nodes with a history on the benchmark's namespace, kept
    /// in Redis ([`crate::cluster::HISTORY_TARGET`]; `fanout` only).
    HeraldClusterHistory,
    /// The Herald broker daemon's Socket.IO front end (`/socket.io/`),
    /// driven by the same Socket.IO client as socketioxide
    /// ([`crate::socketio_client::Dialect::Herald`]).
    HeraldSocketio,
    /// `nats-server` (Debian's package).
    Nats,
    /// `redis-server` (Debian's package), pub/sub.
    Redis,
    /// The socketioxide relay built into herald-bench.
    Socketioxide,
    /// The floor forwarder built into herald-bench.
    Floor,
}

impl Target {
    /// Every target, in the order results are shown.
    pub const ALL: [Target; 12] = [
        Target::Herald,
        Target::HeraldWss,
        Target::HeraldAuth,
        Target::HeraldHistory,
        Target::HeraldSdk,
        Target::HeraldCluster,
        Target::HeraldClusterHistory,
        Target::Nats,
        Target::Redis,
        Target::HeraldSocketio,
        Target::Socketioxide,
        Target::Floor,
    ];

    /// The target's name in results.
    pub fn name(self) -> &'static str {
        match self {
            Target::Herald => crate::HERALD,
            Target::HeraldWss => crate::wss::TARGET,
            Target::HeraldAuth => crate::auth::TARGET,
            Target::HeraldHistory => crate::history::TARGET,
            Target::HeraldSdk => crate::sdk::TARGET,
            Target::HeraldCluster => crate::cluster::TARGET,
            Target::HeraldClusterHistory => crate::cluster::HISTORY_TARGET,
            Target::HeraldSocketio => crate::socketio_client::HERALD_TARGET,
            Target::Nats => crate::nats::TARGET,
            Target::Redis => crate::redis_target::TARGET,
            Target::Socketioxide => crate::socketio_client::TARGET,
            Target::Floor => crate::floor_client::TARGET,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A server command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// The executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
}

impl Launch {
    /// The command line as one line of text, for the report.
    pub fn display(&self) -> String {
        let mut line = self.program.file_name().map_or_else(
            || self.program.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        for arg in &self.args {
            line.push(' ');
            if arg.is_empty() {
                line.push_str("''");
            } else {
                line.push_str(arg);
            }
        }
        line
    }
}

/// Where the servers' executables are.
#[derive(Debug, Clone)]
pub struct Programs {
    /// `herald-broker`, or why it is missing.
    pub herald: Result<PathBuf, String>,
    /// This executable (it serves the floor and the socketioxide relay).
    pub herald_bench: PathBuf,
    /// `nats-server`, if installed.
    pub nats: Option<PathBuf>,
    /// `redis-server`, if installed.
    pub redis: Option<PathBuf>,
}

impl Programs {
    /// Finds the peers on `PATH` (and in the usual system directories).
    pub fn find(herald: Result<PathBuf, String>, herald_bench: PathBuf) -> Programs {
        Programs {
            herald,
            herald_bench,
            nats: find_program("nats-server"),
            redis: find_program("redis-server"),
        }
    }

    /// The command line that starts `target` listening on `addr`, with
    /// `extra` broker settings (`key=value`, Herald only); or why it cannot
    /// be started, with the command that installs it.
    ///
    /// For [`Target::HeraldCluster`] it is the command line of one node
    /// (`extra` carrying its cluster settings, see
    /// [`crate::cluster::ClusterLaunch`]), refused when `redis-server`,
    /// which the cluster needs, is not installed. [`Target::HeraldSocketio`]
    /// is the broker with Engine.IO heartbeats as rare as the socketioxide
    /// relay's ([`crate::socketio_relay::HEARTBEAT`]): publishers and idle
    /// sockets do not read while measuring, so they would miss pings.
    pub fn launch(
        &self,
        target: Target,
        addr: SocketAddr,
        extra: &[String],
    ) -> Result<Launch, String> {
        let port = addr.port().to_string();
        let ip = addr.ip().to_string();
        let args = |args: &[&str]| args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();
        match target {
            Target::Herald
            | Target::HeraldWss
            | Target::HeraldAuth
            | Target::HeraldHistory
            | Target::HeraldSdk
            | Target::HeraldCluster
            | Target::HeraldClusterHistory
            | Target::HeraldSocketio => {
                let clustered =
                    matches!(target, Target::HeraldCluster | Target::HeraldClusterHistory);
                if clustered && self.redis.is_none() {
                    return Err(missing("redis-server"));
                }
                let program = self.herald.clone()?;
                let mut args = args(&["--listen", &addr.to_string(), "--log-level", "warn"]);
                if matches!(target, Target::HeraldHistory | Target::HeraldClusterHistory) {
                    args.extend(crate::history::args()?);
                }
                let heartbeat = crate::socketio_relay::HEARTBEAT.as_secs();
                let socketio = [
                    format!("socketio.ping_interval={heartbeat}s"),
                    format!("socketio.ping_timeout={heartbeat}s"),
                ];
                let own = match target {
                    Target::HeraldWss => crate::wss::settings()?,
                    Target::HeraldAuth => crate::auth::settings()?,
                    _ => Vec::new(),
                };
                let socketio = if target == Target::HeraldSocketio {
                    &socketio[..]
                } else {
                    &own[..]
                };
                for setting in socketio.iter().chain(extra) {
                    args.push("--set".to_owned());
                    args.push(setting.clone());
                }
                Ok(Launch { program, args })
            }
            Target::Nats => Ok(Launch {
                program: self.nats.clone().ok_or_else(|| missing("nats-server"))?,
                args: args(&["-a", &ip, "-p", &port]),
            }),
            Target::Redis => Ok(Launch {
                program: self.redis.clone().ok_or_else(|| missing("redis-server"))?,
                args: args(&[
                    "--bind",
                    &ip,
                    "--port",
                    &port,
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--maxclients",
                    "15000",
                    "--daemonize",
                    "no",
                ]),
            }),
            Target::Socketioxide => Ok(Launch {
                program: self.herald_bench.clone(),
                args: args(&["serve-socketio", "--listen", &addr.to_string()]),
            }),
            Target::Floor => Ok(Launch {
                program: self.herald_bench.clone(),
                args: args(&["serve-floor", "--listen", &addr.to_string()]),
            }),
        }
    }
}

fn missing(package: &str) -> String {
    format!(
        "{package} is not installed; install it with: apt-get install -y {package} \
         (or install every peer: sudo bash bench/setup.sh)"
    )
}

/// The first executable file called `name` on `PATH`, or in /usr/sbin,
/// /usr/bin or /usr/local/bin.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/bin", "/usr/bin", "/usr/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn programs() -> Programs {
        Programs {
            herald: Err("herald-broker not found".to_owned()),
            herald_bench: PathBuf::from("/x/herald-bench"),
            nats: Some(PathBuf::from("/usr/bin/nats-server")),
            redis: None,
        }
    }

    #[test]
    fn command_lines() {
        let addr: SocketAddr = "127.0.0.1:4222".parse().expect("an address");
        let nats = programs()
            .launch(Target::Nats, addr, &[])
            .expect("installed");
        assert_eq!(nats.display(), "nats-server -a 127.0.0.1 -p 4222");
        let floor = programs()
            .launch(Target::Floor, addr, &[])
            .expect("built in");
        assert_eq!(
            floor.display(),
            "herald-bench serve-floor --listen 127.0.0.1:4222"
        );
        let mut with_herald = programs();
        with_herald.herald = Ok(PathBuf::from("/t/release/herald-broker"));
        let herald = with_herald
            .launch(
                Target::Herald,
                addr,
                &["server.max_connections=5".to_owned()],
            )
            .expect("built");
        assert_eq!(
            herald.display(),
            "herald-broker --listen 127.0.0.1:4222 --log-level warn --set server.max_connections=5"
        );
        let wss = with_herald
            .launch(Target::HeraldWss, addr, &[])
            .expect("built")
            .display();
        assert!(
            wss.starts_with(
                "herald-broker --listen 127.0.0.1:4222 --log-level warn --set tls.cert_file="
            ) && wss.contains("--set tls.key_file="),
            "{wss}"
        );
        let socketio = with_herald
            .launch(Target::HeraldSocketio, addr, &[])
            .expect("built");
        assert_eq!(
            socketio.display(),
            "herald-broker --listen 127.0.0.1:4222 --log-level warn \
             --set socketio.ping_interval=600s --set socketio.ping_timeout=600s"
        );
    }

    #[test]
    fn missing_peers_name_the_install_command() {
        let addr: SocketAddr = "127.0.0.1:6379".parse().expect("an address");
        let reason = programs()
            .launch(Target::Redis, addr, &[])
            .expect_err("not installed");
        assert!(
            reason.contains("apt-get install -y redis-server"),
            "{reason}"
        );
        assert!(reason.contains("bench/setup.sh"), "{reason}");
        let reason = programs()
            .launch(Target::Herald, addr, &[])
            .expect_err("not built");
        assert!(reason.contains("herald-broker"), "{reason}");
    }

    #[test]
    fn programs_are_found_on_the_path() {
        assert!(find_program("sh").is_some());
        assert!(find_program("no-such-program-herald").is_none());
    }
}
