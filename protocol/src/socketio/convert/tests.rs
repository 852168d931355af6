//! Tests of the JSON ⇄ MessagePack conversion: each rule, the upstream
//! test suite's echoes, and round trips (client JSON text -> payload ->
//! the same text; payload -> JSON -> the same bytes).

use bytes::Bytes;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use super::*;
use crate::socketio::assemble::Assembler;
use crate::socketio::json::Json;
use crate::socketio::packet::{PacketLimits, decode};

fn args(text: &str) -> Vec<Json> {
    match Json::parse(text).expect("valid JSON in the test") {
        Json::Array(items) => items,
        other => panic!("not an array: {other:?}"),
    }
}

fn payload(text: &str) -> Payload {
    args_to_payload(&args(text), None).expect("convertible")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn bytes(hex: &str) -> Bytes {
    let digits: Vec<u8> = hex.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|pair| {
            let text = std::str::from_utf8(pair).expect("ascii");
            u8::from_str_radix(text, 16).expect("hex")
        })
        .collect::<Vec<u8>>()
        .into()
}

/// The data array `["ev",…]` of the payload, and its attachments.
fn to_json(payload: &[u8], spread: bool) -> (String, Vec<Bytes>) {
    let mut out = String::new();
    let mut attachments = Vec::new();
    write_args(
        &mut out,
        &Bytes::copy_from_slice(payload),
        spread,
        &mut attachments,
    );
    (out, attachments)
}

// --- Arguments to a payload ----------------------------------------------

#[test]
fn one_argument_is_the_payload() {
    assert_eq!(
        payload(r#"["a"]"#),
        Payload {
            bytes: bytes("a161"),
            spread: false
        }
    );
    // An array argument stays one argument.
    assert_eq!(
        payload("[[1,2]]"),
        Payload {
            bytes: bytes("92 01 02"),
            spread: false
        }
    );
}

#[test]
fn zero_or_several_arguments_are_an_array() {
    assert_eq!(
        payload("[]"),
        Payload {
            bytes: bytes("90"),
            spread: true
        }
    );
    assert_eq!(
        payload(r#"[1,"2",{"3":[true]}]"#),
        Payload {
            bytes: bytes("93 01 a132 81 a133 91 c3"),
            spread: true
        }
    );
}

#[test]
fn numbers() {
    let one = |t: &str| hex(&payload(&format!("[{t}]")).bytes);
    assert_eq!(one("0"), "00");
    assert_eq!(one("127"), "7f");
    assert_eq!(one("128"), "cc80");
    assert_eq!(one("-1"), "ff");
    assert_eq!(one("-33"), "d0df");
    assert_eq!(one("18446744073709551615"), "cfffffffffffffffff");
    assert_eq!(one("-9223372036854775808"), "d38000000000000000");
    assert_eq!(one("1.5"), "cb3ff8000000000000");
    // A fraction or exponent makes a float, even when integral.
    assert_eq!(one("1.0"), "cb3ff0000000000000");
    assert_eq!(one("1e3"), "cb408f400000000000");
    // Past 64 bits: a float.
    assert_eq!(one("18446744073709551616"), "cb43f0000000000000");
}

#[test]
fn objects_keep_key_order() {
    assert_eq!(
        hex(&payload(r#"[{"b":1,"a":{"d":null,"c":false}}]"#).bytes),
        "82 a162 01 a161 82 a164 c0 a163 c2".replace(' ', "")
    );
}

#[test]
fn placeholders_become_bin() {
    let attachments = [Bytes::from_static(&[1, 2, 3]), Bytes::from_static(&[4])];
    let p = args_to_payload(
        &args(r#"[{"a":[{"_placeholder":true,"num":1}]},{"num":0,"_placeholder":true}]"#),
        Some(&attachments),
    )
    .expect("convertible");
    assert_eq!(
        hex(&p.bytes),
        "92 81 a161 91 c40104 c403010203".replace(' ', "")
    );
    assert!(p.spread);
}

#[test]
fn placeholder_errors() {
    let one = [Bytes::from_static(b"x")];
    let convert = |text: &str, atts: &[Bytes]| args_to_payload(&args(text), Some(atts));
    assert_eq!(
        convert(r#"[{"_placeholder":true,"num":1}]"#, &one),
        Err(ConvertError::PlaceholderOutOfRange { num: 1, count: 1 })
    );
    assert_eq!(
        convert(r#"[{"_placeholder":true,"num":-1}]"#, &one),
        Err(ConvertError::PlaceholderWithoutNum)
    );
    assert_eq!(
        convert(r#"[{"_placeholder":true,"num":0.5}]"#, &one),
        Err(ConvertError::PlaceholderWithoutNum)
    );
    assert_eq!(
        convert(r#"[{"_placeholder":true}]"#, &one),
        Err(ConvertError::PlaceholderWithoutNum)
    );
    assert_eq!(
        convert(r#"["no placeholder"]"#, &one),
        Err(ConvertError::UnusedAttachment(0))
    );
    // `_placeholder` must be `true` to count.
    assert_eq!(
        convert(r#"[{"_placeholder":1,"num":0}]"#, &one),
        Err(ConvertError::UnusedAttachment(0))
    );
    // The same attachment twice is allowed, as in the reference.
    let twice = convert(
        r#"[{"_placeholder":true,"num":0},{"_placeholder":true,"num":0}]"#,
        &one,
    )
    .expect("convertible");
    assert_eq!(hex(&twice.bytes), "92c40178c40178");
}

#[test]
fn placeholders_in_text_packets_are_objects() {
    assert_eq!(
        hex(&payload(r#"[{"_placeholder":true,"num":0}]"#).bytes),
        "82 ac5f706c616365686f6c646572 c3 a36e756d 00".replace(' ', "")
    );
}

#[test]
fn auth_payloads() {
    assert_eq!(hex(&auth_to_payload(None)), "80");
    let auth = Json::parse(r#"{"token":"123"}"#).expect("valid");
    assert_eq!(hex(&auth_to_payload(Some(&auth))), "81a5746f6b656ea3313233");
    let mut out = vec![0x92];
    write_auth(&mut out, None);
    write_auth(&mut out, Some(&auth));
    assert_eq!(hex(&out), "928081a5746f6b656ea3313233");
}

// --- A payload to arguments ------------------------------------------------

#[test]
fn empty_payload_is_no_arguments() {
    assert_eq!(to_json(b"", false), (String::new(), vec![]));
    assert_eq!(to_json(b"", true), (String::new(), vec![]));
}

#[test]
fn spread_array_is_the_arguments() {
    let p = bytes("93 01 a132 81 a133 91 c3");
    assert_eq!(to_json(&p, true).0, r#"1,"2",{"3":[true]}"#);
    assert_eq!(to_json(&p, false).0, r#"[1,"2",{"3":[true]}]"#);
    // spread but not an array: one argument.
    assert_eq!(to_json(&bytes("a161"), true).0, r#""a""#);
    assert_eq!(to_json(&bytes("90"), true).0, "");
}

#[test]
fn scalars() {
    let one = |h: &str| to_json(&bytes(h), false).0;
    assert_eq!(one("c0"), "null");
    assert_eq!(one("c2"), "false");
    assert_eq!(one("c3"), "true");
    assert_eq!(one("e0"), "-32");
    assert_eq!(one("cfffffffffffffffff"), "18446744073709551615");
    assert_eq!(one("d38000000000000000"), "-9223372036854775808");
    assert_eq!(one("d1ff00"), "-256");
    assert_eq!(one("cd0100"), "256");
    assert_eq!(one("cb3ff8000000000000"), "1.5");
    assert_eq!(one("cb3ff0000000000000"), "1");
    assert_eq!(one("cb7ff8000000000000"), "null"); // NaN
    assert_eq!(one("cb7ff0000000000000"), "null"); // +Infinity
    assert_eq!(one("cbfff0000000000000"), "null"); // -Infinity
    assert_eq!(one("cb4415af1d78b58c40"), "100000000000000000000");
    assert_eq!(one("cb444b1ae4d6e2ef50"), "1e+21");
    assert_eq!(one("ca3fc00000"), "1.5"); // float 32
    assert_eq!(one("ca3dcccccd"), "0.10000000149011612");
    assert_eq!(one("a3e282ac"), r#""€""#);
    assert_eq!(one("a20a22"), r#""\n\"""#);
    // Invalid UTF-8 in a str: replaced.
    assert_eq!(one("a2ff41"), "\"\u{fffd}A\"");
    assert_eq!(one("d903616263"), r#""abc""#);
}

#[test]
fn bin_and_ext_become_attachments() {
    let (text, atts) = to_json(&bytes("93 c40101 81a162c4020203 d6ff00000001"), true);
    assert_eq!(
        text,
        r#"{"_placeholder":true,"num":0},{"b":{"_placeholder":true,"num":1}},{"_ext":-1,"data":{"_placeholder":true,"num":2}}"#
    );
    assert_eq!(
        atts,
        vec![
            Bytes::from_static(&[1]),
            Bytes::from_static(&[2, 3]),
            Bytes::from_static(&[0, 0, 0, 1])
        ]
    );
}

#[test]
fn non_string_keys_become_their_json_text() {
    let (text, atts) = to_json(
        &bytes("86 01 a161 c3 a162 c0 a163 920102 a164 c40107 a165 cb3ff8000000000000 a166"),
        false,
    );
    assert_eq!(
        text,
        r#"{"1":"a","true":"b","null":"c","[1,2]":"d","[7]":"e","1.5":"f"}"#
    );
    assert!(atts.is_empty());
    // A key that is a map holding a string with a quote: escaped once.
    assert_eq!(
        to_json(&bytes("81 81a1220a c0"), false).0,
        r#"{"{\"\\\"\":10}":null}"#
    );
}

#[test]
fn invalid_payloads_are_one_binary_argument() {
    for h in [
        "c1",            // never used
        "a3 6162",       // truncated str
        "92 01",         // truncated array
        "01 02",         // trailing bytes
        "dc 00",         // truncated array header
        "ddffffffff 01", // a lying count
        "c6ffffffff 00", // a lying bin length
        "81 01",         // a key without a value
    ] {
        let raw = bytes(h);
        for spread in [false, true] {
            let (text, atts) = to_json(&raw, spread);
            assert_eq!(text, r#"{"_placeholder":true,"num":0}"#, "{h}");
            assert_eq!(atts, vec![raw.clone()], "{h}");
        }
    }
}

#[test]
fn too_deep_payloads_are_one_binary_argument() {
    let within: Vec<u8> = std::iter::repeat_n(0x91, MAX_DEPTH).chain([0xc0]).collect();
    let (text, atts) = to_json(&within, false);
    assert!(atts.is_empty());
    assert_eq!(text.len(), 2 * MAX_DEPTH + 4);
    // And what comes out reads back in (serde_json's nesting limit).
    let (packet, _) = sio_event(&within, false);
    decode(&packet).expect("Herald reads its own output");

    let deeper: Vec<u8> = std::iter::repeat_n(0x91, MAX_DEPTH + 1)
        .chain([0xc0])
        .collect();
    let (text, atts) = to_json(&deeper, false);
    assert_eq!(text, r#"{"_placeholder":true,"num":0}"#);
    assert_eq!(atts.len(), 1);
    // A megabyte of nesting: no stack overflow.
    let huge = vec![0x91u8; 1 << 20];
    assert_eq!(to_json(&huge, false).1.len(), 1);
}

fn sio_event(payload: &[u8], spread: bool) -> (String, Vec<Bytes>) {
    let m = event_packet("/", "ev", &Bytes::copy_from_slice(payload), spread, None);
    (m.text, m.attachments)
}

// --- Whole packets ----------------------------------------------------------

#[test]
fn event_and_ack_packets() {
    let p = payload(r#"[1]"#);
    assert_eq!(
        event_packet("/chat", "ev", &p.bytes, p.spread, None).text,
        r#"2/chat,["ev",1]"#
    );
    assert_eq!(
        event_packet("/", "ev", &p.bytes, p.spread, Some(7)).text,
        r#"27["ev",1]"#
    );
    let none = payload("[]");
    assert_eq!(
        event_packet("/", "ev", &none.bytes, none.spread, None).text,
        r#"2["ev"]"#
    );
    assert_eq!(
        event_packet("/", "ev", &Bytes::new(), false, None).text,
        r#"2["ev"]"#
    );
    let bin = bytes("c403010203");
    assert_eq!(
        event_packet("/", "ev", &bin, false, None),
        SioMessage {
            text: r#"51-["ev",{"_placeholder":true,"num":0}]"#.into(),
            attachments: vec![Bytes::from_static(&[1, 2, 3])]
        }
    );
    assert_eq!(
        event_packet("/a", "ev", &bin, false, Some(3)).text,
        r#"51-/a,3["ev",{"_placeholder":true,"num":0}]"#
    );
    assert_eq!(ack_packet("/", 12, &none.bytes, none.spread).text, "312[]");
    assert_eq!(ack_packet("/", 12, &p.bytes, p.spread).text, "312[1]");
    assert_eq!(
        ack_packet("/admin", 13, &bin, false).text,
        r#"61-/admin,13[{"_placeholder":true,"num":0}]"#
    );
    assert_eq!(
        ack_packet("/", 9, &bytes("c1"), false),
        SioMessage {
            text: r#"61-9[{"_placeholder":true,"num":0}]"#.into(),
            attachments: vec![bytes("c1")]
        }
    );
}

#[test]
fn writers_append_and_number_their_own_attachments() {
    let mut out = String::from("4");
    let mut atts = vec![Bytes::from_static(b"earlier")];
    write_event_packet(
        &mut out,
        &mut atts,
        "/",
        "ev",
        &bytes("c40100"),
        false,
        None,
    );
    assert_eq!(out, r#"451-["ev",{"_placeholder":true,"num":0}]"#);
    assert_eq!(atts.len(), 2);
    let mut out = String::new();
    write_ack_packet(&mut out, &mut atts, "/", 1, &bytes("c40100"), false);
    assert_eq!(out, r#"61-1[{"_placeholder":true,"num":0}]"#);
    let mut data = String::new();
    write_data(&mut data, None, &bytes("92 01 02"), true, &mut atts);
    assert_eq!(data, "[1,2]");
}

/// A packet text and its attachments through an assembler.
fn assemble(text: &str, attachments: &[Bytes]) -> Assembled {
    let mut assembler = Assembler::new(PacketLimits {
        max_attachments: usize::MAX,
    });
    let mut done = assembler.text(text).expect("accepted");
    for b in attachments {
        done = assembler.binary(b.clone()).expect("accepted");
    }
    done.expect("complete")
}

/// What a server running the suite's handlers answers: the client's packet
/// converted to a payload and back, as `message-back` or as an ack.
fn echo(text: &str, binaries: &[&[u8]]) -> SioMessage {
    let binaries: Vec<Bytes> = binaries.iter().map(|b| Bytes::copy_from_slice(b)).collect();
    let done = assemble(text, &binaries);
    let p = done.args_payload().expect("convertible");
    match (&done.packet.body, done.packet.id) {
        (crate::socketio::packet::Body::Event { .. }, Some(id)) => {
            ack_packet(&done.packet.namespace, id, &p.bytes, p.spread)
        }
        _ => event_packet(
            &done.packet.namespace,
            "message-back",
            &p.bytes,
            p.spread,
            None,
        ),
    }
}

#[test]
fn test_suite_echoes() {
    assert_eq!(
        echo(r#"2["message",1,"2",{"3":[true]}]"#, &[]).text,
        r#"2["message-back",1,"2",{"3":[true]}]"#
    );
    assert_eq!(
        echo(
            r#"52-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
            &[&[1, 2, 3], &[4, 5, 6]]
        ),
        SioMessage {
            text:
                r#"52-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#
                    .into(),
            attachments: vec![
                Bytes::from_static(&[1, 2, 3]),
                Bytes::from_static(&[4, 5, 6])
            ]
        }
    );
    assert_eq!(
        echo(r#"2456["message-with-ack",1,"2",{"3":[false]}]"#, &[]).text,
        r#"3456[1,"2",{"3":[false]}]"#
    );
    let ack = echo(
        r#"52-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
        &[&[1, 2, 3], &[4, 5, 6]],
    );
    assert_eq!(
        ack.text,
        r#"62-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#
    );
    assert_eq!(ack.attachments.len(), 2);
    // The `auth` event: the CONNECT payload, or `{}`.
    let connect = decode(r#"0{"token":"123"}"#).expect("accepted");
    let crate::socketio::packet::Body::Connect { auth } = &connect.body else {
        panic!("not a connect");
    };
    let auth = auth_to_payload(auth.as_ref());
    assert_eq!(
        event_packet("/", "auth", &auth, false, None).text,
        r#"2["auth",{"token":"123"}]"#
    );
    assert_eq!(
        event_packet("/custom", "auth", &auth_to_payload(None), false, None).text,
        r#"2/custom,["auth",{}]"#
    );
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    item: String,
    price: f64,
    tags: Vec<String>,
}

#[test]
fn one_argument_meets_rust_types() {
    // A browser's one object is what a Rust handler decodes…
    let p = payload(r#"[{"id":7,"item":"tea","price":2.5,"tags":["hot"]}]"#);
    assert!(!p.spread);
    let order: Order = rmp_serde::from_slice(&p.bytes).expect("decodes as an Order");
    assert_eq!(
        order,
        Order {
            id: 7,
            item: "tea".into(),
            price: 2.5,
            tags: vec!["hot".into()]
        }
    );
    // …and a Rust emit reaches a browser as one argument.
    let bytes = Bytes::from(rmp_serde::to_vec_named(&order).expect("encodes"));
    assert_eq!(
        event_packet("/", "order.created", &bytes, false, None).text,
        r#"2["order.created",{"id":7,"item":"tea","price":2.5,"tags":["hot"]}]"#
    );
}

// --- Round trips --------------------------------------------------------------

/// A JSON value as a client would send it, with binary leaves.
#[derive(Debug, Clone)]
enum Arg {
    Null,
    Bool(bool),
    UInt(u64),
    Int(i64),
    Float(f64),
    Str(String),
    Bin(Vec<u8>),
    Array(Vec<Arg>),
    Object(Vec<(String, Arg)>),
}

/// The JSON a client writes for `arg`: binary leaves become placeholders
/// numbered in order, their bytes pushed to `atts`.
fn client_json(arg: &Arg, atts: &mut Vec<Bytes>) -> Json {
    match arg {
        Arg::Null => Json::Null,
        Arg::Bool(b) => Json::Bool(*b),
        Arg::UInt(n) => Json::UInt(*n),
        Arg::Int(n) => Json::Int(*n),
        Arg::Float(f) => Json::Float(*f),
        Arg::Str(s) => Json::Str(s.clone()),
        Arg::Bin(b) => {
            let num = u64::try_from(atts.len()).expect("few attachments");
            atts.push(Bytes::copy_from_slice(b));
            Json::Object(vec![
                ("_placeholder".into(), Json::Bool(true)),
                ("num".into(), Json::UInt(num)),
            ])
        }
        Arg::Array(items) => Json::Array(items.iter().map(|i| client_json(i, atts)).collect()),
        Arg::Object(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), client_json(v, atts)))
                .collect(),
        ),
    }
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[a-z_]{0,12}"].prop_map(|k| {
        // Any object holding `_placeholder: true` is a placeholder.
        if k == "_placeholder" { k + "x" } else { k }
    })
}

fn arg() -> impl Strategy<Value = Arg> {
    let leaf = prop_oneof![
        Just(Arg::Null),
        any::<bool>().prop_map(Arg::Bool),
        any::<u64>().prop_map(Arg::UInt),
        (i64::MIN..0).prop_map(Arg::Int),
        any::<u64>()
            .prop_map(f64::from_bits)
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Arg::Float),
        (-1e6f64..1e6).prop_map(Arg::Float),
        any::<String>().prop_map(Arg::Str),
        "[ -~\\n\\t\"\\\\é€😀]{0,16}".prop_map(Arg::Str),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(Arg::Bin),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Arg::Array),
            proptest::collection::vec((key(), inner), 0..6).prop_map(Arg::Object),
        ]
    })
}

fn msgpack() -> impl Strategy<Value = rmpv::Value> {
    use rmpv::Value;
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Boolean),
        any::<u64>().prop_map(Value::from),
        (i64::MIN..0).prop_map(Value::from),
        // Integral floats come back as integers; every other finite one
        // comes back exactly.
        any::<u64>()
            .prop_map(f64::from_bits)
            .prop_filter("finite, not integral", |f| f.is_finite()
                && f.fract() != 0.0)
            .prop_map(Value::F64),
        any::<String>().prop_map(Value::from),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(Value::Binary),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((any::<String>().prop_map(Value::from), inner), 0..6)
                .prop_map(Value::Map),
        ]
    })
}

fn encode_msgpack(value: &rmpv::Value) -> Bytes {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, value).expect("writes into a Vec");
    out.into()
}

/// Anything MessagePack holds, ext, odd keys, NaN and float 32 included.
fn any_msgpack() -> impl Strategy<Value = rmpv::Value> {
    use rmpv::Value;
    let leaf = prop_oneof![
        msgpack(),
        any::<f32>().prop_map(Value::F32),
        any::<u64>().prop_map(|b| Value::F64(f64::from_bits(b))),
        (any::<i8>(), proptest::collection::vec(any::<u8>(), 0..20))
            .prop_map(|(t, d)| Value::Ext(t, d)),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::vec((inner.clone(), inner), 0..5).prop_map(Value::Map),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A client's packet -> payload -> the same packet, byte for byte.
    #[test]
    fn client_json_round_trips_exactly(
        args in proptest::collection::vec(arg(), 0..4),
        custom_ns in any::<bool>(),
        id in proptest::option::of(any::<u64>()),
    ) {
        let namespace = if custom_ns { "/chat" } else { "/" };
        let mut atts = Vec::new();
        let data = std::iter::once(Json::Str("ev".into()))
            .chain(args.iter().map(|a| client_json(a, &mut atts)))
            .collect();
        let mut sent = String::new();
        crate::socketio::encode::write_event_head(&mut sent, namespace, id, atts.len());
        Json::Array(data).write_to(&mut sent);

        let p = assemble(&sent, &atts).args_payload().expect("convertible");
        prop_assert_eq!(p.spread, args.len() != 1);
        let back = event_packet(namespace, "ev", &p.bytes, p.spread, id);
        prop_assert_eq!(&back.text, &sent);
        prop_assert_eq!(&back.attachments, &atts);
    }

    /// A native payload -> a Socket.IO packet -> the same payload bytes.
    #[test]
    fn msgpack_round_trips_exactly(value in msgpack(), several in any::<bool>()) {
        let (bytes, spread) = match (&value, several) {
            (rmpv::Value::Array(items), true) if items.len() != 1 => (encode_msgpack(&value), true),
            _ => (encode_msgpack(&value), false),
        };
        let sent = event_packet("/", "ev", &bytes, spread, None);
        let p = assemble(&sent.text, &sent.attachments).args_payload().expect("convertible");
        prop_assert_eq!(p.spread, spread);
        prop_assert_eq!(hex(&p.bytes), hex(&bytes));
    }

    /// Any MessagePack value gives a packet Herald (and so any JSON reader)
    /// accepts, with one attachment per placeholder.
    #[test]
    fn any_msgpack_gives_valid_json(value in any_msgpack(), spread in any::<bool>()) {
        let bytes = encode_msgpack(&value);
        let sent = event_packet("/", "ev", &bytes, spread, None);
        // Every placeholder names its attachment.
        let p = assemble(&sent.text, &sent.attachments).args_payload();
        prop_assert!(p.is_ok(), "{:?}", p);
        // Valid MessagePack is never sent as raw bytes.
        prop_assert!(sent.attachments.first() != Some(&bytes) || matches!(value, rmpv::Value::Binary(_)));
    }

    /// Any bytes: no panic; raw-binary fallback exactly when the bytes are
    /// not one MessagePack value.
    #[test]
    fn any_bytes_convert(raw in proptest::collection::vec(any::<u8>(), 0..64), spread in any::<bool>()) {
        let raw = Bytes::from(raw);
        let sent = event_packet("/", "ev", &raw, spread, None);
        prop_assert!(decode(&sent.text).is_ok(), "{}", sent.text);
        let mut slice = &raw[..];
        let valid = raw.is_empty()
            || (rmpv::decode::read_value(&mut slice).is_ok() && slice.is_empty());
        let fallback = sent.text == r#"51-["ev",{"_placeholder":true,"num":0}]"#
            && sent.attachments == vec![raw.clone()];
        prop_assert_eq!(fallback, !valid, "{}", sent.text);
    }
}
