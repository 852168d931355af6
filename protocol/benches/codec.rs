//! Codec micro-benchmarks: encoding an emit and a delivered event, and
//! decoding an emit, at payload sizes 16 B, 128 B and 4 KiB. Run with
//! `cargo bench -p herald-protocol`.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use herald_protocol::envelope::Emit;
use herald_protocol::{Envelope, EventRef, decode, encode, encode_event};

const PAYLOADS: [usize; 3] = [16, 128, 4096];

fn emit(payload: usize) -> Envelope {
    Envelope::Emit(Emit {
        namespace: "/orders".into(),
        event: "order.created".into(),
        payload: Bytes::from(vec![0xa5u8; payload]),
        ..Emit::default()
    })
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    for size in PAYLOADS {
        group.throughput(Throughput::Bytes(size as u64));
        let envelope = emit(size);
        group.bench_with_input(BenchmarkId::new("encode_emit", size), &envelope, |b, e| {
            b.iter(|| encode(black_box(e)))
        });
        let payload = Bytes::from(vec![0xa5u8; size]);
        let event = EventRef {
            namespace: "/orders",
            event: "order.created",
            room: None,
            group: None,
            payload: &payload,
            ack: None,
            ..EventRef::default()
        };
        group.bench_with_input(BenchmarkId::new("encode_event", size), &event, |b, e| {
            b.iter(|| encode_event(black_box(e)))
        });
        let frame = Bytes::from(encode(&envelope));
        group.bench_with_input(BenchmarkId::new("decode_emit", size), &frame, |b, f| {
            b.iter(|| decode(black_box(f)))
        });
    }
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
