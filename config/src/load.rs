//! Layering the sources and turning them into [`Settings`].

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use config::{Config, Environment, File, FileFormat, Map, Source, Value, ValueKind};

use crate::DEFAULT_TOML;
use crate::error::{ConfigError, from_config_crate};
use crate::settings::Settings;

/// Prefix of the environment variables read by [`Settings::load`].
pub const ENV_PREFIX: &str = "HERALD";

/// Separator between the prefix, the section and the key in environment
/// variable names (`HERALD__SERVER__LISTEN`).
pub const ENV_SEPARATOR: &str = "__";

/// Origin the `config` crate records on values read from the environment.
const ENV_ORIGIN: &str = "the environment";

/// Header written by [`Settings::to_toml`].
const TO_TOML_HEADER: &str = "\
# Effective Herald configuration: built-in defaults, then the config file,
# then HERALD__SECTION__KEY environment variables, then command-line overrides.
# Every key is documented in the built-in herald.toml.
";

/// Where [`Settings::load`] reads configuration from, besides the built-in
/// defaults ([`DEFAULT_TOML`]), which always form the lowest layer.
#[derive(Debug, Clone, Default)]
pub struct Sources<'a> {
    /// Optional TOML config file (`--config PATH`). A path that cannot be
    /// read is an error.
    pub file: Option<&'a Path>,
    /// Environment variables to read `HERALD__SECTION__KEY` values from:
    /// `None` reads the process environment; `Some(map)` reads only `map`
    /// (for tests). Variables without the `HERALD__` prefix are ignored.
    pub env: Option<HashMap<String, String>>,
    /// Highest-precedence overrides as `(dotted key, value)` pairs, e.g.
    /// `("server.listen", "127.0.0.1:0")`. Values are strings and are
    /// converted to the key's type (integers, durations, ...).
    pub overrides: Vec<(String, String)>,
}

impl Settings {
    /// Layers the built-in defaults, the config file, the environment and
    /// the overrides (lowest to highest precedence), refuses unknown keys,
    /// deserializes and [validates](Settings::validate) the result.
    pub fn load(sources: &Sources<'_>) -> Result<Settings, ConfigError> {
        let defaults = default_layer()?;
        let layered = build(defaults.clone(), sources)?;
        check_keys(&collect(&defaults)?, &collect(&layered)?)?;
        let settings = deserialize(layered)?;
        settings.validate()?;
        Ok(settings)
    }

    /// The built-in defaults ([`DEFAULT_TOML`]) alone, ignoring the
    /// environment.
    pub fn defaults() -> Settings {
        // The embedded file is fixed at compile time and a unit test proves
        // it loads and validates, so this cannot fail at run time.
        #[allow(clippy::expect_used)]
        default_layer()
            .and_then(deserialize)
            .expect("the built-in herald.toml is valid")
    }

    /// The settings as a TOML document (durations in humantime form such as
    /// `"10s"`), suitable for `--print-config` and loadable again as a
    /// config file.
    pub fn to_toml(&self) -> String {
        // Every field is a string, an integer or a table of those, all of
        // which TOML can represent.
        #[allow(clippy::expect_used)]
        let body = toml::to_string(self).expect("settings always serialize to TOML");
        format!("{TO_TOML_HEADER}{body}")
    }
}

/// The built-in defaults as a `config` layer.
fn default_layer() -> Result<Config, ConfigError> {
    Config::builder()
        .add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml))
        .build()
        .map_err(from_config_crate)
}

/// Stacks file, environment and overrides on top of `defaults`.
fn build(defaults: Config, sources: &Sources<'_>) -> Result<Config, ConfigError> {
    let mut builder = Config::builder().add_source(defaults);

    if let Some(path) = sources.file {
        let file_error = |message: String| ConfigError::File {
            path: path.to_path_buf(),
            message,
        };
        let text = fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
        // Check the syntax here so that a malformed file is reported with
        // its path; the `config` crate would report it without one.
        text.parse::<toml::Table>()
            .map_err(|e| file_error(e.to_string().trim_end().to_owned()))?;
        builder = builder.add_source(File::from_str(&text, FileFormat::Toml));
    }

    let env = sources
        .env
        .as_ref()
        .map(|vars| vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
    builder = builder.add_source(
        Environment::with_prefix(ENV_PREFIX)
            .prefix_separator(ENV_SEPARATOR)
            .separator(ENV_SEPARATOR)
            .try_parsing(true)
            .source(env),
    );

    for (key, value) in &sources.overrides {
        builder = builder
            .set_override(key.as_str(), value.clone())
            .map_err(|_| {
                ConfigError::invalid(
                    key.as_str(),
                    "not a valid dotted key (expected e.g. server.listen)",
                )
            })?;
    }

    builder.build().map_err(from_config_crate)
}

/// The merged tree of a built config.
fn collect(config: &Config) -> Result<Map<String, Value>, ConfigError> {
    config.collect().map_err(from_config_crate)
}

/// Deserializes a layered config into [`Settings`] (no validation).
pub(crate) fn deserialize(layered: Config) -> Result<Settings, ConfigError> {
    layered.try_deserialize().map_err(from_config_crate)
}

/// Tables whose keys are data (namespace names), not settings.
const FREE_FORM: &[&str] = &["auth.anonymous"];

/// Refuses keys of `actual` that do not exist in `known` (the defaults,
/// which set every key), and sections replaced by single values or vice
/// versa, naming the full dotted key. Keys are checked in sorted order so
/// the error is deterministic.
fn check_keys(known: &Map<String, Value>, actual: &Map<String, Value>) -> Result<(), ConfigError> {
    check_table("", known, actual)
}

fn check_table(
    prefix: &str,
    known: &Map<String, Value>,
    actual: &Map<String, Value>,
) -> Result<(), ConfigError> {
    let mut keys: Vec<&String> = actual.keys().collect();
    keys.sort();
    for key in keys {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let Some(value) = actual.get(key) else {
            continue;
        };
        let Some(default) = known.get(key) else {
            return Err(unknown_key(&path, value, known));
        };
        match (&default.kind, &value.kind) {
            // Free-form tables (permissions keyed by namespace): their
            // types refuse unknown fields themselves.
            (ValueKind::Table(_), ValueKind::Table(_)) if FREE_FORM.contains(&path.as_str()) => {}
            (ValueKind::Table(known), ValueKind::Table(actual)) => {
                check_table(&path, known, actual)?;
            }
            (ValueKind::Table(_), _) => {
                return Err(ConfigError::invalid(
                    path.as_str(),
                    format!(
                        "is a section and cannot be set to a single value{}",
                        via(value, &path)
                    ),
                ));
            }
            (_, ValueKind::Table(_)) => {
                return Err(ConfigError::invalid(
                    path.as_str(),
                    format!(
                        "is a single value and cannot be a section{}",
                        via(value, &path)
                    ),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

fn unknown_key(path: &str, value: &Value, known: &Map<String, Value>) -> ConfigError {
    let mut names: Vec<&str> = known.keys().map(String::as_str).collect();
    names.sort_unstable();
    let what = if path.contains('.') { "key" } else { "section" };
    ConfigError::invalid(
        path,
        format!(
            "unknown {what} `{path}`{}; expected one of: {}",
            via(value, path),
            names.join(", ")
        ),
    )
}

/// " (set by environment variable HERALD__...)" when `value` came from the
/// environment, so the user knows which variable to fix.
fn via(value: &Value, path: &str) -> String {
    if value.origin() == Some(ENV_ORIGIN) {
        format!(" (set by environment variable {})", env_var_name(path))
    } else {
        String::new()
    }
}

/// The environment variable that sets the dotted `key`
/// (`server.listen` → `HERALD__SERVER__LISTEN`).
pub fn env_var_name(key: &str) -> String {
    let mut name = format!("{ENV_PREFIX}{ENV_SEPARATOR}");
    name.push_str(&key.to_uppercase().replace('.', ENV_SEPARATOR));
    name
}
