//! The `herald-history` target: the Herald broker with a history on the
//! benchmark's namespace (`[[history.namespaces]]`, PROTOCOL.md §25), so
//! every event is numbered, stamped (`seq`, `epoch`) and kept in
//! the namespace's in-memory log before it fans out, measured by the same
//! Herald driver as `herald`: the cost of history is reported beside it.

use std::path::PathBuf;

use herald_loadgen::herald::DEFAULT_NAMESPACE;

/// The target name in results.
pub const TARGET: &str = "herald-history";

/// Events kept: enough that the log is full (and evicting) during a run,
/// as a production log would be.
const SIZE: usize = 10_000;

/// The config file giving the benchmark's namespace a history, written
/// once per process into the temporary directory.
pub fn config_file() -> Result<PathBuf, String> {
    let path =
        std::env::temp_dir().join(format!("herald-bench-history-{}.toml", std::process::id()));
    let text = format!(
        "[[history.namespaces]]\nnamespace = \"{DEFAULT_NAMESPACE}\"\nsize = {SIZE}\nttl = \"10m\"\n"
    );
    std::fs::write(&path, text)
        .map_err(|e| format!("writing the herald-history config {}: {e}", path.display()))?;
    Ok(path)
}

/// The broker arguments that load it.
pub fn args() -> Result<Vec<String>, String> {
    Ok(vec![
        "--config".to_owned(),
        config_file()?.display().to_string(),
    ])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_config_names_the_benchmark_namespace() {
        let args = args().unwrap();
        assert_eq!(args[0], "--config");
        let text = std::fs::read_to_string(&args[1]).unwrap();
        assert!(text.contains("namespace = \"/bench\""), "{text}");
        assert!(text.contains("size = 10000"), "{text}");
    }
}
