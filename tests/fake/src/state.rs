//! The server's mutable state: jobs, idempotency keys, rate-limit buckets,
//! in-progress accounting and fault scripts. Lives behind one mutex that is
//! never held across an await.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::Duration;

use serde_json::Value;

use crate::codec::job_id;
use crate::fault::ScriptState;
use crate::model::{Encoding, JobStatus, OrgLimits, Resource};
use crate::validate::ItemFailure;

/// One import job.
#[derive(Debug)]
pub(crate) struct Job {
    pub id: String,
    /// Creation order, from 0 (ids are random-looking, so they do not sort).
    pub number: u64,
    pub resource: Resource,
    /// Each item as its compact JSON text, parsed again only for the page that shows it:
    /// a `Value` tree costs about 15 times the text (an event of 150 bytes took some
    /// 2.3 KB), and a fake holding 20 million events as trees ran out of memory.
    pub items: Vec<Box<str>>,
    /// Failed items by index, in index order.
    pub failed: Vec<(usize, ItemFailure)>,
    pub created: Duration,
    pub finishes: Duration,
    pub idempotency_key: Option<String>,
    /// The status shown in the create answer, replayed for idempotent retries.
    pub first_status: JobStatus,
}

impl Job {
    pub fn status(&self, now: Duration, encoding: &Encoding) -> JobStatus {
        if now >= self.finishes {
            if self.failed.is_empty() {
                JobStatus::Completed
            } else {
                JobStatus::Failed
            }
        } else if encoding.pending_first && now < self.created + encoding.pending_time {
            JobStatus::Pending
        } else {
            JobStatus::Processing
        }
    }

    /// Item `index`, parsed from its stored text.
    pub fn item(&self, index: usize) -> Value {
        serde_json::from_str(&self.items[index]).expect("stored from a Value, so valid JSON")
    }

    pub fn imports(&self) -> usize {
        self.items.len() - self.failed.len()
    }

    /// Indexes of the imported items, in order.
    pub fn imported_indexes(&self) -> impl Iterator<Item = usize> + '_ {
        let mut failed = self.failed.iter().map(|(i, _)| *i).peekable();
        (0..self.items.len()).filter(move |&i| {
            if failed.peek() == Some(&i) {
                failed.next();
                false
            } else {
                true
            }
        })
    }
}

/// A new job's content, prepared outside the lock.
pub(crate) struct NewJob {
    pub resource: Resource,
    /// As [`Job::items`]; see [`stored`].
    pub items: Vec<Box<str>>,
    pub failed: Vec<(usize, ItemFailure)>,
    pub idempotency: Option<(String, u64)>,
}

/// Items as [`Job`] keeps them: each one's compact JSON text.
pub(crate) fn stored(items: Vec<Value>) -> Vec<Box<str>> {
    items
        .into_iter()
        .map(|item| item.to_string().into_boxed_str())
        .collect()
}

/// What a create call came to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Created {
    /// A new job with this id.
    New(String),
    /// An idempotent retry: the existing job.
    Replay(String),
    /// The idempotency key was used with another body or resource.
    KeyConflict,
    /// Org limits reached; retry after this many seconds.
    Limited(u64),
}

struct IdempotencyEntry {
    fingerprint: u64,
    resource: Resource,
    job: String,
    at: Duration,
}

struct Bucket {
    tokens: f64,
    at: Duration,
}

/// Whole seconds to wait for `wait`, at least 1 (as `Retry-After` needs).
pub(crate) fn retry_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

#[derive(Default)]
pub(crate) struct State {
    pub jobs: HashMap<String, Job>,
    next_job: u64,
    /// Mixed into every job id (see `codec::job_id`).
    pub id_salt: u64,
    idempotency: HashMap<String, IdempotencyEntry>,
    buckets: HashMap<String, Bucket>,
    /// Unfinished jobs by finish time, with their item counts.
    running: BinaryHeap<Reverse<(Duration, usize)>>,
    running_items: usize,
    /// Finish times of the latest `concurrent_jobs` jobs, oldest first.
    slots: VecDeque<Duration>,
    pub scripts: Vec<ScriptState>,
    /// How often each request fingerprint was seen, for random faults.
    pub random_seen: HashMap<u64, u64>,
}

impl State {
    /// Takes one token from `key`'s bucket, or says how long until one is there.
    pub fn take_token(
        &mut self,
        key: &str,
        now: Duration,
        rate: f64,
        burst: u32,
    ) -> Result<(), u64> {
        let burst = f64::from(burst.max(1));
        let bucket = self.buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let refill = now.saturating_sub(bucket.at).as_secs_f64() * rate;
        bucket.tokens = (bucket.tokens + refill).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(retry_secs(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / rate,
            )))
        }
    }

    fn settle(&mut self, now: Duration) {
        while let Some(Reverse((finish, items))) = self.running.peek().copied() {
            if finish > now {
                break;
            }
            self.running.pop();
            self.running_items -= items;
        }
    }

    /// Time until the next unfinished job finishes.
    fn next_finish(&self, now: Duration) -> Duration {
        self.running
            .peek()
            .map_or(Duration::from_secs(1), |Reverse((f, _))| {
                f.saturating_sub(now)
            })
    }

    fn over_limits(&mut self, now: Duration, items: usize, limits: &OrgLimits) -> Option<u64> {
        self.settle(now);
        let jobs_full = self.running.len() >= limits.max_in_progress_jobs;
        let items_full = self.running_items.saturating_add(items) > limits.max_in_progress_items;
        (jobs_full || items_full).then(|| retry_secs(self.next_finish(now)))
    }

    fn replay(&mut self, now: Duration, job: &NewJob, ttl: Duration) -> Option<Created> {
        let (key, fingerprint) = job.idempotency.as_ref()?;
        let entry = self
            .idempotency
            .get(key)
            .filter(|e| now.saturating_sub(e.at) < ttl)?;
        if entry.fingerprint == *fingerprint && entry.resource == job.resource {
            Some(Created::Replay(entry.job.clone()))
        } else {
            Some(Created::KeyConflict)
        }
    }

    /// Creates a job (or replays or refuses). `check_limits` is off for jobs
    /// inserted directly by tests.
    pub fn create(
        &mut self,
        now: Duration,
        job: NewJob,
        cfg: &JobTiming,
        check_limits: bool,
    ) -> Created {
        if let Some(answer) = self.replay(now, &job, cfg.idempotency_ttl) {
            return answer;
        }
        if check_limits && let Some(secs) = self.over_limits(now, job.items.len(), &cfg.limits) {
            return Created::Limited(secs);
        }
        self.settle(now);
        let number = self.next_job;
        let id = job_id(self.id_salt, number);
        self.next_job += 1;
        let finishes = self.schedule(now, cfg.limits.concurrent_jobs, cfg.processing);
        self.running.push(Reverse((finishes, job.items.len())));
        self.running_items += job.items.len();
        let key = job.idempotency.map(|(key, fingerprint)| {
            let entry = IdempotencyEntry {
                fingerprint,
                resource: job.resource,
                job: id.clone(),
                at: now,
            };
            self.idempotency.insert(key.clone(), entry);
            key
        });
        let mut stored = Job {
            id: id.clone(),
            number,
            resource: job.resource,
            items: job.items,
            failed: job.failed,
            created: now,
            finishes,
            idempotency_key: key,
            first_status: JobStatus::Processing,
        };
        stored.first_status = stored.status(now, &cfg.encoding);
        self.jobs.insert(id.clone(), stored);
        Created::New(id)
    }

    /// When a new job finishes: `processing` after it gets a slot, which is
    /// now or when the oldest of the last `concurrent` jobs finishes. Finish
    /// times only grow (constant processing time, monotonic clock), so the
    /// ring stays sorted.
    fn schedule(&mut self, now: Duration, concurrent: usize, processing: Duration) -> Duration {
        if concurrent == usize::MAX {
            return now + processing;
        }
        let start = if self.slots.len() >= concurrent.max(1) {
            self.slots.pop_front().unwrap_or(now).max(now)
        } else {
            now
        };
        self.slots.push_back(start + processing);
        start + processing
    }
}

/// The settings job creation needs.
pub(crate) struct JobTiming {
    pub processing: Duration,
    pub limits: OrgLimits,
    pub encoding: Encoding,
    pub idempotency_ttl: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn timing(limits: OrgLimits) -> JobTiming {
        JobTiming {
            processing: Duration::from_secs(10),
            limits,
            encoding: Encoding::default(),
            idempotency_ttl: Duration::from_secs(86_400),
        }
    }

    fn new_job(n: usize, key: Option<(&str, u64)>) -> NewJob {
        NewJob {
            resource: Resource::Events,
            items: stored(vec![json!({"name": "x"}); n]),
            failed: Vec::new(),
            idempotency: key.map(|(k, f)| (k.to_owned(), f)),
        }
    }

    fn create(state: &mut State, now: u64, job: NewJob, t: &JobTiming) -> Created {
        state.create(Duration::from_secs(now), job, t, true)
    }

    #[test]
    fn bucket_refills_with_time() {
        let mut state = State::default();
        let t0 = Duration::ZERO;
        assert!(state.take_token("k", t0, 2.0, 2).is_ok());
        assert!(state.take_token("k", t0, 2.0, 2).is_ok());
        assert_eq!(state.take_token("k", t0, 2.0, 2), Err(1));
        assert!(state.take_token("other", t0, 2.0, 2).is_ok());
        assert!(
            state
                .take_token("k", Duration::from_millis(500), 2.0, 2)
                .is_ok()
        );
        assert_eq!(
            state.take_token("k", Duration::from_millis(500), 0.1, 2),
            Err(10)
        );
    }

    #[test]
    fn idempotency_replays_and_conflicts() {
        let t = timing(OrgLimits::default());
        let mut state = State::default();
        let Created::New(id) = create(&mut state, 0, new_job(1, Some(("k", 1))), &t) else {
            panic!()
        };
        assert_eq!(
            create(&mut state, 1, new_job(1, Some(("k", 1))), &t),
            Created::Replay(id)
        );
        assert_eq!(
            create(&mut state, 1, new_job(1, Some(("k", 2))), &t),
            Created::KeyConflict
        );
        // Keys may be reused after the TTL.
        assert!(matches!(
            create(&mut state, 90_000, new_job(1, Some(("k", 2))), &t),
            Created::New(_)
        ));
        assert_eq!(state.jobs.len(), 2);
    }

    #[test]
    fn org_limits_and_slots() {
        let limits = OrgLimits {
            concurrent_jobs: 2,
            max_in_progress_jobs: 3,
            max_in_progress_items: 10,
        };
        let t = timing(limits);
        let mut state = State::default();
        let ids: Vec<String> = (0..3)
            .map(|_| match create(&mut state, 0, new_job(1, None), &t) {
                Created::New(id) => id,
                other => panic!("{other:?}"),
            })
            .collect();
        // The third job waits for a slot: it finishes 10 s after the first.
        assert_eq!(state.jobs[&ids[2]].finishes, Duration::from_secs(20));
        assert_eq!(
            create(&mut state, 1, new_job(1, None), &t),
            Created::Limited(9)
        );
        // Once two jobs finished, there is room again, but not for 11 items.
        assert_eq!(
            create(&mut state, 10, new_job(10, None), &t),
            Created::Limited(10)
        );
        assert!(matches!(
            create(&mut state, 10, new_job(2, None), &t),
            Created::New(_)
        ));
    }

    #[test]
    fn imported_indexes_skip_failures() {
        let failure = ItemFailure {
            code: "x",
            message: "y".into(),
        };
        let job = Job {
            id: "j".into(),
            number: 0,
            resource: Resource::Users,
            items: stored(vec![json!({}); 5]),
            failed: vec![(1, failure.clone()), (4, failure)],
            created: Duration::ZERO,
            finishes: Duration::from_secs(1),
            idempotency_key: None,
            first_status: JobStatus::Processing,
        };
        assert_eq!(job.imported_indexes().collect::<Vec<_>>(), [0, 2, 3]);
        assert_eq!(job.imports(), 3);
        let enc = Encoding {
            pending_first: true,
            ..Encoding::default()
        };
        assert_eq!(job.status(Duration::ZERO, &enc), JobStatus::Pending);
        assert_eq!(
            job.status(Duration::from_millis(600), &enc),
            JobStatus::Processing
        );
        assert_eq!(job.status(Duration::from_secs(1), &enc), JobStatus::Failed);
    }
}
