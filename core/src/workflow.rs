//! The whole import: create a job, wait for it, read every imported item and every failure.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use http::{Request, Response};

use crate::batch::{
    BatchItem, FailedItem, IdempotencyKey, PageAnswer, PageKind, ValidationError, create_body,
};
use crate::config::{Config, JobId, JobRef};
use crate::error::{ApiError, Error, Malformed, TransportError};
use crate::model::{JobMetadata, JobState, JobStatusResponse};
use crate::pacer::{Pacer, Step as PacerStep, Stop};
use crate::poller::{Action, Outcome, Policy, Poller, Progress, ProgressSnapshot};
use crate::time_math::later;

/// Where an import is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Creating the job.
    Create,
    /// Waiting for the job to end.
    Wait,
    /// Reading the imported items.
    Imports,
    /// Reading the failures.
    Errors,
    /// Finished: the job ended and every page was read.
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

/// What came of an import.
#[derive(Debug, Clone)]
#[must_use]
pub enum ImportOutcome {
    /// The job ended, COMPLETED or FAILED, and every page was read.
    Finished(JobStatusResponse),
    /// The import stopped before that.
    Stopped {
        /// The job, if it was created.
        job: Option<JobMetadata>,
        /// The stage it stopped in.
        stage: Stage,
        /// Why: gave up, too many errors, or the deadline.
        why: Outcome,
    },
}

/// What an adapter's importer yields, in order: `Created`, `Progress` while the job runs,
/// pages of `Imported` then `Failed` items, and `Done` last.
#[derive(Debug, Clone)]
#[must_use]
pub enum ImportEvent<T> {
    /// The job exists (created now, or found on resume): keep its id to resume later.
    Created(JobMetadata),
    /// A status poll was answered (or failed) and the job is still running.
    Progress(ProgressSnapshot),
    /// A page of imported items.
    Imported(Vec<T>),
    /// A page of items that failed, with the server's reasons.
    Failed(Vec<FailedItem<T>>),
    /// The import is over; nothing follows.
    Done(ImportOutcome),
}

impl<T> ImportEvent<T> {
    /// The event a workflow action stands for; `None` for sends and waits, which a driver
    /// acts on instead of reporting.
    pub fn from_action(action: WorkflowAction<T>) -> Option<Self> {
        match action {
            WorkflowAction::Created(job) => Some(Self::Created(job)),
            WorkflowAction::Imported(items) => Some(Self::Imported(items)),
            WorkflowAction::Failed(items) => Some(Self::Failed(items)),
            WorkflowAction::Done(outcome) => Some(Self::Done(outcome)),
            WorkflowAction::Send(_) | WorkflowAction::Wait(_) | WorkflowAction::AwaitResponse => {
                None
            }
        }
    }
}

impl<T> ImportReport<T> {
    /// Collects every event of an import into one report; `None` if the events stop before
    /// `Done`.
    pub fn collect(events: impl IntoIterator<Item = ImportEvent<T>>) -> Option<Self> {
        let (mut job, mut imported, mut failed) = (None, Vec::new(), Vec::new());
        for event in events {
            match event {
                ImportEvent::Created(created) => job = Some(created),
                ImportEvent::Progress(_) => {}
                ImportEvent::Imported(items) => imported.extend(items),
                ImportEvent::Failed(items) => failed.extend(items),
                ImportEvent::Done(outcome) => {
                    return Some(Self {
                        job,
                        outcome,
                        imported,
                        failed,
                    });
                }
            }
        }
        None
    }
}

/// Everything one import produced, held at once (adapters also stream it).
#[derive(Debug, Clone)]
pub struct ImportReport<T> {
    /// The job, once created.
    pub job: Option<JobMetadata>,
    /// How it ended.
    pub outcome: ImportOutcome,
    /// The items imported.
    pub imported: Vec<T>,
    /// The items that failed, with the server's reasons.
    pub failed: Vec<FailedItem<T>>,
}

/// What the driver of a [`Workflow`] should do next.
#[derive(Debug)]
#[must_use]
pub enum WorkflowAction<T> {
    /// Send this request, then feed back the response (or the failure to get one).
    Send(Request<Vec<u8>>),
    /// Nothing to do before this instant.
    Wait(SystemTime),
    /// A request is out; feed back its answer.
    AwaitResponse,
    /// The job was created (or, on resume, is known): keep its id to resume later.
    Created(JobMetadata),
    /// A page of imported items.
    Imported(Vec<T>),
    /// A page of failed items, with the server's reasons.
    Failed(Vec<FailedItem<T>>),
    /// Finished.
    Done(ImportOutcome),
}

enum Phase {
    Create {
        body: Vec<u8>,
    },
    Wait(Box<Poller>),
    Pages {
        kind: PageKind,
        token: Option<String>,
        seen: HashSet<String>,
    },
    Done(ImportOutcome),
}

/// An import as a state machine with no clock and no I/O: create (always with an
/// idempotency key, the same on every retry, so a retried create never imports twice), wait,
/// then read all import pages and, for a FAILED job, all error pages, since it may have
/// failed only in part. Every step paces itself by the [`Policy`] and honours `Retry-After`.
///
/// The loop is the poller's:
/// 1. Call [`Workflow::poll`] with the current time.
/// 2. On [`WorkflowAction::Send`], send the request; feed the response to
///    [`Workflow::handle_response`], or the failure to [`Workflow::handle_transport_error`].
/// 3. On [`WorkflowAction::Wait`], sleep until then. `Created`, `Imported`, `Failed`: use the
///    value (they are drained one at a time, so pages need not be held all at once).
/// 4. On [`WorkflowAction::Done`], stop.
pub struct Workflow<T> {
    config: Config,
    policy: Arc<Policy>,
    seed: u64,
    deadline: Option<SystemTime>,
    key: IdempotencyKey,
    include_schema: bool,
    only: Option<PageKind>,
    resource: crate::config::Resource,
    job: Option<JobMetadata>,
    status: Option<JobStatusResponse>,
    pacer: Pacer,
    phase: Phase,
    out: VecDeque<WorkflowAction<T>>,
}

impl<T: BatchItem> Workflow<T> {
    /// An import of `items` (1 to 50,000, checked here). `key` makes retried creates safe:
    /// pass your own to make a create safe across restarts too, or `None` for a fresh one.
    ///
    /// # Errors
    /// A [`ValidationError`] naming the item and field at fault.
    pub fn new(
        config: Config,
        items: &[T],
        key: Option<IdempotencyKey>,
        policy: impl Into<Arc<Policy>>,
        now: SystemTime,
        seed: u64,
    ) -> Result<Self, ValidationError> {
        let body = create_body(items)?;
        Ok(Self::start(
            config,
            key,
            policy.into(),
            now,
            seed,
            Phase::Create { body },
        ))
    }

    /// Picks up an import whose job already exists: waits for it, then reads its pages.
    pub fn resume(
        config: Config,
        id: JobId,
        policy: impl Into<Arc<Policy>>,
        now: SystemTime,
        seed: u64,
    ) -> Self {
        let policy = policy.into();
        let deadline = policy.timeout.map(|t| later(now, t));
        let job = JobRef::new(T::RESOURCE, id);
        let poller = Poller::with_deadline(job, Arc::clone(&policy), now, seed, deadline);
        Self::start(
            config,
            None,
            policy,
            now,
            seed,
            Phase::Wait(Box::new(poller)),
        )
    }

    fn start(
        config: Config,
        key: Option<IdempotencyKey>,
        policy: Arc<Policy>,
        now: SystemTime,
        seed: u64,
        phase: Phase,
    ) -> Self {
        let deadline = policy.timeout.map(|t| later(now, t));
        Self {
            config,
            pacer: Pacer::new(Arc::clone(&policy), now, seed, deadline),
            policy,
            seed,
            deadline,
            key: key.unwrap_or_else(IdempotencyKey::generate),
            include_schema: false,
            only: None,
            resource: T::RESOURCE,
            job: None,
            status: None,
            phase,
            out: VecDeque::new(),
        }
    }

    /// Asks for `include_schema=true` on import pages.
    #[must_use]
    pub fn with_schema(mut self) -> Self {
        self.include_schema = true;
        self
    }

    /// Reads only this kind of page once the job has ended (say, only the failures of a job
    /// resumed by id).
    #[must_use]
    pub fn with_only(mut self, kind: PageKind) -> Self {
        self.only = Some(kind);
        self
    }

    /// The idempotency key the create call carries.
    pub fn idempotency_key(&self) -> &IdempotencyKey {
        &self.key
    }

    /// The stage the import is in.
    pub fn stage(&self) -> Stage {
        match &self.phase {
            Phase::Create { .. } => Stage::Create,
            Phase::Wait(_) => Stage::Wait,
            Phase::Pages {
                kind: PageKind::Imports,
                ..
            } => Stage::Imports,
            Phase::Pages {
                kind: PageKind::Errors,
                ..
            } => Stage::Errors,
            Phase::Done(ImportOutcome::Stopped { stage, .. }) => *stage,
            Phase::Done(ImportOutcome::Finished(_)) => Stage::Done,
        }
    }

    /// The overall deadline, if the policy has a timeout. A request still out then should be
    /// abandoned and reported as a timeout.
    pub fn deadline(&self) -> Option<SystemTime> {
        self.deadline
    }

    /// The job, once created.
    pub fn job(&self) -> Option<&JobMetadata> {
        self.job.as_ref()
    }

    /// The waiting step's progress, while waiting.
    pub fn progress(&self) -> Option<Progress<'_>> {
        match &self.phase {
            Phase::Wait(poller) => Some(poller.progress()),
            _ => None,
        }
    }

    /// The next thing to do at `now`.
    pub fn poll(&mut self, now: SystemTime) -> WorkflowAction<T> {
        if let Some(event) = self.out.pop_front() {
            return event;
        }
        match &mut self.phase {
            Phase::Done(outcome) => WorkflowAction::Done(outcome.clone()),
            Phase::Wait(poller) => match poller.poll(now) {
                Action::Send { .. } => {
                    WorkflowAction::Send(self.config.status_request(poller.job()))
                }
                Action::Wait(at) => WorkflowAction::Wait(at),
                Action::AwaitResponse => WorkflowAction::AwaitResponse,
                Action::Done(outcome) => {
                    self.waited(outcome, now);
                    self.poll(now)
                }
            },
            Phase::Create { .. } | Phase::Pages { .. } => match self.pacer.poll(now) {
                PacerStep::Send => WorkflowAction::Send(self.request()),
                PacerStep::Wait(at) => WorkflowAction::Wait(at),
                PacerStep::AwaitResponse => WorkflowAction::AwaitResponse,
                PacerStep::DeadlinePassed => {
                    let last_status = self.status.clone();
                    self.stop(Outcome::DeadlineExceeded { last_status });
                    self.poll(now)
                }
            },
        }
    }

    /// Feeds back the response to the request [`WorkflowAction::Send`] asked for.
    pub fn handle_response<B: AsRef<[u8]>>(&mut self, response: &Response<B>, now: SystemTime) {
        match &mut self.phase {
            Phase::Done(_) => {}
            Phase::Wait(poller) => {
                poller.handle_response(self.config.parse_status(response), now);
                if let Some(outcome) = poller.outcome() {
                    let outcome = outcome.clone();
                    self.waited(outcome, now);
                }
            }
            Phase::Create { .. } if self.pacer.in_flight() => {
                match self.config.parse_create(response) {
                    Ok(job) => self.created(job, response, now),
                    Err(e) => self.failed(Error::Api(e), now),
                }
            }
            Phase::Pages { .. } if self.pacer.in_flight() => self.page(response, now),
            Phase::Create { .. } | Phase::Pages { .. } => {}
        }
    }

    /// Feeds back that the request got no answer.
    pub fn handle_transport_error(&mut self, error: TransportError, now: SystemTime) {
        match &mut self.phase {
            Phase::Wait(poller) => {
                poller.handle_transport_error(error, now);
                if let Some(outcome) = poller.outcome() {
                    let outcome = outcome.clone();
                    self.waited(outcome, now);
                }
            }
            Phase::Create { .. } | Phase::Pages { .. } if self.pacer.in_flight() => {
                self.failed(Error::Transport(error), now);
            }
            _ => {}
        }
    }

    /// Feeds back what a send gave: the response, or the failure to get one.
    pub fn handle_result<B: AsRef<[u8]>>(
        &mut self,
        result: Result<Response<B>, TransportError>,
        now: SystemTime,
    ) {
        match result {
            Ok(response) => self.handle_response(&response, now),
            Err(e) => self.handle_transport_error(e, now),
        }
    }

    fn request(&self) -> Request<Vec<u8>> {
        match &self.phase {
            Phase::Create { body } => {
                self.config
                    .create_request_with_body(self.resource, body.clone(), &self.key)
            }
            Phase::Pages { kind, token, .. } => {
                let job = self
                    .job_ref()
                    .expect("pages are read only once the job is known");
                self.config
                    .page_request(&job, *kind, token.as_deref(), self.include_schema)
            }
            Phase::Wait(_) | Phase::Done(_) => {
                unreachable!("only create and page steps build requests here")
            }
        }
    }

    fn job_ref(&self) -> Option<JobRef> {
        let id = JobId::new(self.job.as_ref()?.id.clone()).ok()?;
        Some(JobRef::new(self.resource, id))
    }

    fn created<B: AsRef<[u8]>>(
        &mut self,
        job: JobMetadata,
        response: &Response<B>,
        now: SystemTime,
    ) {
        let Ok(id) = JobId::new(job.id.clone()) else {
            let body = response.body().as_ref();
            let malformed =
                Malformed::contract(response.status(), body, "the created job has no usable id");
            return self.stop(Outcome::GaveUp(Error::Api(ApiError::Malformed(malformed))));
        };
        self.pacer.succeeded();
        self.job = Some(job.clone());
        self.out.push_back(WorkflowAction::Created(job));
        let seed = self.seed.wrapping_add(1);
        let poller = Poller::with_deadline(
            JobRef::new(self.resource, id),
            Arc::clone(&self.policy),
            now,
            seed,
            self.deadline,
        );
        self.phase = Phase::Wait(Box::new(poller));
    }

    /// The wait ended: read the pages, or stop.
    fn waited(&mut self, outcome: Outcome, now: SystemTime) {
        match outcome {
            Outcome::Completed(status) | Outcome::Failed(status) => {
                if self.job.is_none() {
                    self.job = Some(status.job.clone());
                    self.out
                        .push_back(WorkflowAction::Created(status.job.clone()));
                }
                self.status = Some(status);
                self.next_pages(self.only.unwrap_or(PageKind::Imports), now);
            }
            why => {
                if let (Outcome::DeadlineExceeded { last_status }, Phase::Wait(poller)) =
                    (&why, &self.phase)
                {
                    self.status = last_status
                        .clone()
                        .or_else(|| poller.progress().last_status.cloned());
                }
                self.stop(why);
            }
        }
    }

    fn next_pages(&mut self, kind: PageKind, now: SystemTime) {
        self.phase = Phase::Pages {
            kind,
            token: None,
            seen: HashSet::new(),
        };
        self.pacer.succeeded();
        if self.pacer.next_now(now).is_err() {
            let last_status = self.status.clone();
            self.stop(Outcome::DeadlineExceeded { last_status });
        }
    }

    fn page<B: AsRef<[u8]>>(&mut self, response: &Response<B>, now: SystemTime) {
        let Phase::Pages { kind, .. } = self.phase else {
            return;
        };
        let next =
            match kind {
                PageKind::Imports => {
                    self.config
                        .parse_page::<T, B>(response)
                        .map(|answer| match answer {
                            PageAnswer::Ready(page) => {
                                self.out.push_back(WorkflowAction::Imported(page.results));
                                Some(page.next_page_token)
                            }
                            PageAnswer::NotReady => None,
                        })
                }
                PageKind::Errors => self.config.parse_page::<FailedItem<T>, B>(response).map(
                    |answer| match answer {
                        PageAnswer::Ready(page) => {
                            self.out.push_back(WorkflowAction::Failed(page.results));
                            Some(page.next_page_token)
                        }
                        PageAnswer::NotReady => None,
                    },
                ),
            };
        match next {
            Err(e) => self.failed(Error::Api(e), now),
            // 202: still processing; ask again after a poll interval.
            Ok(None) => {
                self.pacer.succeeded();
                if self
                    .pacer
                    .wait_interval(self.policy.initial_interval, now)
                    .is_err()
                {
                    let last_status = self.status.clone();
                    self.stop(Outcome::DeadlineExceeded { last_status });
                }
            }
            Ok(Some(token)) => self.turn_page(kind, token, response, now),
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
            return self.pages_done(kind, now);
        };
        let Phase::Pages { token, seen, .. } = &mut self.phase else {
            return;
        };
        if !seen.insert(next.clone()) {
            let body = response.body().as_ref();
            let malformed = Malformed::contract(response.status(), body, "a page token repeated");
            return self.stop(Outcome::GaveUp(Error::Api(ApiError::Malformed(malformed))));
        }
        *token = Some(next);
        self.pacer.succeeded();
        if self.pacer.next_now(now).is_err() {
            let last_status = self.status.clone();
            self.stop(Outcome::DeadlineExceeded { last_status });
        }
    }

    fn pages_done(&mut self, kind: PageKind, now: SystemTime) {
        let failed = self
            .status
            .as_ref()
            .is_some_and(|s| s.job.status == JobState::Failed);
        if kind == PageKind::Imports && failed && self.only.is_none() {
            return self.next_pages(PageKind::Errors, now);
        }
        let status = self
            .status
            .clone()
            .expect("pages are read only after a final status");
        self.phase = Phase::Done(ImportOutcome::Finished(status));
    }

    fn failed(&mut self, error: Error, now: SystemTime) {
        match self.pacer.failed(error, now) {
            Ok(()) => {}
            Err(Stop::GaveUp(e)) => self.stop(Outcome::GaveUp(e)),
            Err(Stop::TooManyErrors(e)) => self.stop(Outcome::TooManyErrors(e)),
            Err(Stop::DeadlinePassed) => {
                let last_status = self.status.clone();
                self.stop(Outcome::DeadlineExceeded { last_status });
            }
        }
    }

    fn stop(&mut self, why: Outcome) {
        let stage = self.stage();
        self.pacer.finish();
        self.phase = Phase::Done(ImportOutcome::Stopped {
            job: self.job.clone(),
            stage,
            why,
        });
    }
}

impl<T> fmt::Debug for Workflow<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workflow")
            .field("config", &self.config)
            .field("job", &self.job)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}
