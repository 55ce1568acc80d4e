//! What a caller asks for, each a short constructor of the core's [`JobSet`] handed to the
//! one loop ([`Run`]).

use std::hash::{BuildHasher, Hasher};
use std::time::SystemTime;

use fullstory_batch::{
    Batch, BatchItem, Budget, CreateError, IdempotencyKey, ImportReport, JobRef, JobSet, Outcome,
    PageKind, Pages, Policy, ValidationError,
};

use crate::client::Client;
use crate::drive::Run;

impl Client {
    /// Waits for `job` under `policy` and returns how it ended. Blocks the thread: it sleeps
    /// between polls, and each request is bounded by the request timeout and by the
    /// policy's deadline, so with [`Policy::timeout`] set the whole wait is bounded too.
    pub fn wait(&self, job: &JobRef, policy: Policy) -> Outcome {
        self.watch(job.clone(), policy).outcome()
    }

    /// Waits for `job` step by step: an iterator of its events (a `Progress` after each
    /// answer, then `Done`). The first request goes out on the first `next`, on this thread.
    pub fn watch(&self, job: JobRef, policy: Policy) -> Run {
        let now = SystemTime::now();
        let mut set = self.set(policy, now);
        set.add_job(job, now);
        Run::new(self.clone(), set, 1)
    }

    /// Waits for every job in `jobs` under one request `budget`: an iterator of every job's
    /// events, each job's `Done` as it ends (keys count from 0 in the order given; see
    /// [`Run::outcomes`] to collect them). A 429 on any job pauses them all. Requests go out
    /// on `min(max_connections, 8)` worker threads, never one thread per job.
    pub fn wait_many(
        &self,
        jobs: impl IntoIterator<Item = JobRef>,
        policy: Policy,
        budget: Budget,
    ) -> Run {
        let now = SystemTime::now();
        let mut set = self.set(policy, now).with_budget(budget, now);
        let mut count = 0;
        for job in jobs {
            set.add_job(job, now);
            count += 1;
        }
        Run::new(self.clone(), set, self.options.workers(count))
    }

    /// Imports `items` (1 to 50,000 events or users): creates the job with an idempotency key
    /// (yours, or a fresh one kept across retries), waits, and reads every imported item and
    /// every failure. Blocks until done; see [`Client::importer`] to stream.
    ///
    /// # Errors
    /// A [`ValidationError`] naming the item and field at fault; nothing is sent then.
    pub fn import<T: BatchItem>(
        &self,
        items: &[T],
        key: Option<IdempotencyKey>,
        policy: Policy,
    ) -> Result<ImportReport<T>, ValidationError> {
        Ok(self.importer(items, key, policy)?.report())
    }

    /// The same import as [`Client::import`], as an iterator of events.
    ///
    /// # Errors
    /// A [`ValidationError`] naming the item and field at fault; nothing is sent then.
    pub fn importer<T: BatchItem>(
        &self,
        items: &[T],
        key: Option<IdempotencyKey>,
        policy: Policy,
    ) -> Result<Run<T>, ValidationError> {
        let batch = Batch::new(items, key)?;
        let now = SystemTime::now();
        let mut set = self.set(policy, now).with_pages(Pages::All);
        set.add_batch(batch, now);
        Ok(Run::new(self.clone(), set, 1))
    }

    /// Creates a job for `items` (1 to 50,000 events or users) and returns it as soon as it
    /// exists: nothing is waited for or read (see [`Client::wait`] or
    /// [`Client::resume_import`] for later). The create is retried as `policy` says, with
    /// the idempotency key (yours, or a fresh one kept across retries) on every try, so a
    /// retry never makes a second job. Blocks until the create succeeds or is given up.
    ///
    /// # Errors
    /// [`CreateError::Invalid`] naming the item and field at fault (nothing is sent then);
    /// [`CreateError::Stopped`] when the create never succeeded (a 401, too many errors in a
    /// row, the deadline), with why.
    pub fn create<T: BatchItem>(
        &self,
        items: &[T],
        key: Option<IdempotencyKey>,
        policy: Policy,
    ) -> Result<JobRef, CreateError> {
        let batch = Batch::new(items, key)?;
        let now = SystemTime::now();
        let mut set: JobSet<T> = self.set(policy, now);
        set.add_create_only(batch, now);
        let events = Run::new(self.clone(), set, 1).map(|(_, event)| event);
        CreateError::collect(events)
            .expect("a create-only run ends with its Done, after its Created")
    }

    /// Picks up an import whose job exists: waits for it, then reads its pages.
    pub fn resume_import<T: BatchItem>(&self, job: JobRef, policy: Policy) -> Run<T> {
        self.read(job, Pages::All, policy)
    }

    /// Reads one kind of page of an existing job (waiting for it to end first), streamed.
    pub fn pages<T: BatchItem>(&self, job: JobRef, kind: PageKind, policy: Policy) -> Run<T> {
        let pages = match kind {
            PageKind::Imports => Pages::Imports,
            PageKind::Errors => Pages::Errors,
        };
        self.read(job, pages, policy)
    }

    /// Imports any number of items as batches of at most `batch_size` (capped at 50,000),
    /// with at most `max_in_progress` jobs in progress at once, as an iterator of every
    /// batch's events (a batch's key is its index). Items are read, checked and serialised
    /// batch by batch as the jobs make room, so memory holds a few batches, never the input.
    /// An invalid item ends the input: its batch reports `Done(Stopped)` with
    /// [`fullstory_batch::StopReason::InvalidInput`], and the batches already sent run on.
    pub fn import_all<T: BatchItem>(
        &self,
        items: impl IntoIterator<Item = T, IntoIter: 'static>,
        batch_size: usize,
        max_in_progress: usize,
        policy: Policy,
    ) -> Run<T> {
        let items = items.into_iter().map(Ok);
        self.import_from(items, batch_size, max_in_progress, policy)
            .with_pages(Pages::All)
    }

    /// [`Client::import_all`] for items read as they come (a file, a socket): an `Err`
    /// refuses the input at that item, as an invalid item does (the batch that would hold
    /// it is never sent; earlier batches run to their end). Pages: only failures are read
    /// (the counts come from the final status); see [`Run::with_pages`] to read imported
    /// items too, and [`Run::with_journal`] to import exactly once across crashes.
    pub fn import_from<T: BatchItem>(
        &self,
        items: impl IntoIterator<Item = Result<T, ValidationError>, IntoIter: 'static>,
        batch_size: usize,
        max_in_progress: usize,
        policy: Policy,
    ) -> Run<T> {
        let now = SystemTime::now();
        let set = self
            .set(policy, now)
            .with_max_in_progress(max_in_progress)
            .with_pages(Pages::Errors);
        let workers = self.options.workers(max_in_progress);
        Run::new(self.clone(), set, workers).with_input(items, batch_size)
    }

    /// Drives a set made elsewhere (restored after a restart, say), with at most
    /// `max_in_flight` requests out at once (and no more than the client's worker cap,
    /// [`crate::ClientOptions::with_max_connections`]).
    pub fn run<T: BatchItem>(&self, set: JobSet<T>, max_in_flight: usize) -> Run<T> {
        Run::new(self.clone(), set, self.options.workers(max_in_flight))
    }

    fn read<T: BatchItem>(&self, job: JobRef, pages: Pages, policy: Policy) -> Run<T> {
        let now = SystemTime::now();
        let mut set = self.set(policy, now).with_pages(pages);
        set.add_job(job, now);
        Run::new(self.clone(), set, 1)
    }

    fn set<T: BatchItem>(&self, policy: Policy, now: SystemTime) -> JobSet<T> {
        let seed = self.options.jitter_seed().unwrap_or_else(random_seed);
        JobSet::new(self.config.clone(), policy, now, seed)
    }
}

/// A seed for the poll jitter that differs between runs and processes, so that clients
/// started together drift apart. std's `RandomState` is seeded randomly per process and
/// changes with every instance.
fn random_seed() -> u64 {
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
