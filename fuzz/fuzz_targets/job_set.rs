#![no_main]
//! A [`JobSet`] of 1 to 8 jobs (creates and waits, more added on the way, an input refused)
//! under an optional budget and cap on jobs in progress, fed an arbitrary script: answers
//! to any request out with any status, `Retry-After`, `Date` and body, transport failures,
//! answers to stale ids, clock jumps (back as well), sleeps to the set's wake-up, and
//! save/restore round trips. Besides never panicking, for any input:
//!
//! - every job keeps the promises of the `job` target (`script::Watch`): one request out at
//!   most, none before its `Retry-After` floor, sooner than its policy allows or after the
//!   set's deadline, events in order;
//! - a 429 on a job that goes on holds every job: no request from any of them before its
//!   `Retry-After` floor and its backoff;
//! - with a budget, no stretch of time has more requests than the burst plus the rate
//!   times its length; no more jobs are in progress than the cap;
//! - an answer to a stale id changes nothing: no event, the same wake-up;
//! - driven to the end, each job gives exactly one `Done`, then the set is empty and
//!   silent: no event, no request, no wake-up.
//!
//! # Bytes
//! `flags` (bits 0-1: pages; bit 2: a budget; bits 3-5: the cap on jobs in progress, 0 for
//! none), `jobs` (bits 0-2: how many, less one; bits 3-7: which are creates), a seed byte,
//! the policy (8 bytes, `script::policy`), the budget's rate and burst (2), then moves of an
//! op byte and its operands: `0` jump the clock (3), `1` poll for every request due, `2`
//! answer a request out (1 + 4, more for an arbitrary body), `3` fail one (1 + 1), `4`
//! answer a stale id (1 + 4 + 1), `5` sleep to `poll_timeout`, `6` save and restore (the
//! first time through JSON, then in memory), `7` add a job (1: bit 0 a create, bit 1
//! refuse the input instead).

use std::time::{Duration, SystemTime};

use fullstory_batch::http::Response;
use fullstory_batch::{
    ApiKey, Batch, Budget, Config, Event, EventRequest, JobId, JobKey, JobRef, JobSet, Pages, Policy, RequestId,
    Resource, SavedJobSet, ValidationError,
};
use libfuzzer_sys::fuzz_target;

mod script;

use script::{Bytes, SLOP, Watch};

/// Everything checked across the set.
struct Model {
    policy: Policy,
    deadline: Option<SystemTime>,
    jobs: Vec<Watch>,
    dones: Vec<usize>,
    /// No request from any job before this: the latest 429's hold.
    pause: SystemTime,
    budget: Option<Budget>,
    cap: Option<usize>,
    /// Each request's time, and the latest `now` any poll was given by then.
    sends: Vec<(SystemTime, SystemTime)>,
    latest_poll: SystemTime,
}

impl Model {
    fn add(&mut self, key: JobKey, creates: bool, now: SystemTime) {
        assert_eq!(key.index() as usize, self.jobs.len(), "keys count from 0 in order");
        let mut watch = Watch::new(creates, self.deadline, now);
        watch.floor = watch.floor.max(self.pause);
        self.jobs.push(watch);
        self.dones.push(0);
    }

    fn in_flight(&self) -> Vec<RequestId> {
        self.jobs.iter().filter_map(|w| w.in_flight).collect()
    }

    /// Every request due at `now`.
    fn poll(&mut self, set: &mut JobSet, now: SystemTime) {
        for _ in 0..64 {
            self.latest_poll = self.latest_poll.max(now);
            let Some(t) = set.poll_transmit(now) else { return };
            // Looking for it may have ended other jobs (at the deadline) and started
            // queued ones: their events first.
            let events = drain(set);
            self.take(events);
            let key = t.id.job();
            let stage = set.job(key).expect("a job that sends is in the set").stage();
            assert!(now + SLOP >= self.pause, "job {} sent {:?} before the 429 hold ended", key.index(), script::until(now, self.pause));
            self.jobs[key.index() as usize].transmit(&t, now, stage);
            self.sends.push((now, self.latest_poll));
            self.check_budget();
            self.check_cap();
        }
    }

    /// Requests from send `i` to send `j` took at most the burst plus what the rate earned
    /// from the first's time to the latest time the bucket could have been refilled to.
    fn check_budget(&self) {
        let Some(budget) = self.budget else { return };
        let j = self.sends.len() - 1;
        let (_, latest) = self.sends[j];
        for (i, &(at, _)) in self.sends.iter().enumerate() {
            let earned = latest.duration_since(at).unwrap_or_default().as_secs_f64() * budget.rate;
            let count = (j - i + 1) as f64;
            assert!(
                count <= f64::from(budget.burst.max(1)) + earned + 1e-6,
                "{count} requests in {:?}, over the budget {budget:?}",
                latest.duration_since(at).unwrap_or_default()
            );
        }
    }

    /// Jobs that have sent and not ended are the jobs in progress.
    fn check_cap(&self) {
        let Some(cap) = self.cap else { return };
        let running = self.jobs.iter().filter(|w| w.attempts > 0 && !w.is_done()).count();
        assert!(running <= cap, "{running} jobs in progress, over the cap of {cap}");
    }

    /// The answer (or failure) to job `key`'s request came at `now`, with `events`.
    fn answered(&mut self, key: JobKey, response: Option<&Response<Vec<u8>>>, now: SystemTime, events: Vec<(JobKey, Event)>) {
        let own: Vec<Event> = events.iter().filter(|(k, _)| *k == key).map(|(_, e)| e.clone()).collect();
        let watch = &mut self.jobs[key.index() as usize];
        watch.answered(response, now, &self.policy, &own);
        let goes_on = !own.iter().any(|e| matches!(e, Event::Done(_)));
        if goes_on && response.is_some_and(|r| r.status() == 429) {
            // The hold: the job's own next request, which is at least half a backoff away
            // (or at the deadline) and never before its Retry-After.
            let backoff = now + self.policy.error_backoff() / 2 - SLOP;
            let backoff = self.deadline.map_or(backoff, |d| backoff.min(d));
            let hold = watch.floor.max(backoff);
            self.pause = self.pause.max(hold);
            for w in &mut self.jobs {
                w.floor = w.floor.max(hold);
            }
        }
        self.take(events);
    }

    fn take(&mut self, events: Vec<(JobKey, Event)>) {
        for (key, event) in events {
            let i = key.index() as usize;
            self.jobs[i].event(&event);
            self.dones[i] += usize::from(matches!(event, Event::Done(_)));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let config = std::sync::Arc::new(Config::new(ApiKey::new("fuzz-key").expect("a valid key")));
    let flags = b.byte();
    let jobs = b.byte();
    let seed = u64::from(b.byte());
    let policy = script::policy(&mut b);
    let (rate, burst) = (b.byte(), b.byte());
    let start = script::start();
    let pages = [Pages::None, Pages::Imports, Pages::Errors, Pages::All][usize::from(flags & 3)];
    let mut set: JobSet = JobSet::new(config.clone(), policy.clone(), start, seed).with_pages(pages);
    let budget = (flags & 4 != 0).then(|| Budget::new(0.5 + f64::from(rate) / 4.0, u32::from(burst % 16)));
    if let Some(budget) = budget {
        set = set.with_budget(budget, start);
    }
    let cap = usize::from((flags >> 3) & 7);
    if cap > 0 {
        set = set.with_max_in_progress(cap);
    }
    let mut model = Model {
        deadline: set.deadline(),
        policy: policy.clone(),
        jobs: Vec::new(),
        dones: Vec::new(),
        pause: SystemTime::UNIX_EPOCH,
        budget,
        cap: (cap > 0).then_some(cap),
        sends: Vec::new(),
        latest_poll: start,
    };
    assert_eq!(model.deadline, policy.timeout().map(|t| start + t), "the set's deadline");
    for n in 0..=(jobs & 7) {
        add(&mut set, &mut model, (u32::from(jobs) >> (3 + n)) & 1 == 1, false, start);
    }
    let mut now = start;

    let mut step = 0;
    let mut through_json = false;
    while !b.is_empty() && step < 2_000 {
        step += 1;
        match b.byte() % 8 {
            0 => now = script::jump(now, b.byte(), b.byte(), b.byte()),
            1 => model.poll(&mut set, now),
            2 => {
                let out = model.in_flight();
                let pick = usize::from(b.byte());
                let Some(&id) = out.get(pick % out.len().max(1)) else { continue };
                let response = script::response(&mut b, now, &job_id(&set, id.job()));
                set.handle_response(id, &response, now);
                let events = drain(&mut set);
                model.answered(id.job(), Some(&response), now, events);
            }
            3 => {
                let out = model.in_flight();
                let pick = usize::from(b.byte());
                let Some(&id) = out.get(pick % out.len().max(1)) else { continue };
                set.handle_send_failed(id, script::transport_error(&mut b), now);
                let events = drain(&mut set);
                model.answered(id.job(), None, now, events);
            }
            4 => {
                let out = model.in_flight();
                let stale: Vec<RequestId> = model.jobs.iter().flat_map(|w| w.sent.iter().copied()).filter(|id| !out.contains(id)).collect();
                let pick = usize::from(b.byte());
                let id = stale.get(pick % stale.len().max(1)).copied();
                let response = script::response(&mut b, now, "j=");
                let error = script::transport_error(&mut b);
                let Some(id) = id else { continue };
                let before = (set.poll_timeout(), set.len());
                set.handle_response(id, &response, now);
                set.handle_send_failed(id, error, now);
                assert!(set.poll_event().is_none(), "a stale id made an event");
                let after = (set.poll_timeout(), set.len());
                assert_eq!(before, after, "a stale id (status {}) moved the set", response.status());
            }
            5 => {
                if let Some(wake) = set.poll_timeout() {
                    assert!(!set.is_empty(), "a wake-up for an empty set");
                    now = now.max(wake);
                }
            }
            6 => {
                let events = drain(&mut set);
                model.take(events);
                // The first round trip goes through JSON; later ones stay in memory, since
                // serialising every job at each step would cost most of the run's time.
                let mut saved = set.save();
                if !through_json {
                    through_json = true;
                    let text = serde_json::to_string(&saved).expect("a state serialises");
                    saved = serde_json::from_str::<SavedJobSet>(&text).expect("a saved state reads back");
                }
                set = JobSet::restore(config.clone(), saved).expect("a set restores");
                // Requests out when the state was saved are lost: their ids are stale now.
                for w in &mut model.jobs {
                    w.in_flight = None;
                }
            }
            _ => {
                let how = b.byte();
                add(&mut set, &mut model, how & 1 == 1, how & 2 == 2, now);
            }
        }
        let events = drain(&mut set);
        model.take(events);
        let live = model.jobs.iter().any(|w| !w.is_done());
        assert_eq!(set.len() > 0, live, "the set's jobs are the ones not done");
        if live && model.in_flight().is_empty() {
            assert!(set.poll_timeout().is_some(), "live jobs, nothing out, no wake-up");
        }
    }

    // The end: every request is refused for good (404), time runs on, and every job must end.
    let gone = Response::builder().status(404).body(Vec::new()).expect("a 404");
    for _ in 0..(64 * model.jobs.len()) {
        let events = drain(&mut set);
        model.take(events);
        if model.jobs.iter().all(Watch::is_done) {
            break;
        }
        if let Some(&id) = model.in_flight().first() {
            set.handle_response(id, &gone, now);
            let events = drain(&mut set);
            model.answered(id.job(), Some(&gone), now, events);
        } else {
            model.poll(&mut set, now);
            let events = drain(&mut set);
            model.take(events);
            if model.in_flight().is_empty() && !model.jobs.iter().all(Watch::is_done) {
                now = now.max(set.poll_timeout().expect("live jobs have a wake-up"));
            }
        }
    }
    for (i, &dones) in model.dones.iter().enumerate() {
        assert_eq!(dones, 1, "job {i}: exactly one Done");
    }
    assert!(set.is_empty(), "every job ended and every event was taken");
    let later = now + Duration::from_secs(1 << 30);
    assert!(set.poll_transmit(later).is_none(), "a request from an empty set");
    assert!(set.poll_timeout().is_none(), "a wake-up of an empty set");
    assert!(set.poll_event().is_none(), "an event of an empty set");
});

/// Adds a job to wait for, a batch to create, or refuses the input.
fn add(set: &mut JobSet, model: &mut Model, creates: bool, refuse: bool, now: SystemTime) {
    let n = model.jobs.len();
    let key = if refuse {
        set.reject_input(ValidationError::Empty)
    } else if creates {
        let items = [EventRequest { name: format!("e{n}"), ..EventRequest::default() }];
        set.add_batch(Batch::new(&items, None).expect("a valid batch"), now)
    } else {
        let id = JobId::new(format!("j{n}=")).expect("a valid id");
        set.add_job(JobRef::new(Resource::Events, id), now)
    };
    model.add(key, creates || refuse, now);
}

fn drain(set: &mut JobSet) -> Vec<(JobKey, Event)> {
    std::iter::from_fn(|| set.poll_event()).collect()
}

fn job_id(set: &JobSet, key: JobKey) -> String {
    set.job(key).and_then(|j| j.job()).map_or_else(|| "new=".to_owned(), |j| j.id.as_str().to_owned())
}
