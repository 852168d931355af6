//! Codec tests: golden bytes pin the wire shape; proptests round-trip every
//! envelope and feed random bytes to the decoder.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn round_trip(envelope: &Envelope) -> Envelope {
    decode(&Bytes::from(encode(envelope))).expect("decodes what it encoded")
}

#[test]
fn golden_emit() {
    let emit = Envelope::Emit(Emit {
        id: Some(7),
        namespace: "/".into(),
        event: "a.b".into(),
        room: None,
        payload: Bytes::from_static(&[0xc3]),
        exclude_self: true,
        ack: None,
        timeout_ms: None,
        args: false,
        except: None,
        message_id: None,
    });
    // {"t":"emit","id":7,"ns":"/","ev":"a.b","d":bin[c3],"xs":true}
    assert_eq!(
        hex(&encode(&emit)),
        "86a174a4656d6974a26964\
         07a26e73a12fa26576a3612e62a164c401c3a27873c3"
    );
}

#[test]
fn golden_sub_and_ok_and_err() {
    let sub = Envelope::Subscribe(Subscription {
        id: Some(1),
        namespace: "/o".into(),
        event: "x.*".into(),
        group: Some("g".into()),
        responder: false,
    });
    // {"t":"sub","id":1,"ns":"/o","ev":"x.*","q":"g"}
    assert_eq!(
        hex(&encode(&sub)),
        "85a174a3737562a2696401a26e73a22f6fa26576a3782e2aa171a167"
    );
    // {"t":"ok","id":1}
    assert_eq!(
        hex(&encode(&Envelope::Ok { id: 1 })),
        "82a174a26f6ba2696401"
    );
    // {"t":"err","id":2,"code":"timeout","msg":"m"}
    let err = Envelope::error(Some(2), ErrorCode::Timeout, "m");
    assert_eq!(
        hex(&encode(&err)),
        "84a174a3657272a2696402a4636f6465a774696d656f7574a36d7367a16d"
    );
}

#[test]
fn golden_hello() {
    let hello = Envelope::Hello(Hello {
        version: 1,
        ..Hello::default()
    });
    // {"t":"hello","v":1}
    assert_eq!(hex(&encode(&hello)), "82a174a568656c6c6fa17601");
}

#[test]
fn unknown_fields_are_ignored() {
    // {"t":"ping","ts":5,"future":true}
    let frame = Bytes::from_static(&[
        0x83, 0xa1, b't', 0xa4, b'p', b'i', b'n', b'g', 0xa2, b't', b's', 0x05, 0xa6, b'f', b'u',
        b't', b'u', b'r', b'e', 0xc3,
    ]);
    assert_eq!(decode(&frame), Ok(Envelope::Ping { ts: Some(5) }));
}

#[test]
fn unknown_type_and_missing_fields_are_named() {
    // {"t":"nope"}
    let frame = Bytes::from_static(&[0x81, 0xa1, b't', 0xa4, b'n', b'o', b'p', b'e']);
    assert_eq!(decode(&frame), Err(DecodeError::UnknownType("nope".into())));
    // {"t":"emit"}
    let frame = Bytes::from_static(&[0x81, 0xa1, b't', 0xa4, b'e', b'm', b'i', b't']);
    assert_eq!(
        decode(&frame),
        Err(DecodeError::MissingField {
            kind: "emit",
            field: "ns"
        })
    );
}

#[test]
fn non_maps_are_malformed() {
    for frame in [&b""[..], b"hello", &[0x91, 0x01], &[0x81]] {
        let err = decode(&Bytes::copy_from_slice(frame)).expect_err("malformed");
        assert_eq!(err.code(), ErrorCode::BadFrame, "{frame:?}");
    }
}

#[test]
fn payload_is_shared_not_copied() {
    let frame = Bytes::from(encode(&Envelope::Emit(Emit {
        namespace: "/".into(),
        event: "e".into(),
        payload: Bytes::from(vec![9u8; 100]),
        ..Emit::default()
    })));
    let Ok(Envelope::Emit(emit)) = decode(&frame) else {
        panic!("not an emit")
    };
    let start = frame.as_ptr() as usize;
    let inner = emit.payload.as_ptr() as usize;
    assert!(inner > start && inner < start + frame.len());
}

fn opt_string() -> impl Strategy<Value = Option<String>> + Clone {
    proptest::option::of("[a-z/._*>-]{0,12}")
}

fn payload() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from)
}

fn envelope() -> impl Strategy<Value = Envelope> {
    let sub = (
        any::<Option<u64>>(),
        "[a-z/]{0,8}",
        "[a-z.*>]{0,8}",
        opt_string(),
        any::<bool>(),
    )
        .prop_map(|(id, namespace, event, group, responder)| Subscription {
            id,
            namespace,
            event,
            group,
            responder,
        });
    let room = (
        any::<Option<u64>>(),
        "[a-z/]{0,8}",
        "\\PC{0,8}",
        opt_string(),
    )
        .prop_map(|(id, namespace, room, sid)| RoomChange {
            id,
            namespace,
            room,
            sid,
        });
    let emit = (
        (
            any::<Option<u64>>(),
            "[a-z/]{0,8}",
            "[a-z.]{0,8}",
            opt_string(),
        ),
        (
            payload(),
            any::<bool>(),
            any::<Option<u64>>(),
            any::<Option<u64>>(),
        ),
        (any::<bool>(), opt_string(), opt_string()),
    )
        .prop_map(
            |(
                (id, namespace, event, room),
                (payload, exclude_self, ack, timeout_ms),
                (args, except, message_id),
            )| {
                Envelope::Emit(Emit {
                    id,
                    namespace,
                    event,
                    room,
                    payload,
                    exclude_self,
                    ack,
                    timeout_ms,
                    args,
                    except,
                    message_id,
                })
            },
        );
    let event = (
        ("[a-z/]{0,8}", "[a-z.]{0,8}", opt_string(), opt_string()),
        (
            payload(),
            any::<Option<u64>>(),
            any::<Option<u64>>(),
            opt_string(),
        ),
        (opt_string(), any::<bool>(), opt_string()),
    )
        .prop_map(
            |(
                (namespace, event, room, group),
                (payload, ack, seq, message_id),
                (from, args, epoch),
            )| {
                Envelope::Event(Event {
                    namespace,
                    event,
                    room,
                    group,
                    payload,
                    ack,
                    seq,
                    message_id,
                    from,
                    args,
                    epoch,
                })
            },
        );
    let hello = (any::<u32>(), opt_string(), opt_string(), any::<bool>()).prop_map(
        |(version, client, token, resume)| {
            Envelope::Hello(Hello {
                version,
                client,
                token,
                resume: resume.then(|| Resume {
                    sid: "s".into(),
                    offsets: BTreeMap::from([("/".into(), 3)]),
                    epochs: BTreeMap::from([("/".into(), "e1".into())]),
                    subs: vec![crate::ResumeSub {
                        ns: "/".into(),
                        ev: "a.>".into(),
                        q: None,
                        r: false,
                    }],
                    rooms: vec![("/".into(), "lobby".into())],
                }),
            })
        },
    );
    let welcome = (
        any::<u32>(),
        "[a-z0-9]{0,8}",
        any::<u64>(),
        any::<[u64; 4]>(),
        opt_string(),
        (
            opt_string(),
            any::<Option<u64>>(),
            any::<Option<(bool, u64)>>(),
        ),
    )
        .prop_map(
            |(version, session, heartbeat_ms, l, node, (user, exp, rec))| {
                Envelope::Welcome(Welcome {
                    version,
                    session,
                    heartbeat_ms,
                    limits: Limits {
                        max_payload: l[0],
                        max_subscriptions: l[1],
                        max_rooms: l[2],
                        max_pending_requests: l[3],
                    },
                    node,
                    user,
                    exp,
                    recovery: rec
                        .map(|(recovered, seq)| {
                            let r = crate::Recovery {
                                recovered,
                                epoch: "e".into(),
                                seq,
                                replayed: seq / 2,
                            };
                            BTreeMap::from([("/a".to_owned(), r)])
                        })
                        .unwrap_or_default(),
                })
            },
        );
    let auth = (any::<Option<u64>>(), "\\PC{0,24}")
        .prop_map(|(id, token)| Envelope::Auth(Auth { id, token }));
    let revoked = (
        "/[a-z]{0,4}",
        opt_string(),
        opt_string(),
        any::<bool>(),
        opt_string(),
    )
        .prop_map(|(ns, ev, q, r, room)| Revoked { ns, ev, q, r, room });
    let notice = (
        "[a-z_]{1,16}",
        "\\PC{0,16}",
        any::<Option<u64>>(),
        proptest::collection::vec(revoked, 0..3),
    )
        .prop_map(|(code, message, exp, revoked)| {
            Envelope::Notice(Notice {
                code,
                message,
                exp,
                revoked,
            })
        });
    let code = proptest::sample::select(ErrorCode::ALL);
    let reason = proptest::sample::select(CloseReason::ALL);
    prop_oneof![
        hello,
        welcome,
        sub.clone().prop_map(Envelope::Subscribe),
        sub.prop_map(Envelope::Unsubscribe),
        room.clone().prop_map(Envelope::Join),
        room.prop_map(Envelope::Leave),
        emit,
        event,
        (any::<u64>(), any::<bool>(), payload(), any::<bool>()).prop_map(
            |(ack, ok, payload, args)| Envelope::Reply(Reply {
                ack,
                ok,
                payload,
                args
            })
        ),
        (any::<u64>(), any::<u64>()).prop_map(|(id, receivers)| Envelope::Ack { id, receivers }),
        any::<u64>().prop_map(|id| Envelope::Ok { id }),
        (any::<Option<u64>>(), code, "\\PC{0,16}")
            .prop_map(|(id, code, message)| Envelope::error(id, code, message)),
        any::<Option<u64>>().prop_map(|ts| Envelope::Ping { ts }),
        any::<Option<u64>>().prop_map(|ts| Envelope::Pong { ts }),
        (reason, "\\PC{0,16}").prop_map(|(reason, message)| Envelope::Close { reason, message }),
        auth,
        notice,
    ]
}

/// `envelope`'s frame with the bytes at `flips` (positions modulo its
/// length) replaced.
fn damaged(envelope: &Envelope, flips: &[(usize, u8)]) -> Bytes {
    let mut bytes = encode(envelope);
    for &(at, value) in flips {
        if !bytes.is_empty() {
            let i = at % bytes.len();
            bytes[i] = value;
        }
    }
    Bytes::from(bytes)
}

proptest! {
    #[test]
    fn encode_event_equals_encode(envelope in envelope()) {
        if let Envelope::Event(e) = &envelope {
            {
                let view = EventRef {
                    namespace: &e.namespace,
                    event: &e.event,
                    room: e.room.as_deref(),
                    group: e.group.as_deref(),
                    payload: &e.payload,
                    ack: e.ack,
                    from: e.from.as_deref(),
                    args: e.args,
                    seq: e.seq,
                    mid: e.message_id.as_deref(),
                    epoch: e.epoch.as_deref(),
                };
                let encoded = encode_event(&view);
                prop_assert_eq!(&encoded, &encode(&envelope));
                // The hint sizes the broker's frame buffer exactly.
                prop_assert_eq!(event_len_hint(&view), encoded.len());
            }
        }
    }

    #[test]
    fn encode_emit_equals_encode(envelope in envelope()) {
        if let Envelope::Emit(e) = &envelope {
            let view = EmitRef {
                id: e.id,
                namespace: &e.namespace,
                event: &e.event,
                room: e.room.as_deref(),
                payload: &e.payload,
                exclude_self: e.exclude_self,
                ack: e.ack,
                timeout_ms: e.timeout_ms,
                args: e.args,
                except: e.except.as_deref(),
                message_id: e.message_id.as_deref(),
            };
            prop_assert_eq!(encode_emit(&view), encode(&envelope));
        }
    }

    /// `decode_view` accepts and refuses what `decode` does, and its
    /// events are `decode`'s, borrowed.
    #[test]
    fn decode_view_equals_decode(
        envelope in envelope(),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
    ) {
        let frame = damaged(&envelope, &flips);
        match (decode_view(&frame), decode(&frame)) {
            (Ok(Decoded::Envelope(view)), Ok(owned)) => prop_assert_eq!(view, owned),
            (Ok(Decoded::Event(view)), Ok(Envelope::Event(owned))) => {
                prop_assert_eq!(view.namespace, owned.namespace.as_str());
                prop_assert_eq!(view.event, owned.event.as_str());
                prop_assert_eq!(view.room, owned.room.as_deref());
                prop_assert_eq!(view.group, owned.group.as_deref());
                prop_assert_eq!(&view.payload, &owned.payload);
                prop_assert_eq!(view.ack, owned.ack);
                prop_assert_eq!(view.from, owned.from.as_deref());
                prop_assert_eq!(view.args, owned.args);
                prop_assert_eq!(view.seq, owned.seq);
                prop_assert_eq!(view.mid, owned.message_id.as_deref());
                prop_assert_eq!(view.epoch, owned.epoch.as_deref());
            }
            (Err(_), Err(_)) => {}
            (view, owned) => prop_assert!(false, "view {:?} but decode {:?}", view, owned),
        }
    }

    /// The fast path decodes every envelope exactly as serde does, and
    /// damaged frames fail (or succeed) the same way.
    #[test]
    fn fast_decode_equals_serde(
        envelope in envelope(),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
    ) {
        let frame = damaged(&envelope, &flips);
        match (decode(&frame), super::decode_with_serde(&frame)) {
            (Ok(fast), Ok(slow)) => prop_assert_eq!(fast, slow),
            (Err(_), Err(_)) => {}
            (fast, slow) => prop_assert!(false, "fast {:?} but serde {:?}", fast, slow),
        }
    }

    #[test]
    fn every_envelope_round_trips(envelope in envelope()) {
        prop_assert_eq!(round_trip(&envelope), envelope);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(&Bytes::from(bytes));
    }

    #[test]
    fn mutated_frames_never_panic(envelope in envelope(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let mut bytes = encode(&envelope);
        for (at, value) in flips {
            if !bytes.is_empty() {
                let i = at % bytes.len();
                bytes[i] = value;
            }
        }
        let _ = decode(&Bytes::from(bytes));
    }

    #[test]
    fn truncated_frames_never_panic(envelope in envelope(), cut in any::<usize>()) {
        let bytes = encode(&envelope);
        let cut = cut % (bytes.len() + 1);
        let _ = decode(&Bytes::copy_from_slice(&bytes[..cut]));
    }
}

/// The keys added for Socket.IO (`from`, `args`, `ex`, `sid`) go after
/// every older key, so an envelope without them encodes as it always did
/// (the golden tests above) and one with them only appends.
#[test]
fn golden_service_keys() {
    let event = Envelope::Event(Event {
        namespace: "/".into(),
        event: "m".into(),
        payload: Bytes::from_static(&[0x92, 0x01, 0x02]),
        from: Some("n-1".into()),
        args: true,
        ..Event::default()
    });
    // {"t":"event","ns":"/","ev":"m","d":bin[92 01 02],"from":"n-1","args":true}
    let golden = "86a174a56576656e74a26e73a12fa26576a16d\
                  a164c403920102a466726f6da36e2d31a461726773c3";
    assert_eq!(hex(&encode(&event)), golden);
    let view = EventRef {
        namespace: "/",
        event: "m",
        payload: &[0x92, 0x01, 0x02],
        from: Some("n-1"),
        args: true,
        ..EventRef::default()
    };
    assert_eq!(hex(&encode_event(&view)), golden);

    let emit = Envelope::Emit(Emit {
        namespace: "/".into(),
        event: "m".into(),
        room: Some("r".into()),
        except: Some("n-1".into()),
        args: true,
        ..Emit::default()
    });
    // {"t":"emit","ns":"/","ev":"m","room":"r","d":bin[],"args":true,"ex":"n-1"}
    assert_eq!(
        hex(&encode(&emit)),
        "87a174a4656d6974a26e73a12fa26576a16da4726f6f6da172\
         a164c400a461726773c3a26578a36e2d31"
    );

    let join = Envelope::Join(RoomChange {
        id: Some(3),
        namespace: "/".into(),
        room: "r".into(),
        sid: Some("n-1".into()),
    });
    // {"t":"join","id":3,"ns":"/","room":"r","sid":"n-1"}
    assert_eq!(
        hex(&encode(&join)),
        "85a174a46a6f696ea2696403a26e73a12fa4726f6f6da172a3736964a36e2d31"
    );

    let reply = Envelope::Reply(Reply {
        ack: 1,
        ok: true,
        payload: Bytes::from_static(&[0x90]),
        args: true,
    });
    // {"t":"reply","d":bin[90],"ack":1,"ok":true,"args":true}
    assert_eq!(
        hex(&encode(&reply)),
        "85a174a57265706c79a164c40190a361636b01a26f6bc3a461726773c3"
    );
    for envelope in [event, emit, join, reply] {
        assert_eq!(round_trip(&envelope), envelope);
    }
}

/// `args: false` is never written, and `args: nil` reads as absent (§2).
#[test]
fn args_false_is_omitted_and_nil_is_absent() {
    let plain = Envelope::Reply(Reply {
        ack: 1,
        ok: true,
        payload: Bytes::new(),
        args: false,
    });
    assert!(!hex(&encode(&plain)).contains("61726773"));
    // {"t":"reply","ack":1,"ok":true,"args":nil}
    let frame = Bytes::from_static(&[
        0x84, 0xa1, b't', 0xa5, b'r', b'e', b'p', b'l', b'y', 0xa3, b'a', b'c', b'k', 0x01, 0xa2,
        b'o', b'k', 0xc3, 0xa4, b'a', b'r', b'g', b's', 0xc0,
    ]);
    assert_eq!(decode(&frame), Ok(plain));
}

#[test]
fn the_event_length_hint_is_exact_across_msgpack_header_sizes() {
    let long_name = "n".repeat(40);
    let longer_name = "r".repeat(300);
    for (payload_len, number) in [
        (0, 5),
        (200, 200),
        (300, 300),
        (70_000, 70_000),
        (10, 1 << 40),
    ] {
        let payload = vec![7u8; payload_len];
        let view = EventRef {
            namespace: "/chat",
            event: &long_name,
            room: Some(&longer_name),
            group: Some("g"),
            payload: &payload,
            ack: Some(number),
            from: Some("n1-3"),
            args: true,
            seq: Some(number),
            mid: Some(&long_name),
            epoch: Some("abcdefgh"),
        };
        assert_eq!(
            event_len_hint(&view),
            encode_event(&view).len(),
            "{payload_len}"
        );
    }
}
