//! One job, start to end: an optional create, the wait, optional page reads. The one state
//! machine every driver runs (a [`crate::JobSet`] runs many of them).

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::batch::{
    BatchItem, EventRequest, FailedItem, PageAnswer, PageKind, RawItem, ValidationError,
};
use crate::config::{CallKind, Config, JobId, JobRef, Resource};
use crate::error::{ApiError, Error, Malformed, TransportError};
use crate::input::Batch;
use crate::model::{JobMetadata, JobState, JobStatusResponse};
use crate::pacing::{Pacer, Policy, Step as PacerStep, Stop};

/// A job inside a machine: its place in the order jobs were added, from 0 (for an import,
/// the batch's index). Never reused within one [`crate::JobSet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct JobKey(u64);

impl JobKey {
    pub(crate) fn new(index: u64) -> Self {
        Self(index)
    }

    /// The order in which the job was added, from 0.
    pub fn index(self) -> u64 {
        self.0
    }
}

/// Names one request a machine sent, so that its answer finds its way back. An answer to a
/// request the machine no longer waits for (a stale id) is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RequestId {
    job: JobKey,
    seq: u32,
}

impl RequestId {
    /// The job that sent it.
    pub fn job(self) -> JobKey {
        self.job
    }
}

/// A request to send now: send it, then hand back its answer with
/// `handle_response(id, …)`, or `handle_send_failed(id, …)` if none came.
#[derive(Debug)]
#[must_use]
pub struct Transmit {
    /// Which request this is.
    pub id: RequestId,
    /// The request, ready to go. A create's body shares the batch's bytes (cloning a
    /// [`Bytes`] copies nothing): hand it to hyper as it is, or send `&request.body()[..]`.
    pub request: Request<Bytes>,
    /// Abandon it at this instant and report a [`crate::TransportKind::Timeout`]: past it
    /// the machine stops waiting anyway.
    pub deadline: Option<SystemTime>,
    /// The stage the request serves, for logs.
    pub stage: Stage,
    /// The job's requests so far, this one included, for logs.
    pub attempt: u32,
    /// Read at most this many bytes of the answer's body: the limit of this kind of call
    /// ([`crate::BodyLimits`]). A 2xx over it is refused; an error status is cut at it.
    pub body_limit: usize,
}

/// Which pages a job reads once it has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Pages {
    /// None: the counts in the final status are the result.
    #[default]
    None,
    /// The imported items only.
    Imports,
    /// The failures only (a COMPLETED job has none to read).
    Errors,
    /// The imported items, then the failures of a FAILED job.
    All,
}

impl Pages {
    fn first(self, failed: bool) -> Option<PageKind> {
        match self {
            Self::Imports | Self::All => Some(PageKind::Imports),
            Self::Errors if failed => Some(PageKind::Errors),
            Self::Errors | Self::None => None,
        }
    }

    fn after_imports(self, failed: bool) -> Option<PageKind> {
        (self == Self::All && failed).then_some(PageKind::Errors)
    }
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Stage {
    /// Creating the job.
    Create,
    /// Waiting for the job to end.
    Wait,
    /// Reading the imported items.
    Imports,
    /// Reading the failures.
    Errors,
    /// Finished.
    Done,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Create => "create",
            Self::Wait => "wait",
            Self::Imports => "imports",
            Self::Errors => "errors",
            Self::Done => "done",
        })
    }
}

/// How a job ended: it finished, or it stopped at a stage, and why.
#[derive(Debug, Clone)]
#[must_use]
pub enum Outcome {
    /// The job ended, COMPLETED or FAILED (a failed job may still have imported items),
    /// and every page asked for was read. A create-only machine ([`Job::create_only`],
    /// [`crate::JobSet::add_create_only`]) finishes when its create is answered: the
    /// status is then the job as the create returned it (not ended, no counts).
    Finished(JobStatusResponse),
    /// The machine stopped before that.
    Stopped(Stopped),
}

impl Outcome {
    /// The final status, once the job finished.
    pub fn status(&self) -> Option<&JobStatusResponse> {
        match self {
            Self::Finished(status) => Some(status),
            Self::Stopped(_) => None,
        }
    }

    /// `true` when the job finished COMPLETED.
    pub fn is_completed(&self) -> bool {
        self.status()
            .is_some_and(|s| s.job.status == JobState::Completed)
    }

    /// The final status, or why there is none, for `?`.
    ///
    /// # Errors
    /// The [`Stopped`] that says where and why the machine stopped.
    // The error is the rare path: boxing it would cost every caller a deref for nothing.
    #[allow(clippy::result_large_err)]
    pub fn into_result(self) -> Result<JobStatusResponse, Stopped> {
        match self {
            Self::Finished(status) => Ok(status),
            Self::Stopped(stopped) => Err(stopped),
        }
    }
}

/// Where a job stopped before it finished, and why. An error, so `?` carries it.
#[derive(Debug, Clone)]
pub struct Stopped {
    /// The job, once it exists.
    pub job: Option<JobRef>,
    /// The stage it stopped in.
    pub stage: Stage,
    /// Why.
    pub reason: StopReason,
    /// The last status seen, if any.
    pub last_status: Option<JobStatusResponse>,
}

/// Why a job stopped.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum StopReason {
    /// An error another try cannot fix, such as 401 or 404.
    GaveUp(Error),
    /// Too many errors in a row (or no connection at all from the start); the last one.
    TooManyErrors(Error),
    /// The deadline came (or a `Retry-After` reached past it) first.
    DeadlineExceeded,
    /// An item of the input broke a limit of the API: this batch and the rest of the input
    /// were never sent ([`crate::JobSet::reject_input`]).
    InvalidInput(ValidationError),
}

impl StopReason {
    /// The error behind the stop, if one is.
    pub fn error(&self) -> Option<&Error> {
        match self {
            Self::GaveUp(e) | Self::TooManyErrors(e) => Some(e),
            Self::DeadlineExceeded | Self::InvalidInput(_) => None,
        }
    }

    /// A short lower-case name, stable for scripts.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::GaveUp(e) => e.kind(),
            Self::TooManyErrors(_) => "too_many_errors",
            Self::DeadlineExceeded => "deadline_exceeded",
            Self::InvalidInput(_) => "invalid_input",
        }
    }
}

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let doing = match self.stage {
            Stage::Create => "creating the job",
            Stage::Wait => "waiting for the job",
            Stage::Imports => "reading imported items",
            Stage::Errors => "reading failed items",
            Stage::Done => "finishing",
        };
        match &self.reason {
            StopReason::GaveUp(_) => write!(f, "stopped {doing}")?,
            StopReason::TooManyErrors(_) => write!(f, "too many errors in a row {doing}")?,
            StopReason::DeadlineExceeded => write!(f, "deadline passed {doing}")?,
            StopReason::InvalidInput(_) => write!(f, "input refused before {doing}")?,
        }
        if let Some(job) = &self.job {
            write!(f, " ({job})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Stopped {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.reason {
            StopReason::InvalidInput(e) => Some(e),
            other => other
                .error()
                .map(|e| e as &(dyn std::error::Error + 'static)),
        }
    }
}

/// Where a job stands, for whoever shows progress.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Progress {
    /// The stage.
    pub stage: Stage,
    /// The job, once it exists.
    pub job: Option<JobRef>,
    /// The last status seen, if any.
    pub last_status: Option<JobStatusResponse>,
    /// The error of the last request, if it failed; cleared by the next answer.
    pub last_error: Option<Error>,
    /// Requests sent so far.
    pub attempts: u32,
    /// Errors since the last answer.
    pub errors_in_row: u32,
    /// When the next request is due, while waiting for it.
    pub next_request: Option<SystemTime>,
    /// The overall deadline, if any.
    pub deadline: Option<SystemTime>,
}

impl Default for Progress {
    /// Nothing known yet: a wait that has not sent its first request.
    fn default() -> Self {
        Self {
            stage: Stage::Wait,
            job: None,
            last_status: None,
            last_error: None,
            attempts: 0,
            errors_in_row: 0,
            next_request: None,
            deadline: None,
        }
    }
}

/// What a machine reports, in order: `Created`, `Progress` after each answer (or failure)
/// that did not end the job, pages of `Imported` then `Failed` items, `Done` last.
#[derive(Debug, Clone)]
#[must_use]
#[non_exhaustive]
pub enum Event<T = EventRequest> {
    /// The create call was answered: the job exists. Keep it to resume later.
    Created(JobRef),
    /// A request was answered, or failed, and the job goes on.
    Progress(Progress),
    /// A page of imported items.
    Imported(Vec<T>),
    /// A page of items that failed, with the server's reasons.
    Failed(Vec<FailedItem<T>>),
    /// Items of an imports page that did not fit `T`, kept as sent with what did not fit
    /// (a failure whose item does not fit comes in `Failed`, with the item raw inside).
    Unread(Vec<RawItem>),
    /// The job is over; nothing follows for it.
    Done(Outcome),
}

/// What a job does next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Step {
    Create(Batch),
    Wait {
        since: SystemTime,
    },
    Pages {
        kind: PageKind,
        token: Option<String>,
        seen: HashSet<String>,
    },
    Done(Stage),
}

/// A job's whole state, for saving (serde) and [`Job::restore`]. It holds no key: the
/// [`Config`] is given again on restore.
///
/// Instants are wall-clock times, so a process that restarts resumes with the same
/// schedule: the next request stays due when it was, and a `Retry-After` still holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedJob {
    key: JobKey,
    resource: Resource,
    job: Option<JobRef>,
    step: Step,
    pages: Pages,
    include_schema: bool,
    pacer: Pacer,
    status: Option<Box<JobStatusResponse>>,
    seq: u32,
    /// The machine ends once the job is created (states saved before it existed had none).
    #[serde(default)]
    create_only: bool,
    /// The policy the job follows, saved by [`Job::save`]. `None` in a job at work (its
    /// pacer holds it), in a job saved within a [`crate::SavedJobSet`] (the set saves it
    /// once for all), and in states saved before it was here (their pacer held it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    policy: Option<Arc<Policy>>,
}

impl SavedJob {
    pub(crate) fn key(&self) -> JobKey {
        self.key
    }

    /// The same state, to follow `policy` once restored (a set's jobs follow the set's).
    pub(crate) fn under(mut self, policy: &Arc<Policy>) -> Self {
        self.policy = Some(Arc::clone(policy));
        self
    }
}

/// A saved state that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RestoreError {
    /// The state was saved after the job ended; there is nothing to resume.
    Finished,
    /// The state contradicts itself (a job waited on without an id, two jobs of a set under
    /// one key), so no save made it: it was damaged or edited.
    Inconsistent(&'static str),
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Finished => f.write_str("saved state is of a job that already ended"),
            Self::Inconsistent(what) => write!(f, "saved state is damaged: {what}"),
        }
    }
}

impl std::error::Error for RestoreError {}

/// One job as a state machine with no clock and no I/O: an optional create, the wait, and
/// the pages asked for.
///
/// The loop a driver runs (the same for a [`crate::JobSet`]):
/// 1. Take every event from [`Job::poll_event`] and act on it (show, store, stop on `Done`).
/// 2. Send every request [`Job::poll_transmit`] gives (a job has at most one out), each cut
///    off at its [`Transmit::deadline`].
/// 3. Sleep until [`Job::poll_timeout`] or until an answer arrives, whichever is first.
/// 4. Hand each answer to [`Job::handle_response`], or the failure to get one to
///    [`Job::handle_send_failed`], with its id and the time. Go to 1.
///
/// ```text
///   create ──► wait ──► imports ──► errors ──► done(Finished)
///      │         │         │           │
///      └─────────┴─────────┴───────────┴──► done(Stopped { stage, reason })
/// ```
///
/// Here with canned answers and a fake clock that jumps to each wake-up:
/// ```
/// use std::time::{Duration, SystemTime};
/// use fullstory_batch::{ApiKey, Config, Event, Job, JobId, JobRef, Outcome, Policy, Resource};
///
/// let config = Config::new(ApiKey::new("my-api-key")?);
/// let job = JobRef::new(Resource::Events, JobId::new("abd123=")?);
/// let mut now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// let mut machine: Job = Job::wait(config, job, Policy::default(), now, 42);
/// let mut answers = vec![
///     (200, r#"{"job":{"id":"abd123=","status":"PROCESSING"}}"#),
///     (503, r#"{"message":"try later","code":"server_error"}"#),
///     (200, r#"{"imports":1000,"job":{"id":"abd123=","status":"COMPLETED"}}"#),
/// ]
/// .into_iter();
/// let outcome = 'run: loop {
///     while let Some(event) = machine.poll_event() {
///         if let Event::Done(outcome) = event {
///             break 'run outcome;
///         }
///     }
///     if let Some(transmit) = machine.poll_transmit(now) {
///         let (status, body) = answers.next().expect("the job ends at COMPLETED");
///         let response = http::Response::builder().status(status).body(body)?;
///         machine.handle_response(transmit.id, &response, now);
///     } else if let Some(wake) = machine.poll_timeout() {
///         now = wake; // a real driver sleeps here
///     }
/// };
/// assert_eq!(outcome.into_result()?.imports, 1000);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Job<T = EventRequest> {
    config: Arc<Config>,
    state: SavedJob,
    last_error: Option<Box<Error>>,
    events: VecDeque<Event<T>>,
    outcome: Option<Box<Outcome>>,
}

impl<T: BatchItem> Job<T> {
    /// Waits for an existing job, then reads no pages (see [`Job::with_pages`]). The first
    /// request goes at once. `seed` drives the jitter: the same seed and the same answers
    /// give the same schedule.
    pub fn wait(
        config: impl Into<Arc<Config>>,
        job: JobRef,
        policy: impl Into<Arc<Policy>>,
        now: SystemTime,
        seed: u64,
    ) -> Self {
        let policy = policy.into();
        let deadline = policy.deadline_from(now);
        Self::start(
            config.into(),
            JobKey::new(0),
            job.resource,
            Some(job),
            Step::Wait { since: now },
            Pacer::new(policy, now, seed, deadline),
        )
    }

    /// Creates a job for `batch`, waits for it, then reads every imported item and every
    /// failure (see [`Job::with_pages`]). The create goes at once, with the batch's
    /// idempotency key on every try.
    pub fn create(
        config: impl Into<Arc<Config>>,
        batch: Batch,
        policy: impl Into<Arc<Policy>>,
        now: SystemTime,
        seed: u64,
    ) -> Self {
        let policy = policy.into();
        let deadline = policy.deadline_from(now);
        Self::start(
            config.into(),
            JobKey::new(0),
            batch.resource(),
            None,
            Step::Create(batch),
            Pacer::new(policy, now, seed, deadline),
        )
        .with_pages(Pages::All)
    }

    /// Creates a job for `batch` and ends there: `Created`, then `Done(Finished)` with the
    /// job as the create returned it (see [`Outcome::Finished`]), or `Done(Stopped)` at
    /// [`Stage::Create`] when the create never succeeded. The create goes at once and is
    /// retried as the policy says, with the batch's idempotency key on every try, so a
    /// retry never makes a second job. Nothing is waited for or read.
    pub fn create_only(
        config: impl Into<Arc<Config>>,
        batch: Batch,
        policy: impl Into<Arc<Policy>>,
        now: SystemTime,
        seed: u64,
    ) -> Self {
        let policy = policy.into();
        let deadline = policy.deadline_from(now);
        Self::start(
            config.into(),
            JobKey::new(0),
            batch.resource(),
            None,
            Step::Create(batch),
            Pacer::new(policy, now, seed, deadline),
        )
        .until_created()
    }

    pub(crate) fn start(
        config: Arc<Config>,
        key: JobKey,
        resource: Resource,
        job: Option<JobRef>,
        step: Step,
        pacer: Pacer,
    ) -> Self {
        let state = SavedJob {
            key,
            resource,
            job,
            step,
            pages: Pages::None,
            include_schema: false,
            pacer,
            status: None,
            seq: 0,
            create_only: false,
            policy: None,
        };
        Self::from_state(config, state)
    }

    fn from_state(config: Arc<Config>, state: SavedJob) -> Self {
        Self {
            config,
            state,
            last_error: None,
            events: VecDeque::new(),
            outcome: None,
        }
    }

    /// Reads these pages once the job has ended.
    #[must_use]
    pub fn with_pages(mut self, pages: Pages) -> Self {
        self.state.pages = pages;
        self
    }

    /// Ends the machine once its create is answered (for a job that has one to make).
    pub(crate) fn until_created(mut self) -> Self {
        self.state.create_only = true;
        self
    }

    /// Asks for `include_schema=true` on import pages.
    #[must_use]
    pub fn with_schema(mut self) -> Self {
        self.state.include_schema = true;
        self
    }

    /// Resumes from a saved state with `config` (which holds the key). A request that was
    /// out when the state was saved counts as lost and goes again when due; a create goes
    /// again with the same idempotency key, so it never makes a second job.
    ///
    /// # Errors
    /// [`RestoreError::Finished`] when the job had already ended;
    /// [`RestoreError::Inconsistent`] for a state no save makes: past its create with no
    /// job id, or reading pages with no final status.
    pub fn restore(
        config: impl Into<Arc<Config>>,
        mut state: SavedJob,
    ) -> Result<Self, RestoreError> {
        if matches!(state.step, Step::Done(_)) || !state.pacer.resume() {
            return Err(RestoreError::Finished);
        }
        let past_create = !matches!(state.step, Step::Create(_));
        if past_create && state.job.is_none() {
            return Err(RestoreError::Inconsistent(
                "a job past its create has no id",
            ));
        }
        if matches!(state.step, Step::Pages { .. }) && state.status.is_none() {
            return Err(RestoreError::Inconsistent(
                "a job reading pages has no final status",
            ));
        }
        if let Some(policy) = state.policy.take() {
            state.pacer.set_policy(policy);
        }
        Ok(Self::from_state(config.into(), state))
    }

    /// The whole state, to save and later [`Job::restore`].
    pub fn save(&self) -> SavedJob {
        SavedJob {
            policy: Some(Arc::clone(self.state.pacer.policy())),
            ..self.state.clone()
        }
    }

    /// The whole state but the policy, which the set saves once for all its jobs.
    pub(crate) fn save_in_set(&self) -> SavedJob {
        self.state.clone()
    }

    /// The next request to send at `now`, if one is due. Also where time moves the job on:
    /// past the deadline it stops (and says so in [`Job::poll_event`]).
    pub fn poll_transmit(&mut self, now: SystemTime) -> Option<Transmit> {
        if self.outcome.is_some() {
            return None;
        }
        match self.state.pacer.poll(now) {
            PacerStep::Send => {
                self.state.seq = self.state.seq.wrapping_add(1);
                Some(Transmit {
                    id: self.current_id(),
                    request: self.request(),
                    deadline: self.state.pacer.deadline(),
                    stage: self.stage(),
                    attempt: self.state.pacer.attempts(),
                    body_limit: self.config.body_limit_of(self.call_kind()),
                })
            }
            PacerStep::Hold => None,
            PacerStep::DeadlinePassed => {
                self.stop(StopReason::DeadlineExceeded);
                None
            }
        }
    }

    /// When to call [`Job::poll_transmit`] again if no answer comes first: the next
    /// request's time, or the deadline of the one out. `None` once the job is over.
    pub fn poll_timeout(&self) -> Option<SystemTime> {
        if self.outcome.is_some() {
            return None;
        }
        self.state.pacer.next_wake()
    }

    /// The next thing that happened, oldest first.
    pub fn poll_event(&mut self) -> Option<Event<T>> {
        self.events.pop_front()
    }

    /// Hands back the answer to request `id`. The core parses it: an error status, a body
    /// that is not what the call promises, a 202 page, or the answer itself.
    pub fn handle_response<B: AsRef<[u8]>>(
        &mut self,
        id: RequestId,
        response: &Response<B>,
        now: SystemTime,
    ) {
        if !self.expects(id) {
            return;
        }
        match &self.state.step {
            Step::Create(_) => match self.config.parse_create(response) {
                Ok(metadata) => self.created(metadata, response, now),
                Err(e) => self.failed(Error::Api(e), now),
            },
            Step::Wait { .. } => match self.config.parse_status(response) {
                Ok(status) => self.on_status(status, now),
                Err(e) => self.failed(Error::Api(e), now),
            },
            Step::Pages { .. } => self.page(response, now),
            Step::Done(_) => {}
        }
    }

    /// Hands back that request `id` got no answer (refused, reset, timed out, ...).
    pub fn handle_send_failed(&mut self, id: RequestId, error: TransportError, now: SystemTime) {
        if self.expects(id) {
            self.failed(Error::Transport(error), now);
        }
    }

    /// The stage the job is in.
    pub fn stage(&self) -> Stage {
        match &self.state.step {
            Step::Create(_) => Stage::Create,
            Step::Wait { .. } => Stage::Wait,
            Step::Pages {
                kind: PageKind::Imports,
                ..
            } => Stage::Imports,
            Step::Pages {
                kind: PageKind::Errors,
                ..
            } => Stage::Errors,
            Step::Done(stage) => *stage,
        }
    }

    /// Where the job stands.
    pub fn progress(&self) -> Progress {
        let pacer = &self.state.pacer;
        Progress {
            stage: self.stage(),
            job: self.state.job.clone(),
            last_status: self.state.status.as_deref().cloned(),
            last_error: self.last_error.as_deref().cloned(),
            attempts: pacer.attempts(),
            errors_in_row: pacer.errors_in_row(),
            next_request: pacer.next_due(),
            deadline: pacer.deadline(),
        }
    }

    /// The job, once it exists.
    pub fn job(&self) -> Option<&JobRef> {
        self.state.job.as_ref()
    }

    /// How the job ended, once it has.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_deref()
    }

    /// The batch still to be created, while it is.
    pub fn batch(&self) -> Option<&Batch> {
        match &self.state.step {
            Step::Create(batch) => Some(batch),
            _ => None,
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        self.state.pacer.policy()
    }

    pub(crate) fn key(&self) -> JobKey {
        self.state.key
    }

    /// Every event not yet taken, leaving the job's queue without an allocation: a set
    /// holds thousands of jobs, and a queue kept drained but allocated costs each of them
    /// room for four events (over a kilobyte) while it waits.
    pub(crate) fn take_events(&mut self) -> VecDeque<Event<T>> {
        std::mem::take(&mut self.events)
    }

    /// `true` while a request is out.
    pub(crate) fn in_flight(&self) -> bool {
        self.state.pacer.in_flight()
    }

    /// The `Retry-After` floor under the job's next request.
    pub(crate) fn not_before(&self) -> SystemTime {
        self.state.pacer.not_before()
    }

    /// Raises the floor under the next request (an organisation-wide pause). A job that
    /// could then send nothing before the deadline ends at once, as after its own
    /// `Retry-After`; one with a request out waits for that answer.
    pub(crate) fn hold_until(&mut self, at: SystemTime) {
        self.state.pacer.hold_until(at);
        let past = self.state.pacer.deadline().is_some_and(|d| at > d);
        if past && !self.in_flight() {
            self.abort(StopReason::DeadlineExceeded);
        }
    }

    /// The outcome of a batch refused before it was made: stopped at create.
    pub(crate) fn refused(error: ValidationError) -> Outcome {
        Outcome::Stopped(Stopped {
            job: None,
            stage: Stage::Create,
            reason: StopReason::InvalidInput(error),
            last_status: None,
        })
    }

    /// Stops the job at once, for a reason found outside it.
    pub(crate) fn abort(&mut self, reason: StopReason) {
        if self.outcome.is_none() {
            self.stop(reason);
        }
    }

    /// The kind of call the next request makes, for its body limit.
    fn call_kind(&self) -> CallKind {
        match self.stage() {
            Stage::Create => CallKind::Create,
            Stage::Imports | Stage::Errors => CallKind::Page,
            Stage::Wait | Stage::Done => CallKind::Status,
        }
    }

    fn current_id(&self) -> RequestId {
        RequestId {
            job: self.state.key,
            seq: self.state.seq,
        }
    }

    pub(crate) fn expects(&self, id: RequestId) -> bool {
        self.outcome.is_none() && self.state.pacer.in_flight() && id == self.current_id()
    }

    fn request(&self) -> Request<Bytes> {
        let config = &self.config;
        match &self.state.step {
            Step::Create(batch) => {
                config.create_request_with_body(batch.resource(), batch.body().clone(), batch.key())
            }
            Step::Wait { .. } => config.status_request(self.known_job()),
            Step::Pages { kind, token, .. } => config.page_request(
                self.known_job(),
                *kind,
                token.as_deref(),
                self.state.include_schema,
            ),
            Step::Done(_) => unreachable!("a finished job sends nothing: poll_transmit checks"),
        }
    }

    fn known_job(&self) -> &JobRef {
        self.state
            .job
            .as_ref()
            .expect("only a create is sent before the job is known")
    }

    fn created<B: AsRef<[u8]>>(
        &mut self,
        metadata: JobMetadata,
        response: &Response<B>,
        now: SystemTime,
    ) {
        let Ok(id) = JobId::new(metadata.id.as_str()) else {
            let malformed = Malformed::contract(
                response.status(),
                response.body().as_ref(),
                "the created job has no usable id",
            );
            return self.stop(StopReason::GaveUp(Error::Api(ApiError::Malformed(
                malformed,
            ))));
        };
        let job = JobRef::new(self.state.resource, id);
        self.answered();
        self.state.job = Some(job.clone());
        self.events.push_back(Event::Created(job));
        if self.state.create_only {
            // All that was asked for is done: the status is the job as created.
            self.state.status = Some(Box::new(JobStatusResponse {
                imports: 0,
                errors: 0,
                job: metadata,
                extra: crate::batch::Object::new(),
            }));
            return self.finish();
        }
        // The batch's bytes go here: a created job never needs them again.
        self.state.step = Step::Wait { since: now };
        self.schedule_poll(now, now);
    }

    fn on_status(&mut self, status: JobStatusResponse, now: SystemTime) {
        self.answered();
        let Step::Wait { since } = self.state.step else {
            return;
        };
        let failed = status.job.status == JobState::Failed;
        let terminal = status.is_terminal();
        self.state.status = Some(Box::new(status));
        if !terminal {
            self.schedule_poll(since, now);
            return self.report_progress();
        }
        match self.state.pages.first(failed) {
            Some(kind) => self.read_pages(kind, now),
            None => self.finish(),
        }
    }

    fn schedule_poll(&mut self, since: SystemTime, now: SystemTime) {
        if self.state.pacer.poll_again(since, now).is_err() {
            self.stop(StopReason::DeadlineExceeded);
        }
    }

    fn read_pages(&mut self, kind: PageKind, now: SystemTime) {
        self.state.step = Step::Pages {
            kind,
            token: None,
            seen: HashSet::new(),
        };
        if self.state.pacer.next_now(now).is_err() {
            self.stop(StopReason::DeadlineExceeded);
        }
    }

    fn page<B: AsRef<[u8]>>(&mut self, response: &Response<B>, now: SystemTime) {
        let Step::Pages { kind, .. } = self.state.step else {
            return;
        };
        let next = match kind {
            PageKind::Imports => self.config.parse_page::<T, B>(response).map(|answer| {
                answer.map(|page| {
                    self.events.push_back(Event::Imported(page.results));
                    if !page.unread.is_empty() {
                        self.events.push_back(Event::Unread(page.unread));
                    }
                    page.next_page_token
                })
            }),
            PageKind::Errors => {
                self.config
                    .parse_page::<FailedItem<T>, B>(response)
                    .map(|answer| {
                        answer.map(|page| {
                            self.events.push_back(Event::Failed(page.results));
                            page.next_page_token
                        })
                    })
            }
        };
        match next {
            Err(e) => self.failed(Error::Api(e), now),
            // 202: still processing; ask again after the shortest poll wait.
            Ok(None) => {
                self.answered();
                self.schedule_poll(now, now);
                self.report_progress();
            }
            Ok(Some(token)) => {
                self.answered();
                self.turn_page(kind, token, response, now);
            }
        }
    }

    fn turn_page<B: AsRef<[u8]>>(
        &mut self,
        kind: PageKind,
        next: Option<String>,
        response: &Response<B>,
        now: SystemTime,
    ) {
        let Some(next) = next else {
            let failed = self.final_status_failed();
            return match self.state.pages.after_imports(failed) {
                Some(PageKind::Errors) if kind == PageKind::Imports => {
                    self.read_pages(PageKind::Errors, now);
                }
                _ => self.finish(),
            };
        };
        let Step::Pages { token, seen, .. } = &mut self.state.step else {
            return;
        };
        if !seen.insert(next.clone()) {
            let body = response.body().as_ref();
            let malformed = Malformed::contract(response.status(), body, "a page token repeated");
            return self.stop(StopReason::GaveUp(Error::Api(ApiError::Malformed(
                malformed,
            ))));
        }
        *token = Some(next);
        if self.state.pacer.next_now(now).is_err() {
            self.stop(StopReason::DeadlineExceeded);
        }
    }

    fn final_status_failed(&self) -> bool {
        self.state
            .status
            .as_ref()
            .is_some_and(|s| s.job.status == JobState::Failed)
    }

    fn answered(&mut self) {
        self.state.pacer.succeeded();
        self.last_error = None;
    }

    fn failed(&mut self, error: Error, now: SystemTime) {
        self.last_error = Some(Box::new(error.clone()));
        match self.state.pacer.failed(error, now) {
            Ok(()) => self.report_progress(),
            Err(Stop::GaveUp(e)) => self.stop(StopReason::GaveUp(e)),
            Err(Stop::TooManyErrors(e)) => self.stop(StopReason::TooManyErrors(e)),
            Err(Stop::DeadlinePassed) => self.stop(StopReason::DeadlineExceeded),
        }
    }

    fn report_progress(&mut self) {
        if self.outcome.is_some() {
            return; // rescheduling ended the job: `Done` is the last event
        }
        let progress = self.progress();
        self.events.push_back(Event::Progress(progress));
    }

    fn finish(&mut self) {
        let status = self
            .state
            .status
            .as_deref()
            .cloned()
            .expect("a job finishes only after a final status");
        self.end(Outcome::Finished(status), Stage::Done);
    }

    fn stop(&mut self, reason: StopReason) {
        let stage = self.stage();
        let stopped = Stopped {
            job: self.state.job.clone(),
            stage,
            reason,
            last_status: self.state.status.as_deref().cloned(),
        };
        self.end(Outcome::Stopped(stopped), stage);
    }

    fn end(&mut self, outcome: Outcome, stage: Stage) {
        self.state.pacer.finish();
        self.state.step = Step::Done(stage);
        self.events.push_back(Event::Done(outcome.clone()));
        self.outcome = Some(Box::new(outcome));
    }
}

impl<T> fmt::Debug for Job<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("key", &self.state.key)
            .field("job", &self.state.job)
            .field("step", &self.state.step)
            .field("done", &self.outcome.is_some())
            .finish_non_exhaustive()
    }
}

impl<T> PageAnswer<T> {
    /// The page's own content mapped, or `None` for a 202.
    fn map<U>(self, f: impl FnOnce(crate::batch::Page<T>) -> U) -> Option<U> {
        match self {
            Self::Ready(page) => Some(f(page)),
            Self::NotReady => None,
        }
    }
}

/// `true` for the status that pauses every job of an organisation.
pub(crate) fn is_rate_limited(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-job state stays small: thousands of jobs wait at once.
    #[test]
    fn a_waiting_job_is_small() {
        let size = size_of::<Job<EventRequest>>();
        assert!(size <= 400, "{size} bytes");
    }
}
