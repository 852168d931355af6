//! A reader for the plain Dockerfile subset `docker/Dockerfile` uses, so
//! `docker_image.rs` can follow the image instead of repeating it.
//!
//! [`Dockerfile::parse`] splits the file into stages of instructions
//! (comments dropped, `\` continuations joined); [`Dockerfile::image`]
//! folds one stage, and the stages it is built `FROM`, into an [`Image`]:
//! what a container of it starts with. Forms this reader does not follow
//! (shell-form commands, `$VARIABLES` in `ENV`, relative `WORKDIR`) fail
//! with a message saying what to write instead.

// Not every field is read by every test.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// One instruction: its keyword (upper case) and the rest of the line.
#[derive(Debug, Clone)]
pub struct Instruction {
    pub keyword: String,
    pub arguments: String,
}

/// One `FROM … [AS name]` stage.
#[derive(Debug, Clone)]
pub struct Stage {
    pub name: Option<String>,
    pub base: String,
    pub instructions: Vec<Instruction>,
}

/// The stages of a Dockerfile, in order.
#[derive(Debug, Clone)]
pub struct Dockerfile {
    pub stages: Vec<Stage>,
}

/// A file copied from the build context into the image.
#[derive(Debug, Clone)]
pub struct ContextCopy {
    /// Path in the build context (the repository root).
    pub source: PathBuf,
    /// Absolute path in the image.
    pub destination: PathBuf,
}

/// What a container of one stage starts with.
#[derive(Debug, Clone, Default)]
pub struct Image {
    /// `ENV`, later values replacing earlier ones.
    pub env: BTreeMap<String, String>,
    /// `WORKDIR` (absolute), `/` when unset.
    pub workdir: PathBuf,
    /// `COPY` without `--from`: files from the build context.
    pub context_copies: Vec<ContextCopy>,
    /// `USER`, if set.
    pub user: Option<String>,
    /// `EXPOSE`d ports.
    pub exposed: Vec<String>,
    /// `STOPSIGNAL`, if set.
    pub stop_signal: Option<String>,
    /// The `HEALTHCHECK` command (exec form), if set.
    pub healthcheck: Option<Vec<String>>,
    /// `ENTRYPOINT` (exec form).
    pub entrypoint: Vec<String>,
    /// `CMD` (exec form).
    pub cmd: Vec<String>,
}

impl Image {
    /// The command a container runs without arguments: ENTRYPOINT + CMD.
    pub fn command(&self) -> Vec<String> {
        self.entrypoint.iter().chain(&self.cmd).cloned().collect()
    }

    /// `path` as the image resolves it: relative to [`Image::workdir`].
    pub fn resolve(&self, path: &str) -> PathBuf {
        normalize(&self.workdir.join(path))
    }
}

impl Dockerfile {
    /// Splits `text` into stages; panics on an instruction before `FROM`.
    pub fn parse(text: &str) -> Dockerfile {
        let mut stages: Vec<Stage> = Vec::new();
        for line in logical_lines(text) {
            let (keyword, arguments) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
            let instruction = Instruction {
                keyword: keyword.to_ascii_uppercase(),
                arguments: arguments.trim().to_owned(),
            };
            if instruction.keyword == "FROM" {
                stages.push(from_stage(&instruction.arguments));
            } else if instruction.keyword == "ARG" && stages.is_empty() {
                // Build arguments for FROM lines: not part of any stage.
            } else {
                match stages.last_mut() {
                    Some(stage) => stage.instructions.push(instruction),
                    None => panic!("Dockerfile: {line:?} comes before the first FROM"),
                }
            }
        }
        Dockerfile { stages }
    }

    /// The stage named `name`; panics naming the stages there are.
    pub fn stage(&self, name: &str) -> &Stage {
        match self
            .stages
            .iter()
            .find(|stage| stage.name.as_deref() == Some(name))
        {
            Some(stage) => stage,
            None => panic!(
                "Dockerfile has no stage named {name:?}; stages: {:?}",
                self.stages.iter().map(|s| &s.name).collect::<Vec<_>>()
            ),
        }
    }

    /// Stage `name` and the stages it is built FROM, base first.
    fn lineage(&self, name: &str) -> Vec<&Stage> {
        let mut chain = vec![self.stage(name)];
        while let Some(parent) = self
            .stages
            .iter()
            .find(|stage| stage.name.as_deref() == Some(chain[chain.len() - 1].base.as_str()))
        {
            assert!(chain.len() <= self.stages.len(), "FROM cycle at {name}");
            chain.push(parent);
        }
        chain.reverse();
        chain
    }

    /// What a container of stage `name` starts with.
    pub fn image(&self, name: &str) -> Image {
        let mut image = Image {
            workdir: PathBuf::from("/"),
            ..Image::default()
        };
        for stage in self.lineage(name) {
            for instruction in &stage.instructions {
                apply(&mut image, instruction);
            }
        }
        image
    }
}

/// Lines with comments and blank lines dropped and `\` continuations
/// joined (comment lines inside a continuation are skipped, as Docker
/// does).
fn logical_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                lines.push(std::mem::take(&mut current).trim().to_owned());
            }
        }
    }
    if !current.trim().is_empty() {
        lines.push(current.trim().to_owned());
    }
    lines
}

fn from_stage(arguments: &str) -> Stage {
    let words: Vec<&str> = arguments
        .split_whitespace()
        .filter(|w| !w.starts_with("--"))
        .collect();
    let (base, name) = match words.as_slice() {
        [base] => (*base, None),
        [base, as_, name] if as_.eq_ignore_ascii_case("as") => (*base, Some((*name).to_owned())),
        _ => panic!("Dockerfile: cannot read `FROM {arguments}`"),
    };
    Stage {
        name,
        base: base.to_owned(),
        instructions: Vec::new(),
    }
}

fn apply(image: &mut Image, instruction: &Instruction) {
    let arguments = instruction.arguments.as_str();
    match instruction.keyword.as_str() {
        "ENV" => image.env.extend(env_pairs(arguments)),
        "WORKDIR" => {
            assert!(
                arguments.starts_with('/'),
                "Dockerfile: use an absolute WORKDIR, not {arguments:?}"
            );
            image.workdir = normalize(Path::new(arguments));
        }
        "COPY" | "ADD" => {
            if let Some(copy) = context_copy(image, arguments) {
                image.context_copies.push(copy);
            }
        }
        "USER" => image.user = Some(arguments.to_owned()),
        "EXPOSE" => image
            .exposed
            .extend(arguments.split_whitespace().map(str::to_owned)),
        "STOPSIGNAL" => image.stop_signal = Some(arguments.to_owned()),
        "HEALTHCHECK" => image.healthcheck = healthcheck(arguments),
        "ENTRYPOINT" => {
            image.entrypoint = exec_form("ENTRYPOINT", arguments);
            // Docker: setting ENTRYPOINT resets a CMD inherited so far.
            image.cmd.clear();
        }
        "CMD" => image.cmd = exec_form("CMD", arguments),
        _ => {}
    }
}

/// `KEY=value KEY2="a b"` (or the legacy `KEY value`).
fn env_pairs(arguments: &str) -> Vec<(String, String)> {
    assert!(
        !arguments.contains('$'),
        "Dockerfile: `ENV {arguments}`: variable references are not followed by docker_image.rs"
    );
    let words = split_quoted(arguments);
    if words.first().is_some_and(|w| !w.contains('=')) {
        let (key, value) = arguments
            .split_once(char::is_whitespace)
            .unwrap_or((arguments, ""));
        return vec![(key.to_owned(), value.trim().to_owned())];
    }
    words
        .iter()
        .map(|word| match word.split_once('=') {
            Some((key, value)) => (key.to_owned(), value.to_owned()),
            None => panic!("Dockerfile: `ENV {arguments}`: {word:?} is not KEY=value"),
        })
        .collect()
}

/// Splits on whitespace outside double quotes, dropping the quotes.
fn split_quoted(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    assert!(!quoted, "Dockerfile: unbalanced quotes in {text:?}");
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// A `COPY` from the build context (one source), resolved; `None` for
/// `COPY --from=stage`.
fn context_copy(image: &Image, arguments: &str) -> Option<ContextCopy> {
    assert!(
        !arguments.starts_with('['),
        "Dockerfile: write `COPY src dest`, not the JSON form"
    );
    let words: Vec<&str> = arguments.split_whitespace().collect();
    if words.iter().any(|w| w.starts_with("--from=")) {
        return None;
    }
    let paths: Vec<&str> = words.into_iter().filter(|w| !w.starts_with("--")).collect();
    let [sources @ .., destination] = paths.as_slice() else {
        panic!("Dockerfile: `COPY {arguments}` has no destination");
    };
    let [source] = sources else {
        // Several sources (or a directory) are not config files.
        return None;
    };
    let mut resolved = image.resolve(destination);
    if destination.ends_with('/') {
        resolved.push(Path::new(source).file_name()?);
    }
    Some(ContextCopy {
        source: PathBuf::from(source),
        destination: resolved,
    })
}

/// `[--option=…]… CMD ["a", "b"]`, or `NONE`.
fn healthcheck(arguments: &str) -> Option<Vec<String>> {
    if arguments.eq_ignore_ascii_case("NONE") {
        return None;
    }
    let command = arguments
        .split_once("CMD")
        .map(|(_, command)| command.trim())
        .unwrap_or_else(|| panic!("Dockerfile: `HEALTHCHECK {arguments}` has no CMD"));
    Some(exec_form("HEALTHCHECK CMD", command))
}

/// An exec-form JSON array of strings.
fn exec_form(keyword: &str, arguments: &str) -> Vec<String> {
    match serde_json::from_str(arguments) {
        Ok(words) => words,
        Err(error) => panic!(
            "Dockerfile: `{keyword} {arguments}` must be in exec form \
             (a JSON array of strings) for docker_image.rs to follow it: {error}"
        ),
    }
}

/// `path` with `.` and `..` resolved lexically (as Docker does for image
/// paths).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(part) => out.push(part),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}
