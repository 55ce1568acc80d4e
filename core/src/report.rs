//! A whole job's results gathered in one value, for callers that want them all at once.

use std::fmt;

use crate::batch::{EventRequest, FailedItem, RawItem, ValidationError};
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

/// Why a create-only call (each adapter's `Client::create`) made no job.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CreateError {
    /// An item broke a limit of the API: nothing was sent.
    Invalid(ValidationError),
    /// The create never succeeded: where and why (stage create; a 401, too many errors in
    /// a row, the deadline, ...).
    Stopped(Box<Stopped>),
}

impl CreateError {
    /// Gathers a create-only job's events ([`crate::Job::create_only`],
    /// [`crate::JobSet::add_create_only`]): the job once `Done` says it finished, or why
    /// not. `None` if the events stop before `Done`, or finish without a `Created`.
    pub fn collect<T>(
        events: impl IntoIterator<Item = Event<T>>,
    ) -> Option<Result<JobRef, CreateError>> {
        let mut created = None;
        for event in events {
            match event {
                Event::Created(job) => created = Some(job),
                Event::Done(Outcome::Finished(_)) => return created.map(Ok),
                Event::Done(Outcome::Stopped(stopped)) => {
                    return Some(Err(Self::Stopped(Box::new(stopped))));
                }
                _ => {}
            }
        }
        None
    }
}

impl fmt::Display for CreateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Invalid(_) => "input refused before sending",
            Self::Stopped(_) => "job not created",
        })
    }
}

impl std::error::Error for CreateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Invalid(e) => Some(e),
            Self::Stopped(s) => Some(&**s),
        }
    }
}

impl From<ValidationError> for CreateError {
    fn from(e: ValidationError) -> Self {
        Self::Invalid(e)
    }
}
