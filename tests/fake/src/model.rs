//! Public value types: resources, routes, job snapshots and encoding switches.

use std::fmt;
use std::time::{Duration, SystemTime};

/// The two kinds of batch import the API offers: the core crate's own type, re-exported, so a
/// test that imports both the fake and an adapter names one `Resource`.
pub use fullstory_batch::Resource;

/// What the fake needs of a [`Resource`] beyond the core's `as_str`.
pub(crate) trait ResourceExt: Sized {
    /// The key that holds the original item in an errors page result.
    fn item_key(self) -> &'static str;
    /// The resource a path segment names.
    fn from_segment(segment: &str) -> Option<Self>;
}

impl ResourceExt for Resource {
    fn item_key(self) -> &'static str {
        match self {
            Resource::Events => "event",
            Resource::Users => "user",
        }
    }

    fn from_segment(segment: &str) -> Option<Resource> {
        match segment {
            "events" => Some(Resource::Events),
            "users" => Some(Resource::Users),
            _ => None,
        }
    }
}

/// The endpoint a request was routed to, used to aim scripted faults and
/// reported in the request log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// `POST /v2/{resource}/batch`.
    Create,
    /// `GET /v2/{resource}/batch/{job_id}`.
    Status,
    /// `GET /v2/{resource}/batch/{job_id}/imports`.
    Imports,
    /// `GET /v2/{resource}/batch/{job_id}/errors`.
    Errors,
    /// Any request at all, including unknown paths (only meaningful in a [`Script`](crate::Script)).
    Any,
}

/// The state of a job as the fake sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    /// Accepted, shown before `PROCESSING` only when [`Encoding::pending_first`] is on.
    Pending,
    /// Still being processed: imports and errors pages answer 202.
    Processing,
    /// Finished and every item was imported.
    Completed,
    /// Finished with at least one failed item (other items may still be imported).
    Failed,
}

impl JobStatus {
    /// The wire name: `"PENDING"`, `"PROCESSING"`, `"COMPLETED"` or `"FAILED"`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "PENDING",
            JobStatus::Processing => "PROCESSING",
            JobStatus::Completed => "COMPLETED",
            JobStatus::Failed => "FAILED",
        }
    }

    /// Whether the job has finished (`COMPLETED` or `FAILED`).
    pub fn is_done(self) -> bool {
        matches!(self, JobStatus::Completed | JobStatus::Failed)
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The true state of one job, for tests to compare with what a client saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSnapshot {
    /// The job id as generated (not percent-encoded).
    pub id: String,
    /// Events or users.
    pub resource: Resource,
    /// Status at the fake clock's current time.
    pub status: JobStatus,
    /// Number of items submitted.
    pub items: usize,
    /// Number of items imported (counted once the job is done; the API shows 0 before).
    pub imports: usize,
    /// Number of items that failed.
    pub errors: usize,
    /// Indexes (into the submitted `requests`) of the failed items.
    pub failed_indexes: Vec<usize>,
    /// When the job was accepted, on the fake clock.
    pub created: SystemTime,
    /// When the job finishes or finished, on the fake clock.
    pub finishes: SystemTime,
    /// The `Idempotency-Key` it was created under, if any.
    pub idempotency_key: Option<String>,
}

/// Wire-format switches that real servers (proto3 JSON gateways, older API
/// versions) exhibit. The default is the documented form: every field the spec
/// marks required is present and counts are JSON numbers.
///
/// Build one with struct update syntax:
/// `Encoding { counts_as_strings: true, ..Encoding::default() }`, or take
/// [`Encoding::real_world`] for every quirk at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoding {
    /// Leave out `imports` / `errors` in the job status when they are 0 (proto3 JSON).
    pub omit_zero_counts: bool,
    /// Send `imports` / `errors` as numeric strings (`"imports":"42"`), as early spec versions did.
    pub counts_as_strings: bool,
    /// Add unknown fields to every response object the server builds (not inside
    /// echoed user data) and a `details` array to error bodies.
    pub extra_fields: bool,
    /// Report the unknown status `PENDING` for the first [`pending_time`](Self::pending_time) of a job.
    pub pending_first: bool,
    /// How long `PENDING` is shown when [`pending_first`](Self::pending_first) is on
    /// (counted inside the processing time, not added to it).
    pub pending_time: Duration,
    /// Leave out empty `results` arrays and an empty last `next_page_token` (proto3 JSON);
    /// by default the last page carries `"next_page_token": ""`.
    pub omit_empty_fields: bool,
    /// Answer 202 (still processing) with `{}` instead of an empty body.
    pub empty_object_202: bool,
}

impl Default for Encoding {
    fn default() -> Self {
        Encoding {
            omit_zero_counts: false,
            counts_as_strings: false,
            extra_fields: false,
            pending_first: false,
            pending_time: Duration::from_millis(500),
            omit_empty_fields: false,
            empty_object_202: false,
        }
    }
}

impl Encoding {
    /// Every quirk on at once: the strictest test of a client's parser.
    pub fn real_world() -> Self {
        Encoding {
            omit_zero_counts: true,
            counts_as_strings: true,
            extra_fields: true,
            pending_first: true,
            pending_time: Duration::from_millis(500),
            omit_empty_fields: true,
            empty_object_202: true,
        }
    }
}

/// Organisation-wide limits on in-progress work (API notes: "100 in-progress
/// batches per org start; past 200 in-progress batches or 500,000 operations,
/// create calls get 429 until some finish").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrgLimits {
    /// Jobs processed at the same time; later ones wait (stay `PROCESSING`) for a slot.
    pub concurrent_jobs: usize,
    /// Unfinished jobs at or above which a create answers 429.
    pub max_in_progress_jobs: usize,
    /// Unfinished items above which a create answers 429 (counting the new batch).
    pub max_in_progress_items: usize,
}

impl Default for OrgLimits {
    fn default() -> Self {
        OrgLimits {
            concurrent_jobs: 100,
            max_in_progress_jobs: 200,
            max_in_progress_items: 500_000,
        }
    }
}

impl OrgLimits {
    /// No limits at all: every job starts at once and creates are never refused.
    pub fn unlimited() -> Self {
        OrgLimits {
            concurrent_jobs: usize::MAX,
            max_in_progress_jobs: usize::MAX,
            max_in_progress_items: usize::MAX,
        }
    }
}
