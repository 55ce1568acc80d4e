//! Many jobs under one roof: one request budget, a cap on jobs in progress, one
//! organisation-wide pause on 429, and one overall deadline.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::Response;
use serde::{Deserialize, Serialize};

use crate::batch::{BatchItem, EventRequest, ValidationError};
use crate::config::{Config, JobRef};
use crate::error::TransportError;
use crate::input::Batch;
use crate::job::{
    Event, Job, JobKey, Outcome, Pages, Progress, RequestId, RestoreError, SavedJob, Step,
    StopReason, Transmit, is_rate_limited,
};
use crate::pacing::{Pacer, Policy, later, until};

/// Fullstory starts limiting an organisation at 100 jobs in progress; staying well under
/// leaves room for other importers in the same organisation.
pub const DEFAULT_MAX_IN_PROGRESS: usize = 4;

/// At most `rate` requests a second on average, in bursts of at most `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Bucket {
    budget: Budget,
    tokens: f64,
    refilled: SystemTime,
}

impl Bucket {
    fn new(budget: Budget, now: SystemTime) -> Self {
        Self {
            budget,
            tokens: f64::from(budget.burst.max(1)),
            refilled: now,
        }
    }

    fn refill(&mut self, now: SystemTime) {
        let earned = until(self.refilled, now).as_secs_f64() * self.rate();
        self.tokens = (self.tokens + earned).min(f64::from(self.budget.burst.max(1)));
        self.refilled = self.refilled.max(now);
    }

    /// Takes a token if one is there.
    fn take(&mut self, now: SystemTime) -> bool {
        self.refill(now);
        let ok = self.tokens >= 1.0;
        if ok {
            self.tokens -= 1.0;
        }
        ok
    }

    /// When the next token comes, if none is left.
    fn next_token(&self) -> Option<SystemTime> {
        (self.tokens < 1.0).then(|| {
            let missing = (1.0 - self.tokens) / self.rate();
            let wait = Duration::try_from_secs_f64(missing).unwrap_or(Duration::MAX);
            later(self.refilled, wait.max(Duration::from_micros(1)))
        })
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

/// Runs many [`Job`]s with the same verbs as one: `poll_transmit`, `poll_timeout`,
/// `poll_event`, `handle_response` and `handle_send_failed` (see [`Job`] for the loop).
///
/// - **One budget**: with [`JobSet::with_budget`], requests across all jobs keep to it.
/// - **Jobs in progress**: at most [`JobSet::with_max_in_progress`] jobs run at once; the
///   rest wait in order, and [`JobSet::wants_batch`] says when to hand over the next batch,
///   so a driver reading a large input holds only a few batches at a time.
/// - **One pause**: Fullstory's rate limits are the organisation's, so a 429 on any job
///   holds every job until that job may ask again (its `Retry-After`, or its backoff).
/// - **One deadline**: the policy's timeout counts from the set's start, for every job.
///
/// Each decision costs O(log n) in the number of jobs: due times sit in an ordered set, one
/// entry per running job, moved whenever the job's next wake-up moves.
/// Events come tagged with the [`JobKey`] of their job.
pub struct JobSet<T = EventRequest> {
    config: Arc<Config>,
    policy: Arc<Policy>,
    seed: u64,
    deadline: Option<SystemTime>,
    pages: Pages,
    max_in_progress: usize,
    next_key: u64,
    /// Boxed: a map of thousands of jobs then moves pointers, not whole jobs, when it
    /// grows, and its spare buckets cost 16 bytes each rather than a job's size.
    active: HashMap<JobKey, Box<Job<T>>>,
    queued: VecDeque<Job<T>>,
    /// Each running job's next wake-up, earliest first: one entry per job, never stale.
    due: BTreeSet<(SystemTime, JobKey)>,
    /// The wake-up each running job has in `due`, to find its entry when it moves.
    wakes: HashMap<JobKey, SystemTime>,
    bucket: Option<Bucket>,
    paused_until: SystemTime,
    /// Whether any job ever got an answer from the server.
    answered: bool,
    events: VecDeque<(JobKey, Event<T>)>,
}

/// A set's whole state, for saving (serde) and [`JobSet::restore`]; it holds no key. The
/// policy is saved once, for every job (states saved when each job held a copy still read).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedJobSet {
    policy: Arc<Policy>,
    seed: u64,
    deadline: Option<SystemTime>,
    pages: Pages,
    max_in_progress: usize,
    next_key: u64,
    jobs: Vec<SavedJob>,
    bucket: Option<Bucket>,
    paused_until: SystemTime,
    answered: bool,
}

impl<T: BatchItem> JobSet<T> {
    /// An empty set whose jobs follow `policy`, its deadline counted from `now`. `seed`
    /// drives every job's jitter. No budget, no cap on jobs in progress, no pages read:
    /// see the `with_*` methods.
    pub fn new(
        config: impl Into<Arc<Config>>,
        policy: impl Into<Arc<Policy>>,
        now: SystemTime,
        seed: u64,
    ) -> Self {
        let policy = policy.into();
        Self {
            config: config.into(),
            deadline: policy.deadline_from(now),
            policy,
            seed,
            pages: Pages::None,
            max_in_progress: usize::MAX,
            next_key: 0,
            active: HashMap::new(),
            queued: VecDeque::new(),
            due: BTreeSet::new(),
            wakes: HashMap::new(),
            bucket: None,
            paused_until: SystemTime::UNIX_EPOCH,
            answered: false,
            events: VecDeque::new(),
        }
    }

    /// Keeps requests across all jobs to `budget`.
    #[must_use]
    pub fn with_budget(mut self, budget: Budget, now: SystemTime) -> Self {
        self.bucket = Some(Bucket::new(budget, now));
        self
    }

    /// Runs at most `n` jobs at once (at least 1); others wait their turn in order.
    #[must_use]
    pub fn with_max_in_progress(mut self, n: usize) -> Self {
        self.max_in_progress = n.max(1);
        self
    }

    /// Reads these pages of every job added from now on, once it has ended.
    #[must_use]
    pub fn with_pages(mut self, pages: Pages) -> Self {
        self.pages = pages;
        self
    }

    /// [`JobSet::with_pages`] in place, for jobs added from now on.
    pub fn set_pages(&mut self, pages: Pages) {
        self.pages = pages;
    }

    /// Adds an existing job: wait for it, then read the set's pages. Its first request is
    /// due at once (or when its turn comes).
    pub fn add_job(&mut self, job: JobRef, now: SystemTime) -> JobKey {
        let resource = job.resource;
        let step = Step::Wait { since: now };
        self.add(resource, Some(job), step, false, now)
    }

    /// Adds a batch to create, wait for, and read the set's pages of.
    pub fn add_batch(&mut self, batch: Batch, now: SystemTime) -> JobKey {
        let resource = batch.resource();
        self.add(resource, None, Step::Create(batch), false, now)
    }

    /// Adds a batch to create only: its job ends once the create is answered, as
    /// [`Job::create_only`] does (`Created`, then `Done(Finished)` with the job as
    /// created), under the set's budget, pause and deadline like any other.
    pub fn add_create_only(&mut self, batch: Batch, now: SystemTime) -> JobKey {
        let resource = batch.resource();
        self.add(resource, None, Step::Create(batch), true, now)
    }

    /// Ends the input: an item broke a limit of the API. The batch that would have held it
    /// ends at once as `Stopped` at create with [`StopReason::InvalidInput`] (under the next
    /// key), nothing more is taken, and the jobs already added run on to their end.
    pub fn reject_input(&mut self, error: ValidationError) -> JobKey {
        let key = JobKey::new(self.next_key);
        self.next_key += 1;
        let outcome = Job::<T>::refused(error);
        self.events.push_back((key, Event::Done(outcome)));
        key
    }

    /// `true` when the set has room for another batch: fewer jobs wait for their turn than
    /// one. A driver reading a large input hands over the next batch only then, so at most
    /// `max_in_progress + 1` batches are held at once.
    pub fn wants_batch(&self) -> bool {
        self.queued.is_empty()
    }

    /// Jobs not yet ended: running and waiting their turn.
    pub fn len(&self) -> usize {
        self.active.len() + self.queued.len()
    }

    /// `true` when no job is left and every event was taken.
    pub fn is_empty(&self) -> bool {
        self.len() == 0 && self.events.is_empty()
    }

    /// The overall deadline, if the policy has a timeout.
    pub fn deadline(&self) -> Option<SystemTime> {
        self.deadline
    }

    /// A running or waiting job.
    pub fn job(&self, key: JobKey) -> Option<&Job<T>> {
        self.active
            .get(&key)
            .map(|job| &**job)
            .or_else(|| self.queued.iter().find(|j| j.key() == key))
    }

    /// Where a job not yet ended stands.
    pub fn progress(&self, key: JobKey) -> Option<Progress> {
        self.job(key).map(Job::progress)
    }

    /// The next request to send at `now`, within the budget, the pause and each job's
    /// schedule. Call it until it gives `None`; requests from different jobs may be out at
    /// once.
    pub fn poll_transmit(&mut self, now: SystemTime) -> Option<Transmit> {
        while let Some(key) = self.next_due(now) {
            let job = self.active.get_mut(&key).expect("next_due gives live jobs");
            let sends = !job.in_flight();
            if sends
                && let Some(bucket) = &mut self.bucket
                && !bucket.take(now)
            {
                return None;
            }
            let transmit = job.poll_transmit(now);
            if transmit.is_none()
                && sends
                && let Some(bucket) = &mut self.bucket
            {
                bucket.tokens += 1.0; // not sent after all: give the token back
            }
            self.settle(key);
            if transmit.is_some() {
                return transmit;
            }
        }
        None
    }

    /// When to call [`JobSet::poll_transmit`] again if no answer comes first.
    pub fn poll_timeout(&mut self) -> Option<SystemTime> {
        let &(at, key) = self.due.first()?;
        if self.active.get(&key).is_some_and(|job| job.in_flight()) {
            return Some(at); // the deadline of a request out
        }
        let mut wake = at.max(self.paused_until);
        if let Some(token) = self.bucket.as_ref().and_then(Bucket::next_token) {
            wake = wake.max(token);
        }
        Some(wake)
    }

    /// The next thing that happened in any job, with the job's key, oldest first.
    pub fn poll_event(&mut self) -> Option<(JobKey, Event<T>)> {
        self.events.pop_front()
    }

    /// Hands back the answer to request `id`. A 429 pauses every job.
    pub fn handle_response<B: AsRef<[u8]>>(
        &mut self,
        id: RequestId,
        response: &Response<B>,
        now: SystemTime,
    ) {
        let key = id.job();
        let Some(job) = self.active.get_mut(&key) else {
            return;
        };
        if !job.expects(id) {
            return; // a stale answer changes nothing, a 429 included
        }
        job.handle_response(id, response, now);
        self.answered = true;
        if is_rate_limited(response.status()) {
            let until = job.poll_timeout().unwrap_or(now).max(job.not_before());
            self.pause(until);
        }
        self.settle(key);
    }

    /// Hands back that request `id` got no answer.
    pub fn handle_send_failed(&mut self, id: RequestId, error: TransportError, now: SystemTime) {
        let key = id.job();
        let Some(job) = self.active.get_mut(&key) else {
            return;
        };
        job.handle_send_failed(id, error, now);
        let unreachable = match job.outcome() {
            Some(Outcome::Stopped(s)) if !self.answered => match &s.reason {
                StopReason::TooManyErrors(e) => Some(e.clone()),
                _ => None,
            },
            _ => None,
        };
        self.settle(key);
        if let Some(error) = unreachable {
            self.stop_all(&error);
        }
    }

    /// No job ever reached the server and one gave up connecting: the others would only
    /// repeat that, one after another.
    fn stop_all(&mut self, error: &crate::error::Error) {
        let keys: Vec<JobKey> = self.active.keys().copied().collect();
        for job in self.queued.iter_mut() {
            job.abort(StopReason::TooManyErrors(error.clone()));
        }
        for key in keys {
            if let Some(job) = self.active.get_mut(&key) {
                job.abort(StopReason::TooManyErrors(error.clone()));
            }
        }
        // Queued jobs report in their order, after the running ones.
        let queued: Vec<Job<T>> = self.queued.drain(..).collect();
        let mut keys: Vec<JobKey> = self.active.keys().copied().collect();
        keys.sort();
        for key in keys {
            self.settle(key);
        }
        for mut job in queued {
            let key = job.key();
            while let Some(event) = job.poll_event() {
                self.events.push_back((key, event));
            }
        }
    }

    /// The whole state, to save and later [`JobSet::restore`]. Events not yet taken are not
    /// part of it.
    pub fn save(&self) -> SavedJobSet {
        let mut jobs: Vec<SavedJob> = self.active.values().map(|job| job.save_in_set()).collect();
        jobs.sort_by_key(|j| j.key());
        jobs.extend(self.queued.iter().map(Job::save_in_set));
        SavedJobSet {
            policy: Arc::clone(&self.policy),
            seed: self.seed,
            deadline: self.deadline,
            pages: self.pages,
            max_in_progress: self.max_in_progress,
            next_key: self.next_key,
            jobs,
            bucket: self.bucket.clone(),
            paused_until: self.paused_until,
            answered: self.answered,
        }
    }

    /// Resumes a saved set with `config`; jobs that had ended are left out.
    ///
    /// # Errors
    /// [`RestoreError::Inconsistent`] when two saved jobs share a key, or one of them does
    /// not restore (see [`Job::restore`]): states no save makes. A cap of 0 reads as 1, and
    /// keys go on after the highest saved one.
    pub fn restore(
        config: impl Into<Arc<Config>>,
        state: SavedJobSet,
    ) -> Result<Self, RestoreError> {
        let config = config.into();
        let mut keys: Vec<u64> = state.jobs.iter().map(|job| job.key().index()).collect();
        keys.sort_unstable();
        if keys.windows(2).any(|pair| pair[0] == pair[1]) {
            return Err(RestoreError::Inconsistent("two jobs share a key"));
        }
        // Repairs no save needs, for a state edited by hand: keys already given are never
        // given again, and at least one job runs.
        let next_key = keys.last().map_or(state.next_key, |&last| {
            state.next_key.max(last.saturating_add(1))
        });
        let mut set = Self {
            config: Arc::clone(&config),
            policy: state.policy,
            seed: state.seed,
            deadline: state.deadline,
            pages: state.pages,
            max_in_progress: state.max_in_progress.max(1),
            next_key,
            active: HashMap::new(),
            queued: VecDeque::new(),
            due: BTreeSet::new(),
            wakes: HashMap::new(),
            bucket: state.bucket,
            paused_until: state.paused_until,
            answered: state.answered,
            events: VecDeque::new(),
        };
        for job in state.jobs {
            match Job::restore(Arc::clone(&config), job.under(&set.policy)) {
                Ok(job) => set.queued.push_back(job),
                Err(RestoreError::Finished) => {}
                Err(e @ RestoreError::Inconsistent(_)) => return Err(e),
            }
        }
        set.start_queued();
        Ok(set)
    }

    fn add(
        &mut self,
        resource: crate::config::Resource,
        job: Option<JobRef>,
        step: Step,
        create_only: bool,
        now: SystemTime,
    ) -> JobKey {
        let key = JobKey::new(self.next_key);
        self.next_key += 1;
        let seed = self.seed ^ key.index().wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let pacer = Pacer::new(Arc::clone(&self.policy), now, seed, self.deadline);
        let mut job = Job::start(Arc::clone(&self.config), key, resource, job, step, pacer)
            .with_pages(self.pages);
        if create_only {
            job = job.until_created();
        }
        self.queued.push_back(job);
        self.start_queued();
        key
    }

    /// Moves waiting jobs into the running ones while there is room. A job that starts
    /// late is due at once, but no earlier than a pause in force.
    fn start_queued(&mut self) {
        while self.active.len() < self.max_in_progress {
            let Some(mut job) = self.queued.pop_front() else {
                return;
            };
            job.hold_until(self.paused_until);
            let key = job.key();
            self.active.insert(key, Box::new(job));
            self.settle(key);
        }
    }

    /// After a job moved: take its events, then move its next wake-up or let it go.
    fn settle(&mut self, key: JobKey) {
        let Some(job) = self.active.get_mut(&key) else {
            return;
        };
        self.events
            .extend(job.take_events().into_iter().map(|event| (key, event)));
        if job.outcome().is_some() {
            self.active.remove(&key);
            self.schedule(key, None);
            self.start_queued();
        } else {
            let wake = job.poll_timeout();
            self.schedule(key, wake);
        }
    }

    /// Moves `key`'s entry in `due` to `wake` (or takes it out), so that each running job
    /// has exactly one. Every change to a job is followed by a `settle`, so `due` always
    /// holds each job's own `poll_timeout`.
    fn schedule(&mut self, key: JobKey, wake: Option<SystemTime>) {
        let old = match wake {
            Some(at) => self.wakes.insert(key, at),
            None => self.wakes.remove(&key),
        };
        if old == wake {
            return;
        }
        if let Some(old) = old {
            self.due.remove(&(old, key));
        }
        if let Some(at) = wake {
            self.due.insert((at, key));
        }
    }

    /// Holds every job until `at`: each job's floor rises, so a pause past the deadline
    /// ends the jobs it holds at once instead of sleeping past the deadline.
    fn pause(&mut self, at: SystemTime) {
        if at <= self.paused_until {
            return;
        }
        self.paused_until = at;
        let mut keys: Vec<JobKey> = self.active.keys().copied().collect();
        keys.sort_unstable();
        for key in keys {
            if let Some(job) = self.active.get_mut(&key) {
                job.hold_until(at);
                self.settle(key);
            }
        }
    }

    /// The job due first, if it is due at `now` and no pause holds.
    fn next_due(&self, now: SystemTime) -> Option<JobKey> {
        let &(at, key) = self.due.first()?;
        let in_flight = self.active.get(&key).is_some_and(|job| job.in_flight());
        // A request out is looked at only at its deadline, pause or not.
        let held = !in_flight && self.paused_until > now;
        (at <= now && !held).then_some(key)
    }
}

impl<T> fmt::Debug for JobSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobSet")
            .field("active", &self.active.len())
            .field("queued", &self.queued.len())
            .field("max_in_progress", &self.max_in_progress)
            .field("paused_until", &self.paused_until)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ApiKey, JobId, Resource};

    fn config() -> Config {
        Config::new(ApiKey::new("k").expect("a valid key"))
    }

    /// `due` holds one entry per running job, whatever the answers: an answer to a request
    /// out used to leave that request's deadline entry behind, one per request, until the
    /// deadline (the simulated hour's memory grew with its 1.9 million requests).
    #[test]
    fn due_holds_one_entry_per_running_job() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let policy = Policy::default().with_timeout(Duration::from_secs(3600));
        let mut set: JobSet = JobSet::new(config(), policy, t0, 1);
        for i in 0..50 {
            let id = JobId::new(format!("job-{i}")).expect("a valid id");
            set.add_job(JobRef::new(Resource::Events, id), t0);
        }
        let running = Response::new(&br#"{"job":{"id":"x","status":"PROCESSING"}}"#[..]);
        let done = Response::new(&br#"{"imports":1,"job":{"id":"x","status":"COMPLETED"}}"#[..]);
        let (mut now, mut answers) = (t0, 0u32);
        while !set.is_empty() {
            while let Some(t) = set.poll_transmit(now) {
                assert_eq!(set.due.len(), set.active.len());
                answers += 1;
                let answer = if answers > 500 { &done } else { &running };
                set.handle_response(t.id, answer, now);
                assert_eq!(set.due.len(), set.active.len());
                assert_eq!(set.wakes.len(), set.active.len());
            }
            while set.poll_event().is_some() {}
            match set.poll_timeout() {
                Some(wake) => now = now.max(wake),
                None => break,
            }
        }
        assert!(set.is_empty() && set.due.is_empty() && set.wakes.is_empty());
    }
}
