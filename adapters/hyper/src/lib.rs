//! Async adapter (hyper 1 + tokio) for [`fullstory_batch`], the sans-IO client of
//! Fullstory's batch-import job API.
//!
//! # Scope
//! In: sending the core's requests over a pooled, capped hyper connection pool with rustls
//! (ring), reading answers within a body limit and a timeout, sorting failures into
//! [`TransportKind`]s, and running the core's one loop ([`Run`], over a [`JobSet`]) on
//! tokio's clock and timer. Every call below is a short constructor of a set.
//!
//! Out: every decision about statuses, errors, retries and timing. Those are the core's;
//! this crate is the documented loop plus a runtime. It never retries on its own:
//! [`Client::status`] is exactly one request.
//!
//! | call | what it does |
//! |---|---|
//! | [`Client::status`] | one status request, no retries |
//! | [`Client::wait`] | polls one job until it ends, as a [`Policy`] says |
//! | [`Client::watch`] | the same, as a stream of its events (progress, then done) |
//! | [`Client::wait_with_progress`] | the same, publishing each [`Progress`] on a `tokio::sync::watch` channel |
//! | [`Client::wait_many`] | many jobs on one task under a shared request [`Budget`], each outcome as it ends |
//! | [`Client::import`] / [`Client::importer`] | create, wait, read every page: all at once, or as events |
//! | [`Client::create`] | creates a job (retried, one idempotency key) and returns it, nothing waited for |
//! | [`Client::import_all`] | any number of items as batches, a few jobs in progress |
//! | [`Client::import_from`] | the same for items read as they come; [`Run::with_journal`] and a [`FileJournal`] make it exactly once across crashes |
//! | [`Client::resume_import`] / [`Client::pages`] | the same for a job that exists |
//! | [`Client::run`] | any [`JobSet`], one restored after a restart say |
//!
//! # Example
//! A fake Fullstory on loopback (plain HTTP, so the base URL must allow it) whose clock
//! moves only when told, a job that takes 50 ms of it, one status call, then a wait:
//! ```
//! use std::time::Duration;
//! use fullstory_batch_hyper::{
//!     ApiKey, BaseUrl, Client, ClientOptions, Config, JobId, JobRef, JobState, Outcome,
//!     Policy, Resource,
//! };
//! use fullstory_batch_fake::FakeServer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let fake = FakeServer::builder()
//!     .key("my-key")
//!     .processing_time(Duration::from_millis(50))
//!     .manual_clock()
//!     .start()
//!     .await?;
//! let id = fake.insert_job(
//!     fullstory_batch_fake::Resource::Events,
//!     vec![serde_json::json!({"name": "signup"})],
//! );
//!
//! let config = Config::new(ApiKey::new("my-key")?)
//!     .with_base_url(BaseUrl::parse_allow_http(fake.base_url())?);
//! let client = Client::new(config, ClientOptions::new())?;
//! let job = JobRef::new(Resource::Events, JobId::new(id)?);
//!
//! let status = client.status(&job).await?;
//! assert_eq!(status.job.status, JobState::Processing);
//! fake.advance(Duration::from_millis(50));
//!
//! let policy = Policy::builder()
//!     .min_interval(Duration::from_millis(100))
//!     .timeout(Duration::from_secs(10))
//!     .build()?;
//! let status = client.wait(&job, policy).await.into_result()?;
//! assert_eq!(status.imports, 1);
//! # Ok(())
//! # }
//! ```
//!
//! # Options ([`ClientOptions`])
//! The same names and defaults as `fullstory-batch-ureq`'s; [`Client::new`] refuses a root
//! certificate rustls cannot use ([`BuildError`]).
//! - **Connect timeout** (default 10 s): the longest a TCP connect may take.
//! - **Request timeout** (default 30 s): the longest one request may take, connect, TLS,
//!   headers and body included. When the [`Policy`] has a deadline, each request's timeout
//!   is cut to the time left, so a wait never overruns its deadline by a request.
//! - **Max connections** (default 32): the most sockets open to the server and the most
//!   requests in flight. hyper-util's pool has no cap of its own (it opens a new connection
//!   whenever no idle one is at hand, and keeps both), so the client holds two semaphores:
//!   one permit per request, held until its body is read, and one per open socket, held
//!   until the socket closes. Requests over the cap queue inside the client.
//! - **Root certificates** (DER or PEM): trusted in addition to Mozilla's roots
//!   (`webpki-roots`), for a private CA or a test server.
//! - **Jitter seed**: makes poll jitter reproducible; by default each wait draws one.
//!
//! From the core's [`Config`] the client takes the base URL (HTTPS unless the URL is
//! plain `http`, which the core accepts only when asked), the key, and the body limit.
//! Connections are reused (idle ones close after 90 s), `TCP_NODELAY` is on, and only
//! HTTP/1.1 is spoken.
//!
//! # Errors
//! Calls return the core's [`Error`]: [`Error::Api`] when the server answered (the core
//! parsed it), [`Error::Transport`] when it did not, with the HTTP client's error as
//! `source()`:
//!
//! | [`TransportKind`] | when |
//! |---|---|
//! | `Connect` | the TCP connection could not be made (refused, DNS, connect timeout) |
//! | `Tls` | the TLS handshake failed (an untrusted certificate, say) |
//! | `Timeout` | the request timeout or the deadline passed before the whole answer came |
//! | `Reset` | the connection closed before the whole answer came |
//! | `BodyTooLarge` | a 2xx whose `Content-Length` or bytes read went past [`Config::body_limit`]; reading stopped there (an error status is cut at the limit instead, and read as that status) |
//! | `Other` | anything else |
//!
//! The key is never in an error, a span or a log line: the `Authorization` value is marked
//! sensitive, and no header is ever logged.
//!
//! # Tracing
//! Each request a machine sends runs in a `fullstory_batch.request` span (debug level) with
//! `stage` (create, wait, imports, errors), `attempt`, `path` (which holds the job id), and,
//! once known, `http.status` and `error` (a short kind); [`Client::status`] runs in one
//! with `resource` and `job_id`.
//!
//! # Cancellation
//! Every call is a plain future on the caller's task: dropping it stops at once. Nothing is
//! spawned per request or per job; the only tasks are hyper's own connection tasks, which
//! belong to the pool.
//!
//! # Performance
//! `cargo bench -p fullstory-batch-hyper --bench status` compares one [`Client::status`]
//! with the same GET sent through a bare hyper-util client and parsed with `serde_json`
//! into a plain struct. The difference is the core's request building and typed parsing
//! plus the request-timeout timer, about 1 µs a call.
//! `cargo run --release -p fullstory-batch-hyper --example many_jobs` waits on 10,000 jobs
//! and prints the client's peak RSS and request rate.
//!
//! # Panics
//! A panic is a bug; nothing a server sends can cause one. Each `expect` says why it cannot
//! fail.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod calls;
mod client;
mod connect;
mod drive;
mod journal;
mod options;
mod transport;

pub use client::Client;
pub use drive::Run;
pub use journal::FileJournal;
pub use options::{
    BuildError, ClientOptions, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_REQUEST_TIMEOUT,
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
