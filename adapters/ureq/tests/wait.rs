//! `Client::wait` and `Client::waiter`: the poller's loop against faults, with real sleeps.

mod common;

use std::time::{Duration, Instant};

use common::*;
use fullstory_batch_fake::{Fault, RetryAfter as FakeRetryAfter, Route, Script};
use fullstory_batch_ureq::{
    ApiError, Error, Event, JobId, JobRef, JobState, Outcome, Policy, Resource, TransportKind,
};

fn completed(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Completed(s) if s.job.status == JobState::Completed)
}

/// The gap between the request the fault answered and the next one, by the fake's clock.
fn gap_after_first(fake: &fullstory_batch_fake::FakeServer, id: &str) -> Duration {
    let requests = status_requests(fake, id);
    assert!(requests.len() >= 2, "{requests:?}");
    assert!(
        requests[0].fault.is_some(),
        "the first request got the fault"
    );
    requests[1].instant.duration_since(requests[0].instant)
}

#[test]
fn waits_until_completed_with_progress_events() {
    let fake = fake()
        .processing_time(Duration::from_millis(300))
        .start_blocking()
        .unwrap();
    let (id, job) = insert_job(&fake);
    let client = client(fake.base_url());
    let events: Vec<Event> = client.waiter(job, fast_policy()).collect();
    let (last, progress) = events.split_last().unwrap();
    assert!(matches!(last, Event::Done(o) if completed(o)), "{last:?}");
    assert!(!progress.is_empty(), "the job was running at first");
    for (n, event) in progress.iter().enumerate() {
        let Event::Progress(p) = event else {
            panic!("{event:?}")
        };
        assert_eq!(p.attempts as usize, n + 1);
        assert_eq!(
            p.last_status.as_ref().unwrap().job.status,
            JobState::Processing
        );
        assert!(p.last_error.is_none());
        assert!(p.next_poll.is_some());
        assert!(p.deadline.is_some());
    }
    assert_eq!(status_requests(&fake, &id).len(), progress.len() + 1);
}

#[test]
fn rate_limited_retry_waits_retry_after_seconds() {
    let fake = fake()
        .processing_time(Duration::ZERO)
        .start_blocking()
        .unwrap();
    let (id, job) = insert_job(&fake);
    fake.script(
        Script::on(Route::Status)
            .for_job(id.as_str())
            .respond(Fault::TooManyRequests {
                retry_after: FakeRetryAfter::Seconds(1),
                date_skew_secs: 0,
            }),
    );
    let outcome = client(fake.base_url()).wait(&job, fast_policy());
    assert!(completed(&outcome), "{outcome:?}");
    let gap = gap_after_first(&fake, &id);
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}");
    assert!(gap < Duration::from_secs(3), "waited {gap:?}");
}

#[test]
fn rate_limited_retry_waits_http_date_from_a_skewed_server_clock() {
    // The server's clock runs an hour ahead (then an hour behind): Retry-After is a date one
    // second after its own Date header, so the right wait is one second either way.
    for skew in [3600, -3600] {
        let fake = fake()
            .processing_time(Duration::ZERO)
            .start_blocking()
            .unwrap();
        let (id, job) = insert_job(&fake);
        fake.script(Script::on(Route::Status).for_job(id.as_str()).respond(
            Fault::TooManyRequests {
                retry_after: FakeRetryAfter::HttpDate(1),
                date_skew_secs: skew,
            },
        ));
        let outcome = client(fake.base_url()).wait(&job, fast_policy());
        assert!(completed(&outcome), "{outcome:?}");
        let gap = gap_after_first(&fake, &id);
        assert!(
            gap >= Duration::from_secs(1),
            "skew {skew}: retried after {gap:?}"
        );
        assert!(gap < Duration::from_secs(3), "skew {skew}: waited {gap:?}");
    }
}

#[test]
fn server_errors_with_and_without_retry_after_then_recovery() {
    let fake = fake()
        .processing_time(Duration::ZERO)
        .start_blocking()
        .unwrap();
    let (id, job) = insert_job(&fake);
    let faults = [
        Fault::Http503 {
            retry_after: Some(FakeRetryAfter::Seconds(1)),
            html: false,
        },
        Fault::Http502 {
            retry_after: None,
            html: true,
        },
        Fault::Http500 {
            retry_after: None,
            html: false,
        },
        Fault::Http504 {
            retry_after: None,
            html: true,
        },
    ];
    for (n, fault) in faults.into_iter().enumerate() {
        fake.script(
            Script::on(Route::Status)
                .for_job(id.as_str())
                .nth(n + 1)
                .respond(fault),
        );
    }
    let started = Instant::now();
    let outcome = client(fake.base_url()).wait(&job, fast_policy());
    assert!(completed(&outcome), "{outcome:?}");
    let requests = status_requests(&fake, &id);
    let statuses: Vec<Option<u16>> = requests.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [Some(503), Some(502), Some(500), Some(504), Some(200)]
    );
    // Retry-After on the 503 held the second request back a full second; the others used
    // the short backoff.
    assert!(requests[1].instant.duration_since(requests[0].instant) >= Duration::from_secs(1));
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[test]
fn reset_mid_body_then_recovery() {
    let fake = fake()
        .processing_time(Duration::ZERO)
        .start_blocking()
        .unwrap();
    let (id, job) = insert_job(&fake);
    fake.script(
        Script::on(Route::Status)
            .for_job(id.as_str())
            .times(2)
            .respond(Fault::ConnectionReset),
    );
    let client = client(fake.base_url());
    let mut errors = Vec::new();
    let mut outcome = None;
    for event in client.waiter(job, fast_policy()) {
        match event {
            Event::Progress(p) => errors.extend(p.last_error),
            Event::Done(o) => outcome = Some(o),
        }
    }
    assert!(completed(&outcome.unwrap()));
    assert_eq!(errors.len(), 2);
    for e in &errors {
        assert!(
            matches!(e, Error::Transport(t) if t.kind == TransportKind::Reset),
            "{e:?}"
        );
        assert_no_key(e);
    }
}

#[test]
fn stall_with_short_request_timeout_then_recovery() {
    let fake = fake()
        .processing_time(Duration::ZERO)
        .start_blocking()
        .unwrap();
    let (id, job) = insert_job(&fake);
    fake.script(
        Script::on(Route::Status)
            .for_job(id.as_str())
            .respond(Fault::Stall(Duration::from_secs(10))),
    );
    let client = client_with(
        fake.base_url(),
        quick_options().with_request_timeout(Duration::from_millis(300)),
    );
    let started = Instant::now();
    let mut events = client.waiter(job, fast_policy());
    let Some(Event::Progress(first)) = events.next() else {
        panic!("expected progress")
    };
    assert!(
        matches!(&first.last_error, Some(Error::Transport(t)) if t.kind == TransportKind::Timeout),
        "{:?}",
        first.last_error
    );
    assert_eq!(first.errors_in_row, 1);
    assert!(completed(&events.outcome()));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // The stalled request is logged only once the fake gives up on it; the retry is there.
    assert!(
        status_requests(&fake, &id)
            .iter()
            .any(|r| r.status == Some(200))
    );
}

#[test]
fn truncated_json_then_recovery() {
    let fake = fake()
        .processing_time(Duration::ZERO)
        .start_blocking()
        .unwrap();
    let (id, job) = insert_job(&fake);
    fake.script(
        Script::on(Route::Status)
            .for_job(id.as_str())
            .respond(Fault::TruncatedBody),
    );
    let outcome = client(fake.base_url()).wait(&job, fast_policy());
    assert!(completed(&outcome), "{outcome:?}");
    assert_eq!(status_requests(&fake, &id).len(), 2);
}

#[test]
fn processing_past_the_deadline_is_deadline_exceeded() {
    let fake = fake().manual_clock().start_blocking().unwrap();
    let (_, job) = insert_job(&fake);
    let policy = fast_policy().with_timeout(Duration::from_millis(400));
    let started = Instant::now();
    let outcome = client(fake.base_url()).wait(&job, policy);
    let took = started.elapsed();
    let Outcome::DeadlineExceeded { last_status } = outcome else {
        panic!("expected the deadline, got {outcome:?}")
    };
    assert_eq!(last_status.unwrap().job.status, JobState::Processing);
    assert!(
        took >= Duration::from_millis(390) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

#[test]
fn a_stalled_request_is_cut_at_the_deadline() {
    // The request timeout (5 s) is longer than the time left: the deadline bounds the wait.
    let fake = fake().start_blocking().unwrap();
    let (id, job) = insert_job(&fake);
    fake.script(
        Script::on(Route::Status)
            .for_job(id.as_str())
            .always()
            .respond(Fault::Stall(Duration::from_secs(10))),
    );
    let policy = fast_policy().with_timeout(Duration::from_millis(500));
    let started = Instant::now();
    let outcome = client(fake.base_url()).wait(&job, policy);
    let took = started.elapsed();
    assert!(
        matches!(outcome, Outcome::DeadlineExceeded { last_status: None }),
        "{outcome:?}"
    );
    assert!(took < Duration::from_millis(1500), "{took:?}");
}

#[test]
fn not_found_gives_up_at_once() {
    let fake = fake().start_blocking().unwrap();
    let job = JobRef::new(Resource::Events, JobId::new("missing").unwrap());
    let outcome = client(fake.base_url()).wait(&job, fast_policy());
    let Outcome::GaveUp(e) = outcome else {
        panic!("{outcome:?}")
    };
    assert!(matches!(&e, Error::Api(ApiError::NotFound(_))), "{e:?}");
    assert_no_key(&e);
    assert_eq!(fake.requests().len(), 1);
}

#[test]
fn a_dead_server_is_too_many_errors() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = client(&format!("http://127.0.0.1:{port}"));
    let job = JobRef::new(Resource::Events, JobId::new("x").unwrap());
    let policy = Policy {
        max_errors_in_row: 3,
        ..fast_policy()
    };
    let outcome = client.wait(&job, policy);
    let Outcome::TooManyErrors(e) = outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        matches!(&e, Error::Transport(t) if t.kind == TransportKind::Connect),
        "{e:?}"
    );
    assert_no_key(&e);
}

#[test]
fn a_finished_waiter_is_fused_and_keeps_its_outcome() {
    let fake = fake()
        .processing_time(Duration::ZERO)
        .start_blocking()
        .unwrap();
    let (_, job) = insert_job(&fake);
    let client = client(fake.base_url());
    let mut waiter = client.waiter(job, fast_policy());
    assert!(matches!(waiter.next(), Some(Event::Done(_))));
    assert!(waiter.next().is_none());
    assert!(waiter.poller().is_done());
    assert!(completed(&waiter.outcome()));
}

#[test]
fn a_saved_poller_resumes() {
    let fake = fake()
        .processing_time(Duration::from_millis(200))
        .start_blocking()
        .unwrap();
    let (id, job) = insert_job(&fake);
    let client = client(fake.base_url());
    let mut waiter = client.waiter(job.clone(), fast_policy());
    assert!(matches!(waiter.next(), Some(Event::Progress(_))));
    let saved = waiter.poller().save();
    drop(waiter);

    let poller = fullstory_batch_ureq::Poller::restore(saved, &job).expect("the same job");
    let outcome = client.resume(poller).outcome();
    assert!(completed(&outcome), "{outcome:?}");
    assert!(status_requests(&fake, &id).len() >= 2);
}
