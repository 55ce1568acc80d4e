//! What both chaos tests share: the workload, the fault mix, the policies, and every check
//! made on the fake's request log and true job state, written once.
//!
//! # The run
//! Each test imports N batches of 2 to 5 events through one adapter against the fake with
//! [`FAULT_RATE`] of its answers faulty ([`fault_mix`], every kind the fake has, drawn from
//! [`SEED`]), then runs two short scenarios that make the stopping rules fire on purpose:
//! creates that always fail ([`error_limit_script`]) and status calls that always stall
//! past the request timeout ([`deadline_script`]). After that it waits for the fake to log
//! the last stalled request ([`LogView::settle`]) and checks everything from one snapshot of
//! the log.
//!
//! # What a log entry tells
//! The fake logs the fault *kind* and the status sent, not the fault's parameters, so the
//! mix is chosen so that kind and status say all the checks need: every 503, 504 and 429
//! (including the 429 sent after processing, [`Fault::AcceptThen`]) carries a
//! `Retry-After` of exactly [`RETRY_AFTER`], as delta-seconds or as an HTTP-date (with the
//! `Date` header skewed by an hour either way for 429s); no 500 or 502 carries one.
//!
//! # The summary line
//! Each test prints one line (run with `--nocapture` to see it): requests by route; faults
//! met by kind; retries (requests an import sent after an unusable answer); creates
//! replayed (sent again after the fake had already made the job, and answered with that
//! job); `Retry-After` floors kept, with the shortest and longest gap seen after one; the
//! longest streak of unusable answers; completion detection; peak RSS; panics.
//!
//! Completion detection is, per job, the arrival on the fake's clock of the status call
//! that returned the job's final status, minus the job's finish time on the same clock;
//! p50, p99 and max over all jobs. It measures the polling schedule and the faults met near
//! the end, not the answer's transit back (microseconds on loopback).
//!
//! # Clocks
//! `LoggedRequest::instant` is `std::time::Instant` read by the fake in this same process,
//! so it compares directly with the `Instant`s the drivers record around each import.
//! Job finish times come as `SystemTime` (`JobSnapshot::finishes`, the fake's start wall
//! time plus its clock); they are turned back into the fake's clock (`LoggedRequest::clock`)
//! by subtracting the fake's start, read as `SystemTime::now() - fake.clock()`, which is
//! off by the microseconds between the two reads (plus any drift of the wall clock against
//! the monotonic one during the run, which [`FINISH_SLOP`] also absorbs).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use fullstory_batch::{
    ApiKey, BaseUrl, Config, Event, EventRequest, IDEMPOTENCY_KEY, IdempotencyKey, ImportReport,
    JobKey, JobState, Outcome, Policy, PolicyBuilder, Stage, StopReason, Stopped,
};
use fullstory_batch_fake::{
    FakeServer, FakeServerBuilder, Fault, FaultKind, JobSnapshot, JobStatus, LoggedRequest,
    OrgLimits, RetryAfter, Route, Script,
};

/// The key the fake accepts.
pub const API_KEY: &str = "chaos-test-key";
/// Seed of the fake's fault draws: the same requests get the same faults on every run.
pub const SEED: u64 = 0x00C0_FFEE_5EED;
/// Share of answers that are faulty.
pub const FAULT_RATE: f64 = 0.2;
/// The one `Retry-After` every fault that carries one asks for.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);
/// A stall the fake ends itself by closing the connection (the client sees a reset).
pub const SHORT_STALL: Duration = Duration::from_millis(300);
/// A stall longer than [`REQUEST_TIMEOUT`]: the client gives up first, before any header.
/// Only in the deadline scenario, where every status call stalls.
pub const LONG_STALL: Duration = Duration::from_millis(1_500);
/// A drip of one byte per this: headers come at once, the body outlasts [`REQUEST_TIMEOUT`]
/// (a client timeout mid-body, and one the fake logs).
pub const STUCK_DRIP: Duration = Duration::from_millis(100);
/// The clients' timeout for one request. Answers on loopback take milliseconds.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// The clients' connect timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the fake keeps a job `PROCESSING`.
pub const PROCESSING: Duration = Duration::from_secs(1);
/// Results per imports / errors page: small, so most jobs take several pages.
pub const PAGE_SIZE: usize = 2;
/// Clock slop allowed when comparing a gap with a `Retry-After` or a deadline: both sides
/// read the same monotonic clock, but the client sleeps on wall-clock differences.
pub const CLOCK_SLOP: Duration = Duration::from_millis(5);
/// Time between a request's logged arrival and the moment the fake reads the job's state:
/// a status that arrived this close to the job's finish may have seen either state.
/// Two status calls of one job are always more than 50 ms apart (least poll interval
/// 135 ms, least error backoff 50 ms), so this never blurs which answer was the final one.
pub const FINISH_SLOP: Duration = Duration::from_millis(25);
/// How late an import may return after its deadline (the last request is cut at the
/// deadline; this covers thread wake-up and scheduling on a loaded 2-core machine).
pub const DEADLINE_SLOP: Duration = Duration::from_millis(300);

/// Imports in each of the two stopping scenarios.
pub const SCENARIO_IMPORTS: usize = 3;
/// `max_errors_in_row` of the error-limit scenario.
pub const SCENARIO_MAX_ERRORS: u32 = 4;
/// The overall timeout of the deadline scenario.
pub const SCENARIO_DEADLINE: Duration = Duration::from_secs(2);

/// Counts panics on every thread (the clients', the fake's runtime, hyper's connection
/// tasks), so a panic swallowed by a runtime still fails the test.
static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Installs the panic counter (once per process), keeping the default report.
pub fn count_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
    });
}

/// Panics seen so far in this process.
pub fn panics() -> usize {
    PANICS.load(Ordering::SeqCst)
}

/// Every fault kind the fake can inject, each `Retry-After` set to [`RETRY_AFTER`] and
/// recognisable from the log (see the module docs). Drawn uniformly for 20% of answers.
///
/// Transport failures: resets mid-body (`ConnectionReset`, also after processing), a
/// connection closed without an answer after [`SHORT_STALL`], a body cut in half, a body
/// over the client's limit, and a body that never finishes within the request timeout
/// (headers, then [`STUCK_DRIP`] per byte: a client timeout). A stall past the request
/// timeout (a timeout before any header) is left to the deadline scenario, because the
/// fake does not log requests abandoned that way, and every check here reads the log.
pub fn fault_mix() -> Vec<Fault> {
    let seconds = Some(RetryAfter::Seconds(RETRY_AFTER.as_secs()));
    let date = Some(RetryAfter::HttpDate(RETRY_AFTER.as_secs()));
    let too_many = |retry_after, date_skew_secs| Fault::TooManyRequests {
        retry_after,
        date_skew_secs,
    };
    let secs = RETRY_AFTER.as_secs();
    vec![
        Fault::Http500 {
            retry_after: None,
            html: false,
        },
        Fault::Http500 {
            retry_after: None,
            html: true,
        },
        Fault::Http502 {
            retry_after: None,
            html: false,
        },
        Fault::Http502 {
            retry_after: None,
            html: true,
        },
        Fault::Http503 {
            retry_after: seconds,
            html: false,
        },
        Fault::Http503 {
            retry_after: date,
            html: true,
        },
        Fault::Http504 {
            retry_after: date,
            html: false,
        },
        Fault::Http504 {
            retry_after: seconds,
            html: true,
        },
        too_many(RetryAfter::Seconds(secs), 0),
        too_many(RetryAfter::HttpDate(secs), 3_600),
        too_many(RetryAfter::HttpDate(secs), -3_600),
        Fault::ConnectionReset,
        Fault::Stall(SHORT_STALL),
        Fault::Delay(Duration::from_millis(50)),
        Fault::TruncatedBody,
        // No `OversizedBody`: the same request gets the same body, so it is not retried and
        // ends its import; the adapters' tests cover it (`oversized_is_not_retried`).
        Fault::SlowDrip {
            chunk: 16,
            delay: Duration::from_millis(2),
        },
        Fault::AcceptThenFail,
        Fault::AcceptThen(Box::new(Fault::ConnectionReset)),
        Fault::AcceptThen(Box::new(too_many(RetryAfter::Seconds(secs), 0))),
        Fault::AcceptThen(Box::new(Fault::Stall(SHORT_STALL))),
        // Headers, then a body too slow to finish within the request timeout.
        Fault::AcceptThen(Box::new(Fault::SlowDrip {
            chunk: 1,
            delay: STUCK_DRIP,
        })),
    ]
}

/// The `Retry-After` an answer carried, read from its logged kind and status.
pub fn retry_after_of(entry: &LoggedRequest) -> Option<Duration> {
    match (entry.fault, entry.status) {
        (Some(FaultKind::Http503 | FaultKind::Http504 | FaultKind::TooManyRequests), _)
        | (Some(FaultKind::AcceptThen), Some(429)) => Some(RETRY_AFTER),
        _ => None,
    }
}

/// Whether the client got a usable answer: no fault, or one that only slows the answer.
pub fn answered_ok(entry: &LoggedRequest) -> bool {
    matches!(
        entry.fault,
        None | Some(FaultKind::Delay | FaultKind::SlowDrip)
    ) && entry.status.is_some_and(|s| s < 400)
}

/// Whether the fake acted on the request (a create made or replayed its job) before the
/// fault, if any, shaped the answer: `Fault::processes_request`, by kind.
pub fn processed(entry: &LoggedRequest) -> bool {
    entry.fault.is_none_or(|kind| {
        matches!(
            kind,
            FaultKind::Delay
                | FaultKind::OversizedBody
                | FaultKind::SlowDrip
                | FaultKind::AcceptThenFail
                | FaultKind::AcceptThen
        )
    })
}

/// The fake every run uses: the test key, 1 s jobs, pages of 2, no org limits (1,000 jobs
/// run at once), a log large enough to hold every request, and the fault mix.
pub fn fake_builder(log_capacity: usize) -> FakeServerBuilder {
    FakeServer::builder()
        .key(API_KEY)
        .processing_time(PROCESSING)
        .page_size(PAGE_SIZE)
        .org_limits(OrgLimits::unlimited())
        .request_log_capacity(log_capacity)
        .random_fault_set(FAULT_RATE, SEED, fault_mix())
}

/// The core configuration pointing at `fake`.
pub fn config(fake: &FakeServer) -> Config {
    let key = ApiKey::new(API_KEY).expect("a printable key");
    let base = BaseUrl::parse_allow_http(fake.base_url()).expect("the fake's url parses");
    Config::new(key).with_base_url(base)
}

/// The main run's policy, to build on: polls 150 ms after the create is answered, then at
/// 40% of the job's age, at most every 1 s (jitter 10%); errors backed off from 100 ms to
/// 1 s; 12 errors in a row allowed (20% faults make a streak of 12 a one in 4·10⁸ event);
/// and a 60 s deadline no import should come near. 150 ms and 100 ms are over the core's
/// floor of 100 ms ([`fullstory_batch::MIN_INTERVAL`]).
fn policy_builder() -> PolicyBuilder {
    Policy::builder()
        .min_interval(Duration::from_millis(150))
        .age_fraction(0.4)
        .max_interval(Duration::from_secs(1))
        .poll_jitter(0.1)
        .error_backoff(Duration::from_millis(100))
        .max_error_backoff(Duration::from_secs(1))
        .max_errors_in_row(12)
        .timeout(Duration::from_secs(60))
}

/// The policy of the main run (see [`policy_builder`]).
pub fn policy() -> Policy {
    policy_builder().build().expect("the chaos policy is valid")
}

/// The error-limit scenario's policy: the main one with [`SCENARIO_MAX_ERRORS`].
pub fn error_limit_policy() -> Policy {
    policy_builder()
        .max_errors_in_row(SCENARIO_MAX_ERRORS)
        .build()
        .expect("the error-limit policy is valid")
}

/// Every create fails (an HTML 502, no `Retry-After`): each import must stop after exactly
/// [`SCENARIO_MAX_ERRORS`] attempts.
pub fn error_limit_script() -> Script {
    Script::on(Route::Create).always().respond(Fault::Http502 {
        retry_after: None,
        html: true,
    })
}

/// The deadline scenario's policy: the main one with a [`SCENARIO_DEADLINE`] timeout.
pub fn deadline_policy() -> Policy {
    policy().with_timeout(SCENARIO_DEADLINE)
}

/// Every status call stalls past the request timeout: each import must stop at its
/// deadline, its last request cut there.
pub fn deadline_script() -> Script {
    Script::on(Route::Status)
        .always()
        .respond(Fault::Stall(LONG_STALL))
}

/// One import to make.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Its number in the run.
    pub index: usize,
    /// The events.
    pub items: Vec<EventRequest>,
    /// A key of our own (the scenarios, to find their creates in the log), or `None` for
    /// one the client generates.
    pub key: Option<IdempotencyKey>,
}

/// Import `index` of the main run: 2 to 5 events with unique names (so the fake's fault
/// draws, keyed on the body, differ per import). One in three batches has a first event
/// named `bad-…` (a partly FAILED job), one in ten is all `bad-…` (FAILED, nothing
/// imported), the rest COMPLETE.
pub fn plan(index: usize) -> Plan {
    let len = 2 + index % 4;
    let items = (0..len)
        .map(|k| {
            let bad = index % 10 == 7 || (index % 3 == 1 && k == 0);
            let prefix = if bad { "bad" } else { "evt" };
            EventRequest {
                name: format!("{prefix}-{index}-{k}"),
                ..EventRequest::default()
            }
        })
        .collect();
    Plan {
        index,
        items,
        key: None,
    }
}

/// Import `index` of a scenario, with its own key `chaos-{label}-{index}`.
pub fn scenario_plan(label: &str, index: usize) -> Plan {
    let key = IdempotencyKey::new(format!("chaos-{label}-{index}")).expect("a valid key");
    let items = vec![EventRequest {
        name: format!("{label}-{index}"),
        ..EventRequest::default()
    }];
    Plan {
        index,
        items,
        key: Some(key),
    }
}

/// One import as it ran.
#[derive(Debug)]
pub struct Run {
    /// What was imported.
    pub plan: Plan,
    /// Just before the adapter's `importer` was called.
    pub started: Instant,
    /// Just after its run of events ended.
    pub ended: Instant,
    /// What its events said ([`report_of`]).
    pub report: ImportReport<EventRequest>,
    /// How many events its run yielded.
    pub events: usize,
}

/// Checks the events of one import's run (a one-batch `JobSet` driven by an adapter's
/// `Run`, as it yielded them, to the end) and gathers them into a report. The stream must
/// keep the machine's promises: every event is the one job's (key 0); `Created` at most
/// once and before any page; imported pages before failed ones; no `Progress` of a stage
/// the job has left; exactly one `Done`, and it is the last event. Returns the report and
/// the number of events.
pub fn report_of(
    events: impl IntoIterator<Item = (JobKey, Event<EventRequest>)>,
) -> (ImportReport<EventRequest>, usize) {
    let events: Vec<(JobKey, Event<EventRequest>)> = events.into_iter().collect();
    let count = events.len();
    let (mut created, mut failed_pages, mut done) = (false, false, false);
    let mut stage = Stage::Create;
    for (n, (key, event)) in events.iter().enumerate() {
        assert_eq!(key.index(), 0, "event {n}: a one-batch run has only job 0");
        assert!(!done, "event {n} came after Done: {event:?}");
        match event {
            Event::Created(_) => {
                assert!(!created, "event {n}: a second Created");
                assert_eq!(stage, Stage::Create, "event {n}: Created after {stage}");
                created = true;
                stage = Stage::Wait;
            }
            Event::Progress(p) => {
                assert!(
                    rank(p.stage) >= rank(stage) && p.stage != Stage::Done,
                    "event {n}: progress in {} after {stage}",
                    p.stage
                );
                assert!(
                    (p.stage == Stage::Create) != created,
                    "event {n}: progress at {} with created = {created}",
                    p.stage
                );
                stage = p.stage;
            }
            Event::Imported(_) => {
                assert!(
                    created && !failed_pages,
                    "event {n}: an imported page out of turn"
                );
                stage = Stage::Imports;
            }
            Event::Failed(_) => {
                assert!(created, "event {n}: a failed page before Created");
                failed_pages = true;
                stage = Stage::Errors;
            }
            Event::Done(_) => done = true,
            other => panic!("event {n}: no unread items are expected from the fake: {other:?}"),
        }
    }
    assert!(done, "the run ended without a Done");
    let report = ImportReport::collect(events.into_iter().map(|(_, event)| event))
        .expect("the events end with Done");
    (report, count)
}

/// A stage's place in a job's life.
fn rank(stage: Stage) -> u8 {
    match stage {
        Stage::Create => 0,
        Stage::Wait => 1,
        Stage::Imports => 2,
        Stage::Errors => 3,
        Stage::Done => 4,
    }
}

/// Peak resident set of this process (`VmHWM` in `/proc/self/status`), in bytes.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Asserts the peak resident set stayed under `bound_mib` and returns it in MiB.
pub fn check_peak_rss(bound_mib: u64) -> u64 {
    let peak = peak_rss().expect("/proc/self/status has VmHWM (Linux)") / (1024 * 1024);
    assert!(
        peak < bound_mib,
        "peak resident set {peak} MiB, over the bound of {bound_mib} MiB"
    );
    peak
}

/// The path of [`LogView::settle`]'s last request.
const SENTINEL_PATH: &str = "/chaos-test-sentinel";

/// One request by hand to a path outside the API (the fake answers 404 and logs it).
fn send_sentinel(fake: &FakeServer) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(fake.addr()).expect("the fake accepts");
    let request =
        format!("GET {SENTINEL_PATH} HTTP/1.1\r\nHost: fake\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .expect("the sentinel request goes out");
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .expect("the fake answers the sentinel");
}

/// The fake's log and jobs, read once every request has been logged.
pub struct LogView {
    /// Every request, in arrival order.
    pub log: Vec<LoggedRequest>,
    /// Arrival numbers the log lacks: requests the client gave up on while the fake was
    /// still holding them (see [`check_deadline`]).
    pub missing: Vec<u64>,
    /// Every job.
    pub jobs: Vec<JobSnapshot>,
    /// Job id by the idempotency key it was created with.
    job_by_key: HashMap<String, String>,
    /// Index in `jobs` by job id.
    job_index: HashMap<String, usize>,
    /// The fake's start as wall time: its clock reads zero then.
    started_wall: SystemTime,
}

impl LogView {
    /// Waits until the last request sent has been logged, then reads the log. The fake logs
    /// a request once its answer is ready, a stalled one when its stall ends: so this waits
    /// out [`SHORT_STALL`] after the last import ended. Then one last request (to a path
    /// outside the API, so never faulty) marks the end: its arrival number is the count of
    /// requests the fake received, which finds requests it never logged even after the last
    /// logged one.
    pub fn settle(fake: &FakeServer) -> LogView {
        std::thread::sleep(SHORT_STALL + Duration::from_millis(300));
        send_sentinel(fake);
        let mut log = fake.requests();
        let sentinel = log.pop().expect("the sentinel at least was logged");
        assert_eq!(sentinel.path, SENTINEL_PATH, "the last request logged");
        assert!(
            log.first().is_none_or(|e| e.seq == 0),
            "the log dropped its oldest requests: raise its capacity"
        );
        let mut missing = Vec::new();
        let mut expect = 0u64;
        for entry in &log {
            missing.extend(expect..entry.seq);
            expect = entry.seq + 1;
        }
        missing.extend(expect..sentinel.seq);
        let jobs = fake.jobs();
        let job_index = jobs
            .iter()
            .enumerate()
            .map(|(i, job)| (job.id.clone(), i))
            .collect();
        let mut job_by_key = HashMap::new();
        for job in &jobs {
            let key = job
                .idempotency_key
                .clone()
                .unwrap_or_else(|| panic!("job {} was created without an idempotency key", job.id));
            if let Some(other) = job_by_key.insert(key.clone(), job.id.clone()) {
                panic!(
                    "jobs {other} and {} share the idempotency key {key}",
                    job.id
                );
            }
        }
        let started_wall = SystemTime::now()
            .checked_sub(fake.clock())
            .expect("the fake started after the epoch");
        LogView {
            log,
            missing,
            jobs,
            job_by_key,
            job_index,
            started_wall,
        }
    }

    /// Which import a request belongs to: its job id, or for a create, the job made under
    /// its idempotency key (`key:<key>` when none was).
    fn identity(&self, entry: &LoggedRequest) -> String {
        match entry.route {
            Some(Route::Create) => {
                let key = entry
                    .header(IDEMPOTENCY_KEY)
                    .unwrap_or_else(|| panic!("create #{} without an idempotency key", entry.seq));
                match self.job_by_key.get(key) {
                    Some(job) => job.clone(),
                    None => format!("key:{key}"),
                }
            }
            Some(_) => entry
                .job_id
                .clone()
                .unwrap_or_else(|| panic!("request #{} names no job", entry.seq)),
            None => panic!("request #{} to an unknown path {}", entry.seq, entry.path),
        }
    }

    /// The requests of each import, in arrival order, by [`LogView::identity`].
    fn by_import(&self) -> HashMap<String, Vec<&LoggedRequest>> {
        let mut groups: HashMap<String, Vec<&LoggedRequest>> = HashMap::new();
        for entry in &self.log {
            groups.entry(self.identity(entry)).or_default().push(entry);
        }
        groups
    }

    fn job(&self, id: &str) -> &JobSnapshot {
        let index = self.job_index.get(id);
        let index = index.unwrap_or_else(|| panic!("the fake has no job {id}"));
        &self.jobs[*index]
    }

    /// A job's finish time on the fake's clock.
    fn finish_clock(&self, job: &JobSnapshot) -> Duration {
        job.finishes
            .duration_since(self.started_wall)
            .unwrap_or(Duration::ZERO)
    }
}

/// Figures for the summary line.
#[derive(Debug, Default)]
pub struct Summary {
    /// `ureq` or `hyper`.
    pub adapter: &'static str,
    /// Imports in the main run.
    pub imports: usize,
    /// Jobs that ended COMPLETED / FAILED.
    pub completed: usize,
    /// See `completed`.
    pub failed: usize,
    /// Wall time of the main run.
    pub main_run: Duration,
    /// Events the main run's imports yielded.
    pub events: usize,
    /// Requests of the main run, by route.
    pub requests: BTreeMap<&'static str, usize>,
    /// Faulty answers of the main run, by kind.
    pub faults: BTreeMap<String, usize>,
    /// Requests sent again after an unusable answer.
    pub retries: usize,
    /// Creates sent again after the fake had already made the job (all replayed).
    pub replayed_creates: usize,
    /// `Retry-After` floors checked, and the shortest and longest gap seen after one.
    pub floors: usize,
    /// See `floors`.
    pub shortest_gap: Option<Duration>,
    /// See `floors`.
    pub longest_gap: Option<Duration>,
    /// Longest run of unusable answers one import met.
    pub longest_streak: usize,
    /// Time from each job's finish to the arrival of the status call that saw it.
    pub detection: Vec<Duration>,
    /// Peak resident set and its bound, MiB.
    pub peak_mib: u64,
    /// See `peak_mib`.
    pub bound_mib: u64,
    /// Panics seen.
    pub panics: usize,
}

/// The `q` quantile (0 to 1) of sorted `values`, nearest rank.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_millis();
        let total: usize = self.requests.values().sum();
        let met: usize = self.faults.values().sum();
        let mut detection = self.detection.clone();
        detection.sort();
        let join = |map: Vec<String>| map.join(", ");
        write!(
            f,
            "{adapter} chaos: {n} imports ({c} COMPLETED, {fl} FAILED) in {t:.1} s; \
             {events} events; {total} requests ({routes}); {met} faults met ({kinds}); {retries} retries; \
             {replayed} creates replayed after the job existed; \
             {floors} Retry-After floors kept (gap after them {short}..{long} ms); \
             longest error streak {streak}; \
             completion detected p50 {p50} ms, p99 {p99} ms, max {max} ms after the job finished; \
             peak RSS {peak} MiB (bound {bound} MiB); {panics} panics",
            adapter = self.adapter,
            n = self.imports,
            c = self.completed,
            fl = self.failed,
            t = self.main_run.as_secs_f64(),
            events = self.events,
            routes = join(
                self.requests
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect()
            ),
            kinds = join(
                self.faults
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect()
            ),
            retries = self.retries,
            replayed = self.replayed_creates,
            floors = self.floors,
            short = self.shortest_gap.map_or(0, ms),
            long = self.longest_gap.map_or(0, ms),
            streak = self.longest_streak,
            p50 = ms(quantile(&detection, 0.5)),
            p99 = ms(quantile(&detection, 0.99)),
            max = ms(detection.last().copied().unwrap_or_default()),
            peak = self.peak_mib,
            bound = self.bound_mib,
            panics = self.panics,
        )
    }
}

fn route_name(route: Option<Route>) -> &'static str {
    match route {
        Some(Route::Create) => "create",
        Some(Route::Status) => "status",
        Some(Route::Imports) => "imports",
        Some(Route::Errors) => "errors",
        _ => "other",
    }
}

/// Checks the main run's imports, from their reports and the fake's log and jobs:
///
/// - (a) every import finished with the fake's true final status and counts, and its report
///   holds exactly the items the fake imported and failed;
/// - (b) one job per import, each under its own idempotency key, no create without a job;
/// - (c) after an answer with `Retry-After`, the import's next request came at least that
///   much later (and not absurdly later);
/// - (d) no import met `max_errors_in_row` unusable answers in a row;
/// - (e) no status call after the one that saw the job end, none after an answer that
///   surely showed it ended, and no page read before;
/// - every request came within the import's lifetime and deadline;
/// - every fault kind was met.
///
/// Scenario imports (those with their own key) are left to their own checks.
pub fn check_main(view: &LogView, runs: &[Run], policy: &Policy) -> Summary {
    let mut summary = Summary {
        imports: runs.len(),
        ..Summary::default()
    };
    let groups = view.by_import();
    let scenario_keys: HashSet<String> = view
        .log
        .iter()
        .filter_map(|e| e.header(IDEMPOTENCY_KEY))
        .filter(|k| k.starts_with("chaos-"))
        .map(str::to_owned)
        .collect();
    let mut main_jobs = HashSet::new();
    for run in runs {
        summary.events += run.events;
        let (job, status) = check_finished(view, run);
        assert!(
            main_jobs.insert(job.id.clone()),
            "two imports got job {}",
            job.id
        );
        match status {
            JobStatus::Completed => summary.completed += 1,
            _ => summary.failed += 1,
        }
        let requests = groups
            .get(&job.id)
            .unwrap_or_else(|| panic!("no request for job {}", job.id));
        check_lifetime(run, requests, policy);
        check_retry_after(requests, policy, &mut summary);
        check_streaks(requests, policy, &mut summary);
        check_final_answer(view, &job, requests, &mut summary);
        for entry in requests {
            *summary.requests.entry(route_name(entry.route)).or_default() += 1;
            if let Some(kind) = entry.fault {
                *summary.faults.entry(format!("{kind:?}")).or_default() += 1;
            }
        }
    }
    // (b) No job beyond the imports' own, and no create left without a job (a create whose
    // key made no job would be an import that switched keys between retries).
    for job in &view.jobs {
        let key = job.idempotency_key.as_deref().unwrap_or_default();
        assert!(
            main_jobs.contains(&job.id) || scenario_keys.contains(key),
            "job {} belongs to no import",
            job.id
        );
    }
    for identity in groups.keys() {
        if let Some(key) = identity.strip_prefix("key:") {
            assert!(
                scenario_keys.contains(key),
                "creates under key {key} made no job"
            );
        }
    }
    for kind in FaultKind::ALL {
        if *kind == FaultKind::OversizedBody {
            continue; // not in the mix: see `fault_mix`
        }
        assert!(
            summary.faults.contains_key(&format!("{kind:?}")),
            "fault {kind:?} was never met: the run does not test it"
        );
    }
    summary
}

/// (a) The import finished, as the fake's job truly ended. Returns the job.
fn check_finished(view: &LogView, run: &Run) -> (JobSnapshot, JobStatus) {
    let index = run.plan.index;
    let status = match &run.report.outcome {
        Outcome::Finished(status) => status,
        Outcome::Stopped(Stopped { stage, reason, .. }) => {
            panic!("import {index} stopped in stage {stage}: {reason:?}")
        }
    };
    let job = view.job(&status.job.id).clone();
    let reported = run.report.job.as_ref().map(|j| j.id.as_str());
    assert_eq!(reported, Some(job.id.as_str()), "import {index}: job id");
    assert!(
        job.status.is_done(),
        "import {index}: job {} not done",
        job.id
    );
    let state = match job.status {
        JobStatus::Completed => JobState::Completed,
        _ => JobState::Failed,
    };
    assert_eq!(status.job.status, state, "import {index}: final status");
    assert_eq!(
        status.imports, job.imports as u64,
        "import {index}: imports"
    );
    assert_eq!(status.errors, job.errors as u64, "import {index}: errors");
    assert_eq!(run.report.imported.len(), job.imports, "import {index}");
    assert_eq!(run.report.failed.len(), job.errors, "import {index}");
    // The fake's truth is what the batch was built to give, and the report holds exactly
    // those items, in order.
    let names = |bad: bool| -> Vec<&str> {
        run.plan
            .items
            .iter()
            .map(|e| e.name.as_str())
            .filter(|n| n.starts_with("bad") == bad)
            .collect()
    };
    let imported: Vec<&str> = run
        .report
        .imported
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    let failed: Vec<&str> = run
        .report
        .failed
        .iter()
        .map(|f| f.item.as_ref().map_or("", |e| e.name.as_str()))
        .collect();
    assert_eq!(imported, names(false), "import {index}: imported items");
    assert_eq!(failed, names(true), "import {index}: failed items");
    let expected = if names(true).is_empty() {
        JobStatus::Completed
    } else {
        JobStatus::Failed
    };
    assert_eq!(job.status, expected, "import {index}: the fake's verdict");
    let status = job.status;
    (job, status)
}

/// Every request of the import came while it ran and no later than its deadline.
fn check_lifetime(run: &Run, requests: &[&LoggedRequest], policy: &Policy) {
    let index = run.plan.index;
    let deadline = policy.timeout().map(|t| run.started + t + CLOCK_SLOP);
    for entry in requests {
        assert!(
            entry.instant >= run.started && entry.instant <= run.ended,
            "import {index}: request #{} outside the import's lifetime",
            entry.seq
        );
        if let Some(deadline) = deadline {
            assert!(
                entry.instant <= deadline,
                "import {index}: request #{} after the deadline",
                entry.seq
            );
        }
    }
}

/// (c) After an answer carrying `Retry-After`, the import's next request (the retry of the
/// same call: an import sends one request at a time) came no sooner than that. It came no
/// later than the `Retry-After` or the longest error backoff plus a second of slack either,
/// so a misread date (an hour of skew) would show.
fn check_retry_after(requests: &[&LoggedRequest], policy: &Policy, summary: &mut Summary) {
    for pair in requests.windows(2) {
        let (answered, next) = (pair[0], pair[1]);
        let Some(wait) = retry_after_of(answered) else {
            continue;
        };
        let gap = next.instant.duration_since(answered.instant);
        assert!(
            gap + CLOCK_SLOP >= wait,
            "request #{} ({:?} {} {}) came {gap:?} after #{} answered {:?} with Retry-After {wait:?}",
            next.seq,
            next.route,
            next.method,
            next.path,
            answered.seq,
            answered.fault,
        );
        let most = wait.max(policy.max_error_backoff()) + Duration::from_secs(1);
        assert!(
            gap <= most,
            "request #{} came {gap:?} after #{}'s Retry-After {wait:?}: over {most:?}",
            next.seq,
            answered.seq
        );
        summary.floors += 1;
        summary.shortest_gap = Some(summary.shortest_gap.map_or(gap, |g| g.min(gap)));
        summary.longest_gap = Some(summary.longest_gap.map_or(gap, |g| g.max(gap)));
    }
}

/// (d) The import never met `max_errors_in_row` unusable answers in a row (it would have
/// had to stop). Counts retries, and creates replayed after the job existed.
fn check_streaks(requests: &[&LoggedRequest], policy: &Policy, summary: &mut Summary) {
    let mut streak = 0usize;
    let mut job_made = false;
    for entry in requests {
        if streak > 0 {
            summary.retries += 1;
        }
        if entry.route == Some(Route::Create) {
            if job_made {
                summary.replayed_creates += 1;
            }
            job_made |= processed(entry);
        }
        if answered_ok(entry) {
            streak = 0;
        } else {
            streak += 1;
            assert!(
                streak < policy.max_errors_in_row() as usize,
                "request #{}: {streak} unusable answers in a row, yet the import went on",
                entry.seq
            );
        }
        summary.longest_streak = summary.longest_streak.max(streak);
    }
}

/// (e) The status call that saw the job end is the import's last status call, no page is
/// read before it, and none went unnoticed. Records the detection delay.
fn check_final_answer(
    view: &LogView,
    job: &JobSnapshot,
    requests: &[&LoggedRequest],
    summary: &mut Summary,
) {
    let finish = view.finish_clock(job);
    let good_status = |e: &&&LoggedRequest| e.route == Some(Route::Status) && answered_ok(e);
    // The first usable status answer that surely showed the job ended, else the last usable
    // one (which arrived within FINISH_SLOP of the finish).
    let surely = requests
        .iter()
        .filter(good_status)
        .find(|e| e.clock >= finish + FINISH_SLOP);
    let last = requests.iter().rfind(good_status);
    let seen = surely
        .or(last)
        .unwrap_or_else(|| panic!("job {}: no usable status answer", job.id));
    for entry in requests {
        let after = entry.seq > seen.seq;
        match entry.route {
            Some(Route::Status) => assert!(
                !after,
                "job {}: status call #{} after #{} had shown the job ended",
                job.id, entry.seq, seen.seq
            ),
            Some(Route::Imports | Route::Errors) => assert!(
                after,
                "job {}: page read #{} before the job was seen to end",
                job.id, entry.seq
            ),
            _ => {}
        }
    }
    assert!(
        seen.clock + FINISH_SLOP >= finish,
        "job {}: the last usable status call (#{}) came before the job finished",
        job.id,
        seen.seq
    );
    summary.detection.push(seen.clock.saturating_sub(finish));
}

/// The error-limit scenario: each import stopped in the create stage with `TooManyErrors`
/// after exactly `max_errors_in_row` creates, all refused, and made no job.
pub fn check_error_limit(view: &LogView, runs: &[Run], policy: &Policy) {
    assert_eq!(runs.len(), SCENARIO_IMPORTS);
    let groups = view.by_import();
    for run in runs {
        let key = run.plan.key.as_ref().expect("scenario imports have keys");
        match &run.report.outcome {
            Outcome::Stopped(Stopped {
                job: None,
                stage: Stage::Create,
                reason: StopReason::TooManyErrors(_),
                last_status: None,
            }) => {}
            other => panic!(
                "key {}: expected TooManyErrors at create, got {other:?}",
                key.as_str()
            ),
        }
        assert!(run.report.job.is_none() && run.report.imported.is_empty());
        let requests = groups
            .get(&format!("key:{}", key.as_str()))
            .unwrap_or_else(|| panic!("no create under key {}", key.as_str()));
        assert_eq!(
            requests.len(),
            policy.max_errors_in_row() as usize,
            "key {}: creates sent before stopping",
            key.as_str()
        );
        assert!(requests.iter().all(|e| !answered_ok(e)));
        check_lifetime(run, requests, policy);
    }
}

/// The deadline scenario: each import stopped with `DeadlineExceeded`, returned within
/// [`DEADLINE_SLOP`] of its deadline (and, once its job existed, not before: status calls
/// stall, so only the deadline can end the wait), and sent nothing after it.
///
/// A request whose client hung up while the fake stalled is logged (with no status) only
/// when hyper drops its task, which may come after the log is read; earlier fakes never
/// logged it. Either way the check counts gaps in the log's arrival numbers too: every gap
/// falls after this scenario began, and logged and missing status calls together are at
/// least one per import that got to wait and at most two per import (one cut by the 1 s
/// request timeout, one cut by the 2 s deadline).
pub fn check_deadline(view: &LogView, runs: &[Run], policy: &Policy) {
    assert_eq!(runs.len(), SCENARIO_IMPORTS);
    let timeout = policy.timeout().expect("the scenario has a deadline");
    let groups = view.by_import();
    let mut first_seq = u64::MAX;
    let mut status_calls = view.missing.len();
    let mut waited = 0;
    for run in runs {
        let key = run.plan.key.as_ref().expect("scenario imports have keys");
        let stage = match &run.report.outcome {
            Outcome::Stopped(Stopped {
                stage,
                reason: StopReason::DeadlineExceeded,
                ..
            }) => *stage,
            other => panic!(
                "key {}: expected DeadlineExceeded, got {other:?}",
                key.as_str()
            ),
        };
        let took = run.ended.duration_since(run.started);
        assert!(
            took <= timeout + DEADLINE_SLOP,
            "key {}: stopped {took:?} after it started, deadline {timeout:?}",
            key.as_str()
        );
        if stage != Stage::Create {
            waited += 1;
            assert!(
                took + Duration::from_millis(50) >= timeout,
                "key {}: stopped waiting after {took:?}, before its deadline {timeout:?}",
                key.as_str()
            );
        }
        let identity = match view.job_by_key.get(key.as_str()) {
            Some(job) => job.clone(),
            None => format!("key:{}", key.as_str()),
        };
        let requests = groups
            .get(&identity)
            .unwrap_or_else(|| panic!("no request under key {}", key.as_str()));
        check_lifetime(run, requests, policy);
        first_seq = first_seq.min(requests[0].seq);
        status_calls += requests
            .iter()
            .filter(|e| e.route == Some(Route::Status))
            .count();
    }
    if let Some(early) = view.missing.iter().find(|&&m| m < first_seq) {
        panic!("request #{early} is missing from the log, before the deadline scenario");
    }
    assert!(
        (waited..=2 * SCENARIO_IMPORTS).contains(&status_calls),
        "{status_calls} status calls ({} never logged) by the deadline scenario's {waited} \
         waiting imports",
        view.missing.len()
    );
}
