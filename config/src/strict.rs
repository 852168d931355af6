//! Strict deserializers for integer, duration and list settings.
//!
//! The `config` crate coerces freely when asked for an integer: `1.5` rounds
//! to `2` and `"on"` / `true` become `1`. Limits must not be guessed, so the
//! integer settings accept only non-negative integers, or strings holding one
//! (command-line overrides arrive as strings). Durations are humantime
//! strings, with humantime's reason in the error when one does not parse.
//! Lists of strings are TOML arrays, or comma-separated strings where only
//! a string can be given (environment variables, overrides).

use std::fmt;

use serde::Deserializer;
use serde::de::{Error, Unexpected, Visitor};

/// Deserializes a `usize` from an integer or a decimal string; anything else
/// (floats, booleans, negative numbers) is an error.
pub(crate) fn usize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    d.deserialize_any(UsizeVisitor)
}

struct UsizeVisitor;

impl Visitor<'_> for UsizeVisitor {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-negative integer")
    }

    fn visit_u64<E: Error>(self, v: u64) -> Result<usize, E> {
        usize::try_from(v).map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
    }

    fn visit_i64<E: Error>(self, v: i64) -> Result<usize, E> {
        usize::try_from(v).map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
    }

    fn visit_u128<E: Error>(self, v: u128) -> Result<usize, E> {
        usize::try_from(v).map_err(|_| E::custom(format!("{v} is too large")))
    }

    fn visit_i128<E: Error>(self, v: i128) -> Result<usize, E> {
        usize::try_from(v).map_err(|_| E::custom(format!("{v} is not a non-negative integer")))
    }

    fn visit_str<E: Error>(self, v: &str) -> Result<usize, E> {
        v.trim()
            .parse()
            .map_err(|_| E::invalid_value(Unexpected::Str(v), &self))
    }
}

/// Deserializes a list of strings from a sequence, or from one string of
/// comma-separated items (environment variables and command-line
/// overrides arrive as strings): `"a, b"` is `["a", "b"]`, `""` is `[]`.
pub(crate) fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    d.deserialize_any(StringListVisitor)
}

struct StringListVisitor;

impl<'de> Visitor<'de> for StringListVisitor {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of strings (or one string of comma-separated items)")
    }

    fn visit_str<E: Error>(self, v: &str) -> Result<Vec<String>, E> {
        Ok(v.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<String>()? {
            items.push(item);
        }
        Ok(items)
    }
}

/// A [`Duration`](std::time::Duration) as a humantime string both ways:
/// `#[serde(with = "strict::duration")]`.
pub(crate) mod duration {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `"10s"`-style text, as `humantime_serde` does.
    pub(crate) fn serialize<S: Serializer>(
        value: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        humantime_serde::serialize(value, s)
    }

    /// Reads a humantime string (`"500ms"`, `"10s"`, `"1m"`), keeping
    /// humantime's explanation of what is wrong in the error.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<std::time::Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            D::Error::custom(format!(
                "invalid duration {text:?}: {e} (examples: \"500ms\", \"10s\", \"1m\")"
            ))
        })
    }
}
