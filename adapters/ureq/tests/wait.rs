//! `Client::watch` and `Client::run`: the blocking iterator of one wait's events, and a
//! saved set picked up again. (Transport faults, deadlines, `Retry-After` and the wait's
//! outcomes are in the conformance suite, `tests/conformance.rs`.)

mod common;

use std::time::Duration;

use common::*;
use fullstory_batch_ureq::{Event, JobSet, JobState};

/// The fake's clock moves only once the job was seen running, so the first answer is
/// `PROCESSING` however slow the machine.
#[test]
fn watch_yields_a_progress_per_answer_then_done() {
    let fake = fake().manual_clock().start_blocking().unwrap();
    let (id, job) = insert_job(&fake);
    let events: Vec<Event> = client(fake.base_url())
        .watch(job.clone(), fast_policy())
        .map(|(key, event)| {
            assert_eq!(key.index(), 0);
            if matches!(event, Event::Progress(_)) {
                fake.advance(Duration::from_secs(5));
            }
            event
        })
        .collect();
    let (last, progress) = events.split_last().unwrap();
    assert!(
        matches!(last, Event::Done(o) if o.is_completed()),
        "{last:?}"
    );
    assert!(!progress.is_empty(), "the job was running at first");
    for (n, event) in progress.iter().enumerate() {
        let Event::Progress(p) = event else {
            panic!("{event:?}")
        };
        assert_eq!(p.attempts as usize, n + 1);
        assert_eq!(p.job.as_ref(), Some(&job));
        let status = p.last_status.as_ref().unwrap();
        assert_eq!(status.job.status, JobState::Processing);
        assert!(p.last_error.is_none());
        assert!(p.next_request.is_some());
        assert!(p.deadline.is_some());
    }
    assert_eq!(status_requests(&fake, &id).len(), progress.len() + 1);
}

#[test]
fn a_finished_run_is_fused() {
    let fake = fake()
        .processing_time(Duration::ZERO)
        .start_blocking()
        .unwrap();
    let (_, job) = insert_job(&fake);
    let mut run = client(fake.base_url()).watch(job, fast_policy());
    assert!(matches!(run.next(), Some((_, Event::Done(o))) if o.is_completed()));
    assert!(run.next().is_none());
    assert!(run.next().is_none());
    assert!(run.set().is_empty());
    assert_eq!(fake.requests().len(), 1);
}

#[test]
fn a_saved_set_resumes_where_it_stopped() {
    let fake = fake().manual_clock().start_blocking().unwrap();
    let (id, job) = insert_job(&fake);
    let client = client(fake.base_url());
    let mut run = client.watch(job, fast_policy());
    assert!(matches!(run.next(), Some((_, Event::Progress(_)))));
    // Saved as a process would, through serde; the key is not in it.
    let saved = serde_json::to_string(&run.set().save()).unwrap();
    assert_no_key_in(&saved);
    drop(run);
    fake.advance(Duration::from_secs(5));

    let set: JobSet = JobSet::restore(
        client.config().clone(),
        serde_json::from_str(&saved).unwrap(),
    )
    .expect("a saved set");
    let outcome = client.run(set, 1).outcome();
    assert!(outcome.is_completed(), "{outcome:?}");
    assert!(status_requests(&fake, &id).len() >= 2);
}
