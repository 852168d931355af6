//! Payload conversion between the JSON of the command line and the
//! MessagePack on the wire.
//!
//! **JSON in** ([`parse_json`]): the text is parsed straight into an
//! [`rmpv::Value`], which the SDK encodes with `rmp_serde` like any other
//! payload: `null`, booleans, strings, arrays and objects map one to one,
//! object keys keep their order; integers that fit in `i64` or `u64` become
//! MessagePack integers, every other number a 64-bit float. JSON input is
//! never read as bin or ext. Nesting deeper than 128 levels is refused.
//!
//! **JSON out** ([`AsJson`], which serializes the decoded [`rmpv::Value`]
//! as JSON in the map order it came in; [`msgpack_to_json`] for a
//! [`serde_json::Value`]):
//!
//! | MessagePack | JSON |
//! |---|---|
//! | nil, bool, str, array | `null`, `true`/`false`, string, array |
//! | integers | numbers, exact (the whole `u64` and `i64` ranges) |
//! | float 32 / 64 | numbers (a float 32 by its shortest decimal form); NaN and infinities, which JSON cannot hold, as the strings `"NaN"`, `"Infinity"`, `"-Infinity"` |
//! | bin | an array of byte values (`[1,2,255]`), as serde shows a `Vec<u8>` in JSON |
//! | ext | `{"$ext":{"type":T,"data":[bytes]}}` |
//! | map | an object; a key that is not a string becomes its compact JSON text (`1` → `"1"`, `true` → `"true"`, `[1,2]` → `"[1,2]"`); when two keys give the same text, the later one wins |
//!
//! A MessagePack str holding invalid UTF-8 reaches us as bin (that is how
//! `rmp_serde` decodes it) or, when decoded otherwise, is shown with the
//! invalid bytes replaced by U+FFFD.

use std::borrow::Cow;
use std::collections::HashMap;

use rmpv::{Utf8String, Value as Msgpack};
use serde::ser::{Error as _, SerializeMap};
use serde::{Serialize, Serializer};
use serde_json::Value as Json;

use crate::error::CliError;

/// The key of the object that stands for a MessagePack ext value.
pub const EXT_KEY: &str = "$ext";

/// Parses a payload given as JSON text on the command line into the
/// MessagePack value to send.
pub fn parse_json(text: &str) -> Result<Msgpack, CliError> {
    serde_json::from_str(text).map_err(|source| CliError::InvalidJson {
        text: shorten(text),
        source,
    })
}

/// At most 40 characters of `text`, for error messages.
fn shorten(text: &str) -> String {
    const SHOWN: usize = 40;
    match text.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

/// Shows a decoded MessagePack value as JSON when serialized (see the
/// module documentation for the mapping), keeping the order of map keys.
#[derive(Debug, Clone, Copy)]
pub struct AsJson<'a>(pub &'a Msgpack);

impl Serialize for AsJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Msgpack::Nil => serializer.serialize_unit(),
            Msgpack::Boolean(b) => serializer.serialize_bool(*b),
            Msgpack::Integer(i) => match (i.as_u64(), i.as_i64()) {
                (Some(u), _) => serializer.serialize_u64(u),
                (None, Some(s)) => serializer.serialize_i64(s),
                // An rmpv integer is always a u64 or an i64.
                (None, None) => serializer.serialize_unit(),
            },
            Msgpack::F32(f) => serialize_float(f64_of_f32(*f), serializer),
            Msgpack::F64(f) => serialize_float(*f, serializer),
            Msgpack::String(s) => serializer.serialize_str(&text_of(s)),
            Msgpack::Binary(bytes) => serializer.collect_seq(bytes),
            Msgpack::Array(items) => serializer.collect_seq(items.iter().map(AsJson)),
            Msgpack::Map(pairs) => serialize_map(pairs, serializer),
            Msgpack::Ext(kind, data) => {
                let mut ext = serializer.serialize_map(Some(1))?;
                ext.serialize_entry(EXT_KEY, &Ext { kind: *kind, data })?;
                ext.end()
            }
        }
    }
}

/// The body of the object standing for an ext value.
#[derive(Serialize)]
struct Ext<'a> {
    #[serde(rename = "type")]
    kind: i8,
    data: &'a [u8],
}

/// A map as an object: keys as text, in order; of several keys with the
/// same text only the last entry is written, where it stands.
fn serialize_map<S: Serializer>(
    pairs: &[(Msgpack, Msgpack)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let keys = pairs
        .iter()
        .map(|(key, _)| key_text(key))
        .collect::<Result<Vec<_>, _>>()
        .map_err(S::Error::custom)?;
    let last: HashMap<&str, usize> = keys
        .iter()
        .enumerate()
        .map(|(index, key)| (key.as_str(), index))
        .collect();
    let mut map = serializer.serialize_map(Some(last.len()))?;
    for (index, (key, (_, value))) in keys.iter().zip(pairs).enumerate() {
        if last.get(key.as_str()) == Some(&index) {
            map.serialize_entry(key, &AsJson(value))?;
        }
    }
    map.end()
}

/// The object key for a map key: a string as it is, anything else as its
/// compact JSON text.
fn key_text(key: &Msgpack) -> Result<String, serde_json::Error> {
    match key {
        Msgpack::String(s) => Ok(text_of(s).into_owned()),
        other => serde_json::to_string(&AsJson(other)),
    }
}

/// A MessagePack string's text, invalid UTF-8 replaced by U+FFFD.
fn text_of(s: &Utf8String) -> Cow<'_, str> {
    match s.as_str() {
        Some(text) => Cow::Borrowed(text),
        None => String::from_utf8_lossy(s.as_bytes()),
    }
}

/// A float as a JSON number, or as a string for the values JSON has no
/// number for.
fn serialize_float<S: Serializer>(value: f64, serializer: S) -> Result<S::Ok, S::Error> {
    if value.is_finite() {
        serializer.serialize_f64(value)
    } else if value.is_nan() {
        serializer.serialize_str("NaN")
    } else if value > 0.0 {
        serializer.serialize_str("Infinity")
    } else {
        serializer.serialize_str("-Infinity")
    }
}

/// A float 32 widened through its shortest decimal form, so `0.1f32`
/// shows as `0.1` rather than `0.10000000149011612`.
fn f64_of_f32(value: f32) -> f64 {
    value.to_string().parse().unwrap_or(f64::from(value))
}

/// Converts a decoded MessagePack value to a [`serde_json::Value`] (whose
/// objects sort their keys; print [`AsJson`] to keep the order).
pub fn msgpack_to_json(value: &Msgpack) -> Json {
    // Serializing into a `Value` fails only for a map key that is not a
    // string, and `AsJson` writes every key as a string.
    serde_json::to_value(AsJson(value)).unwrap_or(Json::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// JSON text → MessagePack bytes (as `herald pub` has the SDK encode
    /// it) → `rmpv::Value` (as `herald sub` decodes it) → JSON text.
    fn round_trip(text: &str) -> String {
        let value = parse_json(text).expect("valid JSON");
        let bytes = rmp_serde::to_vec_named(&value).expect("values encode");
        let decoded: Msgpack = rmp_serde::from_slice(&bytes).expect("valid MessagePack decodes");
        serde_json::to_string(&AsJson(&decoded)).expect("serializes")
    }

    /// Raw MessagePack bytes decoded the way the CLI decodes payloads.
    fn decode(bytes: &[u8]) -> Json {
        let decoded: Msgpack = rmp_serde::from_slice(bytes).expect("valid MessagePack decodes");
        msgpack_to_json(&decoded)
    }

    #[test]
    fn json_values_survive_the_round_trip() {
        for text in [
            "null",
            "true",
            r#""text with \"quotes\", ünïcödé, emoji 🎉 and a\nnewline""#,
            r#""""#,
            "[]",
            "{}",
            "0",
            "-1",
            "1.5",
            "-0.25",
            "1e300",
            "18446744073709551615",
            "-9223372036854775808",
            r#"{"id":42,"items":[1,"two",{"three":[3.0,null,false]}],"nested":{"a":{"b":{"c":[]}}}}"#,
        ] {
            let back: Json = serde_json::from_str(&round_trip(text)).expect("JSON out");
            let original: Json = serde_json::from_str(text).expect("JSON in");
            assert_eq!(back, original, "round trip of {text}");
        }
    }

    #[test]
    fn object_keys_keep_their_order() {
        let text = r#"{"zeta":1,"alpha":{"y":true,"b":null},"mid":[{"k2":1,"k1":2}]}"#;
        assert_eq!(round_trip(text), text);
    }

    #[test]
    fn integers_are_encoded_as_msgpack_integers() {
        let encode = |text: &str| {
            rmp_serde::to_vec_named(&parse_json(text).expect("valid")).expect("encodes")
        };
        assert_eq!(encode("7"), [0x07], "a positive fixint");
        assert_eq!(encode("18446744073709551615")[0], 0xcf, "a uint 64");
        assert_eq!(encode("-1"), [0xff], "a negative fixint");
        assert_eq!(encode("1.0")[0], 0xcb, "a float 64");
        assert_eq!(
            encode("18446744073709551616")[0],
            0xcb,
            "beyond u64: a float 64"
        );
    }

    #[test]
    fn nesting_up_to_the_limit_round_trips() {
        let depth = 100;
        let mut text = String::from("\"core\"");
        for level in 0..depth {
            text = if level % 2 == 0 {
                format!("[{text}]")
            } else {
                format!("{{\"k\":{text}}}")
            };
        }
        assert_eq!(round_trip(&text), text);
    }

    #[test]
    fn nesting_beyond_the_limit_is_refused() {
        let text = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let message = parse_json(&text).expect_err("too deep").to_string();
        assert!(message.contains("recursion limit"), "{message}");
    }

    #[test]
    fn binary_becomes_an_array_of_bytes() {
        // bin 8 of 3 bytes.
        assert_eq!(
            decode(&[0xc4, 0x03, 0x00, 0x7f, 0xff]),
            json!([0, 127, 255])
        );
        assert_eq!(decode(&[0xc4, 0x00]), json!([]));
    }

    #[test]
    fn invalid_utf8_strings_are_shown_as_bytes_or_lossily() {
        // str 8 of 2 bytes that are not UTF-8: rmp_serde hands them over as bin.
        assert_eq!(decode(&[0xd9, 0x02, 0xc3, 0x28]), json!([0xc3, 0x28]));
        // Decoded by rmpv itself, the string keeps its bytes.
        let value = rmpv::decode::read_value(&mut &[0xa2, 0xc3, 0x28][..]).expect("decodes");
        assert_eq!(msgpack_to_json(&value), json!("\u{fffd}("));
    }

    #[test]
    fn big_integers_are_exact() {
        // uint 64 max and int 64 min, which a float would round.
        let max = [0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(decode(&max).to_string(), "18446744073709551615");
        let min = [0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(decode(&min).to_string(), "-9223372036854775808");
    }

    #[test]
    fn floats_are_numbers_and_non_finite_floats_are_strings() {
        // float 32 0.1, shown by its shortest decimal form.
        assert_eq!(decode(&[0xca, 0x3d, 0xcc, 0xcc, 0xcd]).to_string(), "0.1");
        // float 64 2.5.
        assert_eq!(decode(&[0xcb, 0x40, 0x04, 0, 0, 0, 0, 0, 0]), json!(2.5));
        assert_eq!(msgpack_to_json(&Msgpack::F64(f64::NAN)), json!("NaN"));
        assert_eq!(
            msgpack_to_json(&Msgpack::F64(f64::INFINITY)),
            json!("Infinity")
        );
        assert_eq!(
            msgpack_to_json(&Msgpack::F32(f32::NEG_INFINITY)),
            json!("-Infinity")
        );
    }

    #[test]
    fn non_string_map_keys_are_stringified() {
        let map = Msgpack::Map(vec![
            (Msgpack::from(1), Msgpack::from("int")),
            (Msgpack::from(-2), Msgpack::from("negative")),
            (Msgpack::Boolean(true), Msgpack::from("bool")),
            (Msgpack::Nil, Msgpack::from("nil")),
            (Msgpack::F64(1.5), Msgpack::from("float")),
            (
                Msgpack::Array(vec![Msgpack::from(1), Msgpack::from(2)]),
                Msgpack::from("array"),
            ),
            (Msgpack::Binary(vec![9]), Msgpack::from("bin")),
            (Msgpack::from("plain"), Msgpack::from("string")),
        ]);
        assert_eq!(
            msgpack_to_json(&map),
            json!({
                "1": "int", "-2": "negative", "true": "bool", "null": "nil",
                "1.5": "float", "[1,2]": "array", "[9]": "bin", "plain": "string"
            })
        );
    }

    #[test]
    fn colliding_keys_keep_the_later_value() {
        let map = Msgpack::Map(vec![
            (Msgpack::from(1), Msgpack::from("first")),
            (Msgpack::from("z"), Msgpack::from("between")),
            (Msgpack::from("1"), Msgpack::from("second")),
        ]);
        assert_eq!(
            serde_json::to_string(&AsJson(&map)).expect("serializes"),
            r#"{"z":"between","1":"second"}"#
        );
    }

    #[test]
    fn printed_json_keeps_the_map_order() {
        let map = Msgpack::Map(vec![
            (Msgpack::from("zeta"), Msgpack::from(1)),
            (Msgpack::from("alpha"), Msgpack::Binary(vec![1, 2])),
            (Msgpack::from(3), Msgpack::Ext(7, vec![0xff])),
            (Msgpack::from("mid"), Msgpack::F32(0.5)),
        ]);
        assert_eq!(
            serde_json::to_string(&AsJson(&map)).expect("serializes"),
            r#"{"zeta":1,"alpha":[1,2],"3":{"$ext":{"type":7,"data":[255]}},"mid":0.5}"#
        );
    }

    #[test]
    fn ext_values_show_type_and_data() {
        // fixext 1, type 5, data 0x2a.
        assert_eq!(
            decode(&[0xd4, 0x05, 0x2a]),
            json!({"$ext": {"type": 5, "data": [42]}})
        );
        // A timestamp 32 (type -1) is shown the same way.
        assert_eq!(
            decode(&[0xd6, 0xff, 0, 0, 0, 1]),
            json!({"$ext": {"type": -1, "data": [0, 0, 0, 1]}})
        );
    }

    #[test]
    fn invalid_json_is_refused_with_the_parser_message() {
        for bad in ["", "{", "{\"a\":}", "nope", "[1,]", "{'single': 1}"] {
            let error = parse_json(bad).expect_err("invalid JSON is refused");
            let message = error.to_string();
            assert!(
                message.starts_with("invalid JSON payload"),
                "message for {bad:?}: {message}"
            );
            assert!(message.contains("line 1"), "message for {bad:?}: {message}");
        }
    }

    #[test]
    fn long_invalid_json_is_shortened_in_the_message() {
        let bad = format!("{{\"a\": {}", "x".repeat(100));
        let message = parse_json(&bad).expect_err("invalid").to_string();
        assert!(message.contains("..."), "{message}");
        assert!(!message.contains(&"x".repeat(100)), "{message}");
    }

    #[test]
    fn any_json_value_is_a_payload() {
        assert_eq!(parse_json(" 42 ").expect("valid"), Msgpack::from(42));
        assert_eq!(parse_json("\"hi\"").expect("valid"), Msgpack::from("hi"));
        assert_eq!(parse_json("null").expect("valid"), Msgpack::Nil);
    }
}
