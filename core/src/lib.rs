//! Sans-IO client core for Fullstory's batch-import job API.
//!
//! # Scope
//! In: building `http::Request` values for the batch-import calls (create, status, the
//! imports and errors pages), parsing `http::Response` values into typed answers or typed
//! errors, reading `Retry-After`, and deciding what to do next: [`Poller`] waits for one job,
//! [`Scheduler`] for many under one request budget, [`Workflow`] runs a whole import
//! (create, wait, read every page), [`ImportQueue`] any number of items as batches.
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
//! # Waiting for a job
//! A [`Poller`] decides; its driver acts. The loop, in every runtime:
//! 1. `poller.poll(now)` returns an [`Action`].
//! 2. On [`Action::Send`], send `config.status_request(poller.job())`, then feed back
//!    `config.parse_status(&response)` with [`Poller::handle_response`], or the failure to get
//!    a response with [`Poller::handle_transport_error`]. Go to 1.
//! 3. On [`Action::Wait`], sleep until that instant, then go to 1.
//! 4. On [`Action::Done`], the [`Outcome`] says how it ended.
//!
//! ```text
//!            ┌──────── Wait(t) ◄──────┐
//!            ▼                        │ running, retryable error
//!   new ──► Due ── Send ──► InFlight ─┤
//!                                     │ terminal status, gave up, deadline
//!                                     └──────► Done(Outcome)
//! ```
//!
//! Here with canned answers and a fake clock that jumps to each wake-up:
//! ```
//! use std::time::{Duration, SystemTime};
//! use fullstory_batch::{Action, ApiKey, Config, JobId, JobRef, Outcome, Policy, Poller, Resource};
//!
//! let config = Config::new(ApiKey::new("my-api-key")?);
//! let job = JobRef::new(Resource::Events, JobId::new("abd123=")?);
//! let mut now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
//! let mut poller = Poller::new(job, Policy::default().with_timeout(Duration::from_secs(600)), now, 42);
//! let mut answers = vec![
//!     (200, r#"{"job":{"id":"abd123=","status":"PROCESSING"}}"#),
//!     (503, r#"{"message":"try later","code":"server_error"}"#),
//!     (200, r#"{"imports":1000,"job":{"id":"abd123=","status":"COMPLETED"}}"#),
//! ]
//! .into_iter();
//! let outcome = loop {
//!     match poller.poll(now) {
//!         Action::Send { .. } => {
//!             let _request = config.status_request(poller.job()); // send it with any client
//!             let (status, body) = answers.next().expect("the poller stops at COMPLETED");
//!             let response = http::Response::builder().status(status).body(body)?;
//!             poller.handle_response(config.parse_status(&response), now);
//!         }
//!         Action::Wait(until) => now = until, // a real driver sleeps here
//!         Action::AwaitResponse => unreachable!("this driver answers every request at once"),
//!         Action::Done(outcome) => break outcome,
//!     }
//! };
//! assert!(matches!(outcome, Outcome::Completed(ref s) if s.imports == 1000));
//! assert_eq!(poller.progress().attempts, 3);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A [`Scheduler`] runs the same loop for many jobs under one request budget; a [`Workflow`]
//! and an [`ImportQueue`] run it for whole imports, handing back pages of results as they
//! come ([`WorkflowAction`]).
//!
//! # Crate map
//! | module of concern | types |
//! |---|---|
//! | configuration | [`Config`], [`ApiKey`], [`BaseUrl`], [`JobId`], [`JobRef`], [`Resource`] |
//! | the answer | [`JobStatusResponse`], [`JobMetadata`], [`JobState`], [`Page`], [`FailedItem`] |
//! | what went wrong | [`ApiError`], [`Error`], [`TransportError`], [`ConfigError`], [`ValidationError`] |
//! | waiting | [`Policy`], [`Poller`], [`Outcome`], [`Scheduler`], [`Budget`], [`retry_after`] |
//! | importing | [`EventRequest`], [`UserRequest`], [`IdempotencyKey`], [`Workflow`], [`ImportQueue`], [`ImportReport`] |
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
mod model;
mod pacer;
mod poller;
mod queue;
mod retry_after;
mod scheduler;
mod status;
mod time_math;
mod workflow;

pub use batch::{
    BatchItem, EventRequest, FailedItem, IDEMPOTENCY_KEY, IdempotencyKey, MAX_BATCH_ITEMS, Object,
    Page, PageAnswer, PageKind, RawItem, SessionId, UserId, UserRequest, ValidationError, validate,
};
pub use config::{
    ApiKey, BaseUrl, BodyLimit, BodyLimits, CallKind, Config, ConfigError, DEFAULT_BODY_LIMIT,
    DEFAULT_PAGE_LIMIT, JobId, JobRef, MAX_JOB_ID_LEN, MAX_USER_ITEM_BYTES, Resource,
};
pub use error::{
    ApiError, EXCERPT_LEN, Error, ErrorBody, ErrorCode, ErrorDetails, ErrorResponse, Malformed,
    TransportError, TransportKind, is_retryable_status,
};
pub use model::{JobMetadata, JobState, JobStatusResponse, Timestamp};
pub use poller::{
    Action, Outcome, Policy, Poller, PollerState, Progress, ProgressSnapshot, RestoreError,
};
pub use queue::{DEFAULT_MAX_IN_PROGRESS, ImportQueue, QueueAction};
pub use retry_after::{DEFAULT_RETRY_AFTER_MAX, RetryAfter, retry_after};
pub use scheduler::{Budget, JobKey, Scheduler, SchedulerAction};
pub use status::{INTEGRATION_SOURCE, USER_AGENT_VALUE};
pub use workflow::{ImportEvent, ImportOutcome, ImportReport, Stage, Workflow, WorkflowAction};

/// The `http` crate this one speaks, so adapters use the same version.
pub use http;
