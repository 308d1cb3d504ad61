//! A progress bar on stderr for long CLI work (`dlq replay`, `audit verify`),
//! drawn by indicatif only when stderr is a terminal: piped output and logs
//! stay as they were.

use indicatif::{ProgressBar, ProgressStyle};

#[derive(Clone)]
pub struct Bar(ProgressBar);

/// A bar whose total is set by the first `show`.
pub fn bar(what: &str) -> Bar {
    let bar = ProgressBar::new(0);
    // The template is a constant: a bad one is a bug caught by any run.
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    Bar(bar)
}

impl Bar {
    pub fn show(&self, done: u64, total: u64) {
        self.0.set_length(total);
        self.0.set_position(done);
    }

    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}
