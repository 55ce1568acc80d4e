//! The async import API on tokio: the importer's stream, pages and resume of an existing
//! job, and `import_all` across batches. (`Client::import` end to end is in the
//! conformance suite.)

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use fullstory_batch_fake::OrgLimits;
use fullstory_batch_hyper::{
    ClientOptions, Event, EventRequest, JobState, Outcome, PageKind, Stage, StopReason,
    ValidationError,
};
use futures_util::StreamExt;

#[tokio::test]
async fn the_stream_yields_created_first_and_done_last() {
    // Longer than the first poll's wait after the create (`min_interval`), so the job is
    // seen running once.
    let fake = fake()
        .processing_time(Duration::from_millis(300))
        .page_size(2)
        .start()
        .await
        .unwrap();
    let client = client(fake.base_url(), ClientOptions::default());
    let events: Vec<Event<EventRequest>> = client
        .importer(&events(5, 1), None, fast_policy())
        .unwrap()
        .into_stream()
        .map(|(_, event)| event)
        .collect()
        .await;
    assert!(
        matches!(events.first(), Some(Event::Created(_))),
        "{:?}",
        events.first()
    );
    assert!(matches!(
        events.last(),
        Some(Event::Done(Outcome::Finished(_)))
    ));
    assert!(events.iter().any(|e| matches!(e, Event::Progress(_))));
    let pages = events
        .iter()
        .filter(|e| matches!(e, Event::Imported(_)))
        .count();
    assert_eq!(pages, 2, "4 items in pages of 2");
}

#[tokio::test]
async fn error_pages_of_an_existing_job() {
    let fake = fake()
        .processing_time(Duration::ZERO)
        .start()
        .await
        .unwrap();
    let items = (0..6)
        .map(|i| serde_json::json!({"name": if i < 3 { "bad" } else { "ok" }}))
        .collect();
    let id = fake.insert_job(fullstory_batch_fake::Resource::Events, items);
    let client = client(fake.base_url(), ClientOptions::default());
    let mut pages = client.pages::<EventRequest>(events_job(&id), PageKind::Errors, fast_policy());
    let mut failed = 0;
    while let Some((_, event)) = pages.next().await {
        match event {
            Event::Failed(items) => failed += items.len(),
            Event::Imported(_) => panic!("only error pages were asked for"),
            _ => {}
        }
    }
    assert_eq!(failed, 3);
}

#[tokio::test]
async fn resume_import_reads_every_page_of_an_existing_job() {
    let fake = fake()
        .processing_time(Duration::from_millis(100))
        .page_size(3)
        .start()
        .await
        .unwrap();
    let items = (0..9)
        .map(|i| serde_json::json!({"name": if i < 2 { "bad" } else { "ok" }}))
        .collect();
    let id = fake.insert_job(fullstory_batch_fake::Resource::Events, items);
    let client = client(fake.base_url(), ClientOptions::default());
    let report = client
        .resume_import::<EventRequest>(events_job(&id), fast_policy())
        .report()
        .await;
    assert_eq!(
        report.outcome.status().map(|s| s.job.status.clone()),
        Some(JobState::Failed)
    );
    assert_eq!((report.imported.len(), report.failed.len()), (7, 2));
    assert!(
        fake.requests().iter().all(|r| r.method == "GET"),
        "no create"
    );

    let report = client
        .resume_import::<EventRequest>(events_job("nope"), fast_policy())
        .report()
        .await;
    let Outcome::Stopped(stop) = &report.outcome else {
        panic!("{:?}", report.outcome)
    };
    assert_eq!((stop.stage, stop.reason.kind()), (Stage::Wait, "not_found"));
}

/// 12,000 items in batches of 5,000 make three jobs, never more than two in progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_all_makes_three_jobs_two_at_a_time() {
    let fake = fake()
        .processing_time(Duration::from_millis(300))
        .page_size(1_000)
        .org_limits(OrgLimits::unlimited())
        .start()
        .await
        .unwrap();
    let client = client(fake.base_url(), ClientOptions::default());
    let policy = fast_policy_with_timeout(Duration::from_secs(60));
    let mut run = client.import_all(
        futures_util::stream::iter(events(12_000, 2)),
        5_000,
        2,
        policy,
    );
    let mut counts: BTreeMap<u64, (usize, usize)> = BTreeMap::new();
    while let Some((key, event)) = run.next().await {
        let entry = counts.entry(key.index()).or_default();
        match event {
            Event::Imported(items) => entry.0 += items.len(),
            Event::Failed(items) => entry.1 += items.len(),
            Event::Done(outcome) => {
                assert!(outcome.status().is_some(), "{key:?}: {outcome:?}");
            }
            _ => {}
        }
    }
    let counts: Vec<_> = counts.into_values().collect();
    assert_eq!(counts, [(4_990, 10), (4_990, 10), (1_996, 4)]);
    let mut jobs = fake.jobs();
    jobs.sort_by_key(|j| j.created);
    assert_eq!(
        jobs.iter().map(|j| j.items).collect::<Vec<_>>(),
        [5_000, 5_000, 2_000]
    );
    // The third job was created only after one of the first two had finished.
    assert!(jobs[2].created >= jobs[0].finishes.min(jobs[1].finishes));
}

#[tokio::test]
async fn import_all_stops_the_input_at_an_invalid_item() {
    let fake = fake()
        .processing_time(Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    let mut items = events(25, 0);
    items[12].name.clear();
    let client = client(fake.base_url(), ClientOptions::default());
    let outcomes: BTreeMap<u64, Outcome> = client
        .import_all(futures_util::stream::iter(items), 10, 2, fast_policy())
        .outcomes()
        .await
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

#[tokio::test]
async fn import_all_of_nothing_sends_nothing() {
    let fake = fake().start().await.unwrap();
    let client = client(fake.base_url(), ClientOptions::default());
    let mut run = client.import_all(
        futures_util::stream::iter(Vec::<EventRequest>::new()),
        10,
        2,
        fast_policy(),
    );
    assert!(run.next().await.is_none());
    assert!(fake.requests().is_empty());
}

/// An import journaled to a [`FileJournal`], stopped mid-way by dropping its run (the
/// async form of a kill: nothing after the drop is sent or written), then resumed from
/// the same file by a second `import_from` over the same input: the fake holds each item
/// exactly once, and the batches finished before the stop are not sent again.
#[tokio::test]
async fn import_from_with_a_journal_resumes_after_a_drop_and_imports_each_item_once() {
    use fullstory_batch_hyper::FileJournal;
    use fullstory_batch_hyper::fullstory_batch::Resource;
    use fullstory_batch_hyper::fullstory_batch::journal::{Fingerprint, Header};

    const ITEMS: usize = 6_000;
    let fake = fake()
        .processing_time(Duration::from_millis(200))
        .org_limits(OrgLimits::unlimited())
        .start()
        .await
        .unwrap();
    let client = client(fake.base_url(), ClientOptions::default());
    let dir = std::env::temp_dir().join(format!("fsb-hyper-journal-{}", std::process::id()));
    let path = dir.join("import.journal");
    let _ = std::fs::remove_dir_all(&dir);
    let header = Header::new(Resource::Events, 1_000, Fingerprint::default());
    let input = || futures_util::stream::iter(events(ITEMS, 1).into_iter().map(Ok));
    let policy = fast_policy_with_timeout(Duration::from_secs(60));

    // First run: stopped once two batches have finished (others are created or planned).
    let (ledger, journal) = FileJournal::open(&path, &header).unwrap();
    assert!(!ledger.resumed());
    let mut run = client
        .import_from(input(), 1_000, 2, policy.clone())
        .with_journal(ledger, journal);
    let mut done = 0;
    while let Some((_, event)) = run.next().await {
        if let Event::Done(outcome) = event {
            assert!(outcome.status().is_some(), "{outcome:?}");
            done += 1;
            if done == 2 {
                break;
            }
        }
    }
    // The drop still writes the `Finished` of the last `Done` handed out (records go
    // out at the next step, or at the drop), and nothing else.
    drop(run);
    let jobs_before = fake.jobs_created();
    assert!(fake.stats().items < ITEMS, "stopped before the end");

    // Second run: the same file, the same input.
    let (ledger, journal) = FileJournal::open(&path, &header).unwrap();
    assert!(ledger.resumed());
    let finished_before = ledger.batches().filter(|b| b.finished.is_some()).count();
    assert!(finished_before >= 2, "{finished_before} batches finished");
    let mut run = client
        .import_from(input(), 1_000, 2, policy)
        .with_journal(ledger, journal);
    let mut created_again = 0;
    while let Some((_, event)) = run.next().await {
        match event {
            Event::Created(_) => created_again += 1,
            Event::Done(outcome) => assert!(outcome.status().is_some(), "{outcome:?}"),
            _ => {}
        }
    }
    assert!(run.journal_error().is_none(), "{:?}", run.journal_error());
    assert!(run.input_done());
    let (imported, failed) = run.ledger().unwrap().totals();
    assert_eq!((imported, failed), (5_994, 6));
    drop(run);

    assert_eq!(fake.stats().items, ITEMS, "each item once");
    assert_eq!(fake.jobs_created(), 6, "one job a batch, none twice");
    assert!(created_again <= 6 - finished_before);
    assert!(jobs_before <= 6);
    let _ = std::fs::remove_dir_all(&dir);
}
