//! An order-preserving JSON value, and the one canonical JSON writer of the
//! Socket.IO front end.
//!
//! Why our own value type: the workspace's `serde_json` is built without
//! `preserve_order`, so its `Value` sorts object keys, and Socket.IO
//! arguments must come back with their keys in the order the client wrote
//! them. Enabling `preserve_order` would change every `serde_json::Value`
//! in the workspace (the broker's HTTP answers too), so [`Json`] keeps
//! objects as a `Vec` of entries instead; `serde_json` still does the
//! parsing (strings, escapes, numbers, its nesting limit of 128).
//!
//! The writer produces what JavaScript's `JSON.stringify` produces, so what
//! a stock client sent comes back byte for byte:
//! - strings: `"` `\` and the control characters escaped (`\b \f \n \r \t`,
//!   others `\u00xx` in lower-case hex), everything else as UTF-8; this is
//!   also exactly `serde_json`'s escaping;
//! - numbers: integers in decimal; other numbers as JavaScript's
//!   `Number.prototype.toString` writes them (shortest round-trip digits,
//!   `1e+21`, `1.5e-7`, `0.000001`), `-0` as `0`; NaN and the infinities
//!   as `null`.

use std::fmt::Write as _;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON value that keeps object keys in their order (duplicates too).
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer below zero that fits an `i64`.
    Int(i64),
    /// An integer from zero up that fits a `u64`.
    UInt(u64),
    /// Any other number: with a fraction or exponent, or too big for 64
    /// bits.
    Float(f64),
    /// A string.
    Str(String),
    /// An array.
    Array(Vec<Json>),
    /// An object, entries in the order they were written.
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Parses one JSON text (no trailing characters but whitespace).
    pub fn parse(text: &str) -> Result<Json, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Appends the canonical JSON text of this value to `out`.
    pub fn write_to(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Int(n) => write_int(out, *n),
            Json::UInt(n) => write_uint(out, *n),
            Json::Float(f) => write_f64(out, *f),
            Json::Str(s) => write_str(out, s),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_to(out);
                }
                out.push(']');
            }
            Json::Object(entries) => {
                out.push('{');
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_str(out, key);
                    out.push(':');
                    value.write_to(out);
                }
                out.push('}');
            }
        }
    }

    /// The value of the LAST entry named `key` (JavaScript's rule for
    /// duplicate keys), when this is an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(entries) => entries.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

impl std::fmt::Display for Json {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut text = String::new();
        self.write_to(&mut text);
        f.write_str(&text)
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        // serde_json hands non-negative integers to visit_u64, but keep the
        // invariant (Int is below zero) whatever the caller.
        Ok(match u64::try_from(v) {
            Ok(u) => Json::UInt(u),
            Err(_) => Json::Int(v),
        })
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::UInt(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
        Ok(Json::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
        Ok(Json::Str(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value()?;
            entries.push((key, value));
        }
        Ok(Json::Object(entries))
    }
}

/// Appends `s` as a JSON string literal (quotes included), escaped as
/// `JSON.stringify` and `serde_json` escape it.
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        // Every escaped byte is ASCII, so these slice bounds are char
        // boundaries.
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Appends an integer in decimal.
pub(crate) fn write_int(out: &mut String, n: i64) {
    let _ = write!(out, "{n}");
}

/// Appends a non-negative integer in decimal.
pub(crate) fn write_uint(out: &mut String, n: u64) {
    let _ = write!(out, "{n}");
}

/// Appends a number as JavaScript's `JSON.stringify` writes it: `null` for
/// NaN and the infinities, `0` for both zeros, otherwise the shortest
/// digits that read back as the same `f64`, laid out by the rules of
/// ECMAScript's Number::toString (plain up to 21 integer digits, `0.000001`
/// down to 1e-6, exponent form `d.ddde+n` beyond).
pub(crate) fn write_f64(out: &mut String, f: f64) {
    if !f.is_finite() {
        out.push_str("null");
        return;
    }
    if f == 0.0 {
        out.push('0');
        return;
    }
    let mut digits = Digits::default();
    let n = shortest_digits(f.abs(), &mut digits);
    let digits = digits.as_str();
    let k = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    if f < 0.0 {
        out.push('-');
    }
    if k <= n && n <= 21 {
        out.push_str(digits);
        for _ in k..n {
            out.push('0');
        }
    } else if 0 < n && n <= 21 {
        let (int, frac) = digits.split_at(usize::try_from(n).unwrap_or(0));
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        for _ in n..0 {
            out.push('0');
        }
        out.push_str(digits);
    } else {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let e = n - 1;
        out.push('e');
        out.push(if e > 0 { '+' } else { '-' });
        let _ = write!(out, "{}", e.unsigned_abs());
    }
}

/// Writes into `digits` the digits d1…dk of the shortest decimal that reads
/// back as `x` (finite, above 0), and returns n such that x = 0.d1…dk ×
/// 10^n. Among two shortest candidates equally near `x`, the one with the
/// even last digit, as ECMAScript specifies.
fn shortest_digits(x: f64, digits: &mut Digits) -> i32 {
    // Rust's `{:e}` gives the shortest round-trip digits, `d[.ddd]e<exp>`,
    // but breaks exact ties its own way.
    let mut sci = Digits::default();
    let _ = write!(sci, "{x:e}");
    let n = digits.take_sci(sci.as_str());
    let k = digits.len;
    // A tie needs two k-digit neighbours that both read back as x, so a
    // step of 10^(n-k) below x's spacing: 16 digits or more. Only an odd
    // last digit can be the wrong pick.
    if k < 16 || digits.buf[k - 1] % 2 == 0 {
        return n;
    }
    // x is a tie when its exact value has k+1 significant digits, the last
    // a 5. 60 digits show it: an f64 whose exact expansion runs past 18
    // digits cannot have 42 zeros after its 18th.
    let mut exact = Digits::default();
    let _ = write!(exact, "{x:.59e}");
    let mut wide = Digits::default();
    let wide_n = wide.take_sci(exact.as_str());
    let is_tie =
        wide_n == n && wide.buf[k] == b'5' && wide.buf[k + 1..wide.len].iter().all(|&d| d == b'0');
    if !is_tie {
        return n;
    }
    // Round the exact value half-even to k digits: keep d1…dk when dk is
    // even, else add one in the last place.
    digits.buf[..k].copy_from_slice(&wide.buf[..k]);
    digits.len = k;
    if digits.buf[k - 1] % 2 == 0 {
        return n;
    }
    let mut i = k;
    loop {
        if i == 0 {
            // 99…9 + 1: one more integer digit.
            digits.buf[0] = b'1';
            digits.len = 1;
            return n + 1;
        }
        i -= 1;
        if digits.buf[i] == b'9' {
            digits.buf[i] = b'0';
        } else {
            digits.buf[i] += 1;
            break;
        }
    }
    while digits.len > 1 && digits.buf[digits.len - 1] == b'0' {
        digits.len -= 1;
    }
    n
}

/// A small stack buffer for formatting one number without allocating (the
/// longest text written into one is `{:.59e}` of an f64: 65 bytes).
struct Digits {
    buf: [u8; 72],
    len: usize,
}

impl Default for Digits {
    fn default() -> Self {
        Digits {
            buf: [0; 72],
            len: 0,
        }
    }
}

impl Digits {
    /// Keeps the mantissa digits of `d[.ddd]e<exp>` (non-negative) and
    /// returns n, the position of the decimal point before d1.
    fn take_sci(&mut self, sci: &str) -> i32 {
        let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
        self.len = 0;
        for d in mantissa.bytes().filter(u8::is_ascii_digit) {
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = d;
                self.len += 1;
            }
        }
        exp.parse::<i32>().unwrap_or(0) + 1
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl std::fmt::Write for Digits {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
