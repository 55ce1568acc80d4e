//! `Client::wait_many` at scale: a thousand jobs on one task through a relay that counts
//! sockets. hyper-util's pool opens a connection whenever none is idle and keeps both, so
//! the cap is the adapter's to hold; this is the regression test for that. (Outcomes by
//! key, a small cap and random faults are in the conformance suite.)

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use fullstory_batch_fake::{OrgLimits, Route};
use fullstory_batch_hyper::{Budget, ClientOptions, Policy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_jobs_never_open_more_connections_than_the_cap() {
    let fake = fake()
        .manual_clock()
        .org_limits(OrgLimits::unlimited())
        .start()
        .await
        .unwrap();
    let jobs: Vec<_> = (0..1000).map(|_| insert_job(&fake).1).collect();
    let proxy = CountingProxy::start(fake.addr());
    let cap = 16;
    let client = client(
        &proxy.base_url(),
        ClientOptions::new().with_max_connections(cap),
    );
    let policy = Policy::builder()
        .min_interval(Duration::from_millis(100))
        .max_interval(Duration::from_millis(400))
        .error_backoff(Duration::from_millis(100))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    // Every job runs until each was polled once (the fake's clock stands still till then),
    // so each is polled at least twice however slow the machine.
    let finish_after_first_polls = async {
        while fake.stats().requests.status < 1000 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        fake.advance(Duration::from_secs(5));
    };
    let started = Instant::now();
    let (results, ()) = tokio::join!(
        client
            .wait_many(jobs, policy, Budget::new(2000.0, 50))
            .outcomes(),
        finish_after_first_polls
    );
    let took = started.elapsed();

    assert_eq!(results.len(), 1000);
    let keys: HashSet<u64> = results.iter().map(|(k, _)| k.index()).collect();
    assert_eq!(keys, (0..1000).collect());
    for (key, outcome) in &results {
        assert!(outcome.is_completed(), "{key:?}: {outcome:?}");
    }
    let polls = fake
        .requests()
        .iter()
        .filter(|r| r.route == Some(Route::Status))
        .count();
    assert!(polls >= 2000, "{polls} polls");
    assert!(
        proxy.peak() <= cap,
        "{} connections open at once, cap {cap}",
        proxy.peak()
    );
    eprintln!(
        "1000 jobs: {polls} polls in {took:?}, {} connections opened, at most {} at once",
        proxy.total(),
        proxy.peak()
    );
}
