//! Faults: what can go wrong with a response, and scripts that aim them.

use std::time::Duration;

use crate::codec::{mix, unit_float};
use crate::model::{Resource, Route};

/// Size of [`Fault::OversizedBody`] used by random faults: 2 MiB.
pub const DEFAULT_OVERSIZED_BYTES: usize = 2 * 1024 * 1024;

/// How a `Retry-After` header is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetryAfter {
    /// `Retry-After: N` (delay in seconds), as the API documents.
    Seconds(u64),
    /// `Retry-After: <HTTP-date>` set N seconds after the response's `Date`
    /// header, as proxies may send (RFC 9110 §10.2.3).
    HttpDate(u64),
}

/// One faulty response. Faults stand for trouble in front of or inside the
/// server; unless a variant says it is processed, the request is **not**
/// processed (no job is created, no rate-limit token is spent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// 500 with an `ErrorResponse` (`server_error`) or, with `html`, an HTML page.
    Http500 {
        /// Optional `Retry-After`.
        retry_after: Option<RetryAfter>,
        /// Send an HTML page (as a proxy would) instead of JSON.
        html: bool,
    },
    /// 502 Bad Gateway, JSON or HTML.
    Http502 {
        /// Optional `Retry-After`.
        retry_after: Option<RetryAfter>,
        /// Send an HTML page instead of JSON.
        html: bool,
    },
    /// 503 Service Unavailable, JSON or HTML.
    Http503 {
        /// Optional `Retry-After`.
        retry_after: Option<RetryAfter>,
        /// Send an HTML page instead of JSON.
        html: bool,
    },
    /// 504 Gateway Timeout, JSON or HTML.
    Http504 {
        /// Optional `Retry-After`.
        retry_after: Option<RetryAfter>,
        /// Send an HTML page instead of JSON.
        html: bool,
    },
    /// 429 `too_many_requests` with a `Retry-After`, and the `Date` header
    /// moved by `date_skew_secs` (positive: the server clock runs ahead).
    /// With [`RetryAfter::HttpDate`], the date is the skewed `Date` plus N s,
    /// so a client that measures against `Date` waits exactly N s.
    TooManyRequests {
        /// The `Retry-After` header.
        retry_after: RetryAfter,
        /// Seconds added to the server's clock for `Date` (may be negative).
        date_skew_secs: i64,
    },
    /// 200 headers whose `Content-Length` promises more than is sent, a part of
    /// the body, then the connection is dropped.
    ConnectionReset,
    /// No headers for this long (real time, even with the manual clock), then
    /// the connection is closed without a response. Ends early on shutdown.
    Stall(Duration),
    /// Waits this long (real time), then **processes** the request and answers
    /// normally: a slow but successful server.
    Delay(Duration),
    /// 200 with valid headers and a JSON body cut in half (`Content-Length`
    /// matches what is sent).
    TruncatedBody,
    /// The request is **processed** and the real answer is padded with an
    /// unknown field to about this many bytes of valid JSON.
    OversizedBody {
        /// Approximate body size in bytes.
        bytes: usize,
    },
    /// The request is **processed** and the real answer is sent `chunk` bytes
    /// at a time with `delay` between chunks.
    SlowDrip {
        /// Bytes per write.
        chunk: usize,
        /// Pause between writes (real time).
        delay: Duration,
    },
    /// The request is **processed** (a create makes its job), then the answer
    /// is a 500 `server_error`: proves a client's retries are idempotent.
    AcceptThenFail,
    /// The request is **processed**, then the given fault replaces the answer
    /// (for example a [`Fault::ConnectionReset`] after the job was created).
    AcceptThen(Box<Fault>),
}

/// The kind of a [`Fault`], without its parameters: recorded in the request
/// log and used to choose random faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// [`Fault::Http500`].
    Http500,
    /// [`Fault::Http502`].
    Http502,
    /// [`Fault::Http503`].
    Http503,
    /// [`Fault::Http504`].
    Http504,
    /// [`Fault::TooManyRequests`].
    TooManyRequests,
    /// [`Fault::ConnectionReset`].
    ConnectionReset,
    /// [`Fault::Stall`].
    Stall,
    /// [`Fault::Delay`].
    Delay,
    /// [`Fault::TruncatedBody`].
    TruncatedBody,
    /// [`Fault::OversizedBody`].
    OversizedBody,
    /// [`Fault::SlowDrip`].
    SlowDrip,
    /// [`Fault::AcceptThenFail`].
    AcceptThenFail,
    /// [`Fault::AcceptThen`].
    AcceptThen,
}

impl FaultKind {
    /// Every kind, for `random_faults(rate, seed, FaultKind::ALL)`.
    pub const ALL: &'static [FaultKind] = &[
        FaultKind::Http500,
        FaultKind::Http502,
        FaultKind::Http503,
        FaultKind::Http504,
        FaultKind::TooManyRequests,
        FaultKind::ConnectionReset,
        FaultKind::Stall,
        FaultKind::Delay,
        FaultKind::TruncatedBody,
        FaultKind::OversizedBody,
        FaultKind::SlowDrip,
        FaultKind::AcceptThenFail,
        FaultKind::AcceptThen,
    ];
}

impl Fault {
    /// This fault's kind.
    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::Http500 { .. } => FaultKind::Http500,
            Fault::Http502 { .. } => FaultKind::Http502,
            Fault::Http503 { .. } => FaultKind::Http503,
            Fault::Http504 { .. } => FaultKind::Http504,
            Fault::TooManyRequests { .. } => FaultKind::TooManyRequests,
            Fault::ConnectionReset => FaultKind::ConnectionReset,
            Fault::Stall(_) => FaultKind::Stall,
            Fault::Delay(_) => FaultKind::Delay,
            Fault::TruncatedBody => FaultKind::TruncatedBody,
            Fault::OversizedBody { .. } => FaultKind::OversizedBody,
            Fault::SlowDrip { .. } => FaultKind::SlowDrip,
            Fault::AcceptThenFail => FaultKind::AcceptThenFail,
            Fault::AcceptThen(_) => FaultKind::AcceptThen,
        }
    }

    /// Whether the server processes the request (and may change job state)
    /// before this fault shapes the answer.
    pub fn processes_request(&self) -> bool {
        matches!(
            self,
            Fault::Delay(_)
                | Fault::OversizedBody { .. }
                | Fault::SlowDrip { .. }
                | Fault::AcceptThenFail
                | Fault::AcceptThen(_)
        )
    }

    /// A concrete fault of `kind`, with parameters drawn from `bits` (so random
    /// faults vary `html`, `Retry-After` form and clock skew reproducibly).
    pub(crate) fn sample(kind: FaultKind, bits: u64, params: &RandomParams) -> Fault {
        let html = bits & 1 == 1;
        let retry_after = match (bits >> 1) & 3 {
            0 => None,
            1 => Some(RetryAfter::HttpDate(1)),
            _ => Some(RetryAfter::Seconds(1)),
        };
        match kind {
            FaultKind::Http500 => Fault::Http500 { retry_after, html },
            FaultKind::Http502 => Fault::Http502 { retry_after, html },
            FaultKind::Http503 => Fault::Http503 { retry_after, html },
            FaultKind::Http504 => Fault::Http504 { retry_after, html },
            FaultKind::TooManyRequests => Fault::TooManyRequests {
                retry_after: if html {
                    RetryAfter::HttpDate(1)
                } else {
                    RetryAfter::Seconds(1)
                },
                date_skew_secs: if (bits >> 3) & 1 == 1 { 3600 } else { 0 },
            },
            FaultKind::ConnectionReset => Fault::ConnectionReset,
            FaultKind::Stall => Fault::Stall(params.stall),
            FaultKind::Delay => Fault::Delay(params.delay),
            FaultKind::TruncatedBody => Fault::TruncatedBody,
            FaultKind::OversizedBody => Fault::OversizedBody {
                bytes: DEFAULT_OVERSIZED_BYTES,
            },
            FaultKind::SlowDrip => Fault::SlowDrip {
                chunk: 16,
                delay: Duration::from_millis(2),
            },
            FaultKind::AcceptThenFail => Fault::AcceptThenFail,
            FaultKind::AcceptThen => Fault::AcceptThen(Box::new(Fault::ConnectionReset)),
        }
    }
}

/// Durations used when random faults pick [`Fault::Stall`] or [`Fault::Delay`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RandomParams {
    /// Length of a random [`Fault::Stall`] (default 1 s).
    pub stall: Duration,
    /// Length of a random [`Fault::Delay`] (default 50 ms).
    pub delay: Duration,
}

impl Default for RandomParams {
    fn default() -> Self {
        RandomParams {
            stall: Duration::from_secs(1),
            delay: Duration::from_millis(50),
        }
    }
}

/// A scripted fault: "the Nth request matching this gets that fault".
///
/// ```
/// use fullstory_batch_fake::{Fault, Route, Script};
/// // The 2nd and 3rd status polls of job "abc=" answer an HTML 503.
/// let script = Script::on(Route::Status)
///     .for_job("abc=")
///     .nth(2)
///     .times(2)
///     .respond(Fault::Http503 { retry_after: None, html: true });
/// # let _ = script;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub(crate) route: Route,
    pub(crate) resource: Option<Resource>,
    pub(crate) job: Option<String>,
    pub(crate) nth: usize,
    pub(crate) times: Option<usize>,
    pub(crate) fault: Fault,
}

impl Script {
    /// A script for requests to `route` (any resource, any job), firing on the
    /// first match, once, with a JSON 500 unless [`respond`](Self::respond) says otherwise.
    pub fn on(route: Route) -> Script {
        Script {
            route,
            resource: None,
            job: None,
            nth: 1,
            times: Some(1),
            fault: Fault::Http500 {
                retry_after: None,
                html: false,
            },
        }
    }

    /// Only match requests for this resource.
    pub fn resource(mut self, resource: Resource) -> Script {
        self.resource = Some(resource);
        self
    }

    /// Only match requests about this job (as generated, not percent-encoded).
    /// Create requests never match a job filter.
    pub fn for_job(mut self, id: impl Into<String>) -> Script {
        self.job = Some(id.into());
        self
    }

    /// Fire on the `n`th matching request (1-based; 0 is taken as 1).
    pub fn nth(mut self, n: usize) -> Script {
        self.nth = n.max(1);
        self
    }

    /// Fire on this many consecutive matches, starting at the `nth`.
    pub fn times(mut self, count: usize) -> Script {
        self.times = Some(count);
        self
    }

    /// Fire on every match from the `nth` on.
    pub fn always(mut self) -> Script {
        self.times = None;
        self
    }

    /// The fault to answer with.
    pub fn respond(mut self, fault: Fault) -> Script {
        self.fault = fault;
        self
    }
}

/// Identifies a registered script, to ask how often it fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ScriptId(pub(crate) usize);

/// What a script is matched against.
pub(crate) struct Target<'a> {
    pub route: Option<Route>,
    pub resource: Option<Resource>,
    pub job: Option<&'a str>,
}

/// A registered script and its counters.
#[derive(Debug)]
pub(crate) struct ScriptState {
    pub script: Script,
    pub seen: usize,
    pub fired: usize,
}

impl ScriptState {
    fn matches(&self, target: &Target<'_>) -> bool {
        let s = &self.script;
        let route_ok = s.route == Route::Any || target.route == Some(s.route);
        let resource_ok = s.resource.is_none() || s.resource == target.resource;
        let job_ok = s.job.is_none() || s.job.as_deref() == target.job;
        route_ok && resource_ok && job_ok
    }

    /// Counts the request if it matches; returns the fault if it fires now.
    pub fn observe(&mut self, target: &Target<'_>) -> Option<Fault> {
        if !self.matches(target) {
            return None;
        }
        self.seen += 1;
        let s = &self.script;
        let in_window = self.seen >= s.nth && s.times.is_none_or(|t| self.seen < s.nth + t);
        if in_window {
            self.fired += 1;
            Some(s.fault.clone())
        } else {
            None
        }
    }
}

/// Random faults at a rate, reproducible from a seed.
#[derive(Debug, Clone)]
pub(crate) struct RandomFaults {
    pub rate: f64,
    pub seed: u64,
    pub choices: RandomChoices,
}

/// Either kinds (parameters drawn at random) or concrete faults.
#[derive(Debug, Clone)]
pub(crate) enum RandomChoices {
    Kinds(Vec<FaultKind>, RandomParams),
    Faults(Vec<Fault>),
}

impl RandomFaults {
    /// The draw for one request; `key` identifies the request and its
    /// repetition, so the same run of requests gets the same faults.
    pub fn draw(&self, key: u64) -> Option<Fault> {
        let bits = mix(self.seed ^ mix(key));
        if unit_float(bits) >= self.rate {
            return None;
        }
        let pick = mix(bits);
        match &self.choices {
            RandomChoices::Kinds(kinds, params) if !kinds.is_empty() => {
                let kind = kinds[(pick % kinds.len() as u64) as usize];
                Some(Fault::sample(kind, mix(pick), params))
            }
            RandomChoices::Faults(faults) if !faults.is_empty() => {
                Some(faults[(pick % faults.len() as u64) as usize].clone())
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(route: Route, job: Option<&str>) -> Target<'_> {
        Target {
            route: Some(route),
            resource: Some(Resource::Events),
            job,
        }
    }

    #[test]
    fn script_fires_on_nth_match_for_times() {
        let script = Script::on(Route::Status).for_job("a").nth(2).times(2);
        let mut state = ScriptState {
            script,
            seen: 0,
            fired: 0,
        };
        let fired: Vec<bool> = (0..5)
            .map(|_| {
                assert!(state.observe(&target(Route::Status, Some("b"))).is_none());
                assert!(state.observe(&target(Route::Imports, Some("a"))).is_none());
                state.observe(&target(Route::Status, Some("a"))).is_some()
            })
            .collect();
        assert_eq!(fired, [false, true, true, false, false]);
        assert_eq!(state.fired, 2);
    }

    #[test]
    fn always_and_any_route() {
        let mut state = ScriptState {
            script: Script::on(Route::Any).always(),
            seen: 0,
            fired: 0,
        };
        let unknown = Target {
            route: None,
            resource: None,
            job: None,
        };
        assert!(state.observe(&unknown).is_some());
        assert!(state.observe(&target(Route::Create, None)).is_some());
        let mut users_only = ScriptState {
            script: Script::on(Route::Any).resource(Resource::Users).always(),
            seen: 0,
            fired: 0,
        };
        assert!(users_only.observe(&target(Route::Create, None)).is_none());
    }

    #[test]
    fn random_draws_hit_the_rate_and_repeat() {
        let faults = RandomFaults {
            rate: 0.2,
            seed: 7,
            choices: RandomChoices::Kinds(FaultKind::ALL.to_vec(), RandomParams::default()),
        };
        let draws: Vec<Option<Fault>> = (0..10_000).map(|k| faults.draw(k)).collect();
        let hits = draws.iter().filter(|d| d.is_some()).count();
        assert!((1_800..2_200).contains(&hits), "{hits}");
        let again: Vec<Option<Fault>> = (0..10_000).map(|k| faults.draw(k)).collect();
        assert_eq!(draws, again);
        for kind in FaultKind::ALL {
            assert!(
                draws.iter().flatten().any(|f| f.kind() == *kind),
                "{kind:?} never drawn"
            );
        }
    }
}
