//! Tests of packet decoding, the assembler and the encoders: every packet
//! form of the upstream socket.io-protocol test suite and specification
//! tables, and the reference parser's error cases.

use bytes::Bytes;

use super::*;
use crate::socketio::assemble::Assembler;
use crate::socketio::encode::{
    write_ack_head, write_connect, write_connect_error, write_disconnect, write_event_head,
};

fn json(text: &str) -> Json {
    Json::parse(text).expect("valid JSON in the test")
}

fn args(text: &str) -> Vec<Json> {
    match json(text) {
        Json::Array(items) => items,
        other => panic!("not an array: {other:?}"),
    }
}

fn ok(text: &str) -> Packet {
    decode(text).unwrap_or_else(|e| panic!("{text:?} refused: {e}"))
}

fn packet(namespace: &str, id: Option<u64>, body: Body) -> Packet {
    Packet {
        namespace: namespace.into(),
        id,
        body,
    }
}

fn event(name: &str, rest: &str, attachments: Option<usize>) -> Body {
    Body::Event {
        name: name.into(),
        args: args(rest),
        attachments,
    }
}

// --- The client's packets of the upstream test suite ---------------------

#[test]
fn connect_to_the_main_namespace() {
    assert_eq!(ok("0"), packet("/", None, Body::Connect { auth: None }));
}

#[test]
fn connect_with_a_payload() {
    assert_eq!(
        ok(r#"0{"token":"123"}"#),
        packet(
            "/",
            None,
            Body::Connect {
                auth: Some(json(r#"{"token":"123"}"#))
            }
        )
    );
}

#[test]
fn connect_to_a_custom_namespace() {
    let expected = packet("/custom", None, Body::Connect { auth: None });
    assert_eq!(ok("0/custom,"), expected);
    // Without the comma the namespace runs to the end (the suite sends
    // `40/random` and `40/custom`).
    assert_eq!(ok("0/custom"), expected);
}

#[test]
fn connect_to_a_custom_namespace_with_a_payload() {
    assert_eq!(
        ok(r#"0/custom,{"token":"abc"}"#),
        packet(
            "/custom",
            None,
            Body::Connect {
                auth: Some(json(r#"{"token":"abc"}"#))
            }
        )
    );
}

#[test]
fn disconnect() {
    assert_eq!(ok("1"), packet("/", None, Body::Disconnect));
    assert_eq!(ok("1/custom"), packet("/custom", None, Body::Disconnect));
    assert_eq!(ok("1/admin,"), packet("/admin", None, Body::Disconnect));
}

#[test]
fn plain_text_event() {
    assert_eq!(
        ok(r#"2["message",1,"2",{"3":[true]}]"#),
        packet("/", None, event("message", r#"[1,"2",{"3":[true]}]"#, None))
    );
}

#[test]
fn event_with_binary_attachments() {
    let p = ok(r#"52-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#);
    assert_eq!(
        p,
        packet(
            "/",
            None,
            event(
                "message",
                r#"[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
                Some(2)
            )
        )
    );
    assert_eq!(p.kind(), PacketType::BinaryEvent);
    assert_eq!(p.attachments(), 2);
}

#[test]
fn event_with_an_ack() {
    let p = ok(r#"2456["message-with-ack",1,"2",{"3":[false]}]"#);
    assert_eq!(
        p,
        packet(
            "/",
            Some(456),
            event("message-with-ack", r#"[1,"2",{"3":[false]}]"#, None)
        )
    );
}

#[test]
fn binary_event_with_an_ack() {
    let p = ok(
        r#"52-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
    );
    assert_eq!(p.id, Some(789));
    assert_eq!(p.attachments(), 2);
    assert_eq!(p.kind(), PacketType::BinaryEvent);
}

// --- The specification's encoding tables (client-side forms) -------------

#[test]
fn spec_table_events_and_acks() {
    assert_eq!(
        ok(r#"2["foo"]"#),
        packet("/", None, event("foo", "[]", None))
    );
    assert_eq!(
        ok(r#"2/admin,["bar"]"#),
        packet("/admin", None, event("bar", "[]", None))
    );
    assert_eq!(
        ok(r#"51-["baz",{"_placeholder":true,"num":0}]"#),
        packet(
            "/",
            None,
            event("baz", r#"[{"_placeholder":true,"num":0}]"#, Some(1))
        )
    );
    assert_eq!(
        ok(r#"52-/admin,["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#)
            .namespace,
        "/admin"
    );
    assert_eq!(
        ok(r#"212["foo"]"#),
        packet("/", Some(12), event("foo", "[]", None))
    );
    assert_eq!(
        ok("312[]"),
        packet(
            "/",
            Some(12),
            Body::Ack {
                args: vec![],
                attachments: None
            }
        )
    );
    assert_eq!(
        ok(r#"2/admin,13["foo"]"#),
        packet("/admin", Some(13), event("foo", "[]", None))
    );
    assert_eq!(
        ok(r#"3/admin,13["bar"]"#),
        packet(
            "/admin",
            Some(13),
            Body::Ack {
                args: args(r#"["bar"]"#),
                attachments: None
            }
        )
    );
    assert_eq!(
        ok(r#"51-14["foo",{"_placeholder":true,"num":0}]"#),
        packet(
            "/",
            Some(14),
            event("foo", r#"[{"_placeholder":true,"num":0}]"#, Some(1))
        )
    );
    let ack = ok(r#"61-15["bar",{"_placeholder":true,"num":0}]"#);
    assert_eq!(
        ack,
        packet(
            "/",
            Some(15),
            Body::Ack {
                args: args(r#"["bar",{"_placeholder":true,"num":0}]"#),
                attachments: Some(1)
            }
        )
    );
    assert_eq!(ack.kind(), PacketType::BinaryAck);
}

#[test]
fn ack_ids_up_to_u64_max() {
    assert_eq!(ok("318446744073709551615[]").id, Some(u64::MAX));
    assert_eq!(
        decode("318446744073709551616[]"),
        Err(PacketError::AckIdOverflow("18446744073709551616".into()))
    );
}

#[test]
fn binary_packet_announcing_zero_attachments() {
    let p = ok(r#"50-["a"]"#);
    assert_eq!(p.kind(), PacketType::BinaryEvent);
    assert_eq!(p.attachments(), 0);
}

// --- Refusals: the suite's and the reference parser's --------------------

fn refused(text: &str) -> PacketError {
    match decode(text) {
        Ok(p) => panic!("{text:?} accepted as {p:?}"),
        Err(e) => e,
    }
}

fn invalid(kind: PacketType) -> impl Fn(&PacketError) -> bool {
    move |e| matches!(e, PacketError::InvalidPayload { kind: k, .. } if *k == kind)
}

#[test]
fn test_suite_invalid_formats() {
    // The suite sends these as Engine.IO messages: `4` then the packet.
    // `4abc`: no packet type `a`.
    assert_eq!(refused("abc"), PacketError::UnknownType('a'));
    // `42{}`: an event's data must be an array.
    assert!(invalid(PacketType::Event)(&refused("2{}")));
    // `42abc[…]`: no ack id, and `abc[…]` is not JSON.
    assert!(matches!(
        refused(r#"2abc["message-with-ack",1,"2",{"3":[false]}]"#),
        PacketError::Json(_)
    ));
}

#[test]
fn reference_parser_invalid_payloads() {
    // CONNECT_ERROR is never taken from a client, well-formed or not.
    assert_eq!(
        refused(r#"442["some","data""#),
        PacketError::ConnectErrorFromClient
    );
    assert_eq!(
        refused(r#"4{"message":"x"}"#),
        PacketError::ConnectErrorFromClient
    );
    assert!(invalid(PacketType::Connect)(&refused(
        r#"0/admin,"invalid""#
    )));
    assert!(invalid(PacketType::Connect)(&refused("0[]")));
    assert!(invalid(PacketType::Disconnect)(&refused("1/admin,{}")));
    assert!(matches!(
        refused(r#"2/admin,"invalid"#),
        PacketError::Json(_)
    ));
    assert!(invalid(PacketType::Event)(&refused("2/admin,{}")));
    assert!(invalid(PacketType::Event)(&refused(
        r#"2[{"toString":"foo"}]"#
    )));
    assert!(invalid(PacketType::Event)(&refused(r#"2[true,"foo"]"#)));
    assert!(invalid(PacketType::Event)(&refused(r#"2[null,"bar"]"#)));
    assert_eq!(
        refused(r#"2["connect"]"#),
        PacketError::ReservedEvent("connect".into())
    );
    assert_eq!(
        refused(r#"2["disconnect","123"]"#),
        PacketError::ReservedEvent("disconnect".into())
    );
    assert_eq!(refused("999"), PacketError::UnknownType('9'));
    assert!(matches!(refused("5"), PacketError::IllegalAttachments(_)));
}

#[test]
fn more_refusals() {
    assert_eq!(refused(""), PacketError::Empty);
    assert_eq!(refused("9"), PacketError::UnknownType('9'));
    assert_eq!(refused("x"), PacketError::UnknownType('x'));
    assert_eq!(refused("é"), PacketError::UnknownType('é'));
    // An event needs its data, a name, and the name must be a string
    // (the reference also takes numbers; Herald event names are strings).
    assert!(invalid(PacketType::Event)(&refused("2")));
    assert!(invalid(PacketType::Event)(&refused("2[]")));
    assert!(invalid(PacketType::Event)(&refused("2[1]")));
    assert!(invalid(PacketType::Event)(&refused("2/chat,12")));
    assert!(invalid(PacketType::Ack)(&refused("312")));
    assert!(invalid(PacketType::Ack)(&refused("312{}")));
    assert!(invalid(PacketType::BinaryAck)(&refused("61-1{}")));
    // Bad JSON and trailing characters.
    assert!(matches!(refused(r#"2["a"]x"#), PacketError::Json(_)));
    assert!(matches!(refused(r#"2["a""#), PacketError::Json(_)));
    assert!(matches!(refused("2[\"\\ud800\"]"), PacketError::Json(_)));
    // Attachment counts: digits then `-`, within the bound.
    assert!(matches!(
        refused("5-[\"a\"]"),
        PacketError::IllegalAttachments(_)
    ));
    assert!(matches!(
        refused("51[\"a\"]"),
        PacketError::IllegalAttachments(_)
    ));
    assert!(matches!(
        refused("5a-[\"a\"]"),
        PacketError::IllegalAttachments(_)
    ));
    assert_eq!(
        refused("511-[\"a\"]"),
        PacketError::TooManyAttachments { count: 11, max: 10 }
    );
    assert_eq!(
        refused("5999999999999999999999-[\"a\"]"),
        PacketError::TooManyAttachments {
            count: u64::MAX,
            max: 10
        }
    );
    let roomy = PacketLimits {
        max_attachments: 1000,
    };
    assert_eq!(
        decode_with("5999-[\"a\"]", &roomy).map(|p| p.attachments()),
        Ok(999)
    );
    // Too deep for serde_json's nesting limit: refused, not a stack overflow.
    let deep = format!("2[\"a\",{}{}]", "[".repeat(10_000), "]".repeat(10_000));
    assert!(matches!(refused(&deep), PacketError::Json(_)));
}

#[test]
fn error_messages_quote_little() {
    let long = format!("5{}", "x".repeat(10_000));
    let message = refused(&long).to_string();
    assert!(message.len() < 200, "{message}");
    assert!(message.starts_with("illegal attachments"), "{message}");
}

// --- The assembler --------------------------------------------------------

#[test]
fn assembler_joins_attachments_in_order() {
    let mut assembler = Assembler::default();
    let head = r#"52-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#;
    assert_eq!(assembler.text(head), Ok(None));
    assert_eq!(assembler.due(), 2);
    assert_eq!(assembler.binary(Bytes::from_static(&[1, 2, 3])), Ok(None));
    assert_eq!(assembler.due(), 1);
    let done = assembler
        .binary(Bytes::from_static(&[4, 5, 6]))
        .expect("accepted")
        .expect("complete");
    assert_eq!(done.packet.attachments(), 2);
    assert_eq!(
        done.attachments,
        vec![
            Bytes::from_static(&[1, 2, 3]),
            Bytes::from_static(&[4, 5, 6])
        ]
    );
    assert_eq!(assembler.due(), 0);
    // And the next packet starts afresh.
    let next = assembler
        .text(r#"2["hello"]"#)
        .expect("accepted")
        .expect("complete");
    assert_eq!(next.packet, packet("/", None, event("hello", "[]", None)));
    assert!(next.attachments.is_empty());
}

#[test]
fn assembler_refuses_out_of_turn_messages() {
    let mut assembler = Assembler::default();
    assert_eq!(
        assembler.binary(Bytes::from_static(b"x")),
        Err(PacketError::UnexpectedBinary)
    );
    assert_eq!(
        assembler.text(r#"51-["a",{"_placeholder":true,"num":0}]"#),
        Ok(None)
    );
    assert_eq!(
        assembler.text(r#"2["a"]"#),
        Err(PacketError::TextWhileAssembling(1))
    );
    assembler.reset();
    assert_eq!(assembler.due(), 0);
    assert!(assembler.text(r#"2["a"]"#).expect("accepted").is_some());
    // Zero attachments: complete at once, and no binary is expected.
    assert!(assembler.text(r#"50-["a"]"#).expect("accepted").is_some());
    assert_eq!(
        assembler.binary(Bytes::from_static(b"x")),
        Err(PacketError::UnexpectedBinary)
    );
}

#[test]
fn assembler_enforces_its_limit() {
    let mut assembler = Assembler::new(PacketLimits { max_attachments: 2 });
    assert_eq!(
        assembler.text(r#"53-["a"]"#),
        Err(PacketError::TooManyAttachments { count: 3, max: 2 })
    );
    assert_eq!(assembler.due(), 0);
}

// --- The server's packets -------------------------------------------------

fn written(f: impl FnOnce(&mut String)) -> String {
    let mut out = String::new();
    f(&mut out);
    out
}

#[test]
fn server_packets_as_the_reference_writes_them() {
    assert_eq!(
        written(|o| write_connect(o, "/", "wZX3oN0bSVIhsaknAAAI")),
        r#"0{"sid":"wZX3oN0bSVIhsaknAAAI"}"#
    );
    assert_eq!(
        written(|o| write_connect(o, "/admin", "oSO0OpakMV_3jnilAAAA")),
        r#"0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}"#
    );
    assert_eq!(
        written(|o| write_connect_error(o, "/random", "Invalid namespace")),
        r#"4/random,{"message":"Invalid namespace"}"#
    );
    assert_eq!(
        written(|o| write_connect_error(o, "/", "Not authorized")),
        r#"4{"message":"Not authorized"}"#
    );
    assert_eq!(written(|o| write_disconnect(o, "/")), "1");
    assert_eq!(written(|o| write_disconnect(o, "/admin")), "1/admin,");
    assert_eq!(written(|o| write_event_head(o, "/", None, 0)), "2");
    assert_eq!(
        written(|o| write_event_head(o, "/admin", Some(13), 0)),
        "2/admin,13"
    );
    assert_eq!(written(|o| write_event_head(o, "/", Some(14), 1)), "51-14");
    assert_eq!(
        written(|o| write_event_head(o, "/admin", None, 2)),
        "52-/admin,"
    );
    assert_eq!(written(|o| write_ack_head(o, "/", 12, 0)), "312");
    assert_eq!(written(|o| write_ack_head(o, "/", 15, 1)), "61-15");
    assert_eq!(
        written(|o| write_ack_head(o, "/admin", 13, 0)),
        "3/admin,13"
    );
}

#[test]
fn server_packets_escape_their_strings() {
    assert_eq!(
        written(|o| write_connect_error(o, "/", "bad \"name\"\n")),
        r#"4{"message":"bad \"name\"\n"}"#
    );
}

#[test]
fn packet_types_round_trip_their_digit() {
    for d in b'0'..=b'6' {
        let kind = PacketType::from_digit(d).expect("a type");
        assert_eq!(kind.digit(), char::from(d));
    }
    assert_eq!(PacketType::from_digit(b'7'), None);
    assert_eq!(PacketType::BinaryAck.to_string(), "BINARY_ACK");
}
