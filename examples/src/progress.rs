//! Progress while waiting: a live line on a terminal, one plain line per change otherwise.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use fullstory_batch_ureq::Progress as JobProgress;
use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
    /// `--quiet`: nothing at all.
    quiet: bool,
    /// When the next poll is due, in ms since the epoch (0: none): the live line counts down
    /// to it between updates.
    next_poll: Arc<AtomicU64>,
    started: Instant,
    last_line: String,
}

impl Progress {
    /// A live line when stderr is a terminal, plain lines otherwise, nothing with `--quiet`.
    pub fn new() -> Self {
        let quiet = crate::args::quiet();
        let next_poll = Arc::new(AtomicU64::new(0));
        let due = Arc::clone(&next_poll);
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let style = ProgressStyle::with_template("{spinner} {msg} · {elapsed} elapsed{next}")
                .expect("a valid template")
                .with_key(
                    "next",
                    move |_: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let due = due.load(Ordering::Relaxed);
                        if due > 0 {
                            let left = due.saturating_sub(epoch_ms(SystemTime::now()));
                            let _ = write!(w, " · next poll in {}s", left.div_ceil(1000));
                        }
                    },
                );
            let bar = ProgressBar::new_spinner().with_style(style);
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self {
            bar,
            quiet,
            next_poll,
            started: Instant::now(),
            last_line: String::new(),
        }
    }

    pub fn update(&mut self, snapshot: &JobProgress) {
        if self.quiet {
            return;
        }
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
                self.next_poll
                    .store(snapshot.next_request.map_or(0, epoch_ms), Ordering::Relaxed);
                bar.set_message(format!(
                    "{state} · {imports} imported · {errors} failed · attempt {}{problem}",
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
            None if self.quiet => {}
            None => eprintln!("{message}"),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn epoch_ms(t: SystemTime) -> u64 {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// The whole import on one live line (a terminal), or a plain line per batch event.
pub struct ImportProgress {
    bar: Option<ProgressBar>,
    quiet: bool,
    read: crate::input::Counter,
    total_bytes: Option<u64>,
    total_items: Option<u64>,
    started: Instant,
}

impl ImportProgress {
    pub fn new(
        read: crate::input::Counter,
        total_bytes: Option<u64>,
        total_items: Option<u64>,
    ) -> Self {
        let quiet = crate::args::quiet();
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let style = ProgressStyle::with_template("{spinner} {msg}").expect("a valid template");
            let bar = ProgressBar::new_spinner().with_style(style);
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self {
            bar,
            quiet,
            read,
            total_bytes,
            total_items,
            started: Instant::now(),
        }
    }

    /// A plain line (above the live line on a terminal).
    pub fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None if self.quiet => {}
            None => eprintln!("{text} ({}s)", self.started.elapsed().as_secs()),
        }
    }

    /// The live line: input read, batches created and finished, items imported and failed
    /// so far, jobs in progress, elapsed and an estimate of the rest.
    pub fn update(
        &mut self,
        items_read: u64,
        created: usize,
        finished: usize,
        imported: u64,
        failed: u64,
        in_progress: usize,
    ) {
        let Some(bar) = &self.bar else { return };
        let mib = |b: u64| b as f64 / f64::from(1 << 20);
        let bytes = self.read.get();
        let read = match self.total_bytes {
            Some(total) => format!("read {:.0}/{:.0} MiB", mib(bytes), mib(total)),
            None => format!("read {:.0} MiB", mib(bytes)),
        };
        let items = match self.total_items {
            Some(total) => format!("{items_read}/{total} items"),
            None => format!("{items_read} items"),
        };
        let elapsed = self.started.elapsed();
        let eta = self
            .total_items
            .filter(|_| imported + failed > 0)
            .map(|total| {
                let done = (imported + failed).min(total) as f64;
                let rest = elapsed.as_secs_f64() * (total as f64 - done) / done;
                format!(" · ~{}s left", rest.round() as u64)
            })
            .unwrap_or_default();
        bar.set_message(format!(
            "{read} · {items} · batches {created} created, {finished} finished · {imported} imported · {failed} failed · {in_progress} in progress · {}s{eta}",
            elapsed.as_secs()
        ));
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
