//! The progress bar shown while a workload runs (indicatif, on stderr;
//! hidden when stderr is not a terminal).
//!
//! Counters are plain cells bumped by the workload; a ticker copies them
//! to the bar ten times a second, so the hot path never touches the bar.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::report::grouped;

/// How often the bar is refreshed from the counter.
pub const TICK: Duration = Duration::from_millis(100);

/// One workload's progress bar.
#[derive(Debug, Clone)]
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar labelled `label` (e.g. `herald fanout`) counting to `total`
    /// `unit`s; drawn on stderr when `visible` and stderr is a terminal.
    pub fn new(label: &str, total: u64, unit: &str, visible: bool) -> Progress {
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(total), target);
        let template = format!(
            "{{prefix:<16}} {{msg:<11}} [{{bar:30}}] {{human_pos}}/{{human_len}} {unit} \
             ({{rate}}, {{elapsed}})"
        );
        if let Ok(style) = ProgressStyle::with_template(&template) {
            let style = style.progress_chars("=> ").with_key(
                "rate",
                |state: &ProgressState, out: &mut dyn fmt::Write| {
                    let _ = write!(out, "{}/s", grouped(state.per_sec()));
                },
            );
            bar.set_style(style);
        }
        bar.set_prefix(label.to_owned());
        Progress { bar }
    }

    /// A bar that never draws.
    pub fn hidden() -> Progress {
        Progress::new("", 0, "", false)
    }

    /// Names the current phase (`connecting`, `running`, ...).
    pub fn phase(&self, phase: &'static str) {
        self.bar.set_message(phase);
    }

    /// Moves the bar to `position`.
    pub fn set(&self, position: u64) {
        self.bar.set_position(position);
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    /// Runs `work`, copying `counter` to the bar every [`TICK`] until it
    /// completes.
    pub async fn track<F: Future>(&self, counter: &Cell<u64>, work: F) -> F::Output {
        let mut work = std::pin::pin!(work);
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                output = &mut work => {
                    self.set(counter.get());
                    return output;
                }
                _ = ticker.tick() => self.set(counter.get()),
            }
        }
    }
}
