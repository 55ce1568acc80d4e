//! The one loop: a [`JobSet`] driven on the caller's task, with tokio's clock and timer,
//! up to the connection cap of requests out at once.

use std::pin::Pin;
use std::time::SystemTime;

use bytes::Bytes;
use fullstory_batch::http::Response;
use fullstory_batch::journal::{JournalError, JournalSink, Ledger};
use fullstory_batch::{
    BatchItem, Event, EventRequest, ImportReport, Intake, JobKey, JobSet, Outcome, Pages,
    RequestId, Transmit, TransportError, ValidationError,
};
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, Stream};
use futures_util::{FutureExt, StreamExt};

use crate::client::Client;

type Answer = (RequestId, Result<Response<Bytes>, TransportError>);

/// Items still to be read, checked and batched by the core's [`Intake`]. An `Err` (an item
/// the caller could not read) refuses the input there, like an invalid item.
type Items<T> = Pin<Box<dyn Stream<Item = Result<T, ValidationError>> + Send>>;

/// A [`JobSet`] at work on the caller's task: every job's events, tagged with the job's
/// key, one at a time from [`Run::next`] (or as a `Stream`, [`Run::into_stream`]). Every
/// `wait`, `import` and `pages` call of [`Client`] is one.
///
/// Nothing is spawned: requests in flight live in a `FuturesUnordered` polled by `next`, at
/// most the client's connection cap of them. Dropping the run stops every request at once
/// (jobs go on server-side).
pub struct Run<T = EventRequest> {
    client: Client,
    set: JobSet<T>,
    /// The input's source, until the intake wants no more of it.
    items: Option<Items<T>>,
    intake: Intake<T>,
    in_flight: FuturesUnordered<BoxFuture<'static, Answer>>,
    max_in_flight: usize,
}

impl<T: BatchItem> Run<T> {
    pub(crate) fn new(client: Client, set: JobSet<T>) -> Self {
        let max_in_flight = client.max_in_flight();
        Self {
            client,
            set,
            items: None,
            intake: Intake::without_input(),
            in_flight: FuturesUnordered::new(),
            max_in_flight,
        }
    }

    /// Feeds `items` in as batches of `batch_size`, as the set makes room for them.
    pub(crate) fn with_input(
        mut self,
        items: impl Stream<Item = Result<T, ValidationError>> + Send + 'static,
        batch_size: usize,
    ) -> Self {
        self.items = Some(Box::pin(items));
        self.intake = Intake::new(batch_size);
        self
    }

    /// Reads these pages of every job (call before the first `next`): [`Pages::Errors`]
    /// to read only failures, say, when the final counts are enough.
    #[must_use]
    pub fn with_pages(mut self, pages: Pages) -> Self {
        self.set.set_pages(pages);
        self
    }

    /// Journals the import (call before the first `next`): every batch's record goes to
    /// `sink`, made durable, before its create is sent, and `ledger` (fresh, or replayed
    /// from the same sink's records) decides on resume what is skipped, waited on, created
    /// again under its old key, or planned. The input is cut at the ledger's batch size.
    /// The sink is called on this task (a [`crate::FileJournal`] append blocks it for one
    /// sync). See [`fullstory_batch::journal`].
    #[must_use]
    pub fn with_journal(mut self, ledger: Ledger, sink: impl JournalSink + Send + 'static) -> Self {
        self.intake = self.intake.with_journal(ledger, Box::new(sink));
        self
    }

    /// The journal's ledger: every batch's job, and the counts of those finished.
    pub fn ledger(&self) -> Option<&Ledger> {
        self.intake.ledger()
    }

    /// Why the journal stopped the input, if it did (a changed input, a write that
    /// failed): no batch that needed a record was sent without it.
    pub fn journal_error(&self) -> Option<&JournalError> {
        self.intake.journal_error()
    }

    /// Whether every item of the input was read (and none refused).
    pub fn input_done(&self) -> bool {
        self.intake.input_done()
    }

    /// The machine, to read a job's progress or save the whole state.
    pub fn set(&self) -> &JobSet<T> {
        &self.set
    }

    /// The next event of any job, after as many requests and waits as it takes; `None`
    /// once every job has ended and the input is used up.
    ///
    /// The loop: hand over events; feed input; send what is due; sleep until the next
    /// wake-up or an answer; hand the answer back.
    pub async fn next(&mut self) -> Option<(JobKey, Event<T>)> {
        self.intake.flush();
        loop {
            if let Some(event) = self.intake.poll_event(&mut self.set) {
                return Some(event);
            }
            self.feed().await;
            if self.set.is_empty() && self.intake.input_done() && self.in_flight.is_empty() {
                return None;
            }
            self.send_due();
            if let Some(event) = self.intake.poll_event(&mut self.set) {
                return Some(event);
            }
            let wake = self.set.poll_timeout();
            let sleep = wake.map(|at| at.duration_since(SystemTime::now()).unwrap_or_default());
            tokio::select! {
                Some(answer) = self.in_flight.next(), if !self.in_flight.is_empty() => {
                    self.handle(answer);
                    // Take every other answer already in, before deciding again.
                    while let Some(Some(answer)) = self.in_flight.next().now_or_never() {
                        self.handle(answer);
                    }
                }
                () = tokio::time::sleep(sleep.unwrap_or_default()), if sleep.is_some() => {}
                else => {}
            }
        }
    }

    /// The events as a `Stream`.
    pub fn into_stream(self) -> impl Stream<Item = (JobKey, Event<T>)> + Send {
        futures_util::stream::unfold(self, |mut run| async move {
            let event = run.next().await?;
            Some((event, run))
        })
    }

    /// Runs to the end and gives how each job ended, in the order they ended.
    pub async fn outcomes(mut self) -> Vec<(JobKey, Outcome)> {
        let mut outcomes = Vec::new();
        while let Some((key, event)) = self.next().await {
            if let Event::Done(outcome) = event {
                outcomes.push((key, outcome));
            }
        }
        outcomes
    }

    /// Runs a one-job run to the end and gives its outcome.
    pub async fn outcome(self) -> Outcome {
        self.outcomes()
            .await
            .pop()
            .map(|(_, outcome)| outcome)
            .expect("a run with a job ends with its Done")
    }

    /// Runs a one-job run to the end, holding every item it read.
    pub async fn report(mut self) -> ImportReport<T> {
        let mut events = Vec::new();
        while let Some((_, event)) = self.next().await {
            events.push(event);
        }
        ImportReport::collect(events).expect("a run with a job ends with its Done")
    }

    /// Reads items and hands them to the intake while it wants them: it decides what each
    /// means. The source is dropped once the input is done.
    async fn feed(&mut self) {
        while self.intake.wants_item(&self.set) {
            let item = match &mut self.items {
                Some(items) => items.next().await,
                None => None,
            };
            self.intake.offer(&mut self.set, item, SystemTime::now());
        }
        if self.intake.input_done() {
            self.items = None;
        }
    }

    /// Starts every request that is due, up to the connection cap.
    fn send_due(&mut self) {
        let now = SystemTime::now();
        while self.in_flight.len() < self.max_in_flight {
            let Some(transmit) = self.set.poll_transmit(now) else {
                return;
            };
            let client = self.client.clone();
            self.in_flight.push(transmit_on(client, transmit).boxed());
        }
    }

    fn handle(&mut self, (id, answer): Answer) {
        let now = SystemTime::now();
        match answer {
            Ok(response) => self.set.handle_response(id, &response, now),
            Err(e) => self.set.handle_send_failed(id, e, now),
        }
    }
}

impl<T> std::fmt::Debug for Run<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("set", &self.set)
            .field("in_flight", &self.in_flight.len())
            .field("max_in_flight", &self.max_in_flight)
            .finish_non_exhaustive()
    }
}

/// One request a machine asked for, cut off at its deadline.
async fn transmit_on(client: Client, transmit: Transmit) -> Answer {
    let id = transmit.id;
    (id, client.transmit(transmit).await)
}
