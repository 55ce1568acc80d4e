//! The blocking import API against the fake: the importer's events, pages and resume of
//! an existing job, and `import_all` across batches. (`Client::import` end to end is in
//! the conformance suite.)

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use fullstory_batch_ureq::{
    Event, EventRequest, JobState, Outcome, PageKind, Stage, StopReason, ValidationError,
};

#[test]
fn the_importer_yields_created_first_and_done_last() {
    // Longer than the first poll's wait after the create (`min_interval`), so the job is
    // seen running once.
    let fake = fake()
        .processing_time(Duration::from_millis(300))
        .page_size(2)
        .start_blocking()
        .unwrap();
    let events: Vec<Event<EventRequest>> = client(fake.base_url())
        .importer(&events(5, 1), None, fast_policy())
        .unwrap()
        .map(|(_, event)| event)
        .collect();
    let Some(Event::Created(job)) = events.first() else {
        panic!("{:?}", events.first())
    };
    assert_eq!(fake.job(job.id.as_str()).map(|j| j.items), Some(5));
    assert!(matches!(
        events.last(),
        Some(Event::Done(Outcome::Finished(_)))
    ));
    assert!(events.iter().any(|e| matches!(e, Event::Progress(_))));
    let imported = events
        .iter()
        .filter(|e| matches!(e, Event::Imported(_)))
        .count();
    let failed = events
        .iter()
        .filter(|e| matches!(e, Event::Failed(_)))
        .count();
    assert_eq!(
        (imported, failed),
        (2, 1),
        "4 items in pages of 2, then 1 failure"
    );
}

#[test]
fn pages_of_a_job_still_processing_wait_first() {
    // The job runs until it was seen running: the fake's clock moves only then.
    let fake = fake().manual_clock().start_blocking().unwrap();
    let id = fake.insert_job(
        fullstory_batch_fake::Resource::Events,
        (0..9)
            .map(|i| serde_json::json!({"name": if i < 2 { "bad" } else { "ok" }}))
            .collect(),
    );
    let client = client(fake.base_url());
    let failed: Vec<_> = client
        .pages::<EventRequest>(events_job(&id), PageKind::Errors, fast_policy())
        .inspect(|(_, e)| {
            if matches!(e, Event::Progress(_)) {
                fake.advance(Duration::from_secs(5));
            }
        })
        .filter_map(|(_, e)| match e {
            Event::Failed(items) => Some(items),
            Event::Imported(_) => panic!("only error pages were asked for"),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(failed.len(), 2);
    assert!(status_requests(&fake, &id).len() >= 2, "it waited first");
}

#[test]
fn resume_import_reads_every_page_of_an_existing_job() {
    let fake = fake()
        .processing_time(Duration::from_millis(100))
        .page_size(3)
        .start_blocking()
        .unwrap();
    let id = fake.insert_job(
        fullstory_batch_fake::Resource::Events,
        (0..9)
            .map(|i| serde_json::json!({"name": if i < 2 { "bad" } else { "ok" }}))
            .collect(),
    );
    let report = client(fake.base_url())
        .resume_import::<EventRequest>(events_job(&id), fast_policy())
        .report();
    assert_eq!(
        report.outcome.status().map(|s| s.job.status.clone()),
        Some(JobState::Failed)
    );
    assert_eq!((report.imported.len(), report.failed.len()), (7, 2));
    assert_eq!(report.job, Some(events_job(&id)));
    assert!(
        fake.requests().iter().all(|r| r.method == "GET"),
        "no create"
    );
}

#[test]
fn resume_import_of_a_dead_job_stops_waiting() {
    let fake = fake().start_blocking().unwrap();
    let report = client(fake.base_url())
        .resume_import::<EventRequest>(events_job("nope"), fast_policy())
        .report();
    let Outcome::Stopped(stop) = &report.outcome else {
        panic!("{:?}", report.outcome)
    };
    assert_eq!(stop.stage, Stage::Wait);
    assert_eq!(stop.reason.kind(), "not_found");
}

#[test]
fn import_all_splits_into_batches_with_two_in_progress() {
    let fake = fake()
        .processing_time(Duration::from_millis(200))
        .page_size(4)
        .start_blocking()
        .unwrap();
    let run = client(fake.base_url()).import_all(events(25, 0), 10, 2, fast_policy());
    let (mut active, mut most, mut imported, mut done) = (0usize, 0usize, 0usize, Vec::new());
    for (batch, event) in run {
        match event {
            Event::Created(_) => {
                active += 1;
                most = most.max(active);
            }
            Event::Imported(items) => imported += items.len(),
            Event::Done(outcome) => {
                assert!(outcome.is_completed(), "{outcome:?}");
                active -= 1;
                done.push(batch.index());
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

#[test]
fn import_all_stops_the_input_at_an_invalid_item() {
    let fake = fake()
        .processing_time(Duration::from_millis(100))
        .start_blocking()
        .unwrap();
    let mut items = events(25, 0);
    items[12].name.clear();
    let outcomes: BTreeMap<u64, Outcome> = client(fake.base_url())
        .import_all(items, 10, 2, fast_policy())
        .outcomes()
        .into_iter()
        .map(|(key, outcome)| (key.index(), outcome))
        .collect();
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    assert!(outcomes[&0].is_completed(), "{:?}", outcomes[&0]);
    let Outcome::Stopped(stop) = &outcomes[&1] else {
        panic!("{:?}", outcomes[&1])
    };
    assert_eq!((stop.stage, stop.job.as_ref()), (Stage::Create, None));
    assert!(
        matches!(
            &stop.reason,
            StopReason::InvalidInput(ValidationError::Item { index: 12, .. })
        ),
        "{stop:?}"
    );
    assert_eq!(
        fake.jobs_created(),
        1,
        "nothing after the bad item was sent"
    );
}

#[test]
fn import_all_of_nothing_sends_nothing() {
    let fake = fake().start_blocking().unwrap();
    let mut run =
        client(fake.base_url()).import_all(Vec::<EventRequest>::new(), 10, 2, fast_policy());
    assert!(run.next().is_none());
    assert!(fake.requests().is_empty());
}
