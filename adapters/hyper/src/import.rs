//! The whole import on tokio: create, wait, read every page. The core's [`Workflow`] and
//! [`ImportQueue`] decide; these loops send, sleep and hand back what happened.

use std::time::SystemTime;

use fullstory_batch::{
    BatchItem, IdempotencyKey, ImportEvent, ImportQueue, ImportReport, JobId, PageKind, Policy,
    ProgressSnapshot, QueueAction, TransportError, TransportKind, ValidationError, Workflow,
    WorkflowAction,
};
use futures_util::stream::{FuturesUnordered, Stream};
use futures_util::{FutureExt, StreamExt};

use crate::client::Client;
use crate::wait::until;

/// An import, one step per [`Importer::next`]; [`Importer::into_stream`] makes it a
/// `Stream`. Pages are handed over as they come, so millions of results need not be held at
/// once. Dropping it stops the import (the job goes on server-side).
#[derive(Debug)]
pub struct Importer<T> {
    client: Client,
    workflow: Workflow<T>,
    last_error: Option<fullstory_batch::Error>,
    finished: bool,
}

impl<T: BatchItem> Importer<T> {
    /// The next event, after as many requests and waits as it takes; `None` after `Done`.
    pub async fn next(&mut self) -> Option<ImportEvent<T>> {
        if self.finished {
            return None;
        }
        loop {
            let now = SystemTime::now();
            match self.workflow.poll(now) {
                WorkflowAction::Send(request) => {
                    let waiting = self.workflow.progress().is_some();
                    let left = self.workflow.deadline().map(until);
                    let result = self
                        .client
                        .exchange(request, left, &tracing::Span::current())
                        .await;
                    let now = SystemTime::now();
                    self.last_error = result
                        .as_ref()
                        .err()
                        .cloned()
                        .map(fullstory_batch::Error::Transport);
                    self.workflow.handle_result(result, now);
                    if let (true, Some(p)) = (waiting, self.workflow.progress()) {
                        return Some(ImportEvent::Progress(ProgressSnapshot::new(
                            p,
                            self.last_error.clone(),
                        )));
                    }
                }
                WorkflowAction::Wait(at) => tokio::time::sleep(until(at)).await,
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

    /// The events as a `Stream`.
    pub fn into_stream(self) -> impl Stream<Item = ImportEvent<T>> {
        futures_util::stream::unfold(self, |mut importer| async move {
            let event = importer.next().await?;
            Some((event, importer))
        })
    }

    /// The core's workflow, to read its stage or its idempotency key.
    pub fn workflow(&self) -> &Workflow<T> {
        &self.workflow
    }

    /// Runs to the end, holding every item.
    pub async fn report(mut self) -> ImportReport<T> {
        let mut events = Vec::new();
        while let Some(event) = self.next().await {
            events.push(event);
        }
        ImportReport::collect(events).expect("an importer always ends with Done")
    }
}

impl Client {
    /// Imports `items` (1 to 50,000 events or users): creates the job with an idempotency key
    /// (yours, or a fresh one kept across retries), waits, and reads every imported item and
    /// every failure. See [`Client::importer`] to stream instead of holding it all.
    ///
    /// # Errors
    /// A [`ValidationError`] naming the item and field at fault; nothing is sent then.
    pub async fn import<T: BatchItem>(
        &self,
        items: &[T],
        key: Option<IdempotencyKey>,
        policy: Policy,
    ) -> Result<ImportReport<T>, ValidationError> {
        Ok(self.importer(items, key, policy)?.report().await)
    }

    /// The same import as [`Client::import`], step by step.
    ///
    /// # Errors
    /// A [`ValidationError`] naming the item and field at fault; nothing is sent then.
    pub fn importer<T: BatchItem>(
        &self,
        items: &[T],
        key: Option<IdempotencyKey>,
        policy: Policy,
    ) -> Result<Importer<T>, ValidationError> {
        let workflow = Workflow::new(
            self.config().clone(),
            items,
            key,
            policy,
            SystemTime::now(),
            self.seed(),
        )?;
        Ok(self.drive_import(workflow))
    }

    /// Picks up an import whose job exists: waits for it, then reads its pages.
    pub fn resume_import<T: BatchItem>(&self, id: JobId, policy: Policy) -> Importer<T> {
        self.drive_import(Workflow::resume(
            self.config().clone(),
            id,
            policy,
            SystemTime::now(),
            self.seed(),
        ))
    }

    /// Reads one kind of page of an existing job (waiting for it to end first), streamed.
    pub fn pages<T: BatchItem>(&self, id: JobId, kind: PageKind, policy: Policy) -> Importer<T> {
        let workflow = Workflow::resume(
            self.config().clone(),
            id,
            policy,
            SystemTime::now(),
            self.seed(),
        );
        self.drive_import(workflow.with_only(kind))
    }

    /// Drives a workflow made elsewhere.
    pub fn drive_import<T: BatchItem>(&self, workflow: Workflow<T>) -> Importer<T> {
        Importer {
            client: self.clone(),
            workflow,
            last_error: None,
            finished: false,
        }
    }

    /// Imports any number of items as batches of at most 50,000 (`batch_size`, capped), with
    /// at most `max_in_progress` jobs in progress at once, all on the calling task. The
    /// reports come back in batch order.
    ///
    /// # Errors
    /// The first [`ValidationError`], its index counted from the start of `items`; nothing
    /// is sent then.
    pub async fn import_all<T: BatchItem>(
        &self,
        items: Vec<T>,
        batch_size: usize,
        max_in_progress: usize,
        policy: Policy,
    ) -> Result<Vec<ImportReport<T>>, ValidationError> {
        let queue = ImportQueue::new(
            self.config().clone(),
            items,
            batch_size,
            policy,
            self.seed(),
        )?;
        Ok(self
            .run_queue(queue.with_max_in_progress(max_in_progress))
            .await)
    }

    async fn run_queue<T: BatchItem>(&self, mut queue: ImportQueue<T>) -> Vec<ImportReport<T>> {
        let mut events: Vec<Vec<ImportEvent<T>>> = Vec::new();
        let mut in_flight = FuturesUnordered::new();
        loop {
            let wake = match queue.poll(SystemTime::now()) {
                QueueAction::Send { batch, request } => {
                    let client = self.clone();
                    in_flight.push(
                        async move {
                            (
                                batch,
                                client
                                    .exchange(request, None, &tracing::Span::current())
                                    .await,
                            )
                        }
                        .boxed(),
                    );
                    continue;
                }
                QueueAction::Event { batch, event } => {
                    if events.len() <= batch {
                        events.resize_with(batch + 1, Vec::new);
                    }
                    events[batch].push(event);
                    continue;
                }
                QueueAction::Done => break,
                QueueAction::Wait(at) => Some(at),
                QueueAction::AwaitResponse => None,
            };
            tokio::select! {
                Some((batch, result)) = in_flight.next() => {
                    let now = SystemTime::now();
                    queue.handle_result(batch, result, now);
                }
                () = tokio::time::sleep(wake.map_or(std::time::Duration::ZERO, until)), if wake.is_some() => {}
            }
        }
        events
            .into_iter()
            .filter_map(ImportReport::collect)
            .collect()
    }
}
