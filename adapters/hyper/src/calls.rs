//! What a caller asks for, each a short constructor of the core's [`JobSet`] handed to the
//! one loop ([`Run`]).

use std::time::SystemTime;

use fullstory_batch::{
    Batch, BatchItem, Budget, CreateError, Event, IdempotencyKey, ImportReport, JobRef, JobSet,
    Outcome, PageKind, Pages, Policy, Progress, ValidationError,
};
use futures_util::StreamExt;
use futures_util::stream::Stream;
use tokio::sync::watch;

use crate::client::Client;
use crate::drive::Run;

impl Client {
    /// Waits until `job` ends, polling as `policy` says: the core decides every wait, retry
    /// and the outcome; this runs its loop on tokio's timer.
    ///
    /// Each request's timeout is the shorter of the request timeout and the time left to
    /// the policy's deadline. Dropping the future stops waiting at once.
    pub async fn wait(&self, job: &JobRef, policy: Policy) -> Outcome {
        self.watch(job.clone(), policy).outcome().await
    }

    /// Waits for `job` step by step: a run of its events (a `Progress` after each answer,
    /// then `Done`); see [`Run::into_stream`].
    pub fn watch(&self, job: JobRef, policy: Policy) -> Run {
        let now = SystemTime::now();
        let mut set = self.set(policy, now);
        set.add_job(job, now);
        Run::new(self.clone(), set)
    }

    /// Like [`Client::wait`], publishing each [`Progress`] on `progress`. The sender is
    /// dropped when the wait ends, so a receiver's `changed()` then returns an error.
    ///
    /// ```no_run
    /// # async fn run(client: fullstory_batch_hyper::Client, job: fullstory_batch::JobRef) {
    /// use fullstory_batch_hyper::{Policy, Progress};
    /// let (tx, mut rx) = tokio::sync::watch::channel(Progress::default());
    /// let show = async move {
    ///     while rx.changed().await.is_ok() {
    ///         let p = rx.borrow_and_update().clone();
    ///         println!("{} requests, next at {:?}", p.attempts, p.next_request);
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
        progress: watch::Sender<Progress>,
    ) -> Outcome {
        let mut run = self.watch(job.clone(), policy);
        loop {
            match run.next().await {
                Some((_, Event::Progress(p))) => {
                    progress.send_replace(p);
                }
                Some((_, Event::Done(outcome))) => return outcome,
                Some(_) => {}
                None => unreachable!("a run with a job ends with its Done"),
            }
        }
    }

    /// Waits for every job in `jobs` under one request `budget`, on the calling task: a run
    /// of every job's events, each job's `Done` as it ends (keys count from 0 in the order
    /// given; [`Run::outcomes`] collects them). At most the connection cap of requests are
    /// out at once, and no task is spawned per job. A 429 on any job pauses them all.
    pub fn wait_many(
        &self,
        jobs: impl IntoIterator<Item = JobRef>,
        policy: Policy,
        budget: Budget,
    ) -> Run {
        let now = SystemTime::now();
        let mut set = self.set(policy, now).with_budget(budget, now);
        for job in jobs {
            set.add_job(job, now);
        }
        Run::new(self.clone(), set)
    }

    /// Imports `items` (1 to 50,000 events or users): creates the job with an idempotency key
    /// (yours, or a fresh one kept across retries), waits, and reads every imported item and
    /// every failure. See [`Client::importer`] to stream instead of holding it all.
    ///
    /// # Errors
    /// A [`ValidationError`] naming the item and field at fault; nothing is sent then.
    pub async fn import<T: BatchItem>(
        &self,
        items: &[T],
        key: Option<IdempotencyKey>,
        policy: Policy,
    ) -> Result<ImportReport<T>, ValidationError> {
        Ok(self.importer(items, key, policy)?.report().await)
    }

    /// The same import as [`Client::import`], as a run of events.
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
        Ok(Run::new(self.clone(), set))
    }

    /// Creates a job for `items` (1 to 50,000 events or users) and returns it as soon as it
    /// exists: nothing is waited for or read (see [`Client::wait`] or
    /// [`Client::resume_import`] for later). The create is retried as `policy` says, with
    /// the idempotency key (yours, or a fresh one kept across retries) on every try, so a
    /// retry never makes a second job. Ends when the create succeeds or is given up;
    /// dropping the future stops at once.
    ///
    /// # Errors
    /// [`CreateError::Invalid`] naming the item and field at fault (nothing is sent then);
    /// [`CreateError::Stopped`] when the create never succeeded (a 401, too many errors in a
    /// row, the deadline), with why.
    pub async fn create<T: BatchItem>(
        &self,
        items: &[T],
        key: Option<IdempotencyKey>,
        policy: Policy,
    ) -> Result<JobRef, CreateError> {
        let batch = Batch::new(items, key)?;
        let now = SystemTime::now();
        let mut set: JobSet<T> = self.set(policy, now);
        set.add_create_only(batch, now);
        let mut run = Run::new(self.clone(), set);
        let mut events = Vec::new();
        while let Some((_, event)) = run.next().await {
            events.push(event);
        }
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
    /// with at most `max_in_progress` jobs in progress at once, all on the calling task: a
    /// run of every batch's events (a batch's key is its index). Items are read, checked
    /// and serialised batch by batch as the jobs make room, so memory holds a few batches,
    /// never the input. An invalid item ends the input: its batch reports `Done(Stopped)`
    /// with [`fullstory_batch::StopReason::InvalidInput`], and the batches already sent run
    /// on. A plain `Vec` is a stream through `futures_util::stream::iter`.
    pub fn import_all<T: BatchItem>(
        &self,
        items: impl Stream<Item = T> + Send + 'static,
        batch_size: usize,
        max_in_progress: usize,
        policy: Policy,
    ) -> Run<T> {
        self.import_from(items.map(Ok), batch_size, max_in_progress, policy)
            .with_pages(Pages::All)
    }

    /// [`Client::import_all`] for items read as they come (a file, a socket): an `Err`
    /// refuses the input at that item, as an invalid item does (the batch that would hold
    /// it is never sent; earlier batches run to their end). Pages: only failures are read
    /// (the counts come from the final status); see [`Run::with_pages`] to read imported
    /// items too, and [`Run::with_journal`] to import exactly once across crashes.
    pub fn import_from<T: BatchItem>(
        &self,
        items: impl Stream<Item = Result<T, ValidationError>> + Send + 'static,
        batch_size: usize,
        max_in_progress: usize,
        policy: Policy,
    ) -> Run<T> {
        let now = SystemTime::now();
        let set = self
            .set(policy, now)
            .with_max_in_progress(max_in_progress)
            .with_pages(Pages::Errors);
        Run::new(self.clone(), set).with_input(items, batch_size)
    }

    /// Drives a set made elsewhere (restored after a restart, say).
    pub fn run<T: BatchItem>(&self, set: JobSet<T>) -> Run<T> {
        Run::new(self.clone(), set)
    }

    fn read<T: BatchItem>(&self, job: JobRef, pages: Pages, policy: Policy) -> Run<T> {
        let now = SystemTime::now();
        let mut set = self.set(policy, now).with_pages(pages);
        set.add_job(job, now);
        Run::new(self.clone(), set)
    }

    fn set<T: BatchItem>(&self, policy: Policy, now: SystemTime) -> JobSet<T> {
        JobSet::new(self.config().clone(), policy, now, self.seed())
    }
}
