//! `cargo bench -p fullstory-batch`: the parser against plain serde_json, request building,
//! one poller decision, and 10,000 jobs through a simulated hour.

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use criterion::{Criterion, criterion_group};
use fullstory_batch::http::Response;
use fullstory_batch::{
    ApiKey, Budget, Config, Event, EventRequest, Job, JobId, JobRef, JobSet, Policy, Resource,
    SavedJob,
};
use serde::Deserialize;

/// The reference page's example response.
const EXAMPLE: &[u8] = br#"{
"imports": 42,
"errors": 2,
"job": {
"id": "abd123=",
"status": "FAILED",
"created": "2019-04-18T14:36:11.123Z",
"finished": "2019-04-18T15:36:11.123Z"
}
}"#;

/// The baseline: the same fields, as plain `String`s and numbers.
#[derive(Deserialize)]
#[allow(dead_code)]
struct PlainStatus {
    imports: u64,
    errors: u64,
    job: PlainJob,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct PlainJob {
    id: String,
    status: String,
    created: String,
    finished: String,
}

fn config() -> Config {
    Config::new(ApiKey::new("bench-key").unwrap())
}

fn job(i: usize) -> JobRef {
    JobRef::new(Resource::Events, JobId::new(format!("job-{i}")).unwrap())
}

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn parse(c: &mut Criterion) {
    let config = config();
    let response = Response::new(EXAMPLE);
    let mut group = c.benchmark_group("parse_status");
    group.bench_function("baseline_serde_json_strings", |b| {
        b.iter(|| serde_json::from_slice::<PlainStatus>(black_box(EXAMPLE)).unwrap())
    });
    group.bench_function("fullstory_batch", |b| {
        b.iter(|| config.parse_status(black_box(&response)).unwrap())
    });
    group.finish();
}

/// A page of 1,000 imported events, as the API sends it.
fn page_body() -> Vec<u8> {
    let results: Vec<serde_json::Value> = (0..1000)
        .map(|i| {
            serde_json::json!({
                "name": "Support Ticket",
                "user": {"uid": format!("user-{i}"), "id": format!("{}", 1_000_000 + i)},
                "session": {"id": format!("{i}:{}", 7 * i)},
                "timestamp": "2022-03-15T14:23:23Z",
                "properties": {"id": i, "priority": "Normal", "source": "Email", "title": "Account locked out"}
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({"results": results, "total_records": "1000", "next_page_token": "asd543="}))
        .unwrap()
}

fn pages(c: &mut Criterion) {
    let config = config();
    let body = page_body();
    let response = Response::new(body.as_slice());
    let mut group = c.benchmark_group("parse_page_1000_events");
    group.throughput(criterion::Throughput::Bytes(body.len() as u64));
    group.bench_function("baseline_serde_json_value", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&body)).unwrap())
    });
    group.bench_function("fullstory_batch", |b| {
        b.iter(|| {
            config
                .parse_page::<EventRequest, _>(black_box(&response))
                .unwrap()
        })
    });
    group.finish();
}

fn build(c: &mut Criterion) {
    let config = config().with_integration_source("bench").unwrap();
    let job = job(1);
    c.bench_function("status_request", |b| {
        b.iter(|| config.status_request(black_box(&job)))
    });
}

fn running() -> Response<&'static [u8]> {
    Response::new(&br#"{"job":{"id":"job-1","status":"PROCESSING"}}"#[..])
}

fn decision(c: &mut Criterion) {
    c.bench_function("job_decision", |b| {
        let mut machine: Job = Job::wait(config(), job(1), Policy::default(), t0(), 1);
        let mut now = t0();
        let answer = running();
        b.iter(|| {
            // One transmit, its answer, its event taken, the next wake-up.
            if let Some(t) = machine.poll_transmit(now) {
                machine.handle_response(t.id, &answer, now);
            }
            while machine.poll_event().is_some() {}
            if let Some(t) = machine.poll_timeout() {
                now = t;
            }
        })
    });
    let mut set: JobSet = JobSet::new(config(), Policy::default(), t0(), 1);
    for i in 0..10_000 {
        let _ = set.add_job(job(i), t0());
    }
    c.bench_function("job_set_decision_10k_jobs", |b| {
        let mut now = t0();
        let answer = running();
        b.iter(|| {
            match set.poll_transmit(now) {
                Some(t) => set.handle_response(t.id, &answer, now),
                None => now = set.poll_timeout().unwrap_or(now),
            }
            while set.poll_event().is_some() {}
        })
    });
}

/// 10,000 jobs, each running for an hour, answered at once: wall time and memory.
fn simulated_hour() -> (Duration, usize, u64) {
    let hour = t0() + Duration::from_secs(3600);
    let running = running();
    let completed = Response::new(&br#"{"imports":1,"job":{"id":"x","status":"COMPLETED"}}"#[..]);
    let started = Instant::now();
    let mut set: JobSet = JobSet::new(config(), Policy::default(), t0(), 1)
        .with_budget(Budget::new(1000.0, 200), t0());
    for i in 0..10_000 {
        let _ = set.add_job(job(i), t0());
    }
    let (mut now, mut requests, mut done) = (t0(), 0u64, 0usize);
    while !set.is_empty() {
        while let Some(t) = set.poll_transmit(now) {
            requests += 1;
            let answer = if now >= hour { &completed } else { &running };
            set.handle_response(t.id, answer, now);
        }
        while let Some((_, event)) = set.poll_event() {
            if let Event::Done(_) = event {
                done += 1;
            }
        }
        if let Some(t) = set.poll_timeout() {
            now = now.max(t);
        }
    }
    assert_eq!(done, 10_000);
    (started.elapsed(), done, requests)
}

fn kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn sizes_and_hour() {
    println!("size_of::<Job>() = {} bytes", size_of::<Job>());
    println!("size_of::<SavedJob>() = {} bytes", size_of::<SavedJob>());
    let before = kib("VmRSS:");
    let (wall, jobs, requests) = simulated_hour();
    let peak = kib("VmHWM:");
    println!("simulated hour: {jobs} jobs, {requests} requests, wall {wall:.2?}");
    if let (Some(before), Some(peak)) = (before, peak) {
        println!("simulated hour: peak RSS {peak} KiB (process was {before} KiB before the run)");
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(3));
    targets = parse, pages, build, decision
}

/// `FSB_COUNT=<n> cargo bench -p fullstory-batch --bench core` under callgrind: parses the
/// example `n` times each way and exits, so `--toggle-collect='*count_ours*'` and
/// `--toggle-collect='*count_baseline*'` count instructions of the parse alone, and
/// `--toggle-collect='*count_build*'` those of building the status request.
#[inline(never)]
fn count_ours(config: &Config, response: &Response<&[u8]>, n: u64) {
    for _ in 0..n {
        black_box(config.parse_status(black_box(response)).unwrap());
    }
}

#[inline(never)]
fn count_build(config: &Config, job: &JobRef, n: u64) {
    for _ in 0..n {
        black_box(config.status_request(black_box(job)));
    }
}

#[inline(never)]
fn count_baseline(body: &[u8], n: u64) {
    for _ in 0..n {
        black_box(serde_json::from_slice::<PlainStatus>(black_box(body)).unwrap());
    }
}

fn main() {
    if let Some(n) = std::env::var("FSB_COUNT").ok().and_then(|n| n.parse().ok()) {
        let config = config();
        count_ours(&config, &Response::new(EXAMPLE), n);
        count_baseline(EXAMPLE, n);
        count_build(&config, &job(1), n);
        return;
    }
    // First, so the process's peak RSS is the simulation's, not criterion's.
    if std::env::args().all(|a| a != "--list") {
        sizes_and_hour();
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
