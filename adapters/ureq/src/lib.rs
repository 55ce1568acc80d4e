//! Blocking adapter for [`fullstory_batch`], the sans-IO client of Fullstory's batch-import
//! job API, on [ureq](https://docs.rs/ureq) 3.
//!
//! # Scope
//! In: sending the core's requests with one shared [`ureq::Agent`], reading answers within
//! their body limit, sorting failures into the core's [`TransportKind`]s, and running the
//! core's one loop ([`Run`]) with `std`'s clock and `thread::sleep`. Every call below is a
//! short constructor of a core [`JobSet`] handed to that loop.
//! Out: every decision. Which statuses are errors, what is retried, how long to wait,
//! `Retry-After`, deadlines, budgets and when to stop are all the core's; this crate only
//! does what its `poll_*` answers say. No async runtime (see `fullstory-batch-hyper`).
//!
//! | call | what it does |
//! |---|---|
//! | [`Client::status`] | one status request, no retries |
//! | [`Client::wait`] | polls one job until it ends, as a [`Policy`] says |
//! | [`Client::watch`] | the same, as an iterator of its events (progress, then done) |
//! | [`Client::wait_many`] | many jobs under one request [`Budget`], each outcome as it ends |
//! | [`Client::import`] / [`Client::importer`] | create, wait, read every page: all at once, or as events |
//! | [`Client::create`] | creates a job (retried, one idempotency key) and returns it, nothing waited for |
//! | [`Client::import_all`] | any number of items as batches, a few jobs in progress |
//! | [`Client::import_from`] | the same for items read as they come; [`Run::with_journal`] and a [`FileJournal`] make it exactly once across crashes |
//! | [`Client::resume_import`] / [`Client::pages`] | the same for a job that exists |
//! | [`Client::run`] | any [`JobSet`], one restored after a restart say |
//!
//! ```text
//!  Run::next ─► JobSet::poll_event ──► (key, Event) to the caller
//!      │  ▲       poll_transmit(now) ──► one request (timeout: min(request, deadline))
//!      │  │                                 │ handle_response / handle_send_failed
//!      │  └────── poll_timeout ◄── thread::sleep / an answer from a worker
//! ```
//!
//! # Example
//! Against the fake server (`fullstory-batch-fake`) on loopback:
//! ```
//! use std::time::Duration;
//! use fullstory_batch_fake::FakeServer;
//! use fullstory_batch_ureq::{
//!     ApiKey, BaseUrl, Client, ClientOptions, Config, Event, JobId, JobRef, Policy, Resource,
//! };
//!
//! let fake = FakeServer::builder()
//!     .key("my-key")
//!     .processing_time(Duration::from_millis(300))
//!     .start_blocking()?;
//! let id = fake.insert_job(fullstory_batch_fake::Resource::Events, vec![serde_json::json!({"name": "signup"})]);
//!
//! let config = Config::new(ApiKey::new("my-key")?)
//!     // Plain HTTP must be asked for: it is only for loopback tests.
//!     .with_base_url(BaseUrl::parse_allow_http(fake.base_url())?);
//! let client = Client::new(
//!     config,
//!     ClientOptions::new().with_request_timeout(Duration::from_secs(5)),
//! )?;
//! let job = JobRef::new(Resource::Events, JobId::new(id)?);
//!
//! // One request, no retry:
//! let status = client.status(&job)?;
//! println!("{}: {}", job, status.job.status);
//!
//! // Wait until the job ends, watching each poll:
//! let policy = Policy::builder()
//!     .min_interval(Duration::from_millis(100))
//!     .timeout(Duration::from_secs(10))
//!     .build()?;
//! for (_, event) in client.watch(job.clone(), policy) {
//!     match event {
//!         Event::Progress(p) => println!("attempt {}: still running", p.attempts),
//!         Event::Done(outcome) => assert_eq!(outcome.into_result()?.imports, 1),
//!         _ => {}
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Options
//! [`ClientOptions`] (all have defaults; the same names and defaults as
//! `fullstory-batch-hyper`'s):
//! - `connect_timeout` (10 s): opening a connection, DNS and TLS handshake included.
//! - `request_timeout` (30 s): one whole request, headers and body. While waiting with a
//!   deadline ([`Policy::timeout`]) a request is also cut at the deadline, so a blocking wait
//!   never outlives it by more than a moment.
//! - `max_connections` (32): connections kept for reuse (in all and per host); also caps
//!   the worker threads of a run with many requests out ([`Client::wait_many`],
//!   [`Client::import_all`], [`Client::run`]) at `min(max_connections, 8)`. A run with one
//!   request out at a time (a wait, one import) sends on the calling thread.
//! - root certificates (none): trusted in addition to Mozilla's, from DER or PEM, for a TLS
//!   proxy or a test server; [`Client::new`] refuses one rustls cannot use ([`BuildError`]).
//! - `jitter_seed` (random): makes poll jitter reproducible.
//!
//! Fixed choices: error statuses are read as responses (their body and `Retry-After` go to
//! the core); redirects are never followed, so the `Authorization` header cannot reach
//! another host (a 3xx comes back as [`ApiError::UnexpectedStatus`]); with an `https` base
//! URL the agent refuses plain HTTP; TLS is rustls on ring; no compression is asked for; a
//! 2xx body is read to at most the core's body limit plus one byte, and one announced as
//! larger is not read at all ([`TransportKind::BodyTooLarge`]); an error status's body is cut
//! at the limit, so a 503 with a large HTML page is still a 503; proxies come from the usual
//! environment variables (`HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`), as ureq reads them.
//!
//! # Errors
//! Every call returns the core's [`Error`] (re-exported here): [`Error::Api`] when the server
//! answered (its parsed `ErrorResponse` or a body excerpt inside), [`Error::Transport`] when
//! it did not, with ureq's own error as `source()`. ureq's errors are sorted into
//! [`TransportKind`]s: refused connections and unknown hosts are `Connect`, certificate and
//! handshake failures `Tls`, any timeout `Timeout`, a connection closed before the body was
//! complete `Reset`, a 2xx body over the limit `BodyTooLarge`, the rest `Other`.
//!
//! # Tracing
//! Each request a machine sends runs in a `fullstory_batch.request` span with `stage`
//! (create, wait, imports, errors), `attempt`, `path` (which holds the job id) and, once
//! known, `http.status`; a debug event gives the time taken, a warning the kind of a
//! transport failure; waits are logged with `wait_ms`. [`Client::status`] runs in a
//! `fullstory_batch.status` span with `resource` and `job`. The API key is never recorded.
//! (ureq's own `log` output at trace level dumps raw request bytes, header included: keep
//! `ureq_proto` below trace in production.)
//!
//! # Panics
//! A panic is a bug. Nothing a server sends makes this crate panic.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod calls;
mod client;
mod drive;
mod journal;
mod options;
mod resolver;

pub use client::Client;
pub use drive::Run;
pub use journal::FileJournal;
pub use options::{
    BuildError, ClientOptions, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_REQUEST_TIMEOUT, MAX_WORKERS,
};

/// The core crate, for everything not re-exported below.
pub use fullstory_batch;
pub use fullstory_batch::{
    ApiError, ApiKey, BaseUrl, Batch, BatchItem, Batcher, Budget, Config, ConfigError, CreateError,
    Error, Event, EventRequest, FailedItem, IdempotencyKey, ImportReport, JobId, JobKey,
    JobMetadata, JobRef, JobSet, JobState, JobStatusResponse, Object, Outcome, PageKind, Pages,
    Policy, PolicyError, Progress, Resource, SessionId, Stage, StopReason, Stopped, TransportError,
    TransportKind, UserId, UserRequest, ValidationError,
};
