//! Many jobs under one budget, on a simulated clock.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use fullstory_batch::http::Response;
use fullstory_batch::{
    ApiKey, Budget, Config, JobId, JobKey, JobRef, Outcome, Policy, Resource, Scheduler,
    SchedulerAction,
};

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn config() -> Config {
    Config::new(ApiKey::new("k").unwrap())
}

fn job(i: usize) -> JobRef {
    JobRef::new(Resource::Events, JobId::new(format!("job-{i}")).unwrap())
}

fn status(id: &str, done: bool) -> Response<Vec<u8>> {
    let status = if done { "COMPLETED" } else { "PROCESSING" };
    let body = format!(r#"{{"imports":1,"job":{{"id":"{id}","status":"{status}"}}}}"#);
    Response::new(body.into_bytes())
}

fn rate_limited(secs: u64) -> Response<Vec<u8>> {
    Response::builder()
        .status(429)
        .header("retry-after", secs.to_string())
        .body(Vec::new())
        .unwrap()
}

/// Runs `n` jobs that each finish after `runs_for`, answering every request at once.
/// `answer` may replace the normal reply. Returns the send times and the outcomes.
fn simulate(
    n: usize,
    runs_for: Duration,
    mut scheduler: Scheduler,
    mut answer: impl FnMut(usize, SystemTime) -> Option<Response<Vec<u8>>>,
) -> (Vec<SystemTime>, Vec<Outcome>) {
    let mut now = t0();
    let keys: HashMap<JobKey, usize> = (0..n).map(|i| (scheduler.add(job(i), now), i)).collect();
    let (mut sends, mut outcomes) = (Vec::new(), Vec::new());
    let end = t0() + runs_for;
    loop {
        match scheduler.poll(now) {
            SchedulerAction::Send(key) => {
                let i = keys[&key];
                sends.push(now);
                let response = answer(sends.len(), now)
                    .unwrap_or_else(|| status(&format!("job-{i}"), now >= end));
                scheduler.handle_response(key, config().parse_status(&response), now);
            }
            SchedulerAction::Wait(t) => {
                assert!(t > now, "waits move time forward");
                now = t;
            }
            SchedulerAction::Done(_, outcome) => outcomes.push(outcome),
            SchedulerAction::Idle => break,
        }
    }
    assert!(scheduler.is_empty());
    (sends, outcomes)
}

#[test]
fn budget_holds_across_jobs() {
    let rate = 50.0;
    let scheduler = Scheduler::new(Policy::default(), 1).with_budget(Budget::new(rate, 10), t0());
    let (sends, outcomes) = simulate(500, Duration::from_secs(30), scheduler, |_, _| None);
    assert_eq!(outcomes.len(), 500);
    assert!(outcomes.iter().all(|o| matches!(o, Outcome::Completed(_))));
    // In any window of one second, at most rate + burst requests.
    for (i, start) in sends.iter().enumerate() {
        let in_window = sends[i..]
            .iter()
            .take_while(|t| t.duration_since(*start).unwrap() < Duration::from_secs(1))
            .count();
        assert!(
            in_window as f64 <= rate + 10.0,
            "{in_window} requests in one second"
        );
    }
}

#[test]
fn a_429_pauses_every_job() {
    let scheduler = Scheduler::new(Policy::default(), 1);
    let mut paused_at = None;
    let (sends, outcomes) = simulate(50, Duration::from_secs(5), scheduler, |n, now| {
        (n == 10).then(|| {
            paused_at = Some(now);
            rate_limited(9)
        })
    });
    assert_eq!(outcomes.len(), 50);
    let paused_at = paused_at.unwrap();
    let after: Vec<_> = sends.iter().skip(10).collect();
    assert!(!after.is_empty());
    assert!(
        after
            .iter()
            .all(|t| **t >= paused_at + Duration::from_secs(9)),
        "a job sent during the pause"
    );
}

#[test]
fn two_thousand_jobs_for_a_simulated_hour() {
    // The benchmark runs 10,000; a debug-build test keeps to fewer.
    let scheduler = Scheduler::new(Policy::default(), 7).with_budget(Budget::new(500.0, 100), t0());
    let (sends, outcomes) = simulate(2_000, Duration::from_secs(3600), scheduler, |_, _| None);
    assert_eq!(outcomes.len(), 2_000);
    // About log1.5(3600) + 3600/18 + 2 ≈ 222 requests a job at most.
    assert!(sends.len() <= 2_000 * 225, "{} requests", sends.len());
}

#[test]
fn removed_and_stale_keys_are_ignored() {
    let mut scheduler = Scheduler::new(Policy::default(), 1);
    let a = scheduler.add(job(0), t0());
    assert!(scheduler.remove(a).is_some());
    assert!(scheduler.remove(a).is_none());
    let b = scheduler.add(job(1), t0());
    assert_ne!(a, b, "a reused slot gets a new key");
    scheduler.handle_response(a, config().parse_status(&status("x", true)), t0());
    assert_eq!(scheduler.job(b), Some(&job(1)));
    assert!(matches!(scheduler.poll(t0()), SchedulerAction::Send(k) if k == b));
    assert!(
        matches!(scheduler.poll(t0()), SchedulerAction::Idle),
        "b's request is in flight"
    );
}

#[test]
fn deadlines_finish_jobs_without_a_request() {
    let policy = Policy::default().with_timeout(Duration::from_secs(10));
    let scheduler = Scheduler::new(policy, 1);
    let (_, outcomes) = simulate(20, Duration::from_secs(3600), scheduler, |_, _| None);
    assert_eq!(outcomes.len(), 20);
    assert!(outcomes.iter().all(|o| matches!(
        o,
        Outcome::DeadlineExceeded {
            last_status: Some(_)
        }
    )));
}
