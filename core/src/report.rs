//! A whole job's results gathered in one value, for callers that want them all at once.

use crate::batch::{EventRequest, FailedItem, RawItem};
use crate::config::JobRef;
use crate::job::{Event, Outcome, Stopped};

/// Everything a job's events said: the job, how it ended, and the items read.
///
/// Holding every item costs memory in proportion to the job: stream the events instead
/// (every adapter offers them) when a job's results are large.
#[derive(Debug, Clone)]
#[must_use]
pub struct ImportReport<T = EventRequest> {
    /// The job, once it exists.
    pub job: Option<JobRef>,
    /// How it ended.
    pub outcome: Outcome,
    /// The imported items read.
    pub imported: Vec<T>,
    /// The failures read, with the server's reasons.
    pub failed: Vec<FailedItem<T>>,
    /// Imported items that did not fit `T`, kept as sent.
    pub unread: Vec<RawItem>,
}

impl<T> ImportReport<T> {
    /// Gathers one job's events; `None` if they stop before `Done`.
    pub fn collect(events: impl IntoIterator<Item = Event<T>>) -> Option<Self> {
        let (mut job, mut imported, mut failed, mut unread) =
            (None, Vec::new(), Vec::new(), Vec::new());
        for event in events {
            match event {
                Event::Created(created) => job = Some(created),
                Event::Progress(p) => job = job.or(p.job),
                Event::Imported(items) => imported.extend(items),
                Event::Failed(items) => failed.extend(items),
                Event::Unread(items) => unread.extend(items),
                Event::Done(outcome) => {
                    if let Outcome::Stopped(s) = &outcome {
                        job = job.or_else(|| s.job.clone());
                    }
                    return Some(Self {
                        job,
                        outcome,
                        imported,
                        failed,
                        unread,
                    });
                }
            }
        }
        None
    }

    /// The report of a job that finished, or why it stopped, for `?`.
    ///
    /// # Errors
    /// The [`Stopped`] that says where and why.
    // The error is the rare path: boxing it would cost every caller a deref for nothing.
    #[allow(clippy::result_large_err)]
    pub fn into_result(self) -> Result<Self, Stopped> {
        match self.outcome {
            Outcome::Stopped(stopped) => Err(stopped),
            Outcome::Finished(_) => Ok(self),
        }
    }
}
