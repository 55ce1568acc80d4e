//! The whole import, blocking: create, wait, read every page. The core's [`Workflow`] decides;
//! this loop sends, sleeps and hands back what happened.

use std::time::{Duration, SystemTime};

use fullstory_batch::{
    BatchItem, IdempotencyKey, ImportEvent, ImportReport, JobId, PageKind, Policy,
    ProgressSnapshot, TransportError, TransportKind, ValidationError, Workflow, WorkflowAction,
};

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
                    self.last_error = match result {
                        Ok(response) => {
                            self.workflow.handle_response(&response, now);
                            None
                        }
                        Err(e) => {
                            self.workflow.handle_transport_error(e.clone(), now);
                            Some(fullstory_batch::Error::Transport(e))
                        }
                    };
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
                WorkflowAction::Created(job) => return Some(ImportEvent::Created(job)),
                WorkflowAction::Imported(items) => return Some(ImportEvent::Imported(items)),
                WorkflowAction::Failed(items) => return Some(ImportEvent::Failed(items)),
                WorkflowAction::Done(outcome) => {
                    self.finished = true;
                    return Some(ImportEvent::Done(outcome));
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
