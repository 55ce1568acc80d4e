//! `Client::wait_many`: many jobs on one task, under a budget and a connection cap.

mod common;

use std::time::{Duration, Instant};

use common::*;
use fullstory_batch_fake::{OrgLimits, Resource as FakeResource, Route};
use fullstory_batch_hyper::{ApiError, Budget, ClientOptions, Error, Outcome, Policy};

/// Every window of the log holds at most `burst + rate × width` requests, plus `slack` for
/// requests that left within budget but queued behind busy connections.
fn assert_budget_held(instants: &[Instant], budget: Budget, slack: f64) {
    let mut times = instants.to_vec();
    times.sort();
    let allowance =
        |width: Duration| f64::from(budget.burst) + budget.rate * width.as_secs_f64() + slack;
    let mut worst = 0.0f64;
    for i in 0..times.len() {
        for j in i..times.len() {
            let count = (j - i + 1) as f64;
            let width = times[j] - times[i];
            worst = worst.max(count - allowance(width));
            assert!(
                count <= allowance(width),
                "{count} requests within {width:?}: over budget {budget:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_jobs_under_a_budget_and_a_connection_cap() {
    let fake = fake_builder()
        .processing_time(Duration::from_millis(300))
        .org_limits(OrgLimits::unlimited())
        .start()
        .await
        .unwrap();
    let ids: Vec<String> = (0..1000)
        .map(|_| fake.insert_job(FakeResource::Events, one_event()))
        .collect();
    let proxy = CountingProxy::start(fake.addr()).await;
    let cap = 16;
    let client = client(
        &proxy.base_url(),
        ClientOptions::new().with_max_connections(cap),
    );
    let policy = Policy {
        initial_interval: Duration::from_millis(100),
        max_interval: Duration::from_millis(400),
        error_backoff: Duration::from_millis(50),
        ..Policy::default()
    }
    .with_timeout(Duration::from_secs(30));
    let budget = Budget::new(2000.0, 50);

    let started = Instant::now();
    let jobs: Vec<_> = ids.iter().map(|id| events_job(id)).collect();
    let results = client.wait_many(jobs.clone(), policy, budget).await;
    let took = started.elapsed();

    assert_eq!(results.len(), 1000);
    for ((job, outcome), expected) in results.iter().zip(&jobs) {
        assert_eq!(job, expected, "results keep the order given");
        assert!(
            matches!(outcome, Outcome::Completed(_)),
            "{job}: {outcome:?}"
        );
    }
    let log = fake.requests();
    let polls: Vec<Instant> = log
        .iter()
        .filter(|r| r.route == Some(Route::Status))
        .map(|r| r.instant)
        .collect();
    assert!(polls.len() > 1000, "{} polls", polls.len());
    assert_budget_held(&polls, budget, cap as f64);
    assert!(
        proxy.peak() <= cap,
        "{} connections open at once, cap {cap}",
        proxy.peak()
    );
    eprintln!(
        "1000 jobs: {} polls in {took:?}, {} connections opened, at most {} at once",
        polls.len(),
        proxy.total(),
        proxy.peak()
    );
}

#[tokio::test]
async fn mixed_outcomes_in_the_order_given() {
    let fake = fake_builder().manual_clock().start().await.unwrap();
    let good = fake.insert_job(FakeResource::Events, one_event());
    let bad = fake.insert_job(
        FakeResource::Events,
        vec![serde_json::json!({"name": "bad"})],
    );
    let running = fake.insert_job(FakeResource::Events, one_event());
    fake.advance(Duration::from_secs(5));
    let late = fake.insert_job(FakeResource::Events, one_event());
    let _ = running;
    let client = client(fake.base_url(), ClientOptions::new());
    let jobs = vec![
        events_job(&good),
        events_job("missing"),
        events_job(&bad),
        events_job(&late),
    ];
    let policy = fast_policy().with_timeout(Duration::from_millis(300));
    let results = client
        .wait_many(jobs.clone(), policy, Budget::new(1000.0, 10))
        .await;
    let got: Vec<_> = results.iter().map(|(job, _)| job.clone()).collect();
    assert_eq!(got, jobs);
    assert!(
        matches!(results[0].1, Outcome::Completed(_)),
        "{:?}",
        results[0].1
    );
    assert!(
        matches!(
            results[1].1,
            Outcome::GaveUp(Error::Api(ApiError::NotFound(_)))
        ),
        "{:?}",
        results[1].1
    );
    assert!(
        matches!(results[2].1, Outcome::Failed(_)),
        "{:?}",
        results[2].1
    );
    assert!(
        matches!(
            &results[3].1,
            Outcome::DeadlineExceeded {
                last_status: Some(_)
            }
        ),
        "{:?}",
        results[3].1
    );
}

#[tokio::test]
async fn no_jobs_no_requests() {
    let fake = fake_builder().start().await.unwrap();
    let client = client(fake.base_url(), ClientOptions::new());
    let results = client
        .wait_many(Vec::new(), fast_policy(), Budget::new(10.0, 1))
        .await;
    assert!(results.is_empty());
    assert!(fake.requests().is_empty());
}
