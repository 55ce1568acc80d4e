//! The whole import against the fake: create, wait, every page, through faults.

mod common;

use std::time::Duration;

use common::*;
use fullstory_batch_fake::{Fault, Route, Script};
use fullstory_batch_ureq::{
    EventRequest, IdempotencyKey, ImportEvent, ImportOutcome, JobId, JobState, PageKind, Stage,
    UserRequest, ValidationError,
};

fn events(n: usize, bad: usize) -> Vec<EventRequest> {
    (0..n)
        .map(|i| EventRequest {
            name: if i < bad {
                format!("bad-{i}")
            } else {
                format!("event-{i}")
            },
            ..EventRequest::default()
        })
        .collect()
}

fn finished_status(outcome: &ImportOutcome) -> JobState {
    match outcome {
        ImportOutcome::Finished(status) => status.job.status.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn events_with_a_partial_failure_across_many_pages() {
    let fake = fake()
        .processing_time(Duration::from_millis(200))
        .page_size(7)
        .start_blocking()
        .unwrap();
    let client = client(fake.base_url());
    let report = client.import(&events(50, 4), None, fast_policy()).unwrap();
    assert_eq!(finished_status(&report.outcome), JobState::Failed);
    assert_eq!((report.imported.len(), report.failed.len()), (46, 4));
    assert!(
        report
            .failed
            .iter()
            .all(|f| f.item.as_ref().is_some_and(|e| e.name.starts_with("bad-")))
    );
    assert!(
        report
            .failed
            .iter()
            .all(|f| !f.code.is_empty() && !f.message.is_empty())
    );
    let pages = fake
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/imports"))
        .count();
    assert_eq!(pages, 7, "46 items in pages of 7");
    assert_eq!(fake.jobs_created(), 1);
}

#[test]
fn users_completed_reads_no_error_pages() {
    let fake = fake()
        .processing_time(Duration::from_millis(100))
        .start_blocking()
        .unwrap();
    let client = client(fake.base_url());
    let users: Vec<UserRequest> = (0..5)
        .map(|i| UserRequest {
            uid: Some(format!("u{i}")),
            ..UserRequest::default()
        })
        .collect();
    let report = client.import(&users, None, fast_policy()).unwrap();
    assert_eq!(finished_status(&report.outcome), JobState::Completed);
    assert_eq!(report.imported.len(), 5);
    assert_eq!(report.imported[0].uid.as_deref(), Some("u0"));
    assert!(fake.requests().iter().all(|r| !r.path.ends_with("/errors")));
}

#[test]
fn a_create_accepted_then_lost_is_retried_without_a_second_job() {
    let fake = fake()
        .processing_time(Duration::from_millis(100))
        .start_blocking()
        .unwrap();
    fake.script(
        Script::on(Route::Create)
            .nth(1)
            .respond(Fault::AcceptThenFail),
    );
    let client = client(fake.base_url());
    let key = IdempotencyKey::new("import-42").unwrap();
    let report = client
        .import(&events(3, 0), Some(key), fast_policy())
        .unwrap();
    assert_eq!(finished_status(&report.outcome), JobState::Completed);
    assert_eq!(fake.jobs_created(), 1, "exactly one job exists");
    let creates: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(creates.len(), 2);
    assert!(
        creates
            .iter()
            .all(|r| r.header("idempotency-key") == Some("import-42"))
    );
}

#[test]
fn pages_of_a_job_read_while_it_still_processes_wait_first() {
    let fake = fake()
        .processing_time(Duration::from_millis(300))
        .start_blocking()
        .unwrap();
    let id = fake.insert_job(
        fullstory_batch_fake::Resource::Events,
        (0..9)
            .map(|i| serde_json::json!({"name": if i < 2 { "bad" } else { "ok" }}))
            .collect(),
    );
    let client = client(fake.base_url());
    let failed: Vec<_> = client
        .pages::<EventRequest>(JobId::new(id).unwrap(), PageKind::Errors, fast_policy())
        .filter_map(|e| match e {
            ImportEvent::Failed(items) => Some(items),
            ImportEvent::Imported(_) => panic!("only error pages were asked for"),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(failed.len(), 2);
}

#[test]
fn a_failed_page_request_is_retried() {
    let fake = fake()
        .processing_time(Duration::from_millis(50))
        .start_blocking()
        .unwrap();
    fake.script(Script::on(Route::Imports).nth(1).respond(Fault::Http503 {
        retry_after: None,
        html: true,
    }));
    let client = client(fake.base_url());
    let report = client.import(&events(4, 0), None, fast_policy()).unwrap();
    assert_eq!(report.imported.len(), 4);
}

#[test]
fn validation_errors_send_nothing() {
    let fake = fake().start_blocking().unwrap();
    let client = client(fake.base_url());
    let mut items = events(3, 0);
    items[1].name.clear();
    let err = client.import(&items, None, fast_policy()).unwrap_err();
    assert_eq!(
        err,
        ValidationError::Item {
            index: 1,
            field: "name",
            problem: "is required"
        }
    );
    assert!(fake.requests().is_empty());
}

#[test]
fn a_dead_job_id_stops_with_not_found() {
    let fake = fake().start_blocking().unwrap();
    let client = client(fake.base_url());
    let report = client
        .resume_import::<EventRequest>(JobId::new("nope").unwrap(), fast_policy())
        .report();
    assert!(
        matches!(
            report.outcome,
            ImportOutcome::Stopped {
                stage: Stage::Wait,
                ..
            }
        ),
        "{:?}",
        report.outcome
    );
}

#[test]
fn import_all_splits_into_batches_with_two_in_progress() {
    let fake = fake()
        .processing_time(Duration::from_millis(200))
        .page_size(4)
        .start_blocking()
        .unwrap();
    let client = client(fake.base_url());
    let run = client
        .import_all(events(25, 0), 10, 2, fast_policy())
        .unwrap();
    let (mut active, mut most, mut imported, mut done) = (0usize, 0usize, 0usize, Vec::new());
    for (batch, event) in run {
        match event {
            ImportEvent::Created(_) => {
                active += 1;
                most = most.max(active);
            }
            ImportEvent::Imported(items) => imported += items.len(),
            ImportEvent::Done(outcome) => {
                assert_eq!(finished_status(&outcome), JobState::Completed);
                active -= 1;
                done.push(batch);
            }
            _ => {}
        }
    }
    done.sort_unstable();
    assert_eq!(done, [0, 1, 2]);
    assert_eq!((imported, most), (25, 2));
    let mut sizes: Vec<usize> = fake.jobs().iter().map(|j| j.items).collect();
    sizes.sort_unstable();
    assert_eq!(sizes, [5, 10, 10]);
}
