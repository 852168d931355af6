//! Router micro-benchmarks: matching and fan-out with 1, 100 and 10,000
//! subscriptions, exact and pattern; subscription churn on an event with
//! 10,000 and 100,000 subscribers while an emit holds its snapshot; and
//! requests with 100,000 others outstanding (memory per request, time per
//! request answered or timed out). Run with `cargo bench -p herald-broker`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use herald_broker::bench_api::{RequestBench, RouterBench};

const SIZES: [usize; 3] = [1, 100, 10_000];

/// `n` connections, each on its own exact event `order.<i>.created`.
fn exact_router(n: usize) -> RouterBench {
    let mut bench = RouterBench::new();
    for i in 0..n {
        bench
            .subscribe("/", &format!("order.{i}.created"))
            .expect("valid event name");
    }
    bench
}

/// `n` connections, each on its own pattern `order.<i>.*`.
fn pattern_router(n: usize) -> RouterBench {
    let mut bench = RouterBench::new();
    for i in 0..n {
        bench
            .subscribe("/", &format!("order.{i}.*"))
            .expect("valid pattern");
    }
    bench
}

/// Finding who matches one event among `n` subscriptions (one matches).
fn matching(c: &mut Criterion) {
    let mut group = c.benchmark_group("match");
    for n in SIZES {
        let exact = exact_router(n);
        group.bench_with_input(BenchmarkId::new("exact", n), &n, |b, _| {
            b.iter(|| exact.match_count(black_box("/"), black_box("order.0.created")))
        });
        let pattern = pattern_router(n);
        group.bench_with_input(BenchmarkId::new("pattern", n), &n, |b, _| {
            b.iter(|| pattern.match_count(black_box("/"), black_box("order.0.created")))
        });
    }
    group.finish();
}

/// One emit delivered to `n` subscribers of the same event, plus the
/// receivers dequeuing it (what each connection's writer does).
fn fanout(c: &mut Criterion) {
    let payload = Bytes::from(vec![7u8; 128]);
    let mut group = c.benchmark_group("fanout");
    for n in SIZES {
        for (kind, pattern) in [("exact", "tick"), ("pattern", "*")] {
            let mut bench = RouterBench::new();
            for _ in 0..n {
                bench.subscribe("/", pattern).expect("valid pattern");
            }
            group.bench_with_input(BenchmarkId::new(kind, n), &n, |b, _| {
                b.iter(|| {
                    let reached = bench.emit("/", "tick", &payload);
                    black_box(reached);
                    bench.drain()
                })
            });
        }
    }
    group.finish();
}

/// One subscriber joining and leaving an event that has `n` subscribers,
/// each change made while an emit holds the subscriber snapshot (`held`),
/// or with no emit running (`free`).
fn churn(c: &mut Criterion) {
    let mut group = c.benchmark_group("churn");
    for n in [10_000, 100_000] {
        let mut bench = RouterBench::new();
        for _ in 0..n {
            bench.subscribe("/", "tick").expect("valid event name");
        }
        for (kind, held) in [("held", true), ("free", false)] {
            group.bench_with_input(BenchmarkId::new(kind, n), &n, |b, _| {
                b.iter(|| bench.churn("/", "tick", held).expect("valid event name"))
            });
        }
    }
    group.finish();
}

/// Requests outstanding in the background of the request benchmarks.
const OUTSTANDING: usize = 100_000;

/// How often the request loops let the runtime run its other tasks (as a
/// broker's sessions would between frames).
const YIELD_EVERY: u64 = 64;

/// The process's resident memory (`VmRSS`), in bytes.
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Requests with [`OUTSTANDING`] others waiting: the memory they hold
/// (printed: resident-set growth while opening them; the group runs first,
/// before other groups' set-up leaves freed memory to reuse), then the time of one request answered
/// (`open_reply`, 30 s timeout, the session default) and of one left to
/// time out (`open_timeout`, 1 ms timeout; criterion's slope removes the
/// wait itself).
fn requests(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut bench = RequestBench::new();
    let before = rss_bytes();
    let opened = Instant::now();
    rt.block_on(async {
        for i in 0..OUTSTANDING as u64 {
            bench.open(Duration::from_secs(3600)).expect("routed");
            if i % YIELD_EVERY == 0 {
                tokio::task::yield_now().await;
            }
        }
        tokio::task::yield_now().await;
    });
    let opened = opened.elapsed();
    assert_eq!(bench.pending(), OUTSTANDING);
    if let (Some(before), Some(after)) = (before, rss_bytes()) {
        println!(
            "requests/outstanding: {OUTSTANDING} requests hold {} bytes each (RSS {} -> {} MiB), opened in {:.0} ns each",
            after.saturating_sub(before) / OUTSTANDING as u64,
            before >> 20,
            after >> 20,
            opened.as_nanos() as f64 / OUTSTANDING as f64,
        );
    }
    let mut group = c.benchmark_group("requests");
    group.bench_function(BenchmarkId::new("open_reply", OUTSTANDING), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for i in 0..iters {
                    let handle = bench.open(Duration::from_secs(30)).expect("routed");
                    assert!(bench.reply(handle));
                    if i % YIELD_EVERY == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                start.elapsed()
            })
        })
    });
    // What the answered requests left behind (each ran to its reply).
    if let Some(rss) = rss_bytes() {
        println!(
            "requests/open_reply: RSS {} MiB afterwards, {} requests in flight",
            rss >> 20,
            bench.pending()
        );
    }
    group.bench_function(BenchmarkId::new("open_timeout", OUTSTANDING), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for i in 0..iters {
                    bench.open(Duration::from_millis(1)).expect("routed");
                    if i % YIELD_EVERY == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                for _ in 0..iters {
                    bench.next_answer().await.expect("a timeout answer");
                }
                start.elapsed()
            })
        })
    });
    group.finish();
    assert_eq!(bench.pending(), OUTSTANDING);
}

// `requests` first: its memory figure is the growth of a fresh process.
criterion_group!(benches, requests, matching, fanout, churn);
criterion_main!(benches);
