//! `Client::wait_many`: the one loop over a small worker pool. (Outcomes by key, the
//! connection cap and random faults are in the conformance suite.)

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::*;
use fullstory_batch_ureq::{Budget, Event, JobKey};

/// The fake's clock stands still until every job was seen running, so no job can finish
/// before its first poll, however slow the machine.
#[test]
fn every_event_comes_tagged_with_its_job() {
    let fake = fake()
        .processing_time(Duration::from_millis(200))
        .manual_clock()
        .start_blocking()
        .unwrap();
    let jobs: Vec<_> = (0..20).map(|_| insert_job(&fake).1).collect();
    let run =
        client(fake.base_url()).wait_many(jobs.clone(), fast_policy(), Budget::new(1000.0, 50));
    let mut done: HashMap<JobKey, usize> = HashMap::new();
    let mut running = HashSet::new();
    for (key, event) in run {
        let job = &jobs[usize::try_from(key.index()).unwrap()];
        match event {
            Event::Progress(p) => {
                assert_eq!(p.job.as_ref(), Some(job), "{key:?}");
                if running.insert(key) && running.len() == jobs.len() {
                    fake.advance(Duration::from_secs(1));
                }
            }
            Event::Done(outcome) => {
                assert!(outcome.is_completed(), "{job}: {outcome:?}");
                assert!(
                    running.contains(&key),
                    "{job} ended before it was seen running"
                );
                *done.entry(key).or_default() += 1;
            }
            other => panic!("a wait has no {other:?}"),
        }
    }
    assert_eq!(done.len(), 20);
    assert!(done.values().all(|&n| n == 1));
}
