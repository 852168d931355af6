//! The crate's error type and the translation of `config` crate errors.

use std::path::PathBuf;

/// Why the configuration could not be loaded.
///
/// Every variant names what is at fault: the file path, or the offending
/// key in dotted form (e.g. `limits.max_payload_bytes`).
#[derive(thiserror::Error, Debug)]
pub enum ConfigError {
    /// The config file could not be read or is not valid TOML.
    #[error("cannot read config file {path}: {message}", path = path.display())]
    File {
        /// The path that was given.
        path: PathBuf,
        /// What went wrong (I/O error or TOML syntax error).
        message: String,
    },
    /// A key is unknown, has the wrong type, or holds a value that fails
    /// validation.
    #[error("invalid config: {key}: {message}")]
    Invalid {
        /// The offending key in dotted form, e.g. `server.listen`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

impl ConfigError {
    /// Builds an [`ConfigError::Invalid`].
    pub(crate) fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }

    /// The offending key, for [`ConfigError::Invalid`].
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::File { .. } => None,
            Self::Invalid { key, .. } => Some(key),
        }
    }
}

/// Key used when an error from the `config` crate carries no key at all.
const NO_KEY: &str = "(configuration)";

/// Translates an error from the `config` crate (raised while building the
/// layers or deserializing them) into a [`ConfigError::Invalid`] that names
/// the dotted key.
pub(crate) fn from_config_crate(err: config::ConfigError) -> ConfigError {
    use config::ConfigError as E;
    match err {
        E::Type {
            ref unexpected,
            expected,
            ref key,
            ..
        } => {
            let message = format!("invalid type: {unexpected}, expected {expected}");
            keyed(key.as_deref(), message)
        }
        E::At {
            ref error, ref key, ..
        } => keyed(key.as_deref(), error.to_string()),
        E::NotFound(key) => ConfigError::invalid(key, "missing value"),
        other => keyed(None, other.to_string()),
    }
}

/// Builds the error for `message` raised at `key` (`None` = the root).
///
/// Serde reports an unknown field by its bare name (`unknown field `lisen``)
/// at the struct that refused it; the path to that struct is `key`, so the
/// full key is `key.lisen`.
fn keyed(key: Option<&str>, message: String) -> ConfigError {
    if let Some(field) = unknown_field(&message) {
        let full = match key {
            Some(key) if !key.is_empty() => format!("{key}.{field}"),
            _ => field.to_owned(),
        };
        let expected = message
            .split_once(", expected ")
            .map(|(_, rest)| format!("; expected {rest}"))
            .unwrap_or_default();
        return ConfigError::invalid(full, format!("unknown key{expected}"));
    }
    ConfigError::invalid(key.unwrap_or(NO_KEY), message)
}

/// The field name in serde's "unknown field `x`, ..." message.
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split_once('`').map(|(field, _)| field)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_message_is_joined_to_its_section() {
        let err = keyed(
            Some("server"),
            "unknown field `lisen`, expected one of `listen`, `max_connections`".to_owned(),
        );
        assert_eq!(err.key(), Some("server.lisen"));
        let text = err.to_string();
        assert!(text.contains("server.lisen"), "{text}");
        assert!(text.contains("unknown key"), "{text}");
        assert!(text.contains("`listen`"), "{text}");
    }

    #[test]
    fn unknown_field_at_root_is_named_alone() {
        let err = keyed(None, "unknown field `bogus`".to_owned());
        assert_eq!(err.key(), Some("bogus"));
    }

    #[test]
    fn keyless_error_still_has_a_key_label() {
        let err = from_config_crate(config::ConfigError::Message("boom".to_owned()));
        assert_eq!(err.to_string(), "invalid config: (configuration): boom");
    }
}
