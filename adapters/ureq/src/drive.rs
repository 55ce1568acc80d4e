//! The one loop: a [`JobSet`] driven on this thread, with `std`'s clock and
//! `thread::sleep`, one request at a time or a few on a small pool of workers.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use fullstory_batch::http::Response;
use fullstory_batch::journal::{JournalError, JournalSink, Ledger};
use fullstory_batch::{
    BatchItem, Event, EventRequest, ImportReport, Intake, JobKey, JobSet, Outcome, Pages, Transmit,
    TransportError, ValidationError,
};
use tracing::debug;

use crate::client::Client;

/// What a worker hands back: the request's id and what came of it.
type Answer = (
    fullstory_batch::RequestId,
    Result<Response<Vec<u8>>, TransportError>,
);

/// Items still to be read, checked and batched by the core's [`Intake`]. An `Err` (an item
/// the caller could not read) refuses the input there, like an invalid item.
type Items<T> = Box<dyn Iterator<Item = Result<T, ValidationError>>>;

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
    /// The input's source, until the intake wants no more of it.
    items: Option<Items<T>>,
    intake: Intake<T, Box<dyn JournalSink>>,
    max_in_flight: usize,
    pool: Option<Pool>,
    in_flight: usize,
}

impl<T: BatchItem> Run<T> {
    pub(crate) fn new(client: Client, set: JobSet<T>, max_in_flight: usize) -> Self {
        Self {
            client,
            set,
            items: None,
            intake: Intake::without_input(),
            max_in_flight: max_in_flight.max(1),
            pool: None,
            in_flight: 0,
        }
    }

    /// Feeds `items` in as batches of `batch_size`, as the set makes room for them.
    pub(crate) fn with_input(
        mut self,
        items: impl IntoIterator<Item = Result<T, ValidationError>, IntoIter: 'static>,
        batch_size: usize,
    ) -> Self {
        self.items = Some(Box::new(items.into_iter()));
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
    /// See [`fullstory_batch::journal`] and [`crate::FileJournal`].
    #[must_use]
    pub fn with_journal(mut self, ledger: Ledger, sink: impl JournalSink + 'static) -> Self {
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

    /// Reads items and hands them to the intake while it wants them: it decides what each
    /// means. The source is dropped once the input is done.
    fn feed(&mut self, now: SystemTime) {
        while self.intake.wants_item(&self.set) {
            let item = self.items.as_mut().and_then(Iterator::next);
            self.intake.offer(&mut self.set, item, now);
        }
        if self.intake.input_done() {
            self.items = None;
        }
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
        self.intake.flush();
        loop {
            if let Some(event) = self.intake.poll_event(&mut self.set) {
                return Some(event);
            }
            self.feed(SystemTime::now());
            if self.set.is_empty() && self.intake.input_done() && self.in_flight == 0 {
                return None;
            }
            if self.send_due() {
                continue;
            }
            if let Some(event) = self.intake.poll_event(&mut self.set) {
                return Some(event);
            }
            self.wait();
            self.drain_answers();
        }
    }
}

impl<T: BatchItem> std::iter::FusedIterator for Run<T> {}

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
