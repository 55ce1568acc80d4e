//! Waiting for many jobs: the core's scheduler loop over a small fixed pool of workers.

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use fullstory_batch::{
    Budget, Error, JobKey, JobRef, JobStatusResponse, Outcome, Policy, Scheduler, SchedulerAction,
    TransportError, TransportKind,
};
use tracing::debug;

use crate::client::Client;
use crate::wait::random_seed;

/// A request for a worker to send.
struct Work {
    key: JobKey,
    job: JobRef,
    deadline: Option<SystemTime>,
    attempt: u32,
}

/// What a worker got back.
type Answer = (JobKey, Result<JobStatusResponse, Error>);

impl Client {
    /// Waits for every job in `jobs` under one shared request `budget`, each following
    /// `policy`, and returns each job with its outcome, in the order given.
    ///
    /// The core's [`Scheduler`] decides what to send when; requests go out on a fixed pool
    /// of `min(max_idle_connections, 8, jobs)` worker threads (never one thread per job),
    /// fed over a channel while this thread sleeps until the next poll is due or an answer
    /// arrives. A 429 on any job pauses them all until its `Retry-After` has passed. With
    /// [`Policy::timeout`] set, each job's wait (requests included) ends by its deadline.
    pub fn wait_many(
        &self,
        jobs: impl IntoIterator<Item = JobRef>,
        policy: Policy,
        budget: Budget,
    ) -> Vec<(JobRef, Outcome)> {
        let jobs: Vec<JobRef> = jobs.into_iter().collect();
        if jobs.is_empty() {
            return Vec::new();
        }
        let now = SystemTime::now();
        let mut scheduler = Scheduler::new(policy, random_seed()).with_budget(budget, now);
        let positions: HashMap<JobKey, usize> = jobs
            .iter()
            .enumerate()
            .map(|(i, job)| (scheduler.add(job.clone(), now), i))
            .collect();
        let workers = self.options.workers(jobs.len());
        let span = tracing::debug_span!("fullstory_batch.wait_many", jobs = jobs.len(), workers);
        let _entered = span.enter();

        let mut outcomes: Vec<Option<Outcome>> = vec![None; jobs.len()];
        let (work_tx, work_rx) = mpsc::channel::<Work>();
        let work_rx = Mutex::new(work_rx);
        std::thread::scope(|scope| {
            let (answer_tx, answer_rx) = mpsc::channel::<Answer>();
            for n in 0..workers {
                let answers = answer_tx.clone();
                let work = &work_rx;
                std::thread::Builder::new()
                    .name(format!("fullstory-batch-{n}"))
                    .spawn_scoped(scope, move || worker(self, work, answers))
                    .expect("the OS can start a few threads");
            }
            drop(answer_tx);
            let mut driver = Driver {
                scheduler: &mut scheduler,
                work: work_tx,
                answers: answer_rx,
                workers,
                in_flight: 0,
            };
            driver.run(|key, outcome| {
                if let Some(&i) = positions.get(&key) {
                    outcomes[i] = Some(outcome);
                }
            });
            // Dropping the driver closes the work channel: the workers end.
        });

        jobs.into_iter()
            .zip(outcomes)
            .map(|(job, outcome)| {
                // Every job ends with an outcome unless a worker died, which is a bug that
                // `thread::scope` has already turned into a panic.
                let outcome = outcome.unwrap_or_else(|| {
                    Outcome::GaveUp(Error::Transport(TransportError::new(TransportKind::Other)))
                });
                (job, outcome)
            })
            .collect()
    }
}

/// Takes requests off the shared channel, one at a time, until it closes.
fn worker(client: &Client, work: &Mutex<Receiver<Work>>, answers: Sender<Answer>) {
    loop {
        // The lock is held only while waiting for the next request, not while sending it.
        let next = work.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(Work {
            key,
            job,
            deadline,
            attempt,
        }) = next
        else {
            return;
        };
        let result = client.call(&job, deadline, Some(attempt));
        if answers.send((key, result)).is_err() {
            return;
        }
    }
}

/// The scheduler's loop (see [`Scheduler`]) on this thread.
struct Driver<'s> {
    scheduler: &'s mut Scheduler,
    work: Sender<Work>,
    answers: Receiver<Answer>,
    workers: usize,
    in_flight: usize,
}

impl Driver<'_> {
    fn run(&mut self, mut done: impl FnMut(JobKey, Outcome)) {
        loop {
            let wake = self.start_due(&mut done);
            if self.in_flight == 0 {
                match wake {
                    // Nothing out: sleep until the next poll or token.
                    Some(at) => {
                        let wait = until(at);
                        debug!(
                            wait_ms = wait.as_millis() as u64,
                            "waiting before the next poll"
                        );
                        std::thread::sleep(wait);
                        continue;
                    }
                    // Idle with nothing out: every job has finished.
                    None => return,
                }
            }
            let answer = match wake {
                Some(at) => match self.answers.recv_timeout(until(at)) {
                    Ok(answer) => answer,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return,
                },
                None => match self.answers.recv() {
                    Ok(answer) => answer,
                    Err(_) => return,
                },
            };
            self.feed(answer);
            while let Ok(answer) = self.answers.try_recv() {
                self.feed(answer);
            }
        }
    }

    /// Hands out every due request while a worker is free and reports finished jobs.
    /// Returns when the scheduler wants to be asked again, if it said.
    fn start_due(&mut self, done: &mut impl FnMut(JobKey, Outcome)) -> Option<SystemTime> {
        while self.in_flight < self.workers {
            match self.scheduler.poll(SystemTime::now()) {
                SchedulerAction::Send(key) => self.send(key),
                SchedulerAction::Done(key, outcome) => done(key, outcome),
                SchedulerAction::Wait(at) => return Some(at),
                SchedulerAction::Idle => return None,
            }
        }
        None
    }

    fn send(&mut self, key: JobKey) {
        let (job, deadline, attempt) = match (self.scheduler.job(key), self.scheduler.progress(key))
        {
            (Some(job), Some(progress)) => (job.clone(), progress.deadline, progress.attempts),
            // The key came from the scheduler this instant; it cannot be gone.
            _ => return,
        };
        let work = Work {
            key,
            job,
            deadline,
            attempt,
        };
        if self.work.send(work).is_ok() {
            self.in_flight += 1;
        } else {
            // Every worker is gone (only after a panic): report the request as lost.
            let lost = TransportError::new(TransportKind::Other);
            self.scheduler
                .handle_transport_error(key, lost, SystemTime::now());
        }
    }

    fn feed(&mut self, (key, result): Answer) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.scheduler.handle_result(key, result, SystemTime::now());
    }
}

/// The time from now until `at`, zero when it has passed.
fn until(at: SystemTime) -> Duration {
    at.duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
}
