//! `Client::wait`: the core's poller on tokio, against faults that call for retries.

mod common;

use std::time::{Duration, Instant};

use common::*;
use fullstory_batch_fake::{
    Fault, FaultKind, LoggedRequest, Resource as FakeResource, RetryAfter, Route, Script,
};
use fullstory_batch_hyper::{
    ApiError, ClientOptions, Error, JobState, Outcome, ProgressSnapshot, TransportKind,
};

fn status_requests(log: &[LoggedRequest]) -> Vec<&LoggedRequest> {
    log.iter()
        .filter(|r| r.route == Some(Route::Status))
        .collect()
}

fn completed(outcome: Outcome) -> fullstory_batch_hyper::JobStatusResponse {
    match outcome {
        Outcome::Completed(status) => status,
        other => panic!("expected completed, got {other:?}"),
    }
}

/// A job already finished on the fake's manual clock, with its first poll scripted to fail.
async fn finished_job_failing_first(fault: Fault) -> (fullstory_batch_fake::FakeServer, String) {
    let fake = fake_builder().manual_clock().start().await.unwrap();
    let id = fake.insert_job(FakeResource::Events, one_event());
    fake.advance(Duration::from_secs(5));
    fake.script(
        Script::on(Route::Status)
            .for_job(id.as_str())
            .respond(fault),
    );
    (fake, id)
}

#[tokio::test]
async fn waits_until_completed() {
    let fake = fake_builder()
        .processing_time(Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    let id = fake.insert_job(FakeResource::Events, one_event());
    let client = client(fake.base_url(), ClientOptions::new());
    let status = completed(client.wait(&events_job(&id), fast_policy()).await);
    assert_eq!(status.imports, 1);
    let polls = status_requests(&fake.requests()).len();
    assert!(
        (3..=10).contains(&polls),
        "{polls} polls for a 100 ms job at 20 ms"
    );
}

#[tokio::test]
async fn failed_job_is_failed_with_counts() {
    let fake = fake_builder().manual_clock().start().await.unwrap();
    let items = vec![
        serde_json::json!({"name": "ok"}),
        serde_json::json!({"name": "bad-one"}),
    ];
    let id = fake.insert_job(FakeResource::Events, items);
    fake.advance(Duration::from_secs(5));
    let client = client(fake.base_url(), ClientOptions::new());
    match client.wait(&events_job(&id), fast_policy()).await {
        Outcome::Failed(status) => {
            assert_eq!(status.job.status, JobState::Failed);
            assert_eq!((status.imports, status.errors), (1, 1));
        }
        other => panic!("{other:?}"),
    }
}

/// Asserts the second status request came at least `gap` after the first.
fn assert_retry_not_before(fake: &fullstory_batch_fake::FakeServer, gap: Duration) {
    let log = fake.requests();
    let polls = status_requests(&log);
    assert_eq!(polls.len(), 2, "{polls:?}");
    let waited = polls[1].instant.duration_since(polls[0].instant);
    assert!(
        waited >= gap,
        "retried after {waited:?}, before the {gap:?} asked for"
    );
    assert!(
        waited < gap + Duration::from_millis(500),
        "waited {waited:?}"
    );
}

#[tokio::test]
async fn rate_limited_retry_after_seconds() {
    let (fake, id) = finished_job_failing_first(Fault::TooManyRequests {
        retry_after: RetryAfter::Seconds(1),
        date_skew_secs: 0,
    })
    .await;
    let client = client(fake.base_url(), ClientOptions::new());
    completed(client.wait(&events_job(&id), fast_policy()).await);
    assert_retry_not_before(&fake, Duration::from_secs(1));
}

#[tokio::test]
async fn rate_limited_retry_after_http_date_with_skewed_clock() {
    // The server's clock runs an hour ahead: the date form is read against its `Date`.
    let fault = Fault::TooManyRequests {
        retry_after: RetryAfter::HttpDate(1),
        date_skew_secs: 3600,
    };
    let (fake, id) = finished_job_failing_first(fault.clone()).await;
    let client = client(fake.base_url(), ClientOptions::new());

    // One look at the answer itself: the date is an hour ahead of ours.
    let Err(Error::Api(err)) = client.status(&events_job(&id)).await else {
        panic!("expected a 429");
    };
    let Some(fullstory_batch::RetryAfter::At {
        date,
        server_date: Some(server_date),
    }) = err.retry_after()
    else {
        panic!("expected an http-date retry-after with a date: {err:?}");
    };
    let ahead = server_date
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(
        ahead > Duration::from_secs(3590),
        "server date only {ahead:?} ahead"
    );
    assert_eq!(
        date.duration_since(server_date).unwrap(),
        Duration::from_secs(1)
    );

    fake.clear_requests();
    fake.script(
        Script::on(Route::Status)
            .for_job(id.as_str())
            .respond(fault),
    );
    completed(client.wait(&events_job(&id), fast_policy()).await);
    assert_retry_not_before(&fake, Duration::from_secs(1));
}

#[tokio::test]
async fn server_error_with_retry_after_then_recovery() {
    let (fake, id) = finished_job_failing_first(Fault::Http503 {
        retry_after: Some(RetryAfter::Seconds(1)),
        html: false,
    })
    .await;
    let client = client(fake.base_url(), ClientOptions::new());
    completed(client.wait(&events_job(&id), fast_policy()).await);
    assert_retry_not_before(&fake, Duration::from_secs(1));
}

#[tokio::test]
async fn server_errors_without_retry_after_then_recovery() {
    let fake = fake_builder().manual_clock().start().await.unwrap();
    let id = fake.insert_job(FakeResource::Events, one_event());
    fake.advance(Duration::from_secs(5));
    for (nth, fault) in [
        Fault::Http500 {
            retry_after: None,
            html: false,
        },
        Fault::Http502 {
            retry_after: None,
            html: true,
        },
        Fault::Http504 {
            retry_after: None,
            html: true,
        },
    ]
    .into_iter()
    .enumerate()
    {
        fake.script(Script::on(Route::Status).nth(nth + 1).respond(fault));
    }
    let client = client(fake.base_url(), ClientOptions::new());
    let started = Instant::now();
    completed(client.wait(&events_job(&id), fast_policy()).await);
    assert_eq!(status_requests(&fake.requests()).len(), 4);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn reset_mid_body_then_recovery() {
    let (fake, id) = finished_job_failing_first(Fault::ConnectionReset).await;
    let client = client(fake.base_url(), ClientOptions::new());
    completed(client.wait(&events_job(&id), fast_policy()).await);
    let log = fake.requests();
    let polls = status_requests(&log);
    assert_eq!(polls.len(), 2);
    assert_eq!(polls[0].fault, Some(FaultKind::ConnectionReset));
}

#[tokio::test]
async fn stall_with_short_timeout_then_recovery() {
    let (fake, id) = finished_job_failing_first(Fault::Stall(Duration::from_secs(5))).await;
    let options = ClientOptions::new().with_request_timeout(Duration::from_millis(200));
    let client = client(fake.base_url(), options);
    let started = Instant::now();
    completed(client.wait(&events_job(&id), fast_policy()).await);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

#[tokio::test]
async fn truncated_json_then_recovery() {
    let (fake, id) = finished_job_failing_first(Fault::TruncatedBody).await;
    let client = client(fake.base_url(), ClientOptions::new());
    completed(client.wait(&events_job(&id), fast_policy()).await);
    assert_eq!(status_requests(&fake.requests()).len(), 2);
}

#[tokio::test]
async fn oversized_is_not_retried() {
    // The same request gets the same body: an oversized one ends the wait at once.
    let (fake, id) = finished_job_failing_first(Fault::OversizedBody { bytes: 1 << 20 }).await;
    let config = config_for(fake.base_url(), KEY).with_body_limit(16 * 1024);
    let client = fullstory_batch_hyper::Client::new(config, ClientOptions::new()).unwrap();
    match client.wait(&events_job(&id), fast_policy()).await {
        Outcome::GaveUp(e) => assert_eq!(e.kind(), "body_too_large", "{e:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(status_requests(&fake.requests()).len(), 1, "no second try");
}

#[tokio::test]
async fn processing_past_the_deadline() {
    let fake = fake_builder().manual_clock().start().await.unwrap();
    let id = fake.insert_job(FakeResource::Events, one_event());
    let client = client(fake.base_url(), ClientOptions::new());
    let policy = fast_policy().with_timeout(Duration::from_millis(300));
    let started = Instant::now();
    match client.wait(&events_job(&id), policy).await {
        Outcome::DeadlineExceeded { last_status } => {
            let last = last_status.expect("a running status was seen");
            assert_eq!(last.job.status, JobState::Processing);
        }
        other => panic!("{other:?}"),
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_secs(1),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_stalled_request_is_cut_at_the_deadline() {
    // The request timeout is long, the deadline short: the deadline wins.
    let fake = fake_builder().manual_clock().start().await.unwrap();
    let id = fake.insert_job(FakeResource::Events, one_event());
    fake.script(Script::on(Route::Status).respond(Fault::Stall(Duration::from_secs(10))));
    let client = client(fake.base_url(), ClientOptions::new());
    let policy = fast_policy().with_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let outcome = client.wait(&events_job(&id), policy).await;
    assert!(
        matches!(outcome, Outcome::DeadlineExceeded { last_status: None }),
        "{outcome:?}"
    );
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[tokio::test]
async fn not_found_gives_up_at_once() {
    let fake = fake_builder().start().await.unwrap();
    let client = client(fake.base_url(), ClientOptions::new());
    match client.wait(&events_job("missing"), fast_policy()).await {
        Outcome::GaveUp(e @ Error::Api(ApiError::NotFound(_))) => assert_error_has_no_key(&e),
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn too_many_errors_in_a_row() {
    let fake = fake_builder().start().await.unwrap();
    let id = fake.insert_job(FakeResource::Events, one_event());
    fake.script(
        Script::on(Route::Status)
            .always()
            .respond(Fault::ConnectionReset),
    );
    let client = client(fake.base_url(), ClientOptions::new());
    match client.wait(&events_job(&id), fast_policy()).await {
        Outcome::TooManyErrors(Error::Transport(t)) => assert_eq!(t.kind, TransportKind::Reset),
        other => panic!("{other:?}"),
    }
    assert_eq!(status_requests(&fake.requests()).len(), 5);
}

#[tokio::test]
async fn progress_is_published() {
    let fake = fake_builder()
        .processing_time(Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    let id = fake.insert_job(FakeResource::Events, one_event());
    fake.script(Script::on(Route::Status).nth(2).respond(Fault::Http500 {
        retry_after: None,
        html: false,
    }));
    let client = client(fake.base_url(), ClientOptions::new());
    let (tx, mut rx) = tokio::sync::watch::channel(ProgressSnapshot::default());
    let watcher = async move {
        let mut seen = Vec::new();
        while rx.changed().await.is_ok() {
            seen.push(rx.borrow_and_update().clone());
        }
        seen
    };
    let job = events_job(&id);
    let (outcome, seen) = tokio::join!(client.wait_with_progress(&job, fast_policy(), tx), watcher);
    completed(outcome);
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
    assert!(seen.iter().any(|p| p.next_poll.is_some()));
    assert!(seen.iter().all(|p| p.deadline.is_some()));
    assert_no_key(&format!("{seen:?}"));
}

#[tokio::test]
async fn dropping_the_future_stops_polling() {
    let fake = fake_builder().manual_clock().start().await.unwrap();
    let id = fake.insert_job(FakeResource::Events, one_event());
    let client = client(fake.base_url(), ClientOptions::new());
    let job = events_job(&id);
    let waiting = client.wait(&job, fast_policy());
    assert!(
        tokio::time::timeout(Duration::from_millis(150), waiting)
            .await
            .is_err()
    );
    let before = fake.requests().len();
    assert!(before >= 2, "{before}");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        fake.requests().len(),
        before,
        "requests went on after the drop"
    );
}
