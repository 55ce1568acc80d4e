//! Waiting for jobs: the core's documented loops, on tokio's clock and timer.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use fullstory_batch::{
    Action, Budget, Error, JobKey, JobRef, JobStatusResponse, Outcome, Policy, Poller,
    ProgressSnapshot, Scheduler, SchedulerAction,
};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::watch;

use crate::client::{Client, request_span};

/// How long from now until `at`; zero when `at` has passed.
pub(crate) fn until(at: SystemTime) -> Duration {
    at.duration_since(SystemTime::now()).unwrap_or_default()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Client {
    /// Waits until `job` ends, polling as `policy` says: the core's [`Poller`] decides
    /// every wait, retry and the outcome; this runs its loop on tokio's timer.
    ///
    /// Each request's timeout is the shorter of the request timeout and the time left to
    /// the policy's deadline. Dropping the future stops waiting at once: nothing is left
    /// running (an open connection goes back to the pool or is closed).
    pub async fn wait(&self, job: &JobRef, policy: Policy) -> Outcome {
        self.drive(job, policy, None).await
    }

    /// Like [`Client::wait`], publishing a [`ProgressSnapshot`] to `progress` before each
    /// request and wait. The sender is dropped when the wait ends, so a receiver's
    /// `changed()` then returns an error. Receivers may come and go; none is needed.
    ///
    /// ```no_run
    /// # async fn run(client: fullstory_batch_hyper::Client, job: fullstory_batch::JobRef) {
    /// use fullstory_batch_hyper::{Policy, ProgressSnapshot};
    /// let (tx, mut rx) = tokio::sync::watch::channel(ProgressSnapshot::default());
    /// let show = async move {
    ///     while rx.changed().await.is_ok() {
    ///         let p = rx.borrow_and_update().clone();
    ///         println!("{} requests, next at {:?}", p.attempts, p.next_poll);
    ///     }
    /// };
    /// let (outcome, ()) = tokio::join!(client.wait_with_progress(&job, Policy::default(), tx), show);
    /// # let _ = outcome;
    /// # }
    /// ```
    pub async fn wait_with_progress(
        &self,
        job: &JobRef,
        policy: Policy,
        progress: watch::Sender<ProgressSnapshot>,
    ) -> Outcome {
        self.drive(job, policy, Some(&progress)).await
    }

    async fn drive(
        &self,
        job: &JobRef,
        policy: Policy,
        progress: Option<&watch::Sender<ProgressSnapshot>>,
    ) -> Outcome {
        let mut poller = Poller::new(job.clone(), policy, SystemTime::now(), self.seed());
        let mut last_error: Option<Error> = None;
        loop {
            let action = poller.poll(SystemTime::now());
            if let Some(tx) = progress {
                tx.send_replace(ProgressSnapshot::new(poller.progress(), last_error.clone()));
            }
            match action {
                Action::Send { deadline } => {
                    let span = request_span(job, Some(poller.progress().attempts));
                    let answer = self.status_within(job, deadline, &span).await;
                    last_error = answer.as_ref().err().cloned();
                    poller.handle_result(answer, SystemTime::now());
                    if let Some(at) = poller.next_due() {
                        span.record("wait_ms", millis(until(at)));
                    }
                }
                Action::Wait(at) => tokio::time::sleep(until(at)).await,
                Action::Done(outcome) => return outcome,
                Action::AwaitResponse => unreachable!(
                    "every request is answered before the poller is polled again, \
                     so it never waits for one"
                ),
            }
        }
    }

    /// Waits for all `jobs` at once, under one request `budget`, on the calling task.
    ///
    /// The core's [`Scheduler`] decides which job to poll when; this runs at most
    /// [`crate::ClientOptions::with_max_connections`] requests at a time in a
    /// `FuturesUnordered` and sleeps on tokio's timer between decisions. No task or
    /// thread is spawned per job: ten thousand jobs cost their pollers' state (a few
    /// hundred bytes each) and the capped connections. A 429 on any job pauses them all
    /// until its `Retry-After` has passed.
    ///
    /// Returns every job with its outcome, in the order given. Dropping the future stops
    /// every request at once.
    pub async fn wait_many(
        &self,
        jobs: impl IntoIterator<Item = JobRef>,
        policy: Policy,
        budget: Budget,
    ) -> Vec<(JobRef, Outcome)> {
        let now = SystemTime::now();
        let mut scheduler = Scheduler::new(policy, self.seed()).with_budget(budget, now);
        // The scheduler forgets a job once it reports it done, so the adapter keeps the
        // key-to-job map itself.
        let mut results: Vec<(JobRef, Option<Outcome>)> = Vec::new();
        let mut slots: HashMap<JobKey, usize> = HashMap::new();
        for job in jobs {
            let key = scheduler.add(job.clone(), now);
            slots.insert(key, results.len());
            results.push((job, None));
        }
        let mut left = results.len();
        let mut in_flight = FuturesUnordered::new();
        let cap = self.max_in_flight();

        while left > 0 {
            let now = SystemTime::now();
            let mut wake = None;
            while in_flight.len() < cap {
                match scheduler.poll(now) {
                    SchedulerAction::Send(key) => {
                        let (attempts, deadline) = scheduler
                            .progress(key)
                            .map(|p| (p.attempts, p.deadline))
                            .unwrap_or_default();
                        let job = results[slots[&key]].0.clone();
                        in_flight.push(async move {
                            let span = request_span(&job, Some(attempts));
                            let answer = self.status_within(&job, deadline, &span).await;
                            (key, answer, span)
                        });
                    }
                    SchedulerAction::Done(key, outcome) => {
                        if let Some(index) = slots.remove(&key) {
                            results[index].1 = Some(outcome);
                            left -= 1;
                        }
                    }
                    SchedulerAction::Wait(at) => {
                        wake = Some(at);
                        break;
                    }
                    SchedulerAction::Idle => break,
                }
            }
            if left == 0 {
                break;
            }
            assert!(
                wake.is_some() || !in_flight.is_empty(),
                "the scheduler is idle with nothing in flight, yet {left} jobs have no outcome"
            );
            let sleep = until(wake.unwrap_or(now));
            tokio::select! {
                Some((key, answer, span)) = in_flight.next(), if !in_flight.is_empty() => {
                    feed_scheduler(&mut scheduler, key, answer, &span);
                    // Take every other answer already in, before deciding again.
                    while let Some(Some((key, answer, span))) = in_flight.next().now_or_never() {
                        feed_scheduler(&mut scheduler, key, answer, &span);
                    }
                }
                () = tokio::time::sleep(sleep), if wake.is_some() => {}
            }
        }
        results
            .into_iter()
            .map(|(job, outcome)| {
                (
                    job,
                    outcome.expect("the loop ends only once every job has an outcome"),
                )
            })
            .collect()
    }
}

fn feed_scheduler(
    scheduler: &mut Scheduler,
    key: JobKey,
    answer: Result<JobStatusResponse, Error>,
    span: &tracing::Span,
) {
    scheduler.handle_result(key, answer, SystemTime::now());
    if let Some(at) = scheduler.poller(key).and_then(Poller::next_due) {
        span.record("wait_ms", millis(until(at)));
    }
}
