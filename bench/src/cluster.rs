//! The `herald-cluster` target: two Herald nodes clustered over one
//! `redis-server`, the publisher on node A and the subscribers on node B, so
//! every message crosses the cluster (A → Redis → B).
//!
//! All three processes are pinned to the server CPU; the server CPU of a
//! run is theirs summed (and reported per process). Only `fanout` runs
//! cross-node; the other workloads are skipped.
//!
//! A subscription acknowledged by B does not yet mean that A's emits reach
//! B: B listens on the namespace's Redis channel once its first subscriber
//! there arrives, asynchronously. So before the workload, a probe
//! subscriber on B (kept open, so B keeps listening) waits for probe emits
//! from A on an event of its own, re-emitted until one arrives (bounded).

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use herald_loadgen::herald::{DEFAULT_NAMESPACE, HeraldDriver, HeraldSubscriber};
use herald_loadgen::procfs::ProcessProbe;
use herald_loadgen::{BenchError, Driver, Plan, Publisher, Record, Subscriber, Workload, measure};

use crate::server::ServerProcess;
use crate::targets::{Launch, Programs, Target};

/// The target name of the two-node cluster in results.
pub const TARGET: &str = "herald-cluster";
/// The same cluster with a history on the benchmark's namespace, kept in
/// Redis (every event numbered, stored and published by one Lua script).
pub const HISTORY_TARGET: &str = "herald-cluster-history";
/// The one workload run cross-node.
pub const WORKLOAD: Workload = Workload::Fanout;
/// Why the other workloads are skipped.
pub const SKIP_REASON: &str = "cross-node: fanout only";
/// The event the probe emits go to (not one of the workload's events).
pub const PROBE_EVENT: &str = "bench.cluster_probe";
/// Probe emits sent, at most, before giving up.
pub const PROBE_ATTEMPTS: u32 = 150;
/// How long each probe emit is awaited on node B.
pub const PROBE_WAIT: Duration = Duration::from_millis(100);
/// The cluster's key and channel prefix in Redis.
const PREFIX: &str = "herald-bench";

/// The names of the processes in the CPU figures, in probe order.
pub const PROCESS_NAMES: [&str; 3] = ["node-a", "node-b", "redis-server"];

/// The broker settings of cluster node `node_id` on the Redis at `redis`.
pub fn node_settings(redis: SocketAddr, node_id: &str) -> Vec<String> {
    vec![
        "cluster.backend=redis".to_owned(),
        format!("cluster.redis_url=redis://{redis}"),
        format!("cluster.prefix={PREFIX}"),
        format!("cluster.node_id={node_id}"),
    ]
}

/// The command lines of the cluster: Redis, node A, node B.
#[derive(Debug, Clone)]
pub struct ClusterLaunch {
    /// `redis-server`, as the `redis` target runs it.
    pub redis: (SocketAddr, Launch),
    /// Node A (the publisher's).
    pub node_a: (SocketAddr, Launch),
    /// Node B (the subscribers').
    pub node_b: (SocketAddr, Launch),
}

impl ClusterLaunch {
    /// Free ports and command lines for the cluster; or why it cannot be
    /// started (redis-server not installed, herald-broker not built), with
    /// the command that fixes it.
    pub fn new(programs: &Programs, target: Target) -> Result<ClusterLaunch, String> {
        let [redis, a, b] = free_local_addrs()?;
        let node = |addr, id| programs.launch(target, addr, &node_settings(redis, id));
        Ok(ClusterLaunch {
            redis: (redis, programs.launch(Target::Redis, redis, &[])?),
            node_a: (a, node(a, "a")?),
            node_b: (b, node(b, "b")?),
        })
    }

    /// The three command lines, for the report.
    pub fn display(&self) -> String {
        format!(
            "{}; node A: {}; node B: {}",
            self.redis.1.display(),
            self.node_a.1.display(),
            self.node_b.1.display()
        )
    }
}

/// `N` different free ports on 127.0.0.1 (all held at once while the OS
/// picks them, so none is picked twice).
fn free_local_addrs<const N: usize>() -> Result<[SocketAddr; N], String> {
    let taken = |e: std::io::Error| format!("cannot prepare a free port: {e}");
    let listeners = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(taken)?;
    let addrs = listeners
        .iter()
        .map(TcpListener::local_addr)
        .collect::<Result<Vec<_>, _>>()
        .map_err(taken)?;
    <[SocketAddr; N]>::try_from(addrs).map_err(|_| "cannot prepare free ports".to_owned())
}

/// The running cluster.
#[derive(Debug)]
pub struct ClusterServers {
    redis: ServerProcess,
    node_a: ServerProcess,
    node_b: ServerProcess,
    probe: ProcessProbe,
}

impl ClusterServers {
    /// Starts Redis, then both nodes (each awaited until it accepts
    /// connections, bounded), pinned to `cpu` when given, logging into
    /// `log_dir`.
    pub async fn start(
        launch: &ClusterLaunch,
        cpu: Option<usize>,
        log_dir: &Path,
    ) -> Result<ClusterServers, String> {
        let start = |name: &'static str, (addr, launch): &(SocketAddr, Launch)| {
            let (addr, launch) = (*addr, launch.clone());
            async move {
                ServerProcess::start(name, &launch, addr, cpu, log_dir)
                    .await
                    .map_err(|e| e.to_string())
            }
        };
        // Started one after the other: a node finds Redis listening, and a
        // failure stops the ones already started (dropping them kills them).
        let redis = start("herald-cluster-redis", &launch.redis).await?;
        let node_a = start("herald-cluster-a", &launch.node_a).await?;
        let node_b = start("herald-cluster-b", &launch.node_b).await?;
        let pids = [&node_a, &node_b, &redis].map(|server| server.probe().pid());
        let probe = ProcessProbe::group(PROCESS_NAMES.map(str::to_owned).into_iter().zip(pids))
            .map_err(|e| e.to_string())?;
        Ok(ClusterServers {
            redis,
            node_a,
            node_b,
            probe,
        })
    }

    /// Reads the CPU time and memory of both nodes and Redis, summed.
    pub fn probe(&self) -> &ProcessProbe {
        &self.probe
    }

    /// Problems of the processes that are no longer running, if any.
    pub fn crashed(&mut self) -> Option<String> {
        let crashes: Vec<String> = [&mut self.node_a, &mut self.node_b, &mut self.redis]
            .into_iter()
            .filter_map(ServerProcess::crashed)
            .collect();
        (!crashes.is_empty()).then(|| crashes.join("; "))
    }

    /// Stops the nodes, then Redis (each bounded).
    pub async fn stop(self) {
        self.node_a.stop().await;
        self.node_b.stop().await;
        self.redis.stop().await;
    }
}

/// A driver whose subscribers connect to `node_b` and publishers to
/// `node_a`.
pub fn cross_node_driver(
    node_a: SocketAddr,
    node_b: SocketAddr,
) -> Result<HeraldDriver, BenchError> {
    HeraldDriver::new(&format!("ws://{node_b}"), DEFAULT_NAMESPACE)?
        .with_publish_url(&format!("ws://{node_a}"))
}

/// Waits until an emit published through `driver`'s publish node reaches a
/// subscriber on its subscribe node: probe emits on [`PROBE_EVENT`], one
/// every [`PROBE_WAIT`] until one arrives, [`PROBE_ATTEMPTS`] at most.
/// Returns the probe subscriber: keep it open while the workload runs, so
/// that the subscribe node keeps listening on the namespace.
pub async fn wait_cross_node(driver: &HeraldDriver) -> Result<HeraldSubscriber, BenchError> {
    let mut subscriber = driver.subscriber(PROBE_EVENT).await?;
    let mut publisher = driver.publisher(PROBE_EVENT).await?;
    for attempt in 0..PROBE_ATTEMPTS {
        publisher.feed(&u64::from(attempt).to_be_bytes()).await?;
        publisher.flush().await?;
        // Any probe proves the path, a late one from an earlier attempt too.
        match tokio::time::timeout(PROBE_WAIT, subscriber.next_payload()).await {
            Err(_) => continue,
            Ok(Ok(Some(_))) => {
                publisher.finish().await?;
                return Ok(subscriber);
            }
            Ok(Ok(None)) => {
                return Err(BenchError::target(
                    TARGET,
                    "the probe subscriber's connection closed",
                ));
            }
            Ok(Err(error)) => return Err(error),
        }
    }
    Err(BenchError::timeout(
        PROBE_WAIT * PROBE_ATTEMPTS,
        format!(
            "a probe emitted on {} to reach a subscriber on {} (are both nodes connected to \
             Redis?)",
            driver.publish_url(),
            driver.url()
        ),
    ))
}

/// Runs `workload` with the publisher on `node_a` and the subscribers on
/// `node_b`, once the cluster carries A's emits to B; `probe` reads the
/// cluster's processes.
pub async fn measure_cross_node(
    target: Target,
    node_a: SocketAddr,
    node_b: SocketAddr,
    workload: Workload,
    plan: &Plan,
    probe: &ProcessProbe,
    progress: bool,
) -> Result<Record, BenchError> {
    let driver = cross_node_driver(node_a, node_b)?;
    let mut probe_subscriber = wait_cross_node(&driver).await?;
    // Read the probe subscriber meanwhile (nothing is emitted to it), so
    // node B's heartbeats are answered and it stays subscribed.
    let keep_reading = async {
        while let Ok(Some(_)) = probe_subscriber.next_payload().await {}
        std::future::pending::<Infallible>().await
    };
    let mut record = tokio::select! {
        record = measure(&driver, workload, plan, Some(probe), progress) => record?,
        never = keep_reading => match never {},
    };
    record.target = target.name().to_owned();
    Ok(record)
}

/// One `compare` run of the cluster target: `workload` is skipped unless
/// it is [`WORKLOAD`]; the cluster is skipped when it cannot be started
/// (with the fix), and started fresh otherwise. `commands` gets its
/// command lines.
pub async fn run(
    (target, workload): (Target, Workload),
    plan: &Plan,
    server_cpu: Option<usize>,
    programs: &Programs,
    log_dir: &Path,
    progress: bool,
    commands: &mut Vec<String>,
) -> Result<Record, String> {
    let name = target.name();
    if workload != WORKLOAD {
        return Ok(Record::skipped(name, workload.name(), SKIP_REASON));
    }
    let launch = match ClusterLaunch::new(programs, target) {
        Ok(launch) => launch,
        Err(reason) => return Ok(Record::skipped(name, workload.name(), &reason)),
    };
    let command = format!("{name}: {}", launch.display());
    if !commands.iter().any(|c| c.starts_with(&format!("{name}:"))) {
        commands.push(command);
    }
    let mut servers = ClusterServers::start(&launch, server_cpu, log_dir).await?;
    let result = measure_cross_node(
        target,
        launch.node_a.0,
        launch.node_b.0,
        workload,
        plan,
        servers.probe(),
        progress,
    )
    .await;
    let crashed = servers.crashed();
    servers.stop().await;
    crate::compare::settle(result, crashed)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn nodes_are_clustered_on_the_given_redis() {
        let redis: SocketAddr = "127.0.0.1:6390".parse().expect("an address");
        assert_eq!(
            node_settings(redis, "a"),
            [
                "cluster.backend=redis",
                "cluster.redis_url=redis://127.0.0.1:6390",
                "cluster.prefix=herald-bench",
                "cluster.node_id=a",
            ]
        );
    }

    fn programs(redis: Option<&str>, herald: Result<&str, &str>) -> Programs {
        Programs {
            herald: herald.map(PathBuf::from).map_err(str::to_owned),
            herald_bench: PathBuf::from("/x/herald-bench"),
            nats: None,
            redis: redis.map(PathBuf::from),
        }
    }

    #[test]
    fn the_cluster_is_redis_and_two_nodes_on_it() {
        let launch = ClusterLaunch::new(
            &programs(
                Some("/usr/bin/redis-server"),
                Ok("/t/release/herald-broker"),
            ),
            Target::HeraldCluster,
        )
        .expect("installed and built");
        let redis = launch.redis.0;
        assert_eq!(
            launch.redis.1.display(),
            format!(
                "redis-server --bind 127.0.0.1 --port {} --save '' --appendonly no \
                 --maxclients 15000 --daemonize no",
                redis.port()
            )
        );
        let node_b = launch.node_b.1.display();
        assert!(
            node_b.starts_with(&format!("herald-broker --listen {}", launch.node_b.0)),
            "{node_b}"
        );
        assert!(
            node_b.contains(&format!("--set cluster.redis_url=redis://{redis}")),
            "{node_b}"
        );
        assert!(node_b.ends_with("--set cluster.node_id=b"), "{node_b}");
        let ports = [launch.redis.0, launch.node_a.0, launch.node_b.0];
        assert!(ports.iter().all(|a| a.ip().is_loopback()));
        assert!(
            launch
                .display()
                .contains("; node A: herald-broker --listen")
        );
    }

    #[test]
    fn the_history_cluster_loads_the_history_config_on_both_nodes() {
        let launch = ClusterLaunch::new(
            &programs(
                Some("/usr/bin/redis-server"),
                Ok("/t/release/herald-broker"),
            ),
            Target::HeraldClusterHistory,
        )
        .expect("installed and built");
        for node in [&launch.node_a.1, &launch.node_b.1] {
            let line = node.display();
            assert!(line.contains("--config "), "{line}");
            assert!(line.contains("--set cluster.backend=redis"), "{line}");
        }
    }

    #[test]
    fn a_missing_redis_or_broker_says_how_to_get_it() {
        let reason = ClusterLaunch::new(
            &programs(None, Ok("/t/release/herald-broker")),
            Target::HeraldCluster,
        )
        .expect_err("no redis-server");
        assert!(
            reason.contains("apt-get install -y redis-server"),
            "{reason}"
        );
        let reason = ClusterLaunch::new(
            &programs(
                Some("/usr/bin/redis-server"),
                Err("herald-broker is not built"),
            ),
            Target::HeraldClusterHistory,
        )
        .expect_err("no broker");
        assert!(reason.contains("herald-broker is not built"), "{reason}");
    }
}
