//! What the fake has seen, in numbers ([`Stats`]), and the read-only inspection endpoints
//! under `/fake/` that serve those numbers, the jobs and the request log as JSON.
//!
//! The inspection endpoints need no API key (this is a test server), are never logged,
//! never counted in the stats and never answered with an injected fault.

use hyper::header::ALLOW;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::codec::rfc3339_millis;
use crate::log::LoggedRequest;
use crate::model::{JobSnapshot, Resource, Route};
use crate::reply::Reply;
use crate::server::Shared;

/// API requests received, by call. Every request counts once on arrival, whatever it was
/// answered (including 4xx answers and injected faults).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestCounts {
    /// `POST .../batch`.
    pub create: u64,
    /// `GET .../batch/{job_id}`.
    pub status: u64,
    /// `GET .../batch/{job_id}/imports`.
    pub imports: u64,
    /// `GET .../batch/{job_id}/errors`.
    pub errors: u64,
    /// Paths that are not one of the API's (always 0 per resource: such a path names none).
    pub other: u64,
}

impl RequestCounts {
    /// All requests counted.
    pub fn total(&self) -> u64 {
        self.create + self.status + self.imports + self.errors + self.other
    }

    fn add(&mut self, route: Option<Route>) {
        match route {
            Some(Route::Create) => self.create += 1,
            Some(Route::Status) => self.status += 1,
            Some(Route::Imports) => self.imports += 1,
            Some(Route::Errors) => self.errors += 1,
            Some(Route::Any) | None => self.other += 1,
        }
    }

    fn plus(self, other: RequestCounts) -> RequestCounts {
        RequestCounts {
            create: self.create + other.create,
            status: self.status + other.status,
            imports: self.imports + other.imports,
            errors: self.errors + other.errors,
            other: self.other + other.other,
        }
    }

    fn to_json(self) -> Value {
        json!({
            "create": self.create,
            "status": self.status,
            "imports": self.imports,
            "errors": self.errors,
            "other": self.other,
        })
    }
}

/// The numbers for one resource (events or users).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResourceStats {
    /// Jobs held (created over HTTP or inserted).
    pub jobs: usize,
    /// Items submitted across those jobs. A create replayed with the same
    /// `Idempotency-Key` made no new job, so its items count once.
    pub items: usize,
    /// Requests received for this resource.
    pub requests: RequestCounts,
}

impl ResourceStats {
    fn to_json(self) -> Value {
        json!({
            "jobs": self.jobs,
            "items": self.items,
            "requests": self.requests.to_json(),
        })
    }
}

/// What the fake has seen since it started: [`FakeServer::stats`](crate::FakeServer::stats),
/// and `GET /fake/stats` as JSON ([`Stats::to_json`]).
///
/// Unlike the request log these numbers are never dropped or cleared
/// ([`clear_requests`](crate::FakeServer::clear_requests) leaves them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Jobs held, both resources.
    pub jobs: usize,
    /// Items submitted across all jobs, each job counted once.
    pub items: usize,
    /// Creates answered with an existing job because of their `Idempotency-Key`.
    pub replayed_creates: u64,
    /// Requests received, both resources and unknown paths.
    pub requests: RequestCounts,
    /// Requests answered with an injected fault (scripted or random).
    pub faults: u64,
    /// The events API alone.
    pub events: ResourceStats,
    /// The users API alone.
    pub users: ResourceStats,
}

impl Stats {
    /// The numbers for `resource`.
    pub fn resource(&self, resource: Resource) -> &ResourceStats {
        match resource {
            Resource::Events => &self.events,
            Resource::Users => &self.users,
        }
    }

    /// The JSON `GET /fake/stats` serves:
    ///
    /// ```json
    /// {"jobs": 2, "items": 30, "replayed_creates": 1, "faults": 0,
    ///  "requests": {"create": 3, "status": 5, "imports": 1, "errors": 1, "other": 0},
    ///  "by_resource": {"events": {"jobs": 2, "items": 30, "requests": {...}},
    ///                  "users": {"jobs": 0, "items": 0, "requests": {...}}}}
    /// ```
    pub fn to_json(&self) -> Value {
        json!({
            "jobs": self.jobs,
            "items": self.items,
            "replayed_creates": self.replayed_creates,
            "faults": self.faults,
            "requests": self.requests.to_json(),
            "by_resource": {
                "events": self.events.to_json(),
                "users": self.users.to_json(),
            },
        })
    }
}

/// The running counts kept beside the state (the request log may drop entries; these never do).
#[derive(Debug, Default)]
pub(crate) struct Tally {
    events: RequestCounts,
    users: RequestCounts,
    /// Requests to paths that name no resource.
    unknown: u64,
    pub faults: u64,
    pub replayed_creates: u64,
}

impl Tally {
    /// Counts one API request (never an inspection request).
    pub fn request(&mut self, route: Option<Route>, resource: Option<Resource>) {
        match resource {
            Some(Resource::Events) => self.events.add(route),
            Some(Resource::Users) => self.users.add(route),
            None => self.unknown += 1,
        }
    }
}

/// Whether `path` is one of the inspection endpoints' (`/fake` or below).
pub(crate) fn is_inspection(path: &str) -> bool {
    path == "/fake" || path.starts_with("/fake/")
}

impl Shared {
    /// The numbers behind [`Stats`].
    pub(crate) fn stats(&self) -> Stats {
        let mut stats = {
            let tally = self.lock_tally();
            let unknown = RequestCounts {
                other: tally.unknown,
                ..RequestCounts::default()
            };
            Stats {
                requests: tally.events.plus(tally.users).plus(unknown),
                faults: tally.faults,
                replayed_creates: tally.replayed_creates,
                events: ResourceStats {
                    requests: tally.events,
                    ..ResourceStats::default()
                },
                users: ResourceStats {
                    requests: tally.users,
                    ..ResourceStats::default()
                },
                ..Stats::default()
            }
        };
        let state = self.lock_state();
        for job in state.jobs.values() {
            let per = match job.resource {
                Resource::Events => &mut stats.events,
                Resource::Users => &mut stats.users,
            };
            per.jobs += 1;
            per.items += job.items.len();
        }
        stats.jobs = stats.events.jobs + stats.users.jobs;
        stats.items = stats.events.items + stats.users.items;
        stats
    }

    /// Answers `GET /fake/stats`, `/fake/jobs` and `/fake/requests`.
    pub(crate) fn inspect(&self, method: &Method, path: &str) -> Reply {
        let now = self.clock.wall(self.clock.now());
        let error = |status: StatusCode, code: &str, message: &str| {
            Reply::error(status, code, message, false).dated(now, None)
        };
        let path = path.trim_end_matches('/');
        if !matches!(path, "/fake/stats" | "/fake/jobs" | "/fake/requests") {
            let message =
                "no such inspection endpoint: try /fake/stats, /fake/jobs or /fake/requests";
            return error(StatusCode::NOT_FOUND, "resource_not_found", message);
        }
        if method != Method::GET && method != Method::HEAD {
            let reply = error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "the inspection endpoints are read-only",
            );
            return reply.header(ALLOW, "GET, HEAD");
        }
        let doc = match path {
            "/fake/stats" => self.stats().to_json(),
            "/fake/jobs" => {
                let jobs: Vec<Value> = self.jobs().iter().map(job_json).collect();
                json!({ "jobs": jobs })
            }
            _ => {
                let requests = self.lock_log().snapshot();
                let requests: Vec<Value> = requests.iter().map(request_json).collect();
                json!({ "requests": requests })
            }
        };
        Reply::json(StatusCode::OK, &doc).dated(now, None)
    }
}

fn job_json(job: &JobSnapshot) -> Value {
    json!({
        "id": job.id,
        "resource": job.resource.as_str(),
        "status": job.status.as_str(),
        "items": job.items,
        "imports": job.imports,
        "errors": job.errors,
        "created": rfc3339_millis(job.created),
        "finished": job.status.is_done().then(|| rfc3339_millis(job.finishes)),
    })
}

fn route_name(route: Route) -> &'static str {
    match route {
        Route::Create => "create",
        Route::Status => "status",
        Route::Imports => "imports",
        Route::Errors => "errors",
        Route::Any => "any",
    }
}

/// One log entry; its headers are already redacted (`Authorization: Basic [redacted]`).
fn request_json(request: &LoggedRequest) -> Value {
    let headers: Vec<Value> = request
        .headers
        .iter()
        .map(|(name, value)| json!([name, value]))
        .collect();
    json!({
        "seq": request.seq,
        "method": request.method,
        "path": request.path,
        "query": request.query,
        "status": request.status,
        "route": request.route.map(route_name),
        "resource": request.resource.map(Resource::as_str),
        "job_id": request.job_id,
        "fault": request.fault.map(|f| format!("{f:?}")),
        "clock_ms": u64::try_from(request.clock.as_millis()).unwrap_or(u64::MAX),
        "body_len": request.body_len,
        "headers": headers,
    })
}
