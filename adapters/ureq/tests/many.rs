//! `Client::wait_many`: the one loop over a small worker pool. (Outcomes by key, the
//! connection cap and random faults are in the conformance suite.)

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use fullstory_batch_ureq::{Budget, Event, JobKey};

#[test]
fn every_event_comes_tagged_with_its_job() {
    let fake = fake()
        .processing_time(Duration::from_millis(200))
        .start_blocking()
        .unwrap();
    let jobs: Vec<_> = (0..20).map(|_| insert_job(&fake).1).collect();
    let run =
        client(fake.base_url()).wait_many(jobs.clone(), fast_policy(), Budget::new(1000.0, 50));
    let mut done: HashMap<JobKey, usize> = HashMap::new();
    let mut progress = 0;
    for (key, event) in run {
        let job = &jobs[usize::try_from(key.index()).unwrap()];
        match event {
            Event::Progress(p) => {
                assert_eq!(p.job.as_ref(), Some(job), "{key:?}");
                progress += 1;
            }
            Event::Done(outcome) => {
                assert!(outcome.is_completed(), "{job}: {outcome:?}");
                *done.entry(key).or_default() += 1;
            }
            other => panic!("a wait has no {other:?}"),
        }
    }
    assert_eq!(done.len(), 20);
    assert!(done.values().all(|&n| n == 1));
    assert!(progress >= 20, "each job was seen running: {progress}");
}
