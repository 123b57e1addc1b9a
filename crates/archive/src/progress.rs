//! Progress of long work (hashing a hearing, copying an export): what reports it, and
//! the bar on a terminal for `verify`, `export` and `check` (bytes and files done,
//! rate and time left; quiet when standard error is not a terminal, or with `--json`).

use std::io::IsTerminal;

/// Something told how far hashing has got (a progress bar, an export's state).
pub trait Progress: Sync {
    /// `bytes` more hashed or copied, and `items` more files done.
    fn advance(&self, bytes: u64, items: u64);
    /// The totals to expect.
    fn total(&self, _bytes: u64, _items: u64) {}
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn advance(&self, _: u64, _: u64) {}
}

/// A progress bar on standard error, or nothing.
pub struct TermProgress {
    bar: Option<indicatif::ProgressBar>,
}

impl TermProgress {
    /// A bar labelled `what`, shown only on a terminal and when not `quiet`.
    pub fn new(what: &str, quiet: bool) -> TermProgress {
        if quiet || !std::io::stderr().is_terminal() {
            return TermProgress { bar: None };
        }
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} ({binary_bytes_per_sec}, {eta} left) {prefix}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(what.to_string());
        TermProgress { bar: Some(bar) }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Progress for TermProgress {
    fn advance(&self, bytes: u64, items: u64) {
        if let Some(b) = &self.bar {
            b.inc(bytes);
            let done: u64 = b
                .prefix()
                .split(' ')
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            b.set_prefix(format!("{} file(s)", done + items));
        }
    }

    fn total(&self, bytes: u64, _items: u64) {
        if let Some(b) = &self.bar {
            b.set_length(bytes);
        }
    }
}
