#![no_main]
//! One [`Job`] (a create then the wait and its pages, or the wait of an existing job) fed an
//! arbitrary script: answers with any status, `Retry-After`, `Date` and body, transport
//! failures, answers to stale ids, clock jumps (back as well), sleeps to the machine's
//! wake-up, and save/restore round trips through JSON. Besides never panicking, for any
//! input (see `script::Watch`):
//!
//! - at most one request is out; ids are never reused; a stale id changes nothing;
//! - no request before a `Retry-After` floor, sooner than the policy's shortest wait after
//!   the last answer, or after the deadline; each carries the deadline, its stage and its
//!   attempt number; a retried create carries the same idempotency key;
//! - events come in order (`Created` once, before any page; imported pages before failed
//!   ones; progress never goes back a stage), and a live job always has a request out or a
//!   wake-up;
//! - driven to its end, the job gives exactly one `Done`, then nothing: no event, no
//!   request, no wake-up.
//!
//! # Bytes
//! `flags` (bit 0: a create, else a wait; bits 1-2: pages; bit 3: include schema), a seed
//! byte, the policy (8 bytes, `script::policy`), then moves of an op byte and its operands:
//! `0` jump the clock (3), `1` poll for a request, `2` answer the request out (4, more for
//! an arbitrary body), `3` fail it (1), `4` answer a stale id (1 + 4), `5` sleep to
//! `poll_timeout`, `6` save and restore.

use std::time::SystemTime;

use fullstory_batch::{ApiKey, Batch, Config, Event, EventRequest, Job, JobId, JobRef, Pages, Resource, SavedJob};
use libfuzzer_sys::fuzz_target;

mod script;

use script::{Bytes, Watch};

const JOB_ID: &str = "j=";

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let config = std::sync::Arc::new(Config::new(ApiKey::new("fuzz-key").expect("a valid key")));
    let flags = b.byte();
    let seed = u64::from(b.byte());
    let policy = script::policy(&mut b);
    let start = script::start();
    let creates = flags & 1 == 1;
    let pages = [Pages::None, Pages::Imports, Pages::Errors, Pages::All][usize::from(flags >> 1) % 4];
    let mut job: Job = if creates {
        let items = [EventRequest { name: "e".into(), ..EventRequest::default() }];
        let batch = Batch::new(&items, None).expect("a valid batch");
        Job::create(config.clone(), batch, policy.clone(), start, seed)
    } else {
        let job = JobRef::new(Resource::Events, JobId::new(JOB_ID).expect("a valid id"));
        Job::wait(config.clone(), job, policy.clone(), start, seed)
    }
    .with_pages(pages);
    if flags & 8 != 0 {
        job = job.with_schema();
    }
    let deadline = policy.timeout().map(|t| start + t);
    let mut watch = Watch::new(creates, deadline, start);
    let mut now = start;
    let mut dones = 0;

    let mut step = 0;
    while !b.is_empty() && step < 2_000 {
        step += 1;
        match b.byte() % 7 {
            0 => now = script::jump(now, b.byte(), b.byte(), b.byte()),
            1 => poll(&mut job, &mut watch, now),
            2 => {
                let Some(id) = watch.in_flight else { continue };
                let response = script::response(&mut b, now, job_id(&job));
                job.handle_response(id, &response, now);
                let events = drain(&mut job);
                watch.answered(Some(&response), now, &policy, &events);
                dones += take(&mut watch, events);
            }
            3 => {
                let Some(id) = watch.in_flight else { continue };
                job.handle_send_failed(id, script::transport_error(&mut b), now);
                let events = drain(&mut job);
                watch.answered::<Vec<u8>>(None, now, &policy, &events);
                dones += take(&mut watch, events);
            }
            4 => {
                let pick = usize::from(b.byte());
                let stale: Vec<_> = watch.sent.iter().filter(|&&id| Some(id) != watch.in_flight).copied().collect();
                let response = script::response(&mut b, now, job_id(&job));
                let Some(&id) = stale.get(pick % stale.len().max(1)) else { continue };
                let before = (job.poll_timeout(), job.stage(), job.progress().attempts);
                job.handle_response(id, &response, now);
                job.handle_send_failed(id, script::transport_error(&mut b), now);
                assert!(job.poll_event().is_none(), "a stale id made an event");
                let after = (job.poll_timeout(), job.stage(), job.progress().attempts);
                assert_eq!(before, after, "a stale id moved the job");
            }
            5 => {
                if let Some(wake) = job.poll_timeout() {
                    assert!(!watch.is_done(), "a wake-up after Done");
                    now = now.max(wake);
                }
            }
            _ => {
                dones += take(&mut watch, drain(&mut job));
                if watch.is_done() {
                    continue;
                }
                let saved = serde_json::to_string(&job.save()).expect("a state serialises");
                let saved: SavedJob = serde_json::from_str(&saved).expect("a saved state reads back");
                job = Job::restore(config.clone(), saved).expect("a live job restores");
                // A request out when the state was saved is lost: its id is stale now.
                watch.in_flight = None;
            }
        }
        dones += take(&mut watch, drain(&mut job));
        if !watch.is_done() && watch.in_flight.is_none() {
            assert!(job.poll_timeout().is_some(), "a live job with nothing to send and no wake-up");
        }
    }

    // The end: every request is refused for good (404), time runs on, and the job must end.
    for _ in 0..64 {
        dones += take(&mut watch, drain(&mut job));
        if watch.is_done() {
            break;
        }
        if let Some(id) = watch.in_flight {
            let gone = fullstory_batch::http::Response::builder().status(404).body(Vec::new()).expect("a 404");
            job.handle_response(id, &gone, now);
            let events = drain(&mut job);
            watch.answered(Some(&gone), now, &policy, &events);
            dones += take(&mut watch, events);
        } else {
            poll(&mut job, &mut watch, now);
            // Polling at the deadline ends the job: its Done first.
            dones += take(&mut watch, drain(&mut job));
            if watch.in_flight.is_none() && !watch.is_done() {
                now = now.max(job.poll_timeout().expect("a live job has a wake-up"));
            }
        }
    }
    assert!(watch.is_done(), "the job never ended");
    assert_eq!(dones, 1, "exactly one Done");
    let later = now + std::time::Duration::from_secs(1 << 30);
    assert!(job.poll_transmit(later).is_none(), "a request after Done");
    assert!(job.poll_timeout().is_none(), "a wake-up after Done");
    assert!(job.poll_event().is_none(), "an event after Done");
    assert!(job.outcome().is_some(), "a job that gave Done keeps its outcome");
    assert!(Job::<EventRequest>::restore(config, job.save()).is_err(), "a finished job restored");
});

/// Asks for a request at `now` and checks it.
fn poll(job: &mut Job, watch: &mut Watch, now: SystemTime) {
    if let Some(t) = job.poll_transmit(now) {
        watch.transmit(&t, now, job.stage());
        assert!(job.poll_transmit(now).is_none(), "a second request while one is out");
    }
}

fn drain(job: &mut Job) -> Vec<Event> {
    std::iter::from_fn(|| job.poll_event()).collect()
}

/// Checks the events in order; the number of `Done`s among them.
fn take(watch: &mut Watch, events: Vec<Event>) -> usize {
    let mut dones = 0;
    for event in &events {
        watch.event(event);
        dones += usize::from(matches!(event, Event::Done(_)));
    }
    dones
}

fn job_id(job: &Job) -> &str {
    job.job().map_or("new=", |j| j.id.as_str())
}
