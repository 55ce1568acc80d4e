//! Waiting for one job: when to ask again, when to give up.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::config::JobRef;
use crate::error::{ApiError, Error, TransportError};
use crate::model::JobStatusResponse;
use crate::pacer::{Pacer, Step, Stop};
use crate::retry_after::DEFAULT_RETRY_AFTER_MAX;
use crate::time_math::{later, scale};

/// How a [`Poller`] paces itself. Every field is public; [`Policy::default`] explains each
/// choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// The first wait between two polls that found the job running. Default 1 s: small jobs
    /// finish in seconds, and the first answers are the cheapest to get early.
    pub initial_interval: Duration,
    /// How the poll interval grows after each running answer. Default 1.5: a job running T
    /// seconds costs about log₁.₅(T) + T/`max_interval` requests. 1 polls at a fixed interval;
    /// values below 1 (or not finite) count as 1.
    pub multiplier: f64,
    /// The longest wait between two polls, and so the longest delay in noticing that a job
    /// ended. Default 20 s.
    pub max_interval: Duration,
    /// Each poll wait is shortened by a random share of at most this (0 to 1). Default 0.1.
    /// Jitter only ever shortens, so `max_interval` stays a true bound on detection delay,
    /// while jobs started together drift apart instead of polling in lockstep.
    pub poll_jitter: f64,
    /// The first wait after an error. Default 500 ms; doubles with each error in a row.
    pub error_backoff: Duration,
    /// The longest wait after errors. Default 30 s.
    pub max_error_backoff: Duration,
    /// Give up after this many errors in a row (a successful poll resets the count).
    /// Default 8: with the backoff above, about a minute and a half of a failing server.
    /// Error waits use "equal jitter" (half fixed, half random) so that clients hit by the
    /// same outage do not come back at the same instant, yet never retry at once.
    pub max_errors_in_row: u32,
    /// Stop waiting this long after the poller was made. Default none: a library should not
    /// guess how long an import may take; the CLI sets one hour.
    pub timeout: Option<Duration>,
    /// The longest `Retry-After` obeyed; longer ones are cut to this. Default one hour.
    pub retry_after_max: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            initial_interval: Duration::from_secs(1),
            multiplier: 1.5,
            max_interval: Duration::from_secs(20),
            poll_jitter: 0.1,
            error_backoff: Duration::from_millis(500),
            max_error_backoff: Duration::from_secs(30),
            max_errors_in_row: 8,
            timeout: None,
            retry_after_max: DEFAULT_RETRY_AFTER_MAX,
        }
    }
}

impl Policy {
    /// The same policy with an overall timeout.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The wait before retry number `n` (1-based) after errors, before jitter.
    pub(crate) fn error_wait(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
        self.error_backoff
            .saturating_mul(factor)
            .min(self.max_error_backoff)
    }

    pub(crate) fn next_interval(&self, current: Duration) -> Duration {
        let multiplier = if self.multiplier >= 1.0 {
            self.multiplier
        } else {
            1.0
        };
        scale(current, multiplier).min(self.max_interval)
    }
}

/// How waiting for a job ended.
#[derive(Debug, Clone)]
#[must_use]
pub enum Outcome {
    /// The job completed: every item was imported.
    Completed(JobStatusResponse),
    /// The job failed, possibly in part: it may still have imported items.
    Failed(JobStatusResponse),
    /// An error that retrying cannot fix, such as 401 or 404.
    GaveUp(Error),
    /// Too many errors in a row; the last one.
    TooManyErrors(Error),
    /// The deadline came (or a `Retry-After` reached past it) before the job ended.
    DeadlineExceeded {
        /// The last running status seen, if any.
        last_status: Option<JobStatusResponse>,
    },
}

impl Outcome {
    /// The final status of a job that ended, COMPLETED or FAILED.
    pub fn status(&self) -> Option<&JobStatusResponse> {
        match self {
            Self::Completed(s) | Self::Failed(s) => Some(s),
            _ => None,
        }
    }
}

/// What the driver should do next.
#[derive(Debug, Clone)]
#[must_use]
pub enum Action {
    /// Send the status request now ([`crate::Config::status_request`] for
    /// [`Poller::job`]), then feed back what happened. When `deadline` is set, a request still
    /// unanswered then should be abandoned and reported as a [`crate::TransportKind::Timeout`] error.
    Send {
        /// The overall deadline, if the policy has one.
        deadline: Option<SystemTime>,
    },
    /// Nothing to do before this instant; call [`Poller::poll`] again then.
    Wait(SystemTime),
    /// A request is out; feed back its answer with `handle_*`.
    AwaitResponse,
    /// Finished.
    Done(Outcome),
}

/// A poller's whole state, for saving (serde) and restoring with [`Poller::restore`].
///
/// Instants are wall-clock times, so a process that restarts resumes with the same
/// schedule: the next poll stays due when it was, and a `Retry-After` still holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PollerState {
    job: JobRef,
    pacer: Pacer,
    interval: Duration,
    /// Boxed, like the outcome, to keep a waiting poller small.
    last_status: Option<Box<JobStatusResponse>>,
}

/// A restored state that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RestoreError {
    /// The state belongs to another job.
    WrongJob {
        /// The job the caller asked for.
        expected: JobRef,
        /// The job the state was saved for.
        found: JobRef,
    },
    /// The state was saved after the poller finished; there is nothing to resume.
    Finished,
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongJob { expected, found } => {
                write!(f, "saved state is for {found}, not {expected}")
            }
            Self::Finished => f.write_str("saved state is of a poller that already finished"),
        }
    }
}

impl std::error::Error for RestoreError {}

/// What a driver can show while a job runs.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// The last running status, once one arrived.
    pub last_status: Option<&'a JobStatusResponse>,
    /// Requests sent so far.
    pub attempts: u32,
    /// Errors since the last successful poll.
    pub errors_in_row: u32,
    /// When the next request is due, while waiting for it.
    pub next_poll: Option<SystemTime>,
    /// The overall deadline, if any.
    pub deadline: Option<SystemTime>,
}

/// [`Progress`], owned, with the last error: what a driver hands to whoever shows progress
/// (a watch channel, an iterator, another thread).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ProgressSnapshot {
    /// The last running status, once one arrived.
    pub last_status: Option<JobStatusResponse>,
    /// The error of the last request, if it failed; cleared by the next success.
    pub last_error: Option<Error>,
    /// Requests sent so far.
    pub attempts: u32,
    /// Errors since the last successful poll.
    pub errors_in_row: u32,
    /// When the next request is due, while waiting for it.
    pub next_poll: Option<SystemTime>,
    /// The overall deadline, if the policy has one.
    pub deadline: Option<SystemTime>,
}

impl ProgressSnapshot {
    /// Owns `progress`, adding the last error the driver saw.
    pub fn new(progress: Progress<'_>, last_error: Option<Error>) -> Self {
        Self {
            last_status: progress.last_status.cloned(),
            last_error,
            attempts: progress.attempts,
            errors_in_row: progress.errors_in_row,
            next_poll: progress.next_poll,
            deadline: progress.deadline,
        }
    }
}

/// Waits for one job: a state machine with no clock and no I/O.
///
/// The loop a driver runs:
/// 1. Call [`Poller::poll`] with the current time.
/// 2. On [`Action::Send`], send [`crate::Config::status_request`] for [`Poller::job`]; feed
///    the parsed answer to [`Poller::handle_response`], or a failure to send or receive to
///    [`Poller::handle_transport_error`], with the time it happened. Go to 1.
/// 3. On [`Action::Wait`], sleep until that instant (or less), then go to 1.
/// 4. On [`Action::Done`], stop: the [`Outcome`] says how it ended.
///
/// See the crate docs for a whole loop on a fake clock.
#[derive(Debug, Clone)]
pub struct Poller {
    state: PollerState,
    outcome: Option<Box<Outcome>>,
}

impl Poller {
    /// A poller for `job` that sends its first request at once. `seed` drives the jitter:
    /// the same seed and the same inputs give the same schedule.
    pub fn new(job: JobRef, policy: impl Into<Arc<Policy>>, now: SystemTime, seed: u64) -> Self {
        let policy = policy.into();
        let deadline = policy.timeout.map(|t| later(now, t));
        Self::with_deadline(job, policy, now, seed, deadline)
    }

    /// A poller bound by `deadline` rather than by its policy's timeout, for a wait that is
    /// one step of a longer workflow.
    pub(crate) fn with_deadline(
        job: JobRef,
        policy: Arc<Policy>,
        now: SystemTime,
        seed: u64,
        deadline: Option<SystemTime>,
    ) -> Self {
        let interval = policy.initial_interval;
        let state = PollerState {
            job,
            pacer: Pacer::new(policy, now, seed, deadline),
            interval,
            last_status: None,
        };
        Self {
            state,
            outcome: None,
        }
    }

    /// Resumes from a saved state, checking it belongs to `job`. A request that was in flight
    /// when the state was saved counts as lost and is sent again when due.
    ///
    /// # Errors
    /// [`RestoreError`] when the state is for another job or already finished.
    pub fn restore(mut state: PollerState, job: &JobRef) -> Result<Self, RestoreError> {
        if &state.job != job {
            return Err(RestoreError::WrongJob {
                expected: job.clone(),
                found: state.job,
            });
        }
        if !state.pacer.resume() {
            return Err(RestoreError::Finished);
        }
        Ok(Self {
            state,
            outcome: None,
        })
    }

    /// The whole state, to save and later [`Poller::restore`].
    pub fn save(&self) -> PollerState {
        self.state.clone()
    }

    /// The job this poller waits for.
    pub fn job(&self) -> &JobRef {
        &self.state.job
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        self.state.pacer.policy()
    }

    /// What a driver can show while the job runs.
    pub fn progress(&self) -> Progress<'_> {
        let pacer = &self.state.pacer;
        Progress {
            last_status: self.state.last_status.as_deref(),
            attempts: pacer.attempts(),
            errors_in_row: pacer.errors_in_row(),
            next_poll: pacer.next_due(),
            deadline: pacer.deadline(),
        }
    }

    /// When the next request is due, while waiting for it.
    pub fn next_due(&self) -> Option<SystemTime> {
        self.state.pacer.next_due()
    }

    /// `true` once an [`Outcome`] is known.
    pub fn is_done(&self) -> bool {
        self.outcome.is_some()
    }

    /// How waiting ended, once it has.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_deref()
    }

    /// The next thing to do at `now`.
    pub fn poll(&mut self, now: SystemTime) -> Action {
        if let Some(outcome) = &self.outcome {
            return Action::Done(Outcome::clone(outcome));
        }
        match self.state.pacer.poll(now) {
            Step::Send => Action::Send {
                deadline: self.state.pacer.deadline(),
            },
            Step::Wait(at) => Action::Wait(at),
            Step::AwaitResponse => Action::AwaitResponse,
            Step::DeadlinePassed => {
                self.finish_deadline();
                self.poll(now)
            }
        }
    }

    /// Feeds back the parsed answer to the request [`Action::Send`] asked for.
    /// An answer nobody is waiting for (no request in flight) is ignored.
    pub fn handle_response(
        &mut self,
        answer: Result<JobStatusResponse, ApiError>,
        now: SystemTime,
    ) {
        if !self.state.pacer.in_flight() {
            return;
        }
        match answer {
            Ok(status) => self.on_status(status, now),
            Err(e) => self.on_error(Error::Api(e), now),
        }
    }

    /// Feeds back that the request got no answer. Ignored when no request is in flight.
    pub fn handle_transport_error(&mut self, error: TransportError, now: SystemTime) {
        if self.state.pacer.in_flight() {
            self.on_error(Error::Transport(error), now);
        }
    }

    /// Feeds back one call's result as an adapter returns it: the parsed status, or either
    /// kind of [`Error`]. The same as the two `handle_*` methods above.
    pub fn handle_result(&mut self, result: Result<JobStatusResponse, Error>, now: SystemTime) {
        match result {
            Ok(status) => self.handle_response(Ok(status), now),
            Err(Error::Api(e)) => self.handle_response(Err(e), now),
            Err(Error::Transport(e)) => self.handle_transport_error(e, now),
        }
    }

    fn on_status(&mut self, status: JobStatusResponse, now: SystemTime) {
        let s = &mut self.state;
        s.pacer.succeeded();
        if status.is_terminal() {
            let done = match status.job.status {
                crate::JobState::Completed => Outcome::Completed(status),
                _ => Outcome::Failed(status),
            };
            return self.finish(done);
        }
        s.last_status = Some(Box::new(status));
        let interval = s.interval;
        s.interval = s.pacer.policy().next_interval(interval);
        if s.pacer.wait_interval(interval, now).is_err() {
            self.finish_deadline();
        }
    }

    fn on_error(&mut self, error: Error, now: SystemTime) {
        match self.state.pacer.failed(error, now) {
            Ok(()) => {}
            Err(Stop::GaveUp(e)) => self.finish(Outcome::GaveUp(e)),
            Err(Stop::TooManyErrors(e)) => self.finish(Outcome::TooManyErrors(e)),
            Err(Stop::DeadlinePassed) => self.finish_deadline(),
        }
    }

    fn finish_deadline(&mut self) {
        let last_status = self.state.last_status.take().map(|s| *s);
        self.finish(Outcome::DeadlineExceeded { last_status });
    }

    fn finish(&mut self, outcome: Outcome) {
        self.state.pacer.finish();
        self.outcome = Some(Box::new(outcome));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-job state stays small: thousands of jobs wait at once.
    #[test]
    fn a_waiting_poller_is_small() {
        assert!(size_of::<Poller>() <= 256, "{} bytes", size_of::<Poller>());
    }
}
