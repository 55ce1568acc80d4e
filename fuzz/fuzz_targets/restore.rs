#![no_main]
//! Saved state read back from any bytes, as a service that keeps it on disk would: a
//! [`SavedJobSet`] and a [`SavedJob`] from JSON, restored, then driven to the end with every
//! request refused for good (404) and time let run. Besides never panicking, for any input
//! that restores:
//!
//! - the driver never waits for nothing: while jobs are live, a request is due or there is
//!   a wake-up, and a wake-up that has come brings a request or an end (no busy loop);
//! - every job ends, with exactly one `Done`, and then the set is empty and silent;
//! - a job added after the restore gets a key no restored job has.
//!
//! Seeds in `fuzz/seeds/restore/` are states saved mid-run (a set with a budget, a cap, a
//! 429's pause and a job waiting; a job between its status and its pages; a job to create).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fullstory_batch::http::Response;
use fullstory_batch::{
    ApiKey, Config, Event, EventRequest, Job, JobId, JobKey, JobRef, JobSet, Resource, SavedJob,
    SavedJobSet,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let config = Arc::new(Config::new(ApiKey::new("fuzz-key").expect("a valid key")));
    if let Ok(saved) = serde_json::from_slice::<SavedJobSet>(data) {
        let live = live_keys(&config, &saved);
        if let Ok(set) = JobSet::restore(config.clone(), saved) {
            drive_set(set, &live);
        }
    }
    if let Ok(saved) = serde_json::from_slice::<SavedJob>(data) {
        if let Ok(job) = Job::restore(config, saved) {
            drive_job(job);
        }
    }
});

/// The clock the drive starts at: saved states hold any times, before it or after.
fn start() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn gone() -> Response<Vec<u8>> {
    Response::builder().status(404).body(Vec::new()).expect("a 404")
}

/// The keys of the saved jobs that restore on their own (not ended), as the state says.
fn live_keys(config: &Arc<Config>, saved: &SavedJobSet) -> Vec<u64> {
    let state = serde_json::to_value(saved).expect("a state serialises");
    let jobs = state["jobs"].as_array().cloned().unwrap_or_default();
    jobs.into_iter()
        .filter_map(|job| {
            let key = job["key"].as_u64()?;
            let job: SavedJob = serde_json::from_value(job).ok()?;
            Job::<EventRequest>::restore(config.clone(), job).ok().map(|_| key)
        })
        .collect()
}

fn drive_set(mut set: JobSet, live: &[u64]) {
    let mut now = start();
    let added = set.add_job(JobRef::new(Resource::Events, JobId::new("added").expect("an id")), now);
    assert!(!live.contains(&added.index()), "the added job got the key of a restored one");
    // Every job that gave an event, and how many of them were `Done`.
    let mut dones: HashMap<JobKey, usize> = HashMap::new();
    let mut spins = 0;
    // Each job takes one request (a 404 ends it) or a deadline; the rest is waiting.
    for _ in 0..(4 * set.len() + 16) {
        while let Some((key, event)) = set.poll_event() {
            *dones.entry(key).or_default() += usize::from(matches!(event, Event::Done(_)));
        }
        if set.is_empty() {
            break;
        }
        if let Some(t) = set.poll_transmit(now) {
            spins = 0;
            set.handle_response(t.id, &gone(), now);
            continue;
        }
        if set.len() == 0 {
            continue; // looking ended the last jobs (at their deadline): their events first
        }
        let wake = set.poll_timeout().expect("live jobs, nothing to send, and no wake-up");
        if wake <= now {
            spins += 1;
            assert!(spins < 3, "a wake-up at {wake:?} that has come brings nothing (now {now:?})");
        }
        now = now.max(wake);
    }
    assert!(set.is_empty(), "{} jobs still live after every request was refused", set.len());
    for (key, &n) in &dones {
        assert_eq!(n, 1, "job {}: exactly one Done", key.index());
    }
    for key in live {
        assert!(dones.keys().any(|k| k.index() == *key), "restored job {key} was lost");
    }
    assert_eq!(dones.get(&added), Some(&1), "the added job ran alongside the restored ones");
    let later = now + Duration::from_secs(1 << 30);
    assert!(set.poll_transmit(later).is_none() && set.poll_timeout().is_none() && set.poll_event().is_none());
}

fn drive_job(mut job: Job) {
    let mut now = start();
    let mut dones = 0;
    let mut spins = 0;
    for _ in 0..16 {
        while let Some(event) = job.poll_event() {
            dones += usize::from(matches!(event, Event::Done(_)));
        }
        if job.outcome().is_some() {
            break;
        }
        if let Some(t) = job.poll_transmit(now) {
            spins = 0;
            job.handle_response(t.id, &gone(), now);
            continue;
        }
        if job.outcome().is_some() {
            continue;
        }
        let wake = job.poll_timeout().expect("a live job with nothing to send and no wake-up");
        if wake <= now {
            spins += 1;
            assert!(spins < 3, "a wake-up at {wake:?} that has come brings nothing (now {now:?})");
        }
        now = now.max(wake);
    }
    while let Some(event) = job.poll_event() {
        dones += usize::from(matches!(event, Event::Done(_)));
    }
    assert!(job.outcome().is_some(), "the job is still live after its request was refused");
    assert_eq!(dones, 1, "exactly one Done");
}
