//! The whole import on tokio against the fake: create, wait, pages, streams, many batches.

mod common;

use std::time::Duration;

use common::*;
use fullstory_batch_fake::{Fault, OrgLimits, Route, Script};
use fullstory_batch_hyper::{
    ClientOptions, EventRequest, IdempotencyKey, ImportEvent, ImportOutcome, JobId, JobState,
    PageKind, ValidationError,
};
use futures_util::StreamExt;

fn events(n: usize, bad: usize) -> Vec<EventRequest> {
    (0..n)
        .map(|i| EventRequest {
            name: if i % 1000 < bad {
                format!("bad-{i}")
            } else {
                format!("event-{i}")
            },
            ..EventRequest::default()
        })
        .collect()
}

fn final_state(outcome: &ImportOutcome) -> JobState {
    match outcome {
        ImportOutcome::Finished(status) => status.job.status.clone(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn partial_failure_across_pages() {
    let fake = fake_builder()
        .processing_time(Duration::from_millis(100))
        .page_size(6)
        .start()
        .await
        .unwrap();
    let client = client(fake.base_url(), ClientOptions::default());
    let report = client
        .import(&events(40, 5), None, fast_policy())
        .await
        .unwrap();
    assert_eq!(final_state(&report.outcome), JobState::Failed);
    assert_eq!((report.imported.len(), report.failed.len()), (35, 5));
    assert_eq!(
        fake.requests()
            .iter()
            .filter(|r| r.path.ends_with("/imports"))
            .count(),
        6
    );
    assert_eq!(
        fake.requests()
            .iter()
            .filter(|r| r.path.ends_with("/errors"))
            .count(),
        1
    );
}

#[tokio::test]
async fn a_lost_create_answer_makes_one_job() {
    let fake = fake_builder()
        .processing_time(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    fake.script(
        Script::on(Route::Create)
            .nth(1)
            .respond(Fault::AcceptThenFail),
    );
    let client = client(fake.base_url(), ClientOptions::default());
    let key = IdempotencyKey::new("hyper-import-1").unwrap();
    let report = client
        .import(&events(3, 0), Some(key), fast_policy())
        .await
        .unwrap();
    assert_eq!(final_state(&report.outcome), JobState::Completed);
    assert_eq!(fake.jobs_created(), 1);
}

#[tokio::test]
async fn the_stream_yields_created_first_and_done_last() {
    let fake = fake_builder()
        .processing_time(Duration::from_millis(100))
        .page_size(2)
        .start()
        .await
        .unwrap();
    let client = client(fake.base_url(), ClientOptions::default());
    let events: Vec<ImportEvent<EventRequest>> = client
        .importer(&events(5, 1), None, fast_policy())
        .unwrap()
        .into_stream()
        .collect()
        .await;
    assert!(
        matches!(events.first(), Some(ImportEvent::Created(_))),
        "{:?}",
        events.first()
    );
    assert!(matches!(
        events.last(),
        Some(ImportEvent::Done(ImportOutcome::Finished(_)))
    ));
    assert!(events.iter().any(|e| matches!(e, ImportEvent::Progress(_))));
    let pages = events
        .iter()
        .filter(|e| matches!(e, ImportEvent::Imported(_)))
        .count();
    assert_eq!(pages, 2, "4 items in pages of 2");
}

#[tokio::test]
async fn error_pages_of_an_existing_job() {
    let fake = fake_builder()
        .processing_time(Duration::ZERO)
        .start()
        .await
        .unwrap();
    let items = (0..6)
        .map(|i| serde_json::json!({"name": if i < 3 { "bad" } else { "ok" }}))
        .collect();
    let id = fake.insert_job(fullstory_batch_fake::Resource::Events, items);
    let client = client(fake.base_url(), ClientOptions::default());
    let mut pages =
        client.pages::<EventRequest>(JobId::new(id).unwrap(), PageKind::Errors, fast_policy());
    let mut failed = 0;
    while let Some(event) = pages.next().await {
        match event {
            ImportEvent::Failed(items) => failed += items.len(),
            ImportEvent::Imported(_) => panic!("only error pages were asked for"),
            _ => {}
        }
    }
    assert_eq!(failed, 3);
}

#[tokio::test]
async fn validation_sends_nothing() {
    let fake = fake_builder().start().await.unwrap();
    let client = client(fake.base_url(), ClientOptions::default());
    let err = client
        .import_all(Vec::<EventRequest>::new(), 50_000, 2, fast_policy())
        .await
        .unwrap_err();
    assert_eq!(err, ValidationError::Empty);
    assert!(fake.requests().is_empty());
}

/// 120,000 items make three jobs of at most 50,000, never more than two in progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_and_twenty_thousand_items_make_three_jobs_two_at_a_time() {
    let fake = fake_builder()
        .processing_time(Duration::from_millis(300))
        .page_size(10_000)
        .org_limits(OrgLimits::unlimited())
        .start()
        .await
        .unwrap();
    let client = client(fake.base_url(), ClientOptions::default());
    let policy = fullstory_batch_hyper::Policy {
        timeout: Some(Duration::from_secs(120)),
        ..fast_policy()
    };
    let reports = client
        .import_all(events(120_000, 2), 50_000, 2, policy)
        .await
        .unwrap();
    assert_eq!(reports.len(), 3);
    let counts: Vec<(usize, usize)> = reports
        .iter()
        .map(|r| (r.imported.len(), r.failed.len()))
        .collect();
    assert_eq!(counts, [(49_900, 100), (49_900, 100), (19_960, 40)]);
    let mut jobs = fake.jobs();
    jobs.sort_by_key(|j| j.created);
    assert_eq!(
        jobs.iter().map(|j| j.items).collect::<Vec<_>>(),
        [50_000, 50_000, 20_000]
    );
    // The third job was created only after one of the first two had finished.
    assert!(jobs[2].created >= jobs[0].finishes.min(jobs[1].finishes));
}
