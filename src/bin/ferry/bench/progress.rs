//! Progress of long benchmark runs: a bar on a terminal (standard error),
//! one plain line per measurement otherwise (logs, CI).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// The progress of one measurement made of `steps` steps.
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Starts showing `label` (a bar of `steps` on a terminal, else one line).
    pub(crate) fn start(label: &str, steps: u64) -> Progress {
        if !std::io::stderr().is_terminal() {
            eprintln!("running {label} ({steps} steps)");
            return Progress { bar: None };
        }
        let bar = ProgressBar::new(steps);
        if let Ok(style) =
            ProgressStyle::with_template("{msg:50!} [{bar:30}] {pos}/{len} {elapsed}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(label.to_string());
        Progress { bar: Some(bar) }
    }

    /// One step done.
    pub(crate) fn step(&self) {
        if let Some(b) = &self.bar {
            b.inc(1);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // Gone before the result line is printed.
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
