//! Locating the example binaries (`examples/services/*.rs`) a test runs as
//! child processes, and refusing a stale build of one.
//!
//! cargo tells a test where its own crate's binaries are, not where
//! another crate's examples are: they are found next to the test
//! executable (`target/<profile>/examples/<name>`). `cargo test` of the
//! workspace (or of `herald-examples`) builds them; `cargo test -p
//! herald-tests --test NAME` does not, so a missing or older binary fails
//! the test with the command that builds it.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The example binary `name`, built by cargo next to the running test
/// (`target/<profile>/examples/<name>`); panics, naming the build command,
/// when it is missing or older than its sources.
pub fn example_binary(name: &str) -> PathBuf {
    let test = match std::env::current_exe() {
        Ok(path) => path,
        Err(error) => panic!("the test binary's path is unknown: {error}"),
    };
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/examples/<name>
    let Some(profile_dir) = test.parent().and_then(Path::parent) else {
        panic!(
            "the test binary {} is not in target/<profile>/deps",
            test.display()
        );
    };
    let binary = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.is_file(),
        "the example binary {} is missing; build it with \
         `cargo build -p herald-examples --examples` (`cargo test --workspace` builds it too)",
        binary.display()
    );
    assert_fresh(&binary, name);
    binary
}

/// Fails when a source file of example `name` (its file, the examples'
/// library, the SDK) is newer than `binary`: a test built alone does not
/// rebuild the examples, so it could run an old build.
fn assert_fresh(binary: &Path, name: &str) {
    let built = modified(binary);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut pending = vec![
        root.join("examples/services").join(format!("{name}.rs")),
        root.join("examples/src"),
        root.join("client-sdk/src"),
    ];
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            let entries = match std::fs::read_dir(&path) {
                Ok(entries) => entries,
                Err(error) => panic!("cannot list {}: {error}", path.display()),
            };
            pending.extend(entries.filter_map(|entry| entry.ok().map(|e| e.path())));
        } else if modified(&path) > built {
            panic!(
                "the example binary {} is older than {}; rebuild the examples: \
                 `cargo build -p herald-examples --examples`",
                binary.display(),
                path.display()
            );
        }
    }
}

fn modified(path: &Path) -> SystemTime {
    match std::fs::metadata(path).and_then(|meta| meta.modified()) {
        Ok(time) => time,
        Err(error) => panic!(
            "cannot read the time {} was modified: {error}",
            path.display()
        ),
    }
}
