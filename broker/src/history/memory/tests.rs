#![allow(clippy::unwrap_used)]

use std::time::Duration;

use herald_config::{HistoryNamespace, HistorySettings};
use herald_protocol::envelope::Emit;

use super::MemoryHistory;
use crate::history::{Appended, Gap, HistoryLog, Record, Wanted};

fn history(size: usize, replay_limit: usize) -> MemoryHistory {
    MemoryHistory::new(&HistorySettings {
        namespaces: vec![HistoryNamespace {
            namespace: "/h/>".into(),
            size,
            ttl: Duration::from_secs(60),
        }],
        replay_limit,
        mid_window: Duration::from_secs(60),
        max_mids: 2,
    })
}

fn emit(mid: Option<&str>) -> Emit {
    Emit {
        namespace: "/h/a".into(),
        event: "e".into(),
        message_id: mid.map(str::to_owned),
        ..Emit::default()
    }
}

fn append(h: &MemoryHistory, mid: Option<&str>) -> Appended {
    let emit = emit(mid);
    let record = Record {
        emit: &emit,
        sender: None,
    };
    h.append("/h/a", record, &mut |_| {})
}

fn seq(h: &MemoryHistory, mid: Option<&str>) -> u64 {
    let emit = emit(mid);
    let record = Record {
        emit: &emit,
        sender: None,
    };
    let mut seq = None;
    let appended = h.append("/h/a", record, &mut |stamp| seq = Some(stamp.seq));
    assert!(matches!(appended, Appended::New), "{appended:?}");
    seq.expect("published with a stamp")
}

#[test]
fn seqs_increase_without_gaps_and_the_size_bounds_the_log() {
    let h = history(3, 10);
    assert!(!h.covers("/other"));
    assert!(matches!(
        h.append(
            "/other",
            Record {
                emit: &emit(None),
                sender: None
            },
            &mut |_| {}
        ),
        Appended::Unlogged
    ));
    let seqs: Vec<u64> = (0..5).map(|_| seq(&h, None)).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    let page = h.read("/h/a", 0, 10, &|_| true).unwrap();
    let kept: Vec<u64> = page.events.iter().map(|e| e.seq).collect();
    assert_eq!(kept, [3, 4, 5], "a too-old reader gets what is left");
    assert_eq!(page.last, 5);
    assert_eq!(h.read("/h/a", 4, 10, &|_| true).unwrap().events.len(), 1);
    assert_eq!(h.read("/h/a", 6, 10, &|_| true).unwrap_err(), Gap::Ahead);
    assert_eq!(
        h.read("/nope", 0, 10, &|_| true).unwrap_err(),
        Gap::NoHistory
    );
    let stats = h.stats();
    assert_eq!((stats.events, stats.evicted), (3, 2));
}

#[test]
fn a_repeated_mid_is_a_duplicate_within_the_bound() {
    let h = history(10, 10);
    assert_eq!(seq(&h, Some("m1")), 1);
    assert!(matches!(append(&h, Some("m1")), Appended::Duplicate));
    append(&h, Some("m2"));
    append(&h, Some("m3"));
    // max_mids = 2: m1 was forgotten.
    assert_eq!(seq(&h, Some("m1")), 4);
    assert_eq!(h.stats().duplicates, 1);
}

#[test]
fn recovery_is_all_or_nothing() {
    let h = history(5, 2);
    for _ in 0..5 {
        append(&h, None);
    }
    let epoch = h.read("/h/a", 0, 1, &|_| true).unwrap().epoch.to_string();
    let want = |since: u64, epoch: Option<&str>| Wanted {
        namespace: "/h/a".into(),
        since,
        epoch: epoch.map(str::to_owned),
    };
    let mut got = Vec::new();
    h.recover(
        &[
            want(3, Some(&epoch)),
            want(2, Some(&epoch)),
            want(4, Some("old")),
        ],
        &mut |outcomes| {
            got = outcomes
                .iter()
                .map(|o| o.replay.as_ref().map(Vec::len).map_err(|g| *g))
                .collect();
        },
    );
    // Deduplicated by namespace: the first position asked for wins.
    assert_eq!(got, [Ok(2)]);
    h.recover(&[want(2, Some(&epoch))], &mut |o| {
        assert_eq!(o[0].replay.as_ref().unwrap_err(), &Gap::OverLimit);
    });
    h.recover(&[want(4, Some("old"))], &mut |o| {
        assert_eq!(o[0].replay.as_ref().unwrap_err(), &Gap::Epoch);
    });
}
