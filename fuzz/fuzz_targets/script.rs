//! What the `job` and `job_set` targets share: fuzz bytes read as a driver's script (a
//! policy, then moves: time jumps, sends, answers, failures), and the checks a driver can
//! make on one job from the outside, whatever the answers.
//!
//! # The bytes
//! A [`Bytes`] cursor reads one byte at a time and gives zeros once the input is used up,
//! so every input is a whole script. [`policy`] takes 8 bytes, [`response`] 4 (more for an
//! arbitrary body), [`transport_error`] 1. The seeds in `fuzz/seeds/{job,job_set}/` were
//! written by hand in this encoding (see each target's docs for its moves).

#![allow(dead_code)]

use std::time::{Duration, SystemTime};

use fullstory_batch::http::{Request, Response};
use fullstory_batch::{
    Event, IDEMPOTENCY_KEY, Outcome, Policy, Progress, RequestId, Stage, Transmit,
    TransportError, TransportKind, retry_after,
};

/// The fuzz input, read front to back; zeros past its end.
pub struct Bytes<'a>(pub &'a [u8]);

impl Bytes<'_> {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    /// Up to `n` bytes, as many as are left.
    pub fn take(&mut self, n: usize) -> Vec<u8> {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head.to_vec()
    }
}

/// The clock every run starts at: late 2023, so HTTP-dates around it are ordinary.
pub fn start() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// `now` moved by a script's time move (`a`, `b`, `c` its bytes): forward by up to 655 s
/// in 10 ms steps, by up to 18 hours in 1 s steps, or back by up to 65 s (a wall clock
/// set back: the machines read `SystemTime`).
pub fn jump(now: SystemTime, a: u8, b: u8, c: u8) -> SystemTime {
    let n = u64::from(u16::from_le_bytes([a, b]));
    match c % 8 {
        0 => now - Duration::from_millis(n),
        1 => now + Duration::from_secs(n),
        _ => now + Duration::from_millis(n * 10),
    }
}

/// A valid policy from 8 bytes, across the whole range the builder accepts: intervals and
/// backoffs from the 100 ms floor up, any age fraction and jitter, error limits of 1 to 12,
/// no timeout or one of 0.1 s to 6,553 s, `Retry-After` capped at 1 s to 4 h.
pub fn policy(b: &mut Bytes<'_>) -> Policy {
    let min = Duration::from_millis(100 + u64::from(b.byte()) * 20);
    let max = min * (1 + u32::from(b.byte() % 16));
    let fraction_jitter = b.byte();
    let backoff = Duration::from_millis(100 + u64::from(b.byte()) * 20);
    let limits = b.byte();
    let timeout = b.u16();
    let retry_after_max = Duration::from_secs(1 + u64::from(b.byte()) * 60);
    let mut builder = Policy::builder()
        .min_interval(min)
        .max_interval(max)
        .age_fraction(f64::from(fraction_jitter & 0x0f) / 1.5)
        .poll_jitter(f64::from(fraction_jitter >> 4) / 15.0)
        .error_backoff(backoff)
        .max_error_backoff(backoff * (1 + u32::from(limits >> 4)))
        .max_errors_in_row(1 + u32::from(limits & 0x0f) % 12)
        .connect_attempts_at_start(1 + u32::from(limits >> 6))
        .retry_after_max(retry_after_max);
    if timeout != 0 {
        builder = builder.timeout(Duration::from_millis(u64::from(timeout) * 100));
    }
    builder.build().expect("every policy made here is within the builder's ranges")
}

const STATUSES: [u16; 20] = [
    200, 200, 200, 200, 200, 200, 201, 202, 204, 301, 400, 401, 403, 404, 408, 429, 500, 502, 503,
    504,
];

/// An answer from 4 bytes, the clock of the moment it arrives, and the job's id (so that a
/// status or a created job names it): a status (the API's and a few odd ones, or any code
/// from 100 to 999), a `Retry-After` (none, seconds, a date, garbage, a list) and a `Date`
/// (none, right, skewed, garbage), and a body (job statuses, a created job, pages with page
/// tokens that may repeat, a 202, an API error, HTML, or arbitrary bytes from the input).
pub fn response(b: &mut Bytes<'_>, now: SystemTime, job_id: &str) -> Response<Vec<u8>> {
    let (s, ra, date, body) = (b.byte(), b.byte(), b.byte(), b.byte());
    let status = match STATUSES.get(usize::from(s)) {
        Some(&code) => code,
        None if s >= 250 => 100 + u16::from(s) * 3 + u16::from(ra) % 3,
        None => STATUSES[usize::from(s) % STATUSES.len()],
    };
    let mut response = Response::builder().status(status);
    let date_at = |secs: i64| {
        let at = if secs >= 0 {
            now + Duration::from_secs(secs.unsigned_abs())
        } else {
            now - Duration::from_secs(secs.unsigned_abs())
        };
        httpdate::fmt_http_date(at)
    };
    let n = i64::from(ra >> 3);
    let retry_after = match ra % 8 {
        0 | 1 => None,
        2 | 3 => Some((ra >> 3).to_string()),
        4 => Some(date_at(n * 10 - 60)),
        5 => Some(["0", "-1", "1.5", "soon", "99999999999999999999", "", " 7 "][usize::from(ra >> 3) % 7].to_owned()),
        6 => Some(format!("{}, {}", ra >> 3, date_at(n))),
        _ => Some(date_at(n * 600)),
    };
    if let Some(value) = retry_after {
        response = response.header("retry-after", value);
    }
    let skew = i64::from(date >> 2) * 300 - 9_600;
    match date % 4 {
        0 => {}
        1 => response = response.header("date", date_at(0)),
        2 => response = response.header("date", date_at(skew)),
        _ => response = response.header("date", "yesterday"),
    }
    let token = body >> 5;
    let body = match body % 16 {
        0 | 1 => format!(r#"{{"job":{{"id":"{job_id}","status":"PROCESSING"}}}}"#).into_bytes(),
        2 => format!(r#"{{"imports":"4","job":{{"id":"{job_id}","status":"COMPLETED"}}}}"#).into_bytes(),
        3 => format!(r#"{{"imports":4,"errors":1,"job":{{"id":"{job_id}","status":"FAILED"}}}}"#)
            .into_bytes(),
        4 => format!(r#"{{"job":{{"id":"{job_id}","status":"PENDING"}}}}"#).into_bytes(),
        5 => format!(r#"{{"job":{{"id":"new-{token}=","status":"PROCESSING","created":"2023-11-14T22:13:20Z"}}}}"#).into_bytes(),
        6 => br#"{"job":{"id":"","status":"PROCESSING"}}"#.to_vec(),
        7 | 8 => format!(r#"{{"results":[{{"name":"e{token}"}}],"total_records":"9","next_page_token":"t{}"}}"#, token % 4).into_bytes(),
        9 => br#"{"results":[{"name":"last"}],"total_records":2,"next_page_token":""}"#.to_vec(),
        10 => br#"{"results":[{"code":"c","message":"m","event":{"name":"bad"}}]}"#.to_vec(),
        11 => format!(r#"{{"results":[{{"code":"c","message":"m"}}],"next_page_token":"e{}"}}"#, token % 4).into_bytes(),
        12 => br#"{"message":"slow down","code":"too_many_requests"}"#.to_vec(),
        13 => b"<html><body>502 Bad Gateway</body></html>".to_vec(),
        14 => Vec::new(),
        _ => b.take(usize::from(token) * 16),
    };
    response.body(body).expect("a status from 100 to 999 and valid headers")
}

/// A transport failure of any kind.
pub fn transport_error(b: &mut Bytes<'_>) -> TransportError {
    let kinds = [
        TransportKind::Connect,
        TransportKind::Tls,
        TransportKind::Timeout,
        TransportKind::Reset,
        TransportKind::BodyTooLarge,
        TransportKind::Other,
    ];
    TransportError::new(kinds[usize::from(b.byte()) % kinds.len()])
}

/// The floor a `Retry-After` on `response` puts under the job's next request: an error
/// status with a valid value (a success is never an error that carries one).
pub fn retry_after_floor<B>(response: &Response<B>, now: SystemTime, policy: &Policy) -> Option<SystemTime> {
    if response.status().is_success() {
        return None;
    }
    retry_after(response.headers(), now, policy.retry_after_max()).map(|wait| now + wait)
}

/// Allowed error in comparisons of instants the core computed through `f64` seconds.
pub const SLOP: Duration = Duration::from_millis(1);

/// Everything a driver can check about one job from the outside.
#[derive(Debug)]
pub struct Watch {
    /// Whether the job was made from a batch (its first requests are creates).
    pub creates: bool,
    /// The overall deadline: no request after it.
    pub deadline: Option<SystemTime>,
    /// No request before this: the latest `Retry-After` (and, in a set, pause) floor.
    pub floor: SystemTime,
    /// No request before this either: the shortest wait the policy allows after the last
    /// answer (a poll interval less its jitter, half an error backoff, nothing for a page).
    pub paced: SystemTime,
    /// The request out, if any, and when it went.
    pub in_flight: Option<RequestId>,
    /// Requests so far.
    pub attempts: u32,
    /// Every id handed out, for stale answers.
    pub sent: Vec<RequestId>,
    /// The idempotency key of the first create, which every retry must carry.
    pub idempotency_key: Option<Vec<u8>>,
    /// `Created` seen.
    pub created: bool,
    /// A page of failures seen (imported pages come first).
    pub failed_pages: bool,
    /// The stage the events last showed.
    pub stage: Stage,
    /// `Done` seen, and how.
    pub done: Option<Outcome>,
}

impl Watch {
    pub fn new(creates: bool, deadline: Option<SystemTime>, now: SystemTime) -> Self {
        Self {
            creates,
            deadline,
            floor: now,
            paced: now,
            in_flight: None,
            attempts: 0,
            sent: Vec::new(),
            idempotency_key: None,
            created: false,
            failed_pages: false,
            stage: if creates { Stage::Create } else { Stage::Wait },
            done: None,
        }
    }

    /// A request the machine gave at `now` (`job_stage` is the job's stage just after).
    pub fn transmit(&mut self, t: &Transmit, now: SystemTime, job_stage: Stage) {
        assert!(self.done.is_none(), "a request after Done: {t:?}");
        assert!(self.in_flight.is_none(), "two requests in flight for one job: {t:?}");
        assert!(now + SLOP >= self.floor, "a request {:?} before the Retry-After floor", until(now, self.floor));
        assert!(now + SLOP >= self.paced, "a request {:?} sooner than the policy allows", until(now, self.paced));
        assert!(self.deadline.is_none_or(|d| now <= d), "a request after the deadline");
        assert_eq!(t.deadline, self.deadline, "the transmit's deadline");
        assert!(!self.sent.contains(&t.id), "an id given twice: {:?}", t.id);
        self.attempts += 1;
        assert_eq!(t.attempt, self.attempts, "attempts count every request");
        assert_eq!(t.stage, job_stage, "the transmit's stage");
        check_request(&t.request, t.stage);
        if t.stage == Stage::Create {
            assert!(self.creates && !self.created, "a create for a job that exists");
            let key = t.request.headers().get(IDEMPOTENCY_KEY).expect("a create carries a key");
            let key = key.as_bytes().to_vec();
            assert_eq!(*self.idempotency_key.get_or_insert_with(|| key.clone()), key, "a retried create changed its key");
        } else {
            assert!(self.created || !self.creates, "a {} before the job was created", t.stage);
        }
        self.in_flight = Some(t.id);
        self.sent.push(t.id);
    }

    /// The answer to the request out came (or its failure, `response` `None`), at `now`,
    /// and the machine gave `events` for it.
    pub fn answered<B>(
        &mut self,
        response: Option<&Response<B>>,
        now: SystemTime,
        policy: &Policy,
        events: &[Event],
    ) {
        self.in_flight = None;
        if let Some(floor) = response.and_then(|r| retry_after_floor(r, now, policy)) {
            self.floor = self.floor.max(floor);
        }
        let page = events.iter().any(|e| matches!(e, Event::Imported(_) | Event::Failed(_)));
        let failed = response.is_none()
            || events.iter().any(|e| matches!(e, Event::Progress(Progress { last_error: Some(_), .. })));
        let wait_ended = self.stage == Stage::Wait
            && events.iter().any(|e| matches!(e, Event::Progress(p) if p.stage != Stage::Wait));
        let gap = if failed {
            policy.error_backoff() / 2
        } else if page || wait_ended || events.is_empty() {
            // Pages follow each other, and the end of a wait, at once. (No event: the wait
            // ended straight into pages, whose first request goes at once.)
            Duration::ZERO
        } else {
            scale(policy.min_interval(), 1.0 - policy.poll_jitter())
        };
        // A last request may go at the deadline, however soon that is.
        let paced = now + gap.saturating_sub(SLOP);
        self.paced = self.deadline.map_or(paced, |d| paced.min(d));
    }

    /// One event of this job, in order.
    pub fn event(&mut self, event: &Event) {
        assert!(self.done.is_none(), "an event after Done: {event:?}");
        match event {
            Event::Created(_) => {
                assert!(self.creates && !self.created, "Created twice, or for a job that existed");
                assert!(self.in_flight.is_none(), "Created with a request out");
                self.created = true;
                self.stage = Stage::Wait;
            }
            Event::Progress(p) => {
                assert_ne!(p.stage, Stage::Done, "progress of a job that is done");
                assert!(rank(p.stage) >= rank(self.stage), "progress went back from {} to {}", self.stage, p.stage);
                assert_eq!(p.stage == Stage::Create, self.creates && !self.created, "progress at {}", p.stage);
                assert_eq!(p.deadline, self.deadline, "progress names the deadline");
                self.stage = p.stage;
            }
            Event::Imported(_) => {
                assert!(!self.failed_pages, "an imported page after a failed one");
                assert!(self.created || !self.creates, "a page before the job was created");
                self.stage = Stage::Imports;
            }
            Event::Failed(_) => {
                assert!(self.created || !self.creates, "a page before the job was created");
                self.failed_pages = true;
                self.stage = Stage::Errors;
            }
            Event::Unread(_) => {
                assert!(!self.failed_pages, "an unread imported item after a failed page");
                assert_eq!(self.stage, Stage::Imports, "unread items outside an imports page");
            }
            Event::Done(outcome) => {
                if let Outcome::Finished(status) = outcome {
                    assert!(status.is_terminal(), "finished on a status that is not final");
                    assert!(self.created || !self.creates, "finished before the job was created");
                }
                self.in_flight = None;
                self.done = Some(outcome.clone());
            }
            other => panic!("an event this checker does not know: {other:?}"),
        }
    }

    /// Whether the job is over.
    pub fn is_done(&self) -> bool {
        self.done.is_some()
    }
}

/// The request fits its stage: a create is a POST of a batch, the rest GETs of the job's
/// status or pages.
fn check_request(request: &Request<fullstory_batch::bytes::Bytes>, stage: Stage) {
    let path = request.uri().path();
    let get = request.method() == "GET";
    let ok = match stage {
        Stage::Create => request.method() == "POST" && path.ends_with("/batch") && !request.body().is_empty(),
        Stage::Wait => get && !path.ends_with("/imports") && !path.ends_with("/errors"),
        Stage::Imports => get && path.ends_with("/imports"),
        Stage::Errors => get && path.ends_with("/errors"),
        Stage::Done => false,
    };
    assert!(ok, "a {} request that is {} {}", stage, request.method(), request.uri());
    assert!(request.headers().contains_key("authorization"), "a request without the key");
}

fn rank(stage: Stage) -> u8 {
    match stage {
        Stage::Create => 0,
        Stage::Wait => 1,
        Stage::Imports => 2,
        Stage::Errors => 3,
        Stage::Done => 4,
    }
}

fn scale(d: Duration, factor: f64) -> Duration {
    Duration::from_secs_f64(d.as_secs_f64() * factor.clamp(0.0, 1.0))
}

/// How far `now` is before `at` (zero when it is not), for messages.
pub fn until(now: SystemTime, at: SystemTime) -> Duration {
    at.duration_since(now).unwrap_or_default()
}
