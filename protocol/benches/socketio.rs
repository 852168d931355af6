//! Socket.IO codec micro-benchmarks: a client's event (decode, then its
//! arguments to a Herald payload) and a delivered event (payload to a
//! Socket.IO packet, the once-per-emit step of a fanout), for a small
//! object, a 4 KiB object and a 4 KiB binary argument. Run with
//! `cargo bench -p herald-protocol --bench socketio`.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use herald_protocol::socketio::{Assembler, ConvertError, Payload, event_packet};

/// `(name, packet text, attachments)` as a client sends them.
fn cases() -> Vec<(&'static str, String, Vec<Bytes>)> {
    let small =
        r#"2/orders,["order.created",{"id":1234,"item":"tea","price":2.5,"tags":["hot","green"]}]"#;
    let items: Vec<String> = (0..64)
        .map(|i| {
            format!(
                r#"{{"id":{i},"name":"item number {i}","qty":{},"ok":true}}"#,
                i * 3
            )
        })
        .collect();
    let big = format!(
        r#"2/orders,["order.batch",{{"items":[{}]}}]"#,
        items.join(",")
    );
    let binary = r#"51-/orders,["file.chunk",{"_placeholder":true,"num":0}]"#.to_owned();
    vec![
        ("small_object", small.to_owned(), vec![]),
        ("4k_object", big, vec![]),
        ("4k_binary", binary, vec![Bytes::from(vec![0xa5u8; 4096])]),
    ]
}

/// A client's message through the assembler, then its arguments to a
/// payload.
fn to_payload(text: &str, attachments: &[Bytes]) -> Option<Result<Payload, ConvertError>> {
    let mut assembler = Assembler::default();
    let mut done = assembler.text(text).ok().flatten();
    for a in attachments {
        done = assembler.binary(a.clone()).ok().flatten();
    }
    done.map(|d| d.args_payload())
}

fn socketio(c: &mut Criterion) {
    let mut group = c.benchmark_group("socketio");
    for (name, text, attachments) in cases() {
        let size = text.len() + attachments.iter().map(Bytes::len).sum::<usize>();
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(
            BenchmarkId::new("client_to_payload", name),
            &text,
            |b, t| b.iter(|| to_payload(black_box(t), &attachments)),
        );
        let Some(Ok(payload)) = to_payload(&text, &attachments) else {
            panic!("the {name} case does not convert");
        };
        group.bench_with_input(
            BenchmarkId::new("payload_to_packet", name),
            &payload,
            |b, p| {
                b.iter(|| {
                    event_packet(
                        "/orders",
                        "order.created",
                        black_box(&p.bytes),
                        p.spread,
                        None,
                    )
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, socketio);
criterion_main!(benches);
