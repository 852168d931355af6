//! Router micro-benchmarks: matching and fan-out with 1, 100 and 10,000
//! subscriptions, exact and pattern. Run with `cargo bench -p herald-broker`.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use herald_broker::bench_api::RouterBench;

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

criterion_group!(benches, matching, fanout);
criterion_main!(benches);
