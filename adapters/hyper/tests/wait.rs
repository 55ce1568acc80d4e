//! The async wait API on tokio: the event stream, the progress channel, cancellation by
//! drop, and a saved set picked up again. (Transport faults, deadlines, `Retry-After` and
//! the wait's outcomes are in the conformance suite, `tests/conformance.rs`.)

mod common;

use std::time::Duration;

use common::*;
use fullstory_batch_fake::{Fault, Route, Script};
use fullstory_batch_hyper::{ClientOptions, Event, JobSet, JobState, Progress};
use futures_util::StreamExt;

/// The fake's clock moves only once the job was seen running, so the first answer is
/// `PROCESSING` however slow the machine.
#[tokio::test]
async fn the_stream_yields_a_progress_per_answer_then_done() {
    let fake = fake().manual_clock().start().await.unwrap();
    let (id, job) = insert_job(&fake);
    let client = client(fake.base_url(), ClientOptions::new());
    let events: Vec<Event> = client
        .watch(job.clone(), fast_policy())
        .into_stream()
        .map(|(key, event)| {
            assert_eq!(key.index(), 0);
            if matches!(event, Event::Progress(_)) {
                fake.advance(Duration::from_secs(5));
            }
            event
        })
        .collect()
        .await;
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
        assert_eq!(
            p.last_status.as_ref().map(|s| s.job.status.clone()),
            Some(JobState::Processing)
        );
    }
    assert_eq!(status_requests(&fake, &id).len(), progress.len() + 1);
}

/// The job runs until the failed poll was published (the fake's clock stands still till
/// then), so both a running status and the error are seen.
#[tokio::test]
async fn progress_is_published() {
    let fake = fake().manual_clock().start().await.unwrap();
    let (id, job) = insert_job(&fake);
    fake.script(
        Script::on(Route::Status)
            .for_job(id.as_str())
            .nth(2)
            .respond(Fault::Http500 {
                retry_after: None,
                html: false,
            }),
    );
    let client = client(fake.base_url(), ClientOptions::new());
    let (tx, mut rx) = tokio::sync::watch::channel(Progress::default());
    let watcher = async move {
        let mut seen = Vec::new();
        while rx.changed().await.is_ok() {
            let progress = rx.borrow_and_update().clone();
            if progress.last_error.is_some() {
                fake.advance(Duration::from_secs(5));
            }
            seen.push(progress);
        }
        seen
    };
    let (outcome, seen) = tokio::join!(client.wait_with_progress(&job, fast_policy(), tx), watcher);
    assert!(outcome.is_completed(), "{outcome:?}");
    assert!(!seen.is_empty());
    assert!(seen.windows(2).all(|w| w[0].attempts <= w[1].attempts));
    assert!(seen.iter().any(|p| {
        p.last_status
            .as_ref()
            .is_some_and(|s| s.job.status == JobState::Processing)
    }));
    assert!(
        seen.iter()
            .any(|p| p.last_error.is_some() && p.errors_in_row == 1)
    );
    assert!(seen.iter().any(|p| p.next_request.is_some()));
    assert!(seen.iter().all(|p| p.deadline.is_some()));
    assert_no_key_in(&format!("{seen:?}"));
}

#[tokio::test]
async fn dropping_the_future_stops_polling() {
    let fake = fake().manual_clock().start().await.unwrap();
    let (_, job) = insert_job(&fake);
    let client = client(fake.base_url(), ClientOptions::new());
    let mut waiting = Box::pin(client.wait(&job, fast_policy()));
    // Polls at once, then every 100 ms: driven until two have reached the fake.
    while fake.requests().len() < 2 {
        tokio::select! {
            outcome = &mut waiting => panic!("a job that never ends ended: {outcome:?}"),
            () = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
    }
    drop(waiting);
    // One request sent before the drop may still be on its way to the fake's log.
    let before = fake.requests().len() + 1;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = fake.requests().len();
    assert!(after <= before, "requests went on after the drop: {after}");
}

#[tokio::test]
async fn a_saved_set_resumes_where_it_stopped() {
    let fake = fake().manual_clock().start().await.unwrap();
    let (id, job) = insert_job(&fake);
    let client = client(fake.base_url(), ClientOptions::new());
    let mut run = client.watch(job, fast_policy());
    assert!(matches!(run.next().await, Some((_, Event::Progress(_)))));
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
    let outcome = client.run(set).outcome().await;
    assert!(outcome.is_completed(), "{outcome:?}");
    assert!(status_requests(&fake, &id).len() >= 2);
}
