//! The one loop: a [`JobSet`] driven on this thread, with `std`'s clock and
//! `thread::sleep`, one request at a time or a few on a small pool of workers.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use fullstory_batch::http::Response;
use fullstory_batch::journal::{Admit, JournalError, JournalRecord, JournalSink, Ledger};
use fullstory_batch::{
    Batch, BatchItem, Batcher, Event, EventRequest, ImportReport, JobKey, JobSet, Outcome, Pages,
    Transmit, TransportError, ValidationError,
};
use tracing::debug;

use crate::client::Client;

/// What a worker hands back: the request's id and what came of it.
type Answer = (
    fullstory_batch::RequestId,
    Result<Response<Vec<u8>>, TransportError>,
);

/// Items still to be read, checked and batched, a batch whenever the set has room. An
/// `Err` (an item the caller could not read) refuses the input there, like an invalid item.
struct Input<T> {
    items: Box<dyn Iterator<Item = Result<T, ValidationError>>>,
    batcher: Batcher<T>,
}

/// The journal of an import: the core's ledger decides, the sink makes records durable.
struct Journaling {
    ledger: Ledger,
    sink: Box<dyn JournalSink>,
    /// Records an event called for, appended at the next step: after the caller handled
    /// the event (wrote a job's failed items, say).
    pending: Vec<JournalRecord>,
    error: Option<JournalError>,
}

/// A [`JobSet`] at work: an iterator of every job's events, tagged with the job's key, one
/// blocking step per `next`. Every `wait`, `import` and `pages` call of [`Client`] is one.
///
/// Between two calls to `next` nothing happens, so a caller may print, save the set's state
/// ([`JobSet::save`] through [`Run::set`]) or stop; dropping it stops at once (jobs go on
/// server-side). With more than one request allowed out, requests go on a few worker
/// threads, started on first need and ended with the run; with one, on this thread.
pub struct Run<T = EventRequest> {
    client: Client,
    set: JobSet<T>,
    input: Option<Input<T>>,
    max_in_flight: usize,
    pool: Option<Pool>,
    in_flight: usize,
    journal: Option<Journaling>,
}

impl<T: BatchItem> Run<T> {
    pub(crate) fn new(client: Client, set: JobSet<T>, max_in_flight: usize) -> Self {
        Self {
            client,
            set,
            input: None,
            max_in_flight: max_in_flight.max(1),
            pool: None,
            in_flight: 0,
            journal: None,
        }
    }

    /// Feeds `items` in as batches of `batch_size`, as the set makes room for them.
    pub(crate) fn with_input(
        mut self,
        items: impl IntoIterator<Item = Result<T, ValidationError>, IntoIter: 'static>,
        batch_size: usize,
    ) -> Self {
        self.input = Some(Input {
            items: Box::new(items.into_iter()),
            batcher: Batcher::new(batch_size),
        });
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
    /// See [`fullstory_batch::journal`] and [`crate::FileJournal`].
    #[must_use]
    pub fn with_journal(mut self, ledger: Ledger, sink: impl JournalSink + 'static) -> Self {
        if let Some(input) = &mut self.input {
            input.batcher = Batcher::new(ledger.batch_size());
        }
        self.journal = Some(Journaling {
            ledger,
            sink: Box::new(sink),
            pending: Vec::new(),
            error: None,
        });
        self
    }

    /// The journal's ledger: every batch's job, and the counts of those finished.
    pub fn ledger(&self) -> Option<&Ledger> {
        self.journal.as_ref().map(|j| &j.ledger)
    }

    /// Why the journal stopped the input, if it did (a changed input, a write that
    /// failed): no batch that needed a record was sent without it.
    pub fn journal_error(&self) -> Option<&JournalError> {
        self.journal.as_ref().and_then(|j| j.error.as_ref())
    }

    /// Whether every item of the input was read (and none refused).
    pub fn input_done(&self) -> bool {
        self.input.is_none()
    }

    /// The machine, to read a job's progress or save the whole state.
    pub fn set(&self) -> &JobSet<T> {
        &self.set
    }

    /// Runs to the end and gives how each job ended, in the order they ended.
    pub fn outcomes(self) -> Vec<(JobKey, Outcome)> {
        self.filter_map(|(key, event)| match event {
            Event::Done(outcome) => Some((key, outcome)),
            _ => None,
        })
        .collect()
    }

    /// Runs a one-job run to the end and gives its outcome.
    pub fn outcome(self) -> Outcome {
        self.outcomes()
            .pop()
            .map(|(_, outcome)| outcome)
            .expect("a run with a job ends with its Done")
    }

    /// Runs a one-job run to the end, holding every item it read.
    pub fn report(self) -> ImportReport<T> {
        ImportReport::collect(self.map(|(_, event)| event))
            .expect("a run with a job ends with its Done")
    }

    /// Hands batches to the set while it has room, until the input ends or is refused.
    fn feed(&mut self, now: SystemTime) {
        while self.set.wants_batch() {
            let Some(input) = &mut self.input else {
                return;
            };
            let pushed = match input.items.next() {
                Some(Ok(item)) => input.batcher.push(&item),
                Some(Err(unread)) => Err(unread),
                None => {
                    let last = self.input.take().and_then(|i| i.batcher.finish());
                    if let Some(batch) = last {
                        self.admit(batch, now);
                    }
                    return;
                }
            };
            match pushed {
                Ok(Some(batch)) => self.admit(batch, now),
                Ok(None) => {}
                Err(invalid) => {
                    self.input = None;
                    self.set.reject_input(invalid);
                }
            }
        }
    }

    /// Hands a batch to the set; with a journal, as the ledger decides, its record durable
    /// first.
    fn admit(&mut self, batch: Batch, now: SystemTime) {
        let Some(journal) = &mut self.journal else {
            self.set.add_batch(batch, now);
            return;
        };
        let stop = match journal.ledger.admit(batch) {
            Ok(Admit::Skip { .. }) => None,
            Ok(Admit::Wait { index, job }) => {
                let key = self.set.add_job(job, now);
                journal.ledger.bind(key, index);
                None
            }
            Ok(Admit::Create {
                index,
                batch,
                record,
            }) => match record.map_or(Ok(()), |r| journal.sink.append(&r)) {
                Ok(()) => {
                    let key = self.set.add_batch(batch, now);
                    journal.ledger.bind(key, index);
                    None
                }
                Err(e) => Some(JournalError::Write(e)),
            },
            Err(e) => Some(e),
        };
        if let Some(e) = stop {
            journal.error.get_or_insert(e);
            self.input = None;
        }
    }

    /// Appends the records the events handed out so far called for.
    fn flush_journal(&mut self) {
        let Some(journal) = &mut self.journal else {
            return;
        };
        for record in std::mem::take(&mut journal.pending) {
            if let Err(e) = journal.sink.append(&record) {
                journal.error.get_or_insert(JournalError::Write(e));
                self.input = None;
                return;
            }
        }
    }

    /// An event on its way out: the record it calls for is appended at the next step.
    fn note(&mut self, (key, event): (JobKey, Event<T>)) -> (JobKey, Event<T>) {
        if let Some(journal) = &mut self.journal
            && let Some(record) = journal.ledger.on_event(key, &event)
        {
            journal.pending.push(record);
        }
        (key, event)
    }

    /// Sends what is due: at once on this thread with one request allowed out (and
    /// returns `true` once it has an answer), else hands each to the pool.
    fn send_due(&mut self) -> bool {
        while self.in_flight < self.max_in_flight {
            let Some(transmit) = self.set.poll_transmit(SystemTime::now()) else {
                return false;
            };
            if self.max_in_flight == 1 {
                let id = transmit.id;
                let answer = self.client.transmit(transmit);
                self.handle((id, answer));
                return true;
            }
            let workers = self.max_in_flight;
            let client = &self.client;
            self.pool
                .get_or_insert_with(|| Pool::start(client, workers))
                .send(transmit);
            self.in_flight += 1;
        }
        false
    }

    /// Sleeps until the next wake-up, or until a worker answers.
    fn wait(&mut self) {
        let wake = self.set.poll_timeout();
        let left = wake.map(|at| at.duration_since(SystemTime::now()).unwrap_or_default());
        if self.in_flight == 0 {
            let Some(left) = left else { return };
            debug!(
                wait_ms = left.as_millis() as u64,
                "waiting before the next request"
            );
            std::thread::sleep(left);
            return;
        }
        let pool = self
            .pool
            .as_ref()
            .expect("requests are out only on the pool");
        let answer = match left {
            Some(left) => pool.answers.recv_timeout(left),
            None => pool
                .answers
                .recv()
                .map_err(|_| RecvTimeoutError::Disconnected),
        };
        match answer {
            Ok(answer) => {
                self.in_flight -= 1;
                self.handle(answer);
            }
            Err(RecvTimeoutError::Timeout) => {}
            // Only after a worker panicked: the requests out are lost.
            Err(RecvTimeoutError::Disconnected) => self.in_flight = 0,
        }
    }

    fn handle(&mut self, (id, answer): Answer) {
        let now = SystemTime::now();
        match answer {
            Ok(response) => self.set.handle_response(id, &response, now),
            Err(e) => self.set.handle_send_failed(id, e, now),
        }
    }

    fn drain_answers(&mut self) {
        let Some(pool) = &self.pool else { return };
        let ready: Vec<Answer> = pool.answers.try_iter().collect();
        self.in_flight -= ready.len().min(self.in_flight);
        for answer in ready {
            self.handle(answer);
        }
    }
}

impl<T: BatchItem> Iterator for Run<T> {
    type Item = (JobKey, Event<T>);

    /// The loop: hand over events; feed input; send what is due; sleep until the next
    /// wake-up or an answer; hand the answer back.
    fn next(&mut self) -> Option<(JobKey, Event<T>)> {
        self.flush_journal();
        loop {
            if let Some(event) = self.set.poll_event() {
                return Some(self.note(event));
            }
            self.feed(SystemTime::now());
            if self.set.is_empty() && self.input.is_none() && self.in_flight == 0 {
                return None;
            }
            if self.send_due() {
                continue;
            }
            if let Some(event) = self.set.poll_event() {
                return Some(self.note(event));
            }
            self.wait();
            self.drain_answers();
        }
    }
}

impl<T: BatchItem> std::iter::FusedIterator for Run<T> {}

impl<T> Drop for Run<T> {
    /// A run dropped after its last event still writes the records that event called for.
    fn drop(&mut self) {
        if let Some(journal) = &mut self.journal {
            for record in std::mem::take(&mut journal.pending) {
                if journal.sink.append(&record).is_err() {
                    return;
                }
            }
        }
    }
}

impl<T> std::fmt::Debug for Run<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("set", &self.set)
            .field("in_flight", &self.in_flight)
            .field("max_in_flight", &self.max_in_flight)
            .finish_non_exhaustive()
    }
}

/// A few worker threads sending requests off one channel. When the run drops it, the
/// channel closes and each worker ends after the request it is on (they are not joined, so
/// dropping a run never waits out a request).
struct Pool {
    work: Sender<Transmit>,
    answers: Receiver<Answer>,
}

impl Pool {
    fn start(client: &Client, workers: usize) -> Self {
        let (work_tx, work_rx) = mpsc::channel::<Transmit>();
        let (answer_tx, answers) = mpsc::channel::<Answer>();
        let work_rx = Arc::new(Mutex::new(work_rx));
        for n in 0..workers {
            let (client, work, answers) = (client.clone(), Arc::clone(&work_rx), answer_tx.clone());
            std::thread::Builder::new()
                .name(format!("fullstory-batch-{n}"))
                .spawn(move || worker(&client, &work, &answers))
                .expect("the OS can start a few threads");
        }
        Self {
            work: work_tx,
            answers,
        }
    }

    fn send(&self, transmit: Transmit) {
        // A send fails only when every worker is gone (after a panic): the request is then
        // lost, and its deadline or the next wake-up moves the job on.
        let _ = self.work.send(transmit);
    }
}

/// Takes requests off the shared channel, one at a time, until it closes.
fn worker(client: &Client, work: &Mutex<Receiver<Transmit>>, answers: &Sender<Answer>) {
    loop {
        // The lock is held only while waiting for the next request, not while sending it.
        let next = work.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(transmit) = next else { return };
        let id = transmit.id;
        if answers.send((id, client.transmit(transmit))).is_err() {
            return;
        }
    }
}
