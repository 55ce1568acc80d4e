//! The one loop: a [`JobSet`] driven on this thread, with `std`'s clock and
//! `thread::sleep`, one request at a time or a few on a small pool of workers.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use fullstory_batch::http::Response;
use fullstory_batch::{
    BatchItem, Batcher, Event, EventRequest, ImportReport, JobKey, JobSet, Outcome, Transmit,
    TransportError,
};
use tracing::debug;

use crate::client::Client;

/// What a worker hands back: the request's id and what came of it.
type Answer = (
    fullstory_batch::RequestId,
    Result<Response<Vec<u8>>, TransportError>,
);

/// Items still to be read, checked and batched, a batch whenever the set has room.
struct Input<T> {
    items: Box<dyn Iterator<Item = T>>,
    batcher: Batcher<T>,
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
        }
    }

    /// Feeds `items` in as batches of `batch_size`, as the set makes room for them.
    pub(crate) fn with_input(
        mut self,
        items: impl IntoIterator<Item = T, IntoIter: 'static>,
        batch_size: usize,
    ) -> Self {
        self.input = Some(Input {
            items: Box::new(items.into_iter()),
            batcher: Batcher::new(batch_size),
        });
        self
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
                Some(item) => input.batcher.push(&item),
                None => {
                    let last = self.input.take().and_then(|i| i.batcher.finish());
                    if let Some(batch) = last {
                        self.set.add_batch(batch, now);
                    }
                    return;
                }
            };
            match pushed {
                Ok(Some(batch)) => {
                    self.set.add_batch(batch, now);
                }
                Ok(None) => {}
                Err(invalid) => {
                    self.input = None;
                    self.set.reject_input(invalid);
                }
            }
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
        loop {
            if let Some(event) = self.set.poll_event() {
                return Some(event);
            }
            self.feed(SystemTime::now());
            if self.set.is_empty() && self.input.is_none() && self.in_flight == 0 {
                return None;
            }
            if self.send_due() {
                continue;
            }
            if let Some(event) = self.set.poll_event() {
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
