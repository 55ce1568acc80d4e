//! Any number of items: split into batches, a few jobs in progress at once.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

use http::{Request, Response};

use crate::batch::{BatchItem, MAX_BATCH_ITEMS, ValidationError, validate};
use crate::config::Config;
use crate::error::TransportError;
use crate::poller::{Policy, Progress};
use crate::workflow::{ImportEvent, Workflow, WorkflowAction};

/// Fullstory starts limiting an organisation at 100 jobs in progress; staying well under
/// leaves room for other importers in the same organisation.
pub const DEFAULT_MAX_IN_PROGRESS: usize = 4;

/// What the driver of an [`ImportQueue`] should do next. `batch` is the index of the batch
/// (0 for the first 50,000 items, and so on).
#[derive(Debug)]
#[must_use]
pub enum QueueAction<T> {
    /// Send this request for `batch`, then feed back its answer with the same index. Several
    /// batches may have a request out at once.
    Send {
        /// The batch.
        batch: usize,
        /// The request.
        request: Request<Vec<u8>>,
    },
    /// Something happened in `batch`: a job created, a page of results, its end.
    Event {
        /// The batch.
        batch: usize,
        /// What happened (never `Progress`: ask [`ImportQueue::progress`]).
        event: ImportEvent<T>,
    },
    /// Nothing to do before this instant, or before an answer arrives.
    Wait(SystemTime),
    /// Every request out is awaiting its answer.
    AwaitResponse,
    /// Every batch has finished.
    Done,
}

/// Imports any number of items as batches of at most [`MAX_BATCH_ITEMS`], with at most a
/// set number of batches in progress at once, each a [`Workflow`].
pub struct ImportQueue<T> {
    config: Config,
    policy: Arc<Policy>,
    seed: u64,
    max_in_progress: usize,
    pending: VecDeque<(usize, Vec<T>)>,
    active: Vec<(usize, Workflow<T>)>,
}

impl<T: BatchItem> ImportQueue<T> {
    /// Splits `items` into batches of at most `batch_size` (capped at [`MAX_BATCH_ITEMS`]),
    /// checking every item first: nothing is sent if any is invalid.
    ///
    /// # Errors
    /// The first [`ValidationError`]; its index counts from the start of `items`.
    pub fn new(
        config: Config,
        items: Vec<T>,
        batch_size: usize,
        policy: impl Into<Arc<Policy>>,
        seed: u64,
    ) -> Result<Self, ValidationError> {
        let batch_size = batch_size.clamp(1, MAX_BATCH_ITEMS);
        let mut pending = VecDeque::new();
        let mut items = items.into_iter().peekable();
        if items.peek().is_none() {
            return Err(ValidationError::Empty);
        }
        while items.peek().is_some() {
            let batch: Vec<T> = items.by_ref().take(batch_size).collect();
            let start = pending.len() * batch_size;
            validate(&batch).map_err(|e| match e {
                ValidationError::Item {
                    index,
                    field,
                    problem,
                } => ValidationError::Item {
                    index: start + index,
                    field,
                    problem,
                },
                other => other,
            })?;
            pending.push_back((pending.len(), batch));
        }
        Ok(Self {
            config,
            policy: policy.into(),
            seed,
            max_in_progress: DEFAULT_MAX_IN_PROGRESS,
            pending,
            active: Vec::new(),
        })
    }

    /// At most `n` batches in progress at once (at least 1; default
    /// [`DEFAULT_MAX_IN_PROGRESS`]).
    #[must_use]
    pub fn with_max_in_progress(mut self, n: usize) -> Self {
        self.max_in_progress = n.max(1);
        self
    }

    /// Batches not yet started.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Batches in progress.
    pub fn in_progress(&self) -> usize {
        self.active.len()
    }

    /// The waiting step's progress of `batch`, while it waits for its job.
    pub fn progress(&self, batch: usize) -> Option<Progress<'_>> {
        self.active
            .iter()
            .find(|(b, _)| *b == batch)
            .and_then(|(_, w)| w.progress())
    }

    /// The next thing to do at `now`.
    pub fn poll(&mut self, now: SystemTime) -> QueueAction<T> {
        self.start_batches(now);
        let mut wake: Option<SystemTime> = None;
        let mut i = 0;
        while i < self.active.len() {
            let batch = self.active[i].0;
            match self.active[i].1.poll(now) {
                WorkflowAction::Send(request) => return QueueAction::Send { batch, request },
                WorkflowAction::Wait(at) => wake = Some(wake.map_or(at, |w| w.min(at))),
                WorkflowAction::AwaitResponse => {}
                WorkflowAction::Done(outcome) => {
                    self.active.swap_remove(i);
                    let event = ImportEvent::Done(outcome);
                    return QueueAction::Event { batch, event };
                }
                action => {
                    if let Some(event) = ImportEvent::from_action(action) {
                        return QueueAction::Event { batch, event };
                    }
                }
            }
            i += 1;
        }
        match wake {
            Some(at) => QueueAction::Wait(at),
            None if self.active.is_empty() && self.pending.is_empty() => QueueAction::Done,
            None => QueueAction::AwaitResponse,
        }
    }

    /// Feeds back the response for `batch`'s request.
    pub fn handle_response<B: AsRef<[u8]>>(
        &mut self,
        batch: usize,
        response: &Response<B>,
        now: SystemTime,
    ) {
        if let Some((_, workflow)) = self.active.iter_mut().find(|(b, _)| *b == batch) {
            workflow.handle_response(response, now);
        }
    }

    /// Feeds back that `batch`'s request got no answer.
    pub fn handle_transport_error(&mut self, batch: usize, error: TransportError, now: SystemTime) {
        if let Some((_, workflow)) = self.active.iter_mut().find(|(b, _)| *b == batch) {
            workflow.handle_transport_error(error, now);
        }
    }

    /// Feeds back what `batch`'s send gave: the response, or the failure to get one.
    pub fn handle_result<B: AsRef<[u8]>>(
        &mut self,
        batch: usize,
        result: Result<Response<B>, TransportError>,
        now: SystemTime,
    ) {
        match result {
            Ok(response) => self.handle_response(batch, &response, now),
            Err(e) => self.handle_transport_error(batch, e, now),
        }
    }

    fn start_batches(&mut self, now: SystemTime) {
        while self.active.len() < self.max_in_progress {
            let Some((batch, items)) = self.pending.pop_front() else {
                return;
            };
            let seed = self.seed.wrapping_add(batch as u64);
            let policy = Arc::clone(&self.policy);
            let workflow = Workflow::new(self.config.clone(), &items, None, policy, now, seed)
                .expect("every batch was checked when the queue was made");
            self.active.push((batch, workflow));
        }
    }
}

impl<T> std::fmt::Debug for ImportQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportQueue")
            .field("pending", &self.pending.len())
            .field("active", &self.active.len())
            .field("max_in_progress", &self.max_in_progress)
            .finish_non_exhaustive()
    }
}
