//! Waiting for one job: the core's poller loop with `thread::sleep` as the timer.

use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime};

use fullstory_batch::{
    Action, Error, JobRef, Outcome, Policy, Poller, ProgressSnapshot, TransportError, TransportKind,
};
use tracing::debug;

use crate::client::Client;

/// What a [`Waiter`] yields: a snapshot after each answer (or failure), then the outcome.
#[derive(Debug, Clone)]
#[must_use]
pub enum Event {
    /// A request went out and its answer was fed to the poller; the job is not finished.
    Progress(ProgressSnapshot),
    /// Waiting is over; the iterator ends after this.
    Done(Outcome),
}

/// Waits for one job, one blocking step per [`Iterator::next`]: sleeps until the next poll
/// is due, sends it, and yields [`Event::Progress`]; yields [`Event::Done`] last, then `None`.
///
/// Made by [`Client::waiter`]. Dropping it stops waiting. Between two calls to `next` nothing
/// happens, so a caller may print, save [`Waiter::poller`]'s state, or stop.
#[derive(Debug)]
pub struct Waiter<'c> {
    client: &'c Client,
    poller: Poller,
    last_error: Option<Error>,
    finished: bool,
}

impl<'c> Waiter<'c> {
    pub(crate) fn new(client: &'c Client, poller: Poller) -> Self {
        Self {
            client,
            poller,
            last_error: None,
            finished: false,
        }
    }

    /// The core's poller, to read its progress or save its state
    /// ([`Poller::save`]) and resume later with [`Client::resume`].
    pub fn poller(&self) -> &Poller {
        &self.poller
    }

    /// Runs to the end and returns the outcome, dropping progress events.
    pub fn outcome(mut self) -> Outcome {
        for event in self.by_ref() {
            if let Event::Done(outcome) = event {
                return outcome;
            }
        }
        // The outcome was yielded before; the poller keeps it.
        self.poller
            .outcome()
            .cloned()
            .expect("a waiter ends only once its poller has an outcome")
    }

    fn snapshot(&self) -> ProgressSnapshot {
        ProgressSnapshot::new(self.poller.progress(), self.last_error.clone())
    }

    /// Sends the request the poller asked for and feeds back what happened.
    fn send(&mut self, deadline: Option<SystemTime>) {
        let attempt = self.poller.progress().attempts;
        let job = self.poller.job().clone();
        let result = self.client.call(&job, deadline, Some(attempt));
        let now = SystemTime::now();
        self.last_error = result.as_ref().err().cloned();
        self.poller.handle_result(result, now);
    }
}

impl Iterator for Waiter<'_> {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        if self.finished {
            return None;
        }
        loop {
            let now = SystemTime::now();
            match self.poller.poll(now) {
                Action::Send { deadline } => {
                    self.send(deadline);
                    if self.poller.is_done() {
                        continue; // report the outcome right away
                    }
                    return Some(Event::Progress(self.snapshot()));
                }
                Action::Wait(until) => {
                    let wait = until.duration_since(now).unwrap_or(Duration::ZERO);
                    debug!(
                        job = %self.poller.job().id,
                        wait_ms = wait.as_millis() as u64,
                        "waiting before the next poll"
                    );
                    std::thread::sleep(wait);
                }
                Action::AwaitResponse => {
                    // Cannot happen: every request is answered before the next poll. Should
                    // it ever, tell the poller the request was lost rather than spin.
                    debug_assert!(false, "poller awaits an answer the driver never owed");
                    let lost = TransportError::new(TransportKind::Other);
                    self.poller.handle_transport_error(lost, now);
                }
                Action::Done(outcome) => {
                    self.finished = true;
                    return Some(Event::Done(outcome));
                }
            }
        }
    }
}

impl std::iter::FusedIterator for Waiter<'_> {}

impl Client {
    /// Waits for `job` under `policy` and returns how it ended. Blocks the thread: it sleeps
    /// between polls and each request is bounded by the request timeout and by the policy's
    /// deadline, so with [`Policy::timeout`] set the whole wait is bounded too.
    ///
    /// The same as `self.waiter(job.clone(), policy).outcome()`.
    pub fn wait(&self, job: &JobRef, policy: Policy) -> Outcome {
        self.waiter(job.clone(), policy).outcome()
    }

    /// Waits for `job` step by step: an iterator of [`Event`]s, one per request, ending
    /// with [`Event::Done`]. The first request goes out on the first `next`.
    pub fn waiter(&self, job: JobRef, policy: Policy) -> Waiter<'_> {
        let poller = Poller::new(job, policy, SystemTime::now(), random_seed());
        Waiter::new(self, poller)
    }

    /// Waits with a poller made elsewhere, such as one restored with [`Poller::restore`]
    /// after a restart.
    pub fn resume(&self, poller: Poller) -> Waiter<'_> {
        Waiter::new(self, poller)
    }
}

/// A seed for the poll jitter that differs between pollers and processes, so that clients
/// started together drift apart. std's `RandomState` is seeded randomly per process and
/// changes with every instance.
pub(crate) fn random_seed() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_differ() {
        assert_ne!(random_seed(), random_seed());
    }
}
