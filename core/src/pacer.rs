//! The pacing every call shares: one request at a time, errors backed off, `Retry-After`
//! obeyed, the deadline kept. The poller and the workflow add what an answer means.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::poller::Policy;
use crate::time_math::{Rng, later};

/// Where a call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Phase {
    /// The next request is due at this instant.
    Due(SystemTime),
    /// A request went out at this instant and has no answer yet.
    InFlight(SystemTime),
    /// Finished.
    Done,
}

/// What the owner of a pacer should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Send,
    Wait(SystemTime),
    AwaitResponse,
    DeadlinePassed,
}

/// Why a call stops after an error.
#[derive(Debug)]
pub(crate) enum Stop {
    GaveUp(Error),
    TooManyErrors(Error),
    DeadlinePassed,
}

/// The deadline would pass before the next request could go.
#[derive(Debug)]
pub(crate) struct DeadlinePassed;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Pacer {
    /// Shared: a scheduler's thousands of pollers hold one policy.
    policy: Arc<Policy>,
    deadline: Option<SystemTime>,
    rng: Rng,
    attempts: u32,
    errors_in_row: u32,
    /// No request before this instant: the latest `Retry-After`.
    not_before: SystemTime,
    phase: Phase,
}

impl Pacer {
    /// A pacer whose first request is due at `now`.
    pub(crate) fn new(
        policy: Arc<Policy>,
        now: SystemTime,
        seed: u64,
        deadline: Option<SystemTime>,
    ) -> Self {
        Self {
            policy,
            deadline,
            rng: Rng::new(seed),
            attempts: 0,
            errors_in_row: 0,
            not_before: now,
            phase: Phase::Due(now),
        }
    }

    pub(crate) fn policy(&self) -> &Policy {
        &self.policy
    }

    pub(crate) fn deadline(&self) -> Option<SystemTime> {
        self.deadline
    }

    pub(crate) fn attempts(&self) -> u32 {
        self.attempts
    }

    pub(crate) fn errors_in_row(&self) -> u32 {
        self.errors_in_row
    }

    pub(crate) fn next_due(&self) -> Option<SystemTime> {
        match self.phase {
            Phase::Due(at) => Some(at),
            Phase::InFlight(_) | Phase::Done => None,
        }
    }

    pub(crate) fn in_flight(&self) -> bool {
        matches!(self.phase, Phase::InFlight(_))
    }

    /// After a restart: a request in flight counts as lost and goes again when due.
    /// `false` when there is nothing to resume.
    pub(crate) fn resume(&mut self) -> bool {
        match self.phase {
            Phase::Done => false,
            Phase::InFlight(sent) => {
                self.phase = Phase::Due(sent.max(self.not_before));
                true
            }
            Phase::Due(_) => true,
        }
    }

    /// The next thing to do at `now`. A request may go up to and at the deadline, not after.
    pub(crate) fn poll(&mut self, now: SystemTime) -> Step {
        let past = |deadline: Option<SystemTime>, strict: bool| {
            deadline.is_some_and(|d| if strict { now > d } else { now >= d })
        };
        match self.phase {
            Phase::Done => Step::AwaitResponse,
            Phase::InFlight(_) if past(self.deadline, false) => Step::DeadlinePassed,
            Phase::InFlight(_) => Step::AwaitResponse,
            Phase::Due(_) if past(self.deadline, true) => Step::DeadlinePassed,
            Phase::Due(at) if now < at => Step::Wait(at),
            Phase::Due(_) => {
                self.phase = Phase::InFlight(now);
                self.attempts = self.attempts.saturating_add(1);
                Step::Send
            }
        }
    }

    /// A useful answer came: the error streak ends.
    pub(crate) fn succeeded(&mut self) {
        self.errors_in_row = 0;
    }

    /// The next request goes after about `interval` (shortened by the poll jitter).
    pub(crate) fn wait_interval(
        &mut self,
        interval: Duration,
        now: SystemTime,
    ) -> Result<(), DeadlinePassed> {
        let wait = self.rng.shorten(interval, self.policy.poll_jitter);
        self.schedule(later(now, wait), now)
    }

    /// The next request goes at once (another page, say), unless a `Retry-After` holds.
    pub(crate) fn next_now(&mut self, now: SystemTime) -> Result<(), DeadlinePassed> {
        self.schedule(now, now)
    }

    /// A request failed: back off, or say why to stop.
    pub(crate) fn failed(&mut self, error: Error, now: SystemTime) -> Result<(), Stop> {
        if !error.is_retryable() {
            return Err(Stop::GaveUp(error));
        }
        self.errors_in_row = self.errors_in_row.saturating_add(1);
        if self.errors_in_row >= self.policy.max_errors_in_row {
            return Err(Stop::TooManyErrors(error));
        }
        if let Error::Api(e) = &error
            && let Some(retry_after) = e.retry_after()
        {
            let floor = later(now, retry_after.delay(now, self.policy.retry_after_max));
            self.not_before = self.not_before.max(floor);
        }
        let backoff = self.policy.error_wait(self.errors_in_row);
        // Equal jitter: half fixed, half random.
        let wait = self.rng.shorten(backoff, 0.5);
        self.schedule(later(now, wait), now)
            .map_err(|_| Stop::DeadlinePassed)
    }

    pub(crate) fn finish(&mut self) {
        self.phase = Phase::Done;
    }

    /// Sets the next request at `due`, never before a `Retry-After` and never after the
    /// deadline; fails when no request can go in time.
    fn schedule(&mut self, due: SystemTime, now: SystemTime) -> Result<(), DeadlinePassed> {
        let due = due.max(self.not_before);
        match self.deadline {
            Some(deadline) if now >= deadline || self.not_before > deadline => {
                return Err(DeadlinePassed);
            }
            Some(deadline) => self.phase = Phase::Due(due.min(deadline)),
            None => self.phase = Phase::Due(due),
        }
        Ok(())
    }
}
