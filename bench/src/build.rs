//! Finding (and, under `cargo run`, building) the `herald-broker` binary
//! the comparison starts: the real daemon, built in the same profile as
//! herald-bench, next to it in the target directory.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The broker's binary next to this executable; built first with
/// `$CARGO build -p herald-broker` (same profile and target directory)
/// when this program was started by `cargo run` (which sets `CARGO`) and
/// `build` is true. `Err` says why it is missing and how to build it.
pub fn herald_broker(build: bool) -> Result<PathBuf, String> {
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find herald-bench itself: {e}"))?;
    let dir = exe
        .parent()
        .ok_or_else(|| format!("{} has no directory", exe.display()))?
        .to_owned();
    let release = dir.file_name().is_some_and(|name| name == "release");
    if build && let Some(cargo) = std::env::var_os("CARGO") {
        run_cargo_build(Path::new(&cargo), &dir, release)?;
    }
    let binary = dir.join("herald-broker");
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(format!(
            "herald-broker is not built next to herald-bench ({}); build it with: \
             cargo build --release -p herald-broker",
            dir.display()
        ))
    }
}

/// Whether this executable is a release build (figures of a debug build
/// mean little).
pub fn is_release_build() -> bool {
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            exe.parent()
                .and_then(|d| d.file_name())
                .map(|n| n == "release")
        })
        .unwrap_or(false)
}

fn run_cargo_build(cargo: &Path, profile_dir: &Path, release: bool) -> Result<(), String> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("the workspace root is unknown")?;
    let target_dir = profile_dir
        .parent()
        .ok_or("the target directory is unknown")?;
    let mut command = Command::new(cargo);
    command
        .arg("build")
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        .args(["-p", "herald-broker"]);
    if release {
        command.arg("--release");
    }
    eprintln!(
        "herald-bench: building herald-broker ({})",
        if release { "release" } else { "debug" }
    );
    let status = command
        .status()
        .map_err(|e| format!("cannot run {}: {e}", cargo.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("building herald-broker failed ({status})"))
    }
}
