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

/// A cluster node's mirror of `/h/>` with `size` events kept.
fn mirror(size: usize) -> MemoryHistory {
    MemoryHistory::mirror(&HistorySettings {
        namespaces: vec![HistoryNamespace {
            namespace: "/h/>".into(),
            size,
            ttl: Duration::from_secs(60),
        }],
        replay_limit: 100,
        mid_window: Duration::from_secs(60),
        max_mids: 2,
    })
}

fn stamp<'a>(seq: u64, epoch: &'a str, mid: &'a str) -> crate::history::Stamp<'a> {
    crate::history::Stamp {
        seq,
        epoch,
        mid: Some(mid),
    }
}

/// Appends an event Redis numbered; true when it was delivered.
fn numbered(h: &MemoryHistory, seq: u64, epoch: &str) -> bool {
    let emit = emit(None);
    let record = Record {
        emit: &emit,
        sender: None,
    };
    let mut delivered = false;
    let mid = format!("m{seq}");
    let appended = h.append_numbered("/h/a", record, stamp(seq, epoch, &mid), &mut |_| {
        delivered = true;
    });
    assert_eq!(appended, delivered);
    delivered
}

fn stored(seq: u64) -> crate::history::Stored {
    use crate::history::{Parts, Stored};
    Stored::new(seq, Parts::plain(b"", Some(&format!("m{seq}"))))
}

fn recover(h: &MemoryHistory, since: u64, epoch: &str) -> Result<Vec<u64>, Gap> {
    let wanted = [Wanted {
        namespace: "/h/a".into(),
        since,
        epoch: Some(epoch.into()),
    }];
    let mut result = None;
    h.recover(&wanted, &mut |outcomes| {
        result = Some(
            outcomes[0]
                .replay
                .as_ref()
                .map(|events| events.iter().map(|e| e.seq).collect())
                .map_err(|gap| *gap),
        );
    });
    result.expect("attach was called")
}

#[test]
fn a_mirror_recovers_nothing_from_a_log_it_never_heard_of() {
    let h = mirror(10);
    let position = h.position("/h/a").unwrap();
    assert_eq!((&*position.epoch, position.last), ("", 0));
    assert_eq!(recover(&h, 0, ""), Err(Gap::Epoch));
    assert_eq!(h.position("/other"), None);
}

#[test]
fn a_mirror_starts_at_the_first_event_it_hears_and_skips_what_it_has() {
    let h = mirror(10);
    assert!(numbered(&h, 7, "e1"), "a cold log starts at any seq");
    assert!(numbered(&h, 8, "e1"));
    assert!(!numbered(&h, 8, "e1"), "already here");
    assert!(!numbered(&h, 3, "e1"), "older than the last");
    let position = h.position("/h/a").unwrap();
    assert_eq!(
        (&*position.epoch, position.first, position.last),
        ("e1", 7, 8)
    );
    assert_eq!(recover(&h, 6, "e1"), Ok(vec![7, 8]));
    assert_eq!(recover(&h, 5, "e1"), Err(Gap::TooOld));
    assert!(numbered(&h, 1, "e2"), "a new epoch restarts the log");
    assert_eq!(recover(&h, 0, "e2"), Ok(vec![1]));
    assert_eq!(recover(&h, 8, "e1"), Err(Gap::Epoch));
}

#[test]
fn a_mirror_takes_older_events_in_front_only_when_they_fit() {
    let h = mirror(10);
    numbered(&h, 5, "e1");
    h.backfill("/h/a", "e1", vec![stored(2), stored(3)]);
    assert_eq!(
        h.position("/h/a").unwrap().first,
        5,
        "a hole before 5: refused"
    );
    h.backfill("/h/a", "e0", vec![stored(4)]);
    assert_eq!(
        h.position("/h/a").unwrap().first,
        5,
        "another epoch: refused"
    );
    h.backfill("/h/a", "e1", vec![stored(3), stored(4)]);
    assert_eq!(recover(&h, 2, "e1"), Ok(vec![3, 4, 5]));
}

#[test]
fn a_mirror_reset_holds_what_redis_holds_up_to_its_last() {
    let h = mirror(3);
    numbered(&h, 1, "old");
    h.reset(
        "/h/a",
        "e1",
        9,
        vec![stored(5), stored(6), stored(7), stored(8), stored(9)],
    );
    let position = h.position("/h/a").unwrap();
    assert_eq!(
        (&*position.epoch, position.first, position.last),
        ("e1", 7, 9),
        "size 3"
    );
    assert_eq!(recover(&h, 6, "e1"), Ok(vec![7, 8, 9]));
    assert!(!numbered(&h, 9, "e1"), "held already");
    assert!(numbered(&h, 10, "e1"));
    h.reset("/h/a", "e2", 4, Vec::new());
    assert_eq!(
        recover(&h, 2, "e2"),
        Err(Gap::TooOld),
        "nothing after 2 is held"
    );
    assert_eq!(recover(&h, 4, "e2"), Ok(Vec::new()));
}

#[test]
fn epochs_are_short_random_and_differ_between_starts() {
    let a = history(5, 5).read("/h/a", 0, 1, &|_| true).unwrap().epoch;
    let b = history(5, 5).read("/h/a", 0, 1, &|_| true).unwrap().epoch;
    assert_ne!(a, b);
    for epoch in [a, b] {
        assert_eq!(epoch.len(), 8, "{epoch}");
        assert!(
            epoch
                .bytes()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()),
            "{epoch}"
        );
    }
}

#[test]
fn a_named_namespace_takes_the_first_matching_rule_and_counts_in_the_stats() {
    let rule = |namespace: &str, size| HistoryNamespace {
        namespace: namespace.into(),
        size,
        ttl: Duration::from_secs(60),
    };
    let h = MemoryHistory::new(&HistorySettings {
        namespaces: vec![rule("/h/>", 2), rule("/h/a", 5), rule("/named", 3)],
        replay_limit: 10,
        mid_window: Duration::from_secs(60),
        max_mids: 2,
    });
    for _ in 0..4 {
        seq(&h, None);
    }
    let kept = h.read("/h/a", 0, 10, &|_| true).unwrap().events.len();
    assert_eq!(kept, 2, "/h/> comes first, so its size bounds /h/a");
    for namespace in ["/named", "/h/b"] {
        let emit = Emit {
            namespace: namespace.into(),
            event: "e".into(),
            ..Emit::default()
        };
        let record = Record {
            emit: &emit,
            sender: None,
        };
        assert!(matches!(
            h.append(namespace, record, &mut |_| {}),
            Appended::New
        ));
    }
    let stats = h.stats();
    // Two named logs (/h/a, /named), one made on first use (/h/b).
    assert_eq!((stats.logs, stats.events), (3, 4), "{stats:?}");
}
