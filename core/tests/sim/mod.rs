//! One simulated driver for the decision tests, in the style of quinn-proto's `Pair::drive`:
//! a small in-memory Fullstory server on a simulated clock, and a driver that runs a [`Job`]
//! or a [`JobSet`] loop against it (take every event, send every transmit, answer at once or
//! after a latency, jump the clock to the next wake-up), logging every request with its send
//! time and every event, so that tests assert on the log.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fullstory_batch::bytes::Bytes;
use fullstory_batch::http::{Request, Response};
use fullstory_batch::{
    ApiKey, Batch, BatchItem, Config, Event, EventRequest, Job, JobId, JobRef, JobSet, Outcome,
    Pages, Policy, RequestId, Resource, SavedJob, SavedJobSet, Stage, Transmit, TransportError,
    TransportKind, UserId,
};
use serde_json::Value;

/// Every run starts here (late 2023), so that dates in headers are realistic.
pub fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

pub fn config() -> Arc<Config> {
    Arc::new(Config::new(ApiKey::new("sim-key").unwrap()))
}

/// `n` events; the first `bad` of them are named `bad-…`, which the server fails.
pub fn events(n: usize, bad: usize) -> Vec<EventRequest> {
    (0..n)
        .map(|i| EventRequest {
            name: if i < bad {
                format!("bad-{i}")
            } else {
                format!("event-{i}")
            },
            user: Some(UserId {
                uid: Some(format!("u{i}")),
                id: None,
            }),
            ..EventRequest::default()
        })
        .collect()
}

pub fn batch(n: usize, bad: usize) -> Batch {
    Batch::new(&events(n, bad), None).unwrap()
}

/// What the server does with one request instead of its normal answer. The server handles
/// the request first (a create makes its job), then the answer is replaced, so a fault on a
/// create is a job made whose answer was lost; a refused connection never reaches it.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// This error status with a JSON error body.
    Status(u16),
    /// This status with `Retry-After` in seconds.
    RetryAfter(u16, u64),
    /// This status with `Retry-After` as an HTTP-date `secs` after the server's clock, which
    /// runs `skew` seconds ahead of ours (behind if negative); `Date` says the server's now.
    RetryAfterDate { status: u16, secs: u64, skew: i64 },
    /// This status with a proxy's HTML page.
    Html(u16),
    /// No answer: the driver reports this transport failure.
    Transport(TransportKind),
    /// No answer ever: the driver gives up at the Transmit's deadline (or its own timeout).
    Stall,
    /// A create answered 200 with no job id.
    NoId,
    /// A status answered 200 with this state, whatever the job's real one.
    State(&'static str),
}

/// One job the server knows.
#[derive(Debug, Clone)]
pub struct SimJob {
    pub resource: Resource,
    pub created: SystemTime,
    pub processing: Duration,
    /// Items that import, as JSON text.
    pub ok: Vec<String>,
    /// Items that fail, as JSON text.
    pub failed: Vec<String>,
    /// Counts for a job seeded without items.
    pub imports: u64,
    pub errors: u64,
}

impl SimJob {
    pub fn ends(&self) -> SystemTime {
        self.created + self.processing
    }
}

/// The server's answer to one request.
#[derive(Debug)]
pub enum Answer {
    Http(Response<Vec<u8>>),
    Fail(TransportKind),
    Stall,
}

/// A scripted stand-in for the batch-import API.
#[derive(Debug)]
pub struct Server {
    /// Processing time of jobs created from now on.
    pub processing: Duration,
    pub page_size: usize,
    pub jobs: Vec<SimJob>,
    /// Jobs by idempotency key.
    pub keys: HashMap<String, usize>,
    /// By request number, from 1: the fault on that request.
    pub faults: HashMap<usize, Fault>,
    /// A fault on every request whose number is in this range (after `faults`).
    pub fault_range: Option<(std::ops::RangeInclusive<usize>, Fault)>,
    /// From this request number on, every job reports its end (COMPLETED or FAILED).
    pub done_from_request: Option<usize>,
    /// Answer 202 to this many page requests first.
    pub not_ready: usize,
    /// Every page hands back the same token.
    pub repeat_token: bool,
    /// Refuse every connection.
    pub down: bool,
    /// The next create meets this fault.
    pub next_create_fault: Option<Fault>,
    /// The server's clock runs this many seconds ahead of ours (its `Date` header).
    pub skew: i64,
    /// Requests handled, the number of the last one.
    pub handled: usize,
    /// Items served in import pages, by item JSON text: each should be served once.
    pub served: HashMap<String, u32>,
    /// Keep the items' text (off: count them only, for huge runs).
    pub keep_items: bool,
}

impl Default for Server {
    fn default() -> Self {
        Self {
            processing: secs(10),
            page_size: 10,
            jobs: Vec::new(),
            keys: HashMap::new(),
            faults: HashMap::new(),
            fault_range: None,
            done_from_request: None,
            not_ready: 0,
            repeat_token: false,
            down: false,
            next_create_fault: None,
            skew: 0,
            handled: 0,
            served: HashMap::new(),
            keep_items: true,
        }
    }
}

/// An HTTP-date, for instants before the year 9999 (a clock pushed far ahead by a huge
/// `Retry-After` has none).
fn http_date(t: SystemTime) -> Option<String> {
    (t < SystemTime::UNIX_EPOCH + Duration::from_secs(250_000_000_000))
        .then(|| httpdate::fmt_http_date(t))
}

fn job_name(index: usize) -> String {
    format!("job={index}")
}

impl Server {
    /// A job that exists already (to wait for by id), created at `created`.
    pub fn add_job(
        &mut self,
        created: SystemTime,
        processing: Duration,
        ok: usize,
        failed: usize,
    ) -> JobRef {
        let item = |i: usize, bad: bool| {
            let name = if bad { "bad" } else { "event" };
            format!(r#"{{"name":"{name}-{i}","user":{{"uid":"u{i}"}}}}"#)
        };
        self.jobs.push(SimJob {
            resource: Resource::Events,
            created,
            processing,
            ok: (0..ok).map(|i| item(i, false)).collect(),
            failed: (0..failed).map(|i| item(i, true)).collect(),
            imports: ok as u64,
            errors: failed as u64,
        });
        JobRef::new(
            Resource::Events,
            JobId::new(job_name(self.jobs.len() - 1)).unwrap(),
        )
    }

    /// Handles one request that arrives at `now` (our clock).
    pub fn handle(&mut self, request: &Request<Bytes>, now: SystemTime) -> Answer {
        self.handled += 1;
        let n = self.handled;
        let create_fault = if request.method() == "POST" {
            self.next_create_fault.take()
        } else {
            None
        };
        let fault = create_fault
            .or_else(|| self.faults.get(&n).cloned())
            .or_else(|| {
                self.fault_range
                    .as_ref()
                    .filter(|(range, _)| range.contains(&n))
                    .map(|(_, f)| f.clone())
            });
        if self.down || fault == Some(Fault::Transport(TransportKind::Connect)) {
            return Answer::Fail(TransportKind::Connect);
        }
        let (status, body) = self.route(request, now, fault.as_ref());
        let server_now = self.server_clock(now, self.skew);
        let response = |status: u16, body: String| {
            let mut r = Response::builder().status(status);
            if let Some(date) = http_date(server_now) {
                r = r.header("date", date);
            }
            r.body(body.into_bytes()).unwrap()
        };
        let error_body = r#"{"message":"simulated","code":"simulated"}"#.to_owned();
        match fault {
            None | Some(Fault::NoId | Fault::State(_)) => Answer::Http(response(status, body)),
            Some(Fault::Status(s)) => Answer::Http(response(s, error_body)),
            Some(Fault::RetryAfter(s, secs)) => {
                let mut r = response(s, error_body);
                r.headers_mut()
                    .insert("retry-after", secs.to_string().parse().unwrap());
                Answer::Http(r)
            }
            Some(Fault::RetryAfterDate { status, secs, skew }) => {
                let server_now = self.server_clock(now, skew);
                let at = server_now + Duration::from_secs(secs);
                let r = Response::builder()
                    .status(status)
                    .header("date", http_date(server_now).unwrap())
                    .header("retry-after", http_date(at).unwrap())
                    .body(Vec::new())
                    .unwrap();
                Answer::Http(r)
            }
            Some(Fault::Html(s)) => Answer::Http(response(
                s,
                "<html><body><h1>502 Bad Gateway</h1></body></html>".to_owned(),
            )),
            Some(Fault::Transport(kind)) => Answer::Fail(kind),
            Some(Fault::Stall) => Answer::Stall,
        }
    }

    fn server_clock(&self, now: SystemTime, skew: i64) -> SystemTime {
        if skew >= 0 {
            now + Duration::from_secs(skew.unsigned_abs())
        } else {
            now - Duration::from_secs(skew.unsigned_abs())
        }
    }

    fn route(
        &mut self,
        request: &Request<Bytes>,
        now: SystemTime,
        fault: Option<&Fault>,
    ) -> (u16, String) {
        let path = request.uri().path();
        let query = request.uri().query();
        let parts: Vec<&str> = path.split('/').collect();
        let not_found = || {
            (
                404,
                r#"{"message":"no such job","code":"resource_not_found"}"#.to_owned(),
            )
        };
        match (request.method().as_str(), &parts[..]) {
            ("POST", ["", "v2", resource, "batch"]) => {
                let resource = if *resource == "users" {
                    Resource::Users
                } else {
                    Resource::Events
                };
                let key = request.headers()["idempotency-key"]
                    .to_str()
                    .unwrap()
                    .to_owned();
                let index = match self.keys.get(&key) {
                    Some(&i) => i,
                    None => {
                        let job = self.make_job(resource, request.body(), now);
                        self.jobs.push(job);
                        self.keys.insert(key, self.jobs.len() - 1);
                        self.jobs.len() - 1
                    }
                };
                if fault == Some(&Fault::NoId) {
                    return (200, r#"{"job":{"status":"PROCESSING"}}"#.to_owned());
                }
                let body = format!(
                    r#"{{"job":{{"id":"{}","status":"PROCESSING","created":"2024-01-01T00:00:00Z"}}}}"#,
                    job_name(index)
                );
                (200, body)
            }
            ("GET", ["", "v2", _, "batch", id]) => match self.index(id) {
                Some(i) => (200, self.status(i, now, fault)),
                None => not_found(),
            },
            ("GET", ["", "v2", _, "batch", id, kind]) => match self.index(id) {
                Some(i) => self.page(i, kind, query, now),
                None => not_found(),
            },
            _ => not_found(),
        }
    }

    fn make_job(&self, resource: Resource, body: &[u8], now: SystemTime) -> SimJob {
        let body: Value = serde_json::from_slice(body).unwrap();
        let (mut ok, mut failed) = (Vec::new(), Vec::new());
        let (mut imports, mut errors) = (0, 0);
        for item in body["requests"].as_array().unwrap() {
            let name = item
                .get("name")
                .or_else(|| item.get("uid"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let bad = name.starts_with("bad");
            if bad {
                errors += 1;
            } else {
                imports += 1;
            }
            if self.keep_items {
                if bad {
                    failed.push(item.to_string());
                } else {
                    ok.push(item.to_string());
                }
            }
        }
        SimJob {
            resource,
            created: now,
            processing: self.processing,
            ok,
            failed,
            imports,
            errors,
        }
    }

    fn index(&self, id: &str) -> Option<usize> {
        let i: usize = id
            .strip_prefix("job%3D")
            .or_else(|| id.strip_prefix("job="))?
            .parse()
            .ok()?;
        (i < self.jobs.len()).then_some(i)
    }

    fn done(&self, i: usize, now: SystemTime) -> bool {
        now >= self.jobs[i].ends() || self.done_from_request.is_some_and(|n| self.handled >= n)
    }

    fn status(&self, i: usize, now: SystemTime, fault: Option<&Fault>) -> String {
        let job = &self.jobs[i];
        let done = self.done(i, now);
        let state = match (fault, done, job.errors == 0) {
            (Some(Fault::State(s)), _, _) => s,
            (_, false, _) => "PROCESSING",
            (_, true, true) => "COMPLETED",
            (_, true, false) => "FAILED",
        };
        let (imports, errors) = if done {
            (job.imports, job.errors)
        } else {
            (0, 0)
        };
        format!(
            r#"{{"imports":{imports},"errors":{errors},"job":{{"id":"{}","status":"{state}","created":"2024-01-01T00:00:00Z"}}}}"#,
            job_name(i)
        )
    }

    fn page(
        &mut self,
        i: usize,
        kind: &str,
        query: Option<&str>,
        now: SystemTime,
    ) -> (u16, String) {
        if !self.done(i, now) || self.not_ready > 0 {
            self.not_ready = self.not_ready.saturating_sub(1);
            return (202, "{}".to_owned());
        }
        let start: usize = query
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("page_token=")))
            .map_or(0, |t| t.trim_start_matches('p').parse().unwrap());
        let job = &self.jobs[i];
        let field = if job.resource == Resource::Users {
            "user"
        } else {
            "event"
        };
        let items = if kind == "imports" {
            &job.ok
        } else {
            &job.failed
        };
        let total = items.len();
        let end = (start + self.page_size).min(total);
        let results: Vec<String> = items[start..end]
            .iter()
            .map(|item| {
                if kind == "imports" {
                    item.clone()
                } else {
                    format!(r#"{{"code":"invalid","message":"bad name","{field}":{item}}}"#)
                }
            })
            .collect();
        if kind == "imports" {
            for item in &items[start..end] {
                *self.served.entry(item.clone()).or_default() += 1;
            }
        }
        let token = if end < total {
            if self.repeat_token {
                "p0".to_owned()
            } else {
                format!("p{end}")
            }
        } else {
            String::new()
        };
        let body = format!(
            r#"{{"results":[{}],"total_records":"{total}","next_page_token":"{token}"}}"#,
            results.join(",")
        );
        (200, body)
    }
}

/// What became of a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Fate {
    /// Still out when the run ended (or abandoned by the machine).
    Pending,
    /// Answered with this status at this time.
    Answered(u16, SystemTime),
    /// Failed at this time.
    Failed(TransportKind, SystemTime),
}

/// One request sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    /// Its place among requests and events, from 0.
    pub seq: usize,
    /// Its number, from 1 (what [`Server::faults`] keys on).
    pub n: usize,
    pub at: SystemTime,
    /// The job that sent it.
    pub key: u64,
    pub method: String,
    pub path: String,
    pub idempotency_key: Option<String>,
    pub deadline: Option<SystemTime>,
    pub result: Fate,
}

impl Sent {
    pub fn is_create(&self) -> bool {
        self.method == "POST"
    }
    pub fn is_status(&self) -> bool {
        self.method == "GET" && !self.is_page()
    }
    pub fn is_page(&self) -> bool {
        self.path.contains("/imports") || self.path.contains("/errors")
    }
    pub fn answered_at(&self) -> Option<SystemTime> {
        match self.result {
            Fate::Answered(_, t) | Fate::Failed(_, t) => Some(t),
            Fate::Pending => None,
        }
    }
}

/// One event taken from the machine.
#[derive(Debug, Clone)]
pub struct Logged<T> {
    /// Its place among requests and events, from 0.
    pub seq: usize,
    pub at: SystemTime,
    pub key: u64,
    pub event: Event<T>,
}

/// What the driver needs of a machine: the five verbs, and a save/restore round trip.
pub trait Machine {
    type Item: BatchItem;
    fn poll_event(&mut self) -> Option<(u64, Event<Self::Item>)>;
    fn poll_transmit(&mut self, now: SystemTime) -> Option<Transmit>;
    fn poll_timeout(&mut self) -> Option<SystemTime>;
    fn handle_response(&mut self, id: RequestId, response: &Response<Vec<u8>>, now: SystemTime);
    fn handle_send_failed(&mut self, id: RequestId, error: TransportError, now: SystemTime);
    /// No job left.
    fn is_over(&self) -> bool;
    /// Through JSON and back, as after a restart.
    fn round_trip(&mut self, config: &Arc<Config>);
}

impl<T: BatchItem> Machine for Job<T> {
    type Item = T;
    fn poll_event(&mut self) -> Option<(u64, Event<T>)> {
        Job::poll_event(self).map(|e| (0, e))
    }
    fn poll_transmit(&mut self, now: SystemTime) -> Option<Transmit> {
        Job::poll_transmit(self, now)
    }
    fn poll_timeout(&mut self) -> Option<SystemTime> {
        Job::poll_timeout(self)
    }
    fn handle_response(&mut self, id: RequestId, response: &Response<Vec<u8>>, now: SystemTime) {
        Job::handle_response(self, id, response, now);
    }
    fn handle_send_failed(&mut self, id: RequestId, error: TransportError, now: SystemTime) {
        Job::handle_send_failed(self, id, error, now);
    }
    fn is_over(&self) -> bool {
        self.outcome().is_some()
    }
    fn round_trip(&mut self, config: &Arc<Config>) {
        if self.outcome().is_some() {
            return;
        }
        let json = serde_json::to_string(&self.save()).unwrap();
        let saved: SavedJob = serde_json::from_str(&json).unwrap();
        *self = Job::restore(Arc::clone(config), saved).unwrap();
    }
}

impl<T: BatchItem> Machine for JobSet<T> {
    type Item = T;
    fn poll_event(&mut self) -> Option<(u64, Event<T>)> {
        JobSet::poll_event(self).map(|(k, e)| (k.index(), e))
    }
    fn poll_transmit(&mut self, now: SystemTime) -> Option<Transmit> {
        JobSet::poll_transmit(self, now)
    }
    fn poll_timeout(&mut self) -> Option<SystemTime> {
        JobSet::poll_timeout(self)
    }
    fn handle_response(&mut self, id: RequestId, response: &Response<Vec<u8>>, now: SystemTime) {
        JobSet::handle_response(self, id, response, now);
    }
    fn handle_send_failed(&mut self, id: RequestId, error: TransportError, now: SystemTime) {
        JobSet::handle_send_failed(self, id, error, now);
    }
    fn is_over(&self) -> bool {
        self.is_empty()
    }
    fn round_trip(&mut self, config: &Arc<Config>) {
        let json = serde_json::to_string(&self.save()).unwrap();
        let saved: SavedJobSet = serde_json::from_str(&json).unwrap();
        *self = JobSet::restore(Arc::clone(config), saved).unwrap();
    }
}

#[derive(Debug)]
struct InFlight {
    /// Index into the request log.
    log: usize,
    id: RequestId,
    at: SystemTime,
    answer: Answer,
}

/// The driver: a machine, the server, the clock and the logs.
pub struct Sim<M: Machine> {
    pub machine: M,
    pub server: Server,
    pub config: Arc<Config>,
    pub now: SystemTime,
    /// Time from sending to the answer (zero: answered before the next `poll_transmit`).
    pub latency: Duration,
    /// How long the driver waits for a stalled request whose Transmit has no deadline.
    pub client_timeout: Duration,
    /// Save and restore the machine (through JSON) after every answer handed back.
    pub save_every_step: bool,
    pub requests: Vec<Sent>,
    pub events: Vec<Logged<M::Item>>,
    /// Every instant the clock jumped to.
    pub wakes: Vec<SystemTime>,
    /// Loop turns in which nothing happened and time did not move (a busy loop).
    pub spins: usize,
    /// Most requests out at once.
    pub most_in_flight: usize,
    in_flight: Vec<InFlight>,
    seq: usize,
}

impl<M: Machine> Sim<M> {
    pub fn new(machine: M, server: Server, now: SystemTime) -> Self {
        Self {
            machine,
            server,
            config: config(),
            now,
            latency: Duration::ZERO,
            client_timeout: secs(30),
            save_every_step: false,
            requests: Vec::new(),
            events: Vec::new(),
            wakes: Vec::new(),
            spins: 0,
            most_in_flight: 0,
            in_flight: Vec::new(),
            seq: 0,
        }
    }

    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    pub fn save_every_step(mut self) -> Self {
        self.save_every_step = true;
        self
    }

    fn drain_events(&mut self) {
        while let Some((key, event)) = self.machine.poll_event() {
            self.seq += 1;
            self.events.push(Logged {
                seq: self.seq,
                at: self.now,
                key,
                event,
            });
        }
    }

    /// One turn of the loop. `false` once no job is left.
    pub fn step(&mut self) -> bool {
        self.drain_events();
        if self.machine.is_over() {
            return false;
        }
        let before = (self.requests.len(), self.events.len());
        while let Some(transmit) = self.machine.poll_transmit(self.now) {
            self.send(transmit);
            self.drain_events();
        }
        self.drain_events();
        if self.machine.is_over() {
            return false;
        }
        let next_answer = self.in_flight.iter().map(|f| f.at).min();
        let wake = self.machine.poll_timeout();
        let next = match (next_answer, wake) {
            (Some(a), Some(w)) => a.min(w),
            (a, w) => a
                .or(w)
                .unwrap_or_else(|| panic!("stuck at {:?}: nothing out and no wake-up", self.now)),
        };
        let moved = next > self.now;
        if moved {
            self.now = next;
            self.wakes.push(next);
        }
        let delivered = self.deliver();
        if !moved && !delivered && (self.requests.len(), self.events.len()) == before {
            self.spins += 1;
            assert!(self.spins < 10_000, "busy loop at {:?}", self.now);
        }
        true
    }

    /// Runs until no job is left (at most `turns` loop turns).
    pub fn run(&mut self) -> &mut Self {
        for _ in 0..5_000_000 {
            if !self.step() {
                return self;
            }
        }
        panic!("the machine never finished");
    }

    /// Runs until `stop` holds (checked before every turn) or no job is left.
    pub fn run_until(&mut self, mut stop: impl FnMut(&Self) -> bool) -> &mut Self {
        for _ in 0..5_000_000 {
            if stop(self) || !self.step() {
                return self;
            }
        }
        panic!("the condition never held");
    }

    /// Sends one transmit, and answers it at once when there is no latency.
    fn send(&mut self, transmit: Transmit) {
        let request = &transmit.request;
        let log = self.requests.len();
        self.seq += 1;
        self.requests.push(Sent {
            seq: self.seq,
            n: self.server.handled + 1,
            at: self.now,
            key: transmit.id.job().index(),
            method: request.method().to_string(),
            path: request
                .uri()
                .path_and_query()
                .map(ToString::to_string)
                .unwrap_or_default(),
            idempotency_key: request
                .headers()
                .get("idempotency-key")
                .map(|v| v.to_str().unwrap().to_owned()),
            deadline: transmit.deadline,
            result: Fate::Pending,
        });
        let answer = self.server.handle(request, self.now + self.latency);
        let at = match answer {
            Answer::Stall => transmit
                .deadline
                .unwrap_or(self.now + self.client_timeout)
                .max(self.now),
            _ => self.now + self.latency,
        };
        self.in_flight.push(InFlight {
            log,
            id: transmit.id,
            at,
            answer,
        });
        self.most_in_flight = self.most_in_flight.max(self.in_flight.len());
        if at == self.now {
            self.deliver();
        }
    }

    /// Hands back every answer due by now, oldest first; `true` if any.
    fn deliver(&mut self) -> bool {
        let mut any = false;
        while let Some(i) = self
            .in_flight
            .iter()
            .enumerate()
            .filter(|(_, f)| f.at <= self.now)
            .min_by_key(|(i, f)| (f.at, *i))
            .map(|(i, _)| i)
        {
            let f = self.in_flight.remove(i);
            let now = self.now;
            match f.answer {
                Answer::Http(response) => {
                    self.requests[f.log].result = Fate::Answered(response.status().as_u16(), now);
                    self.machine.handle_response(f.id, &response, now);
                }
                Answer::Fail(kind) => {
                    self.requests[f.log].result = Fate::Failed(kind, now);
                    self.machine
                        .handle_send_failed(f.id, TransportError::new(kind), now);
                }
                Answer::Stall => {
                    self.requests[f.log].result = Fate::Failed(TransportKind::Timeout, now);
                    self.machine.handle_send_failed(
                        f.id,
                        TransportError::new(TransportKind::Timeout),
                        now,
                    );
                }
            }
            self.drain_events();
            any = true;
        }
        if any && self.save_every_step && self.in_flight.is_empty() && !self.machine.is_over() {
            self.machine.round_trip(&self.config);
        }
        any
    }

    // ---- reading the log ----

    pub fn sends(&self) -> Vec<SystemTime> {
        self.requests.iter().map(|r| r.at).collect()
    }

    pub fn status_requests(&self) -> Vec<&Sent> {
        self.requests.iter().filter(|r| r.is_status()).collect()
    }

    pub fn creates(&self) -> Vec<&Sent> {
        self.requests.iter().filter(|r| r.is_create()).collect()
    }

    pub fn pages(&self, kind: &str) -> Vec<&Sent> {
        self.requests
            .iter()
            .filter(|r| r.path.contains(&format!("/{kind}")))
            .collect()
    }

    /// Every `Done` in the log, with its job's key and time.
    pub fn dones(&self) -> Vec<(u64, SystemTime, &Outcome)> {
        self.events
            .iter()
            .filter_map(|l| match &l.event {
                Event::Done(o) => Some((l.key, l.at, o)),
                _ => None,
            })
            .collect()
    }

    /// The one outcome of job `key`; panics unless exactly one `Done` came, and last.
    pub fn outcome_of(&self, key: u64) -> &Outcome {
        let mine: Vec<&Logged<M::Item>> = self.events.iter().filter(|l| l.key == key).collect();
        let dones = mine
            .iter()
            .filter(|l| matches!(l.event, Event::Done(_)))
            .count();
        assert_eq!(dones, 1, "job {key}: {dones} Done events");
        match &mine.last().expect("events").event {
            Event::Done(o) => o,
            other => panic!("job {key}: Done is not last: {other:?}"),
        }
    }

    pub fn imported(&self) -> Vec<&M::Item> {
        self.events
            .iter()
            .flat_map(|l| match &l.event {
                Event::Imported(items) => items.iter().collect(),
                _ => Vec::new(),
            })
            .collect()
    }

    pub fn failed_items(&self) -> usize {
        self.events
            .iter()
            .map(|l| match &l.event {
                Event::Failed(items) => items.len(),
                _ => 0,
            })
            .sum()
    }

    pub fn created(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|l| match &l.event {
                Event::Created(job) => Some(job.id.to_string()),
                _ => None,
            })
            .collect()
    }

    /// The log in a form two runs can be compared by (idempotency keys, random per batch,
    /// by the order they first appear in).
    pub fn transcript(&self) -> Vec<String> {
        let mut keys: Vec<&str> = Vec::new();
        let mut lines: Vec<String> = self
            .requests
            .iter()
            .map(|r| {
                let key = r.idempotency_key.as_deref().map(|k| {
                    keys.iter().position(|x| *x == k).unwrap_or_else(|| {
                        keys.push(k);
                        keys.len() - 1
                    })
                });
                format!(
                    "{:?} job {} {} {} key {key:?} {:?}",
                    r.at.duration_since(t0()).unwrap_or_default(),
                    r.key,
                    r.method,
                    r.path,
                    r.result
                )
            })
            .collect();
        lines.extend(self.events.iter().map(|l| {
            let what = match &l.event {
                Event::Progress(p) => format!(
                    "progress {:?} attempts {} errors {} next {:?} error {:?}",
                    p.stage,
                    p.attempts,
                    p.errors_in_row,
                    p.next_request,
                    p.last_error.as_ref().map(ToString::to_string)
                ),
                Event::Done(o) => format!("done {}", outcome_line(o)),
                other => format!("{other:?}"),
            };
            format!(
                "{:?} job {} {what}",
                l.at.duration_since(t0()).unwrap_or_default(),
                l.key
            )
        }));
        lines
    }
}

/// An outcome in one line.
pub fn outcome_line(o: &Outcome) -> String {
    match o {
        Outcome::Finished(s) => format!(
            "finished {} imports {} errors {}",
            s.job.status.as_str(),
            s.imports,
            s.errors
        ),
        Outcome::Stopped(s) => format!(
            "stopped at {} ({}) last {:?}",
            s.stage,
            s.reason.kind(),
            s.last_status
                .as_ref()
                .map(|s| s.job.status.as_str().to_owned())
        ),
    }
}

/// Builds a run that starts at any stage.
pub struct Scenario {
    pub server: Server,
    pub policy: Policy,
    pub seed: u64,
    pub latency: Duration,
    pub start: SystemTime,
}

impl Default for Scenario {
    fn default() -> Self {
        Self::new()
    }
}

impl Scenario {
    pub fn new() -> Self {
        Self {
            server: Server::default(),
            policy: Policy::default(),
            seed: 1,
            latency: Duration::ZERO,
            start: t0(),
        }
    }

    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    pub fn processing(mut self, d: Duration) -> Self {
        self.server.processing = d;
        self
    }

    /// The `k`-th request (from 1) meets `fault`.
    pub fn fault(mut self, k: usize, fault: Fault) -> Self {
        self.server.faults.insert(k, fault);
        self
    }

    /// Requests `k` on meet `fault`, forever.
    pub fn faults_from(mut self, k: usize, fault: Fault) -> Self {
        self.server.fault_range = Some((k..=usize::MAX, fault));
        self
    }

    pub fn server(mut self, f: impl FnOnce(&mut Server)) -> Self {
        f(&mut self.server);
        self
    }

    fn sim<M: Machine>(self, machine: M) -> Sim<M> {
        Sim::new(machine, self.server, self.start).latency(self.latency)
    }

    /// A job created from `batch`, about to send its create.
    pub fn creating(self, batch: Batch) -> Sim<Job> {
        let job = Job::create(config(), batch, self.policy.clone(), self.start, self.seed);
        self.sim(job)
    }

    /// A job that creates `batch` and ends there, about to send its create.
    pub fn creating_only(self, batch: Batch) -> Sim<Job> {
        let job = Job::create_only(config(), batch, self.policy.clone(), self.start, self.seed);
        self.sim(job)
    }

    /// A job for users, about to send its create.
    pub fn creating_users(self, batch: Batch) -> Sim<Job<fullstory_batch::UserRequest>> {
        let job = Job::create(config(), batch, self.policy.clone(), self.start, self.seed);
        self.sim(job)
    }

    /// A job that exists on the server (created at the start, ending after `runs_for`, with
    /// `ok` imported items and `failed` failures) and is waited for by id with `pages`.
    pub fn waiting(
        mut self,
        runs_for: Duration,
        ok: usize,
        failed: usize,
        pages: Pages,
    ) -> Sim<Job> {
        let job_ref = self.server.add_job(self.start, runs_for, ok, failed);
        let job = Job::wait(
            config(),
            job_ref,
            self.policy.clone(),
            self.start,
            self.seed,
        )
        .with_pages(pages);
        self.sim(job)
    }

    /// A job already reading its pages: created and waited for until the first page.
    pub fn reading_pages(self, items: usize, bad: usize) -> Sim<Job> {
        let mut sim = self.creating(batch(items, bad));
        sim.run_until(|s| s.machine.stage() == Stage::Imports);
        sim
    }

    /// A set of `n` existing jobs, each ending after `runs_for`.
    pub fn set_of(mut self, n: usize, runs_for: Duration) -> Sim<JobSet> {
        let mut set = JobSet::new(config(), self.policy.clone(), self.start, self.seed);
        for _ in 0..n {
            let job = self.server.add_job(self.start, runs_for, 1, 0);
            set.add_job(job, self.start);
        }
        self.sim(set)
    }

    /// A set made by `make` (to add budgets, caps, batches), on this scenario's server.
    pub fn set_with(self, make: impl FnOnce(JobSet, SystemTime) -> JobSet) -> Sim<JobSet> {
        let set = JobSet::new(config(), self.policy.clone(), self.start, self.seed);
        let set = make(set, self.start);
        self.sim(set)
    }
}
