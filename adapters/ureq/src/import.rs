//! The whole import, blocking: create, wait, read every page. The core's [`Workflow`] decides;
//! this loop sends, sleeps and hands back what happened.

use std::time::{Duration, SystemTime};

use fullstory_batch::{
    BatchItem, IdempotencyKey, ImportEvent, ImportReport, JobId, PageKind, Policy,
    ProgressSnapshot, TransportError, TransportKind, ValidationError, Workflow, WorkflowAction,
};

use fullstory_batch::{ImportQueue, QueueAction};

use crate::client::Client;
use crate::wait::random_seed;

/// An import, one blocking step per [`Iterator::next`]. Pages are handed over as they come,
/// so millions of results need not be held at once.
#[derive(Debug)]
pub struct Importer<'c, T> {
    client: &'c Client,
    workflow: Workflow<T>,
    last_error: Option<fullstory_batch::Error>,
    finished: bool,
}

impl<T: BatchItem> Iterator for Importer<'_, T> {
    type Item = ImportEvent<T>;

    fn next(&mut self) -> Option<ImportEvent<T>> {
        if self.finished {
            return None;
        }
        loop {
            let now = SystemTime::now();
            match self.workflow.poll(now) {
                WorkflowAction::Send(request) => {
                    let waiting = self.workflow.progress().is_some();
                    let result = self.client.fetch(request, self.workflow.deadline());
                    let now = SystemTime::now();
                    self.last_error = result
                        .as_ref()
                        .err()
                        .cloned()
                        .map(fullstory_batch::Error::Transport);
                    self.workflow.handle_result(result, now);
                    if let (true, Some(snapshot)) = (waiting, self.snapshot()) {
                        return Some(ImportEvent::Progress(snapshot));
                    }
                }
                WorkflowAction::Wait(until) => {
                    std::thread::sleep(until.duration_since(now).unwrap_or(Duration::ZERO));
                }
                WorkflowAction::AwaitResponse => {
                    // Cannot happen: every request is answered before the next poll.
                    self.workflow
                        .handle_transport_error(TransportError::new(TransportKind::Other), now);
                }
                // Created, a page, or Done: sends and waits are handled above.
                action => {
                    let event = ImportEvent::from_action(action);
                    self.finished = matches!(event, Some(ImportEvent::Done(_)));
                    return event;
                }
            }
        }
    }
}

impl<T: BatchItem> std::iter::FusedIterator for Importer<'_, T> {}

impl<T: BatchItem> Importer<'_, T> {
    /// The core's workflow, to read its stage or its idempotency key.
    pub fn workflow(&self) -> &Workflow<T> {
        &self.workflow
    }

    /// Runs to the end, holding every item.
    pub fn report(self) -> ImportReport<T> {
        ImportReport::collect(self).expect("an importer always ends with Done")
    }

    /// While the job runs: where waiting stands, with the last error.
    fn snapshot(&self) -> Option<ProgressSnapshot> {
        let p = self.workflow.progress()?;
        Some(ProgressSnapshot::new(p, self.last_error.clone()))
    }
}

impl Client {
    /// Imports `items` (1 to 50,000 events or users): creates the job with an idempotency key
    /// (yours, or a fresh one kept across retries), waits, and reads every imported item and
    /// every failure. Blocks until done; see [`Client::importer`] to stream.
    ///
    /// # Errors
    /// A [`ValidationError`] naming the item and field at fault; nothing is sent then.
    pub fn import<T: BatchItem>(
        &self,
        items: &[T],
        key: Option<IdempotencyKey>,
        policy: Policy,
    ) -> Result<ImportReport<T>, ValidationError> {
        Ok(self.importer(items, key, policy)?.report())
    }

    /// The same import as [`Client::import`], as an iterator of [`ImportEvent`]s.
    ///
    /// # Errors
    /// A [`ValidationError`] naming the item and field at fault; nothing is sent then.
    pub fn importer<T: BatchItem>(
        &self,
        items: &[T],
        key: Option<IdempotencyKey>,
        policy: Policy,
    ) -> Result<Importer<'_, T>, ValidationError> {
        let workflow = Workflow::new(
            self.config.clone(),
            items,
            key,
            policy,
            SystemTime::now(),
            random_seed(),
        )?;
        Ok(self.drive_import(workflow))
    }

    /// Picks up an import whose job exists: waits for it, then reads its pages.
    pub fn resume_import<T: BatchItem>(&self, id: JobId, policy: Policy) -> Importer<'_, T> {
        self.drive_import(Workflow::resume(
            self.config.clone(),
            id,
            policy,
            SystemTime::now(),
            random_seed(),
        ))
    }

    /// Reads one kind of page of an existing job (waiting for it to end first), streamed.
    pub fn pages<T: BatchItem>(
        &self,
        id: JobId,
        kind: PageKind,
        policy: Policy,
    ) -> Importer<'_, T> {
        let workflow = Workflow::resume(
            self.config.clone(),
            id,
            policy,
            SystemTime::now(),
            random_seed(),
        );
        self.drive_import(workflow.with_only(kind))
    }

    /// Drives a workflow made elsewhere.
    pub fn drive_import<T: BatchItem>(&self, workflow: Workflow<T>) -> Importer<'_, T> {
        Importer {
            client: self,
            workflow,
            last_error: None,
            finished: false,
        }
    }
}

/// Any number of items as batches, one blocking request at a time: the core's
/// [`ImportQueue`] decides which batch sends next, so several jobs are in progress at once
/// while this thread sends, sleeps and hands back what happened, tagged with the batch index.
#[derive(Debug)]
pub struct QueueRun<'c, T> {
    client: &'c Client,
    queue: ImportQueue<T>,
    last_error: Option<fullstory_batch::Error>,
}

impl<T: BatchItem> Iterator for QueueRun<'_, T> {
    type Item = (usize, ImportEvent<T>);

    fn next(&mut self) -> Option<(usize, ImportEvent<T>)> {
        loop {
            let now = SystemTime::now();
            match self.queue.poll(now) {
                QueueAction::Send { batch, request } => {
                    let waiting = self.queue.progress(batch).is_some();
                    let result = self.client.fetch(request, None);
                    let now = SystemTime::now();
                    self.last_error = result
                        .as_ref()
                        .err()
                        .cloned()
                        .map(fullstory_batch::Error::Transport);
                    self.queue.handle_result(batch, result, now);
                    if let (true, Some(p)) = (waiting, self.queue.progress(batch)) {
                        let snapshot = ProgressSnapshot::new(p, self.last_error.clone());
                        return Some((batch, ImportEvent::Progress(snapshot)));
                    }
                }
                QueueAction::Event { batch, event } => return Some((batch, event)),
                QueueAction::Wait(until) => {
                    std::thread::sleep(until.duration_since(now).unwrap_or(Duration::ZERO));
                }
                // Every request here is answered before the next poll, so nothing is out.
                QueueAction::AwaitResponse | QueueAction::Done => return None,
            }
        }
    }
}

impl Client {
    /// Imports any number of items as batches of at most `batch_size` (capped at 50,000),
    /// with at most `max_in_progress` jobs in progress at once, as an iterator of
    /// `(batch index, event)`.
    ///
    /// # Errors
    /// The first [`ValidationError`], its index counted from the start of `items`; nothing
    /// is sent then.
    pub fn import_all<T: BatchItem>(
        &self,
        items: Vec<T>,
        batch_size: usize,
        max_in_progress: usize,
        policy: Policy,
    ) -> Result<QueueRun<'_, T>, ValidationError> {
        let queue = ImportQueue::new(
            self.config.clone(),
            items,
            batch_size,
            policy,
            random_seed(),
        )?;
        Ok(QueueRun {
            client: self,
            queue: queue.with_max_in_progress(max_in_progress),
            last_error: None,
        })
    }
}
