//! Waiting for many jobs under one request budget.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::config::JobRef;
use crate::error::{ApiError, Error, TransportError};
use crate::model::JobStatusResponse;
use crate::poller::{Action, Outcome, Policy, Poller, Progress};
use crate::time_math::{later, until};

/// A job inside a [`Scheduler`]. Keys are never reused, so a stale key finds nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobKey {
    slot: u32,
    generation: u32,
}

/// At most `rate` requests a second on average, in bursts of at most `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// Requests per second across all jobs.
    pub rate: f64,
    /// Requests that may go at once after a quiet spell.
    pub burst: u32,
}

impl Budget {
    /// `rate` requests a second, with bursts of up to `burst`.
    pub fn new(rate: f64, burst: u32) -> Self {
        Self { rate, burst }
    }
}

/// A token bucket, refilled from the `now` it is given.
#[derive(Debug, Clone)]
struct Bucket {
    budget: Budget,
    tokens: f64,
    refilled: SystemTime,
}

impl Bucket {
    fn new(budget: Budget, now: SystemTime) -> Self {
        let burst = f64::from(budget.burst.max(1));
        Self {
            budget,
            tokens: burst,
            refilled: now,
        }
    }

    fn refill(&mut self, now: SystemTime) {
        let rate = self.rate();
        let earned = until(self.refilled, now).as_secs_f64() * rate;
        self.tokens = (self.tokens + earned).min(f64::from(self.budget.burst.max(1)));
        self.refilled = self.refilled.max(now);
    }

    /// Takes a token, or says when the next one comes.
    fn take(&mut self, now: SystemTime) -> Result<(), SystemTime> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        let missing = (1.0 - self.tokens) / self.rate();
        let wait = Duration::try_from_secs_f64(missing).unwrap_or(Duration::MAX);
        Err(later(now, wait.max(Duration::from_micros(1))))
    }

    /// A rate that is not positive and finite would never refill; treat it as the smallest
    /// sensible one instead of dividing by zero.
    fn rate(&self) -> f64 {
        if self.budget.rate.is_finite() && self.budget.rate > 0.0 {
            self.budget.rate
        } else {
            1e-3
        }
    }
}

/// What the driver of a [`Scheduler`] should do next.
#[derive(Debug, Clone)]
#[must_use]
pub enum SchedulerAction {
    /// Send the status request for this job now, then feed back its answer with its key.
    Send(JobKey),
    /// Nothing is due before this instant (or before an answer arrives).
    Wait(SystemTime),
    /// This job finished; it has left the scheduler.
    Done(JobKey, Outcome),
    /// No job is waiting for its next poll: all are finished or have a request out.
    Idle,
}

#[derive(Debug)]
struct Slot {
    generation: u32,
    poller: Option<Poller>,
}

/// Drives many [`Poller`]s under one shared request budget.
///
/// Each decision costs O(log n) in the number of jobs: due times sit in a binary heap, not
/// in a list that is scanned. A 429 on any job pauses every job until its `Retry-After` has
/// passed, since Fullstory's rate limits are per organisation, not per job.
///
/// The loop is the poller's ([`Poller`]), with a key on each request:
/// 1. Call [`Scheduler::poll`] with the current time, repeatedly, until it returns `Wait` or
///    `Idle`; start each `Send` it returns (they may run concurrently).
/// 2. When an answer arrives, feed it to [`Scheduler::handle_response`] or
///    [`Scheduler::handle_transport_error`] with its key, and go to 1.
/// 3. On `Wait(t)`, sleep until `t` or until an answer arrives, whichever is first.
#[derive(Debug)]
pub struct Scheduler {
    policy: Arc<Policy>,
    seed: u64,
    slots: Vec<Slot>,
    free: Vec<u32>,
    due: BinaryHeap<Reverse<(SystemTime, JobKey)>>,
    done: VecDeque<(JobKey, Outcome)>,
    bucket: Option<Bucket>,
    paused_until: SystemTime,
    live: usize,
}

impl Scheduler {
    /// A scheduler whose jobs follow `policy`, with no request budget. `seed` drives the
    /// jitter of every job it adds.
    pub fn new(policy: Policy, seed: u64) -> Self {
        Self {
            policy: Arc::new(policy),
            seed,
            slots: Vec::new(),
            free: Vec::new(),
            due: BinaryHeap::new(),
            done: VecDeque::new(),
            bucket: None,
            paused_until: SystemTime::UNIX_EPOCH,
            live: 0,
        }
    }

    /// Limits requests across all jobs to `budget`.
    #[must_use]
    pub fn with_budget(mut self, budget: Budget, now: SystemTime) -> Self {
        self.bucket = Some(Bucket::new(budget, now));
        self
    }

    /// Starts waiting for `job`; its first poll is due at once.
    pub fn add(&mut self, job: JobRef, now: SystemTime) -> JobKey {
        let seed = self.seed ^ (self.slots.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.insert(Poller::new(job, self.policy.clone(), now, seed))
    }

    /// Adds a poller made elsewhere, such as one restored after a restart.
    pub fn insert(&mut self, poller: Poller) -> JobKey {
        let key = match self.free.pop() {
            Some(slot) => {
                let entry = &mut self.slots[slot as usize];
                entry.generation = entry.generation.wrapping_add(1);
                entry.poller = Some(poller);
                JobKey {
                    slot,
                    generation: entry.generation,
                }
            }
            None => {
                let slot = u32::try_from(self.slots.len()).expect("fewer than 2^32 jobs at once");
                self.slots.push(Slot {
                    generation: 0,
                    poller: Some(poller),
                });
                JobKey {
                    slot,
                    generation: 0,
                }
            }
        };
        self.live += 1;
        self.requeue(key);
        key
    }

    /// Jobs not yet finished and reported.
    pub fn len(&self) -> usize {
        self.live
    }

    /// `true` when no job is left.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The poller of a job still in the scheduler.
    pub fn poller(&self, key: JobKey) -> Option<&Poller> {
        let slot = self.slots.get(key.slot as usize)?;
        (slot.generation == key.generation)
            .then_some(slot.poller.as_ref())
            .flatten()
    }

    /// Progress of a job still in the scheduler.
    pub fn progress(&self, key: JobKey) -> Option<Progress<'_>> {
        self.poller(key).map(Poller::progress)
    }

    /// The job behind a key.
    pub fn job(&self, key: JobKey) -> Option<&JobRef> {
        self.poller(key).map(Poller::job)
    }

    /// Stops waiting for a job and hands back its poller (to save its state, say).
    pub fn remove(&mut self, key: JobKey) -> Option<Poller> {
        self.poller(key)?;
        let poller = self.slots[key.slot as usize].poller.take();
        self.free.push(key.slot);
        self.live -= 1;
        poller
    }

    /// The next thing to do at `now`.
    pub fn poll(&mut self, now: SystemTime) -> SchedulerAction {
        while let Some((key, outcome)) = self.done.pop_front() {
            if self.remove(key).is_some() {
                return SchedulerAction::Done(key, outcome);
            }
        }
        while let Some(&Reverse((at, key))) = self.due.peek() {
            if self.next_due(key) != Some(at) {
                self.due.pop(); // stale: the job was removed or rescheduled
                continue;
            }
            if at > now {
                return SchedulerAction::Wait(at.max(self.paused_until));
            }
            if self.paused_until > now {
                return SchedulerAction::Wait(self.paused_until);
            }
            if let Some(action) = self.start(key, now) {
                return action;
            }
        }
        SchedulerAction::Idle
    }

    /// Feeds back the answer for `key`'s request. Unknown keys are ignored.
    pub fn handle_response(
        &mut self,
        key: JobKey,
        answer: Result<JobStatusResponse, ApiError>,
        now: SystemTime,
    ) {
        if let Err(ApiError::RateLimited(details)) = &answer {
            let wait = match details.retry_after {
                Some(r) => r.delay(now, self.policy.retry_after_max),
                None => self.policy.error_backoff,
            };
            self.paused_until = self.paused_until.max(later(now, wait));
        }
        if let Some(poller) = self.poller_mut(key) {
            poller.handle_response(answer, now);
            self.requeue(key);
        }
    }

    /// Feeds back that `key`'s request got no answer. Unknown keys are ignored.
    pub fn handle_transport_error(&mut self, key: JobKey, error: TransportError, now: SystemTime) {
        if let Some(poller) = self.poller_mut(key) {
            poller.handle_transport_error(error, now);
            self.requeue(key);
        }
    }

    /// Feeds back one call's result for `key` as an adapter returns it.
    pub fn handle_result(
        &mut self,
        key: JobKey,
        result: Result<JobStatusResponse, Error>,
        now: SystemTime,
    ) {
        match result {
            Ok(status) => self.handle_response(key, Ok(status), now),
            Err(Error::Api(e)) => self.handle_response(key, Err(e), now),
            Err(Error::Transport(e)) => self.handle_transport_error(key, e, now),
        }
    }

    /// Asks a due job's poller what to do, within the budget.
    fn start(&mut self, key: JobKey, now: SystemTime) -> Option<SchedulerAction> {
        if let Some(bucket) = &mut self.bucket
            && let Err(next_token) = bucket.take(now)
        {
            return Some(SchedulerAction::Wait(next_token));
        }
        self.due.pop();
        let poller = self
            .poller_mut(key)
            .expect("a due entry points at a live job");
        match poller.poll(now) {
            Action::Send { .. } => Some(SchedulerAction::Send(key)),
            Action::Done(outcome) => {
                self.remove(key);
                Some(SchedulerAction::Done(key, outcome))
            }
            // Not due after all (the deadline moved it): queue it again, give the token back.
            Action::Wait(_) | Action::AwaitResponse => {
                self.refund();
                self.requeue(key);
                None
            }
        }
    }

    fn refund(&mut self) {
        if let Some(bucket) = &mut self.bucket {
            bucket.tokens += 1.0;
        }
    }

    /// Puts a job where its poller's state says: the due heap or the done queue.
    fn requeue(&mut self, key: JobKey) {
        let Some(poller) = self.poller_mut(key) else {
            return;
        };
        if let Some(outcome) = poller.outcome() {
            let outcome = outcome.clone();
            self.done.push_back((key, outcome));
        } else if let Some(at) = poller.next_due() {
            self.due.push(Reverse((at, key)));
        }
    }

    fn next_due(&self, key: JobKey) -> Option<SystemTime> {
        self.poller(key).and_then(Poller::next_due)
    }

    fn poller_mut(&mut self, key: JobKey) -> Option<&mut Poller> {
        let slot = self.slots.get_mut(key.slot as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        slot.poller.as_mut()
    }
}
