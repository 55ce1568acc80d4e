//! Progress while waiting: a live line on a terminal, one plain line per change otherwise.

use std::io::IsTerminal;
use std::time::{Duration, Instant, SystemTime};

use fullstory_batch_ureq::ProgressSnapshot;
use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    last_line: String,
}

impl Progress {
    /// A live line when stderr is a terminal, plain lines otherwise.
    pub fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg}").expect("a valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self {
            bar,
            started: Instant::now(),
            last_line: String::new(),
        }
    }

    pub fn update(&mut self, snapshot: &ProgressSnapshot) {
        let status = snapshot.last_status.as_ref();
        let state = status.map_or_else(|| "waiting".to_owned(), |s| s.job.status.to_string());
        let (imports, errors) = status.map_or((0, 0), |s| (s.imports, s.errors));
        let problem = snapshot
            .last_error
            .as_ref()
            .map(|e| format!(" · retrying after: {e}"))
            .unwrap_or_default();
        match &self.bar {
            Some(bar) => {
                let next = snapshot
                    .next_poll
                    .map(|t| t.duration_since(SystemTime::now()).unwrap_or_default());
                let next = next
                    .map(|d| format!(" · next poll in {}s", d.as_secs()))
                    .unwrap_or_default();
                bar.set_message(format!(
                    "{state} · {imports} imported · {errors} failed · {}s elapsed · attempt {}{next}{problem}",
                    self.started.elapsed().as_secs(),
                    snapshot.attempts,
                ));
            }
            None => {
                let line = format!("status {state}, {imports} imported, {errors} failed{problem}");
                if line != self.last_line {
                    eprintln!(
                        "{line} (attempt {}, {}s elapsed)",
                        snapshot.attempts,
                        self.started.elapsed().as_secs()
                    );
                    self.last_line = line;
                }
            }
        }
    }

    /// A plain message, above the live line if there is one.
    pub fn note(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.println(message),
            None => eprintln!("{message}"),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
