//! The one loop: a [`JobSet`] driven on the caller's task, with tokio's clock and timer,
//! up to the connection cap of requests out at once.

use std::pin::Pin;
use std::time::SystemTime;

use bytes::Bytes;
use fullstory_batch::http::Response;
use fullstory_batch::{
    BatchItem, Batcher, Event, EventRequest, ImportReport, JobKey, JobSet, Outcome, RequestId,
    Transmit, TransportError,
};
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, Stream};
use futures_util::{FutureExt, StreamExt};

use crate::client::Client;

type Answer = (RequestId, Result<Response<Bytes>, TransportError>);

/// Items still to be read, checked and batched, a batch whenever the set has room.
struct Input<T> {
    items: Pin<Box<dyn Stream<Item = T> + Send>>,
    batcher: Batcher<T>,
}

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
    input: Option<Input<T>>,
    in_flight: FuturesUnordered<BoxFuture<'static, Answer>>,
    max_in_flight: usize,
}

impl<T: BatchItem> Run<T> {
    pub(crate) fn new(client: Client, set: JobSet<T>) -> Self {
        let max_in_flight = client.max_in_flight();
        Self {
            client,
            set,
            input: None,
            in_flight: FuturesUnordered::new(),
            max_in_flight,
        }
    }

    /// Feeds `items` in as batches of `batch_size`, as the set makes room for them.
    pub(crate) fn with_input(
        mut self,
        items: impl Stream<Item = T> + Send + 'static,
        batch_size: usize,
    ) -> Self {
        self.input = Some(Input {
            items: Box::pin(items),
            batcher: Batcher::new(batch_size),
        });
        self
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
        loop {
            if let Some(event) = self.set.poll_event() {
                return Some(event);
            }
            self.feed().await;
            if self.set.is_empty() && self.input.is_none() && self.in_flight.is_empty() {
                return None;
            }
            self.send_due();
            if let Some(event) = self.set.poll_event() {
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

    /// Hands batches to the set while it has room, until the input ends or is refused.
    async fn feed(&mut self) {
        while self.set.wants_batch() {
            let Some(input) = &mut self.input else {
                return;
            };
            let pushed = match input.items.next().await {
                Some(item) => input.batcher.push(&item),
                None => {
                    let last = self.input.take().and_then(|i| i.batcher.finish());
                    if let Some(batch) = last {
                        self.set.add_batch(batch, SystemTime::now());
                    }
                    return;
                }
            };
            match pushed {
                Ok(Some(batch)) => {
                    self.set.add_batch(batch, SystemTime::now());
                }
                Ok(None) => {}
                Err(invalid) => {
                    self.input = None;
                    self.set.reject_input(invalid);
                }
            }
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
