//! Sans-IO client core for Fullstory's batch-import job API.
//!
//! # Scope
//! In: building `http::Request` values for the batch-import calls (create, status, the
//! imports and errors pages), parsing `http::Response` values into typed answers or typed
//! errors, reading `Retry-After`, and deciding what to do next. Two state machines decide
//! everything: a [`Job`] runs one job (an optional create, the wait, optional page reads),
//! a [`JobSet`] runs many under one request budget, a cap on jobs in progress, one
//! organisation-wide pause on 429 and one deadline. A [`Batcher`] splits any number of
//! items into serialised [`Batch`]es for them; an [`Intake`] hands them to a set as it
//! makes room, through the [`journal`] when there is one.
//! Out: sockets, TLS, clocks, timers, runtimes. Those belong to the caller or to an adapter
//! crate (`fullstory-batch-hyper` for async on tokio, `fullstory-batch-ureq` for blocking).
//! Every method whose answer depends on time takes `now` as an argument.
//!
//! # One status call
//! ```
//! use fullstory_batch::{ApiKey, Config, JobId, JobRef, JobState, Resource};
//!
//! let config = Config::new(ApiKey::new("my-api-key")?);
//! let job = JobRef::new(Resource::Events, JobId::new("abd123=")?);
//!
//! let request = config.status_request(&job);
//! assert_eq!(request.uri(), "https://api.fullstory.com/v2/events/batch/abd123=");
//! // ... send `request` with any HTTP client, then hand back what came:
//! let response = http::Response::builder()
//!     .status(200)
//!     .body(r#"{"imports":42,"errors":2,"job":{"id":"abd123=","status":"FAILED",
//!              "created":"2019-04-18T14:36:11.123Z","finished":"2019-04-18T15:36:11.123Z"}}"#)?;
//! let status = config.parse_status(&response)?;
//! assert_eq!(status.job.status, JobState::Failed);
//! assert_eq!((status.imports, status.errors), (42, 2));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The loop
//! Both machines have the same five verbs, in the style of `quinn-proto`; a driver runs
//! one loop, whatever it waits for:
//! 1. Take every event from `poll_event` ([`Event`]: created, progress, pages, done).
//! 2. Send every request `poll_transmit(now)` gives ([`Transmit`]: the request, its id,
//!    and the deadline at which to abandon it), up to the driver's connection cap.
//! 3. Sleep until `poll_timeout()`, or until an answer arrives, whichever is first.
//! 4. Hand each answer to `handle_response(id, &response, now)` (the core parses it), or
//!    the failure to get one to `handle_send_failed(id, error, now)`. Go to 1.
//!
//! ```text
//!   create ──► wait ──► imports ──► errors ──► Done(Finished(status))
//!      │         │         │           │
//!      └─────────┴─────────┴───────────┴──► Done(Stopped { stage, reason })
//! ```
//!
//! Many jobs with a fake clock and canned answers: a 429 on one pauses both.
//! ```
//! use std::time::{Duration, SystemTime};
//! use fullstory_batch::{ApiKey, Config, Event, JobId, JobRef, JobSet, Policy, Resource};
//!
//! let config = Config::new(ApiKey::new("my-api-key")?);
//! let mut now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
//! let mut set: JobSet = JobSet::new(config, Policy::default(), now, 7);
//! for id in ["a", "b"] {
//!     set.add_job(JobRef::new(Resource::Events, JobId::new(id)?), now);
//! }
//! let mut first = true;
//! let mut done = Vec::new();
//! while !set.is_empty() {
//!     while let Some((key, event)) = set.poll_event() {
//!         if let Event::Done(outcome) = event {
//!             done.push((key.index(), outcome.into_result()?.imports));
//!         }
//!     }
//!     while let Some(transmit) = set.poll_transmit(now) {
//!         let response = if std::mem::take(&mut first) {
//!             http::Response::builder().status(429).header("retry-after", "30").body("")?
//!         } else {
//!             http::Response::builder().status(200)
//!                 .body(r#"{"imports":5,"job":{"id":"x","status":"COMPLETED"}}"#)?
//!         };
//!         set.handle_response(transmit.id, &response, now);
//!     }
//!     if let Some(wake) = set.poll_timeout() {
//!         now = now.max(wake); // a real driver sleeps here
//!     }
//! }
//! done.sort();
//! assert_eq!(done, [(0, 5), (1, 5)]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Crate map
//! | module of concern | types |
//! |---|---|
//! | configuration | [`Config`], [`ApiKey`], [`BaseUrl`], [`JobId`], [`JobRef`], [`Resource`], [`Config::from_env`] and [`EnvError`] |
//! | the answer | [`JobStatusResponse`], [`JobMetadata`], [`JobState`], [`Page`], [`FailedItem`] |
//! | what went wrong | [`ApiError`], [`Error`], [`TransportError`], [`ConfigError`], [`ValidationError`] |
//! | the machines | [`Job`], [`JobSet`], [`Transmit`], [`Event`], [`Outcome`], [`Stopped`], [`Progress`] |
//! | pacing | [`Policy`], [`Budget`], [`retry_after`] |
//! | importing | [`EventRequest`], [`UserRequest`], [`Batcher`], [`Batch`], [`Intake`], [`IdempotencyKey`], [`ImportReport`], [`CreateError`] |
//!
//! # Panics, errors and unwraps
//! A panic is a bug. Nothing a server sends can make this crate panic: every parser is fuzzed
//! and property-tested on arbitrary input. Mistakes by the caller (a key that cannot be a
//! header, an empty job id) are [`ConfigError`]s found when the value is made, never later;
//! a broken contract by the server is an [`ApiError`]. Each `expect` in the code says why it
//! cannot fail.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]

mod batch;
mod config;
mod error;
mod input;
mod job;
mod job_set;
pub mod journal;
mod model;
mod pacing;
mod report;
mod retry_after;
mod status;

pub use batch::{
    BatchItem, EventRequest, FailedItem, IDEMPOTENCY_KEY, IdempotencyKey, MAX_BATCH_ITEMS, Object,
    Page, PageAnswer, PageKind, RawItem, SessionId, UserId, UserRequest, ValidationError, validate,
};
pub use config::{
    ApiKey, BaseUrl, BodyLimits, CallKind, Config, ConfigError, DEFAULT_BODY_LIMIT,
    DEFAULT_PAGE_LIMIT, ENV_API_KEY, ENV_BASE_URL, ENV_REGION, EnvError, JobId, JobRef,
    MAX_JOB_ID_LEN, MAX_USER_ITEM_BYTES, Resource,
};
pub use error::{
    ApiError, EXCERPT_LEN, Error, ErrorBody, ErrorCode, ErrorDetails, ErrorResponse, Malformed,
    TransportError, TransportKind, is_retryable_status,
};
pub use input::{Batch, Batcher, Intake};
pub use job::{
    Event, Job, JobKey, Outcome, Pages, Progress, RequestId, RestoreError, SavedJob, Stage,
    StopReason, Stopped, Transmit,
};
pub use job_set::{Budget, DEFAULT_MAX_IN_PROGRESS, JobSet, SavedJobSet};
pub use journal::{JournalRecord, JournalSink, Ledger};
pub use model::{JobMetadata, JobState, JobStatusResponse, Timestamp};
pub use pacing::{MIN_INTERVAL, Policy, PolicyBuilder, PolicyError};
pub use report::{CreateError, ImportReport};
pub use retry_after::{DEFAULT_RETRY_AFTER_MAX, RetryAfter, retry_after};
pub use status::{INTEGRATION_SOURCE, USER_AGENT_VALUE};

/// The `http` crate this one speaks, so adapters use the same version.
pub use bytes;
pub use http;
