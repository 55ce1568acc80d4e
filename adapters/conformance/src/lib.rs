//! The conformance suite: every check an adapter of `fullstory-batch` must pass, written
//! once, run against each adapter over real sockets to the fake server.
//!
//! # Why a suite
//! The core decides everything (statuses, retries, waits, deadlines, budgets); an adapter
//! only sends what `poll_transmit` gives and hands back what came. What *can* differ
//! between adapters is the I/O: how a failure is classified (refused → `Connect`, reset
//! mid-body → `Reset`, stall → `Timeout`, untrusted certificate → `Tls`), whether the
//! request timeout and a [`fullstory_batch::Transmit`]'s deadline really cut a request,
//! whether a 2xx body over the limit is refused (announced by `Content-Length`, or growing
//! while read), whether extra roots are trusted, that redirects are never followed, that
//! the connection cap holds, that error statuses reach the core with their body and
//! `Retry-After`, and that the key never shows in a `Debug`, an error or a trace. Those,
//! and the end-to-end wiring that reads the same through any adapter (a wait through
//! faults, `wait_many`, an import), are checked here, once.
//!
//! What is *not* here: checks of a decision the core makes (the poll schedule, backoff,
//! budget arithmetic, when a deadline passes). Those run on a simulated clock in
//! `core/tests/`; an adapter test that slept on a real clock to check them proved nothing
//! the core's own tests do not. Each adapter's own `tests/` keep what is particular to its
//! API (the ureq iterator, the hyper stream and progress channel, `import_all`, resume).
//!
//! # How it is built
//! A small dev-only crate (`publish = false`), not a file included by path: it is
//! compiled once, has its own dependencies (none of them an adapter, so there is no cycle
//! and no second copy of a type), and its helpers are ordinary public items rather than
//! `#[allow(dead_code)]` copies. Everything is blocking and on `std` threads (the fake
//! runs on a runtime of its own via `start_blocking`), so one check fits both a blocking
//! and an async adapter.
//!
//! An adapter's test crate implements [`Adapter`] for a small wrapper (the hyper one holds
//! a tokio runtime and `block_on`s each call) and invokes [`suite!`], which expands to one
//! `#[test]` per check in [`checks`]:
//!
//! ```ignore
//! struct Ureq(fullstory_batch_ureq::Client);
//! impl fullstory_batch_conformance::Adapter for Ureq { /* six short methods */ }
//! fullstory_batch_conformance::suite!(Ureq);
//! ```
//!
//! A new check is a generic `pub fn name<A: Adapter>()` in [`checks`] plus its name in the
//! list inside [`suite!`]; every adapter then runs it.
#![forbid(unsafe_code)]

pub mod checks;
pub mod support;

use std::time::Duration;

use fullstory_batch::{
    BatchItem, Budget, Config, CreateError, Error, Event, IdempotencyKey, ImportReport, JobKey,
    JobRef, JobStatusResponse, Outcome, Policy, ValidationError,
};

/// What a check asks of a client besides the core's [`Config`]. Each adapter maps it onto
/// its own options type.
#[derive(Debug, Clone)]
pub struct Options {
    /// The longest one request may take.
    pub request_timeout: Duration,
    /// The longest a TCP connect may take.
    pub connect_timeout: Duration,
    /// The most connections open at once, and so the most requests in flight (ureq: the
    /// idle pool and the worker count; hyper: the connection cap).
    pub max_connections: usize,
    /// Roots to trust besides Mozilla's, DER.
    pub roots_der: Vec<Vec<u8>>,
    /// Roots to trust besides Mozilla's, PEM text.
    pub roots_pem: Vec<String>,
}

impl Default for Options {
    /// Short timeouts, so that a hung check fails fast; 8 connections; no extra roots.
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            max_connections: 8,
            roots_der: Vec::new(),
            roots_pem: Vec::new(),
        }
    }
}

impl Options {
    /// The same options with this request timeout.
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The same options with this connection cap.
    #[must_use]
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }
}

/// One adapter, seen through blocking calls. An async adapter blocks on its runtime.
pub trait Adapter: Sized {
    /// The adapter's name, for messages.
    const NAME: &'static str;

    /// A client for `config` with `options`.
    fn new(config: Config, options: Options) -> Self;

    /// One status request, no retry (`Client::status`).
    fn status(&self, job: &JobRef) -> Result<JobStatusResponse, Error>;

    /// Every event of one wait, to its `Done` (`Client::watch`, collected).
    fn watch(&self, job: &JobRef, policy: Policy) -> Vec<Event>;

    /// How a wait ended (`Client::wait`).
    fn wait(&self, job: &JobRef, policy: Policy) -> Outcome;

    /// How each job ended, in the order they ended (`Client::wait_many(..).outcomes()`).
    fn wait_many(
        &self,
        jobs: Vec<JobRef>,
        policy: Policy,
        budget: Budget,
    ) -> Vec<(JobKey, Outcome)>;

    /// A whole import (`Client::import`).
    ///
    /// # Errors
    /// The adapter's `ValidationError`, when an item breaks a limit.
    fn import<T: BatchItem>(
        &self,
        items: &[T],
        key: Option<IdempotencyKey>,
        policy: Policy,
    ) -> Result<ImportReport<T>, ValidationError>;

    /// A create alone, retried, nothing waited for (`Client::create`).
    ///
    /// # Errors
    /// The adapter's `CreateError`: an invalid item, or why the create never succeeded.
    fn create<T: BatchItem>(
        &self,
        items: &[T],
        key: Option<IdempotencyKey>,
        policy: Policy,
    ) -> Result<JobRef, CreateError>;

    /// The client's `Debug` text.
    fn debug(&self) -> String;

    /// Text the adapter promises in its traces of a wait of job `job_id` whose first
    /// status request was reset mid-body (beyond what every adapter promises).
    fn trace_marks(job_id: &str) -> Vec<String> {
        let _ = job_id;
        Vec::new()
    }
}

/// Expands to one `#[test]` per conformance check, run against `$adapter`.
#[macro_export]
macro_rules! suite {
    ($adapter:ty) => {
        $crate::suite!(@each $adapter;
            // Request shape, and error statuses reaching the core whole.
            status_sends_the_core_request,
            error_statuses_are_typed_with_their_bodies,
            server_errors_json_and_html,
            truncated_json_is_malformed,
            // Transport errors, sorted.
            refused_connection_is_connect,
            a_refused_connection_names_the_host_and_port,
            reset_mid_body_is_reset,
            stall_hits_the_request_timeout,
            slow_drip_past_the_request_timeout_is_a_timeout,
            untrusted_certificate_is_tls,
            another_root_does_not_help,
            // Deadlines cut requests.
            the_deadline_cuts_a_stalled_request,
            // Body limits.
            content_length_over_the_limit_is_refused_unread,
            a_body_growing_past_the_limit_stops_there,
            an_error_status_over_the_limit_is_cut_not_refused,
            // TLS with custom roots.
            https_with_a_trusted_der_root,
            https_with_a_trusted_pem_root,
            // Redirects.
            redirects_are_not_followed,
            // Waits end to end.
            a_wait_recovers_from_every_fault,
            retry_after_seconds_is_obeyed,
            retry_after_http_date_is_read_against_the_server_date,
            a_wait_gives_up_on_404_after_one_request,
            a_failed_job_finishes_with_its_counts,
            refused_with_no_answer_ever_stops_after_three_attempts,
            // Many jobs.
            wait_many_of_nothing_sends_nothing,
            wait_many_reports_each_job_under_its_key,
            wait_many_holds_the_connection_cap,
            wait_many_through_random_faults,
            // Imports end to end.
            import_with_a_partial_failure_across_pages,
            import_of_users_reads_no_error_pages,
            a_lost_create_answer_makes_one_job,
            a_failed_page_request_is_retried,
            invalid_items_send_nothing,
            // Create alone.
            create_makes_one_job_and_returns_it,
            a_create_is_retried_under_its_key,
            a_create_that_never_succeeds_says_why,
        );
    };
    (@each $adapter:ty; $($check:ident),+ $(,)?) => {
        $(
            #[test]
            fn $check() {
                $crate::checks::$check::<$adapter>();
            }
        )+
    };
}
