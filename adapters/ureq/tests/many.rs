//! `Client::wait_many`: the scheduler's loop over a small worker pool.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use fullstory_batch_fake::FaultKind;
use fullstory_batch_ureq::{Budget, JobState, Outcome};

#[test]
fn a_hundred_jobs_under_a_budget() {
    let fake = fake()
        .processing_time(Duration::from_millis(300))
        .start_blocking()
        .unwrap();
    let jobs: Vec<_> = (0..100).map(|_| insert_job(&fake).1).collect();
    let client = client(fake.base_url());
    let (rate, burst) = (400.0, 20);

    let started = Instant::now();
    let results = client.wait_many(jobs.clone(), fast_policy(), Budget::new(rate, burst));
    let took = started.elapsed();

    // Every job, in the order given, completed.
    assert_eq!(results.len(), 100);
    for ((job, outcome), expected) in results.iter().zip(&jobs) {
        assert_eq!(job, expected);
        assert!(
            matches!(outcome, Outcome::Completed(s) if s.job.status == JobState::Completed),
            "{job}: {outcome:?}"
        );
    }

    // The budget held: in any window, at most `burst` plus what the rate refills.
    let times: Vec<Instant> = fake.requests().iter().map(|r| r.instant).collect();
    assert!(
        times.len() >= 200,
        "each job was seen running, then done: {}",
        times.len()
    );
    for (i, start) in times.iter().enumerate() {
        for (j, end) in times.iter().enumerate().skip(i) {
            let window = end.duration_since(*start).as_secs_f64();
            let allowed = f64::from(burst) + rate * (window + 0.02);
            assert!(
                ((j - i + 1) as f64) <= allowed,
                "{} requests in {window:.3}s",
                j - i + 1
            );
        }
    }
    let ids: HashSet<_> = fake
        .requests()
        .iter()
        .filter_map(|r| r.job_id.clone())
        .collect();
    assert_eq!(ids.len(), 100);
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn no_jobs_is_no_work() {
    let fake = fake().start_blocking().unwrap();
    let results = client(fake.base_url()).wait_many(Vec::new(), fast_policy(), Budget::new(1.0, 1));
    assert!(results.is_empty());
    assert!(fake.requests().is_empty());
}

#[test]
fn jobs_complete_through_random_faults() {
    // Only faults a retry can fix: an oversized body is not one (it is not retried).
    let kinds = [
        FaultKind::Http500,
        FaultKind::Http503,
        FaultKind::ConnectionReset,
        FaultKind::TruncatedBody,
    ];
    let fake = fake()
        .processing_time(Duration::from_millis(100))
        .random_faults(0.25, 7, &kinds)
        .start_blocking()
        .unwrap();
    let jobs: Vec<_> = (0..30).map(|_| insert_job(&fake).1).collect();
    let client = client_with(
        fake.base_url(),
        quick_options().with_max_idle_connections(3),
    );
    let results = client.wait_many(jobs, fast_policy(), Budget::new(1000.0, 50));
    for (job, outcome) in &results {
        assert!(outcome.status().is_some(), "{job}: {outcome:?}");
    }
    let faulted = fake.requests().iter().filter(|r| r.fault.is_some()).count();
    assert!(faulted > 0, "some requests met a fault");
}
