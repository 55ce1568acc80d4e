//! A faithful fake of Fullstory's batch-import job API, for testing clients.
//!
//! It serves both resources (`events`, `users`) under `/v2` and `/v2beta`:
//!
//! | request | answer |
//! |---|---|
//! | `POST /v2/{events,users}/batch` | 200 `{"job": JobMetadata}`, or 400 naming the bad item, 429 over the org limits |
//! | `GET .../batch/{job_id}` | 200 `JobStatusResponse` (`imports`, `errors`, `job`) |
//! | `GET .../batch/{job_id}/imports?page_token=&include_schema=` | 202 while processing, then pages |
//! | `GET .../batch/{job_id}/errors?page_token=` | 202 while processing, then pages |
//!
//! Beside the API, read-only inspection endpoints for tests and scripts. They
//! need no API key (this is a test server), and are never logged, counted in
//! the stats or answered with a fault:
//!
//! | request | answer |
//! |---|---|
//! | `GET /fake/stats` | [`Stats::to_json`]: `jobs`, `items`, `requests` by call, `faults`, `by_resource` |
//! | `GET /fake/jobs` | `{"jobs": [{"id", "resource", "status", "items", "imports", "errors", "created", "finished"}]}` |
//! | `GET /fake/requests` | `{"requests": [{"seq", "method", "path", "query", "status", "route", "resource", "job_id", "fault", "headers", ...}]}`, `Authorization` redacted |
//!
//! The same numbers from Rust: [`FakeServer::stats`], [`FakeServer::jobs`],
//! [`FakeServer::requests`].
//!
//! Jobs stay `PROCESSING` for the configured time on the fake clock, then
//! become `COMPLETED`, or `FAILED` when some items failed (a `FAILED` job can
//! still have imports). Auth is `Authorization: Basic <key>` (401 / 403),
//! unknown jobs are 404 `resource_not_found`, every error body is an
//! `ErrorResponse` `{"message", "code"}`. `Idempotency-Key` makes creates
//! safe to retry. A per-key token bucket and org-wide limits answer 429 with
//! `Retry-After`. [`Encoding`] switches on the quirks real servers show
//! (proto3 zero omission, counts as strings, unknown fields, a `PENDING`
//! status), and [`Fault`]s — scripted per request or random at a seeded
//! rate — cover 5xx (JSON or HTML), 429 with HTTP-date `Retry-After` and a
//! skewed `Date`, resets mid-body, stalls, truncated, oversized and
//! slow-drip bodies, and "accepted, then failed".
//!
//! # Example
//!
//! In a test, put this in a `#[tokio::test] async fn`; here it runs under
//! `#[tokio::main]`. The request is written by hand to keep the example
//! free of an HTTP client.
//!
//! ```
//! use std::time::Duration;
//! use fullstory_batch_fake::{FakeServer, Fault, JobStatus, Resource, Route, Script};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let fake = FakeServer::builder()
//!     .key("test-key")
//!     .processing_time(Duration::from_secs(2))
//!     .manual_clock()
//!     .start()
//!     .await?;
//! let id = fake.insert_job(Resource::Events, vec![serde_json::json!({"name": "signup"})]);
//!
//! // The first status poll of this job gets an HTML 503 from "the proxy".
//! fake.script(
//!     Script::on(Route::Status)
//!         .for_job(id.as_str())
//!         .respond(Fault::Http503 { retry_after: None, html: true }),
//! );
//!
//! let mut stream = tokio::net::TcpStream::connect(fake.addr()).await?;
//! let request = format!(
//!     "GET /v2/events/batch/{id} HTTP/1.1\r\nHost: fake\r\n\
//!      Authorization: Basic test-key\r\nConnection: close\r\n\r\n"
//! );
//! stream.write_all(request.as_bytes()).await?;
//! let mut answer = String::new();
//! stream.read_to_string(&mut answer).await?;
//! assert!(answer.starts_with("HTTP/1.1 503"));
//!
//! fake.advance(Duration::from_secs(2));
//! assert_eq!(fake.job(&id).unwrap().status, JobStatus::Completed);
//! assert_eq!(fake.requests()[0].header("authorization"), Some("Basic [redacted]"));
//! # Ok(())
//! # }
//! ```
//!
//! Blocking tests (no runtime in the caller) use
//! [`FakeServerBuilder::start_blocking`], which runs the server on a runtime
//! of its own; dropping the handle stops it either way.
//!
//! # What it does not simulate
//!
//! - Several orgs: all keys share one org (jobs, idempotency keys, limits);
//!   rate-limit buckets are per key.
//! - The single-item endpoints (`POST /v2/events`, `/v2/users/{id}`), HTTP/2,
//!   compression, persistence across restarts (each server hands out ids of
//!   its own, so a restarted fake does not repeat ids; see
//!   [`FakeServerBuilder::job_id_seed`]).
//! - Real item processing: only the failure rule and a few spec rules
//!   (property names, `shared.context` conflicts) decide what fails; counts
//!   stay 0 until a job is done (no partial progress).
//! - TCP-level RSTs: [`Fault::ConnectionReset`] closes the connection
//!   mid-body, which a client sees as an unexpected end of the body.
//! - Random faults are reproducible per request (method, path, query, body
//!   and repetition count), not per arrival order across connections.
//!
//! # Deliberate deviations from the swagger specs
//!
//! Only when switched on through [`Encoding`]: missing zero counts, counts as
//! strings, status `PENDING`, omitted empty `results` (required on users
//! imports pages). Always: 405 for a wrong method and 413 for a body over the
//! limit, answers the specs do not list.

mod api;
mod body;
mod builder;
mod clock;
mod codec;
mod fault;
mod log;
mod model;
mod reply;
mod serve;
mod server;
mod state;
mod stats;
mod validate;
mod wire;

pub use builder::FakeServerBuilder;
pub use fault::{
    DEFAULT_OVERSIZED_BYTES, Fault, FaultKind, RandomParams, RetryAfter, Script, ScriptId,
};
pub use log::{LoggedRequest, REDACTED};
pub use model::{Encoding, JobSnapshot, JobStatus, OrgLimits, Resource, Route};
pub use server::FakeServer;
pub use stats::{RequestCounts, ResourceStats, Stats};

/// The unknown field name added to response objects when
/// [`Encoding::extra_fields`] is on.
pub const EXTRA_FIELD: &str = wire::EXTRA_FIELD;
