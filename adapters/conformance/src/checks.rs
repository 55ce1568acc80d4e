//! The checks, each generic over the [`Adapter`] under test. [`crate::suite!`] makes one
//! `#[test]` of each.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use fullstory_batch::{
    ApiError, Budget, CreateError, Error, ErrorBody, ErrorCode, Event, IdempotencyKey, JobState,
    Outcome, Resource, RetryAfter, Stage, StopReason, TransportKind, UserRequest, ValidationError,
};
use fullstory_batch_fake::{
    Fault, FaultKind, OrgLimits, Resource as FakeResource, RetryAfter as FakeRetryAfter, Route,
    Script,
};

use crate::support::*;
use crate::{Adapter, Options};

fn client_for<A: Adapter>(base_url: &str) -> A {
    A::new(config(base_url), Options::default())
}

fn finished(outcome: Outcome) -> fullstory_batch::JobStatusResponse {
    match outcome {
        Outcome::Finished(status) => status,
        Outcome::Stopped(stopped) => panic!("expected the job to finish: {stopped:?}"),
    }
}

fn stopped(outcome: Outcome) -> fullstory_batch::Stopped {
    match outcome {
        Outcome::Stopped(stopped) => stopped,
        Outcome::Finished(status) => panic!("expected a stop, the job finished: {status:?}"),
    }
}

/// A job already finished on a manual clock, with its first `times` polls scripted.
fn finished_job_failing_first(
    fault: Fault,
    times: usize,
) -> (fullstory_batch_fake::FakeServer, String) {
    let fake = fake()
        .manual_clock()
        .start_blocking()
        .expect("the fake starts");
    let (id, _) = insert_job(&fake);
    fake.advance(Duration::from_secs(5));
    fake.script(
        Script::on(Route::Status)
            .for_job(id.as_str())
            .times(times)
            .respond(fault),
    );
    (fake, id)
}

// ---- request shape, error statuses ----

/// The request the core built goes out as built: method, headers, no body, no
/// compression asked for; the client's `Debug` holds no key.
pub fn status_sends_the_core_request<A: Adapter>() {
    let fake = fake().manual_clock().start_blocking().unwrap();
    let (id, job) = insert_job(&fake);
    let client = client_for::<A>(fake.base_url());

    let status = client.status(&job).expect("a status");
    assert_eq!(status.job.id, id);
    assert_eq!(status.job.status, JobState::Processing);
    fake.advance(Duration::from_secs(5));
    let status = client.status(&job).expect("a status");
    assert_eq!(status.job.status, JobState::Completed);
    assert_eq!(status.imports, 1);

    let requests = status_requests(&fake, &id);
    assert_eq!(requests.len(), 2, "{requests:?}");
    let first = &requests[0];
    assert_eq!(first.method, "GET");
    assert_eq!(first.header("authorization"), Some("Basic [redacted]"));
    assert_eq!(first.header("accept"), Some("application/json"));
    let agent = first.header("user-agent").unwrap_or_default();
    assert!(agent.starts_with("fullstory-batch/"), "{agent}");
    assert_eq!(
        first.header("accept-encoding"),
        None,
        "no compression asked for"
    );
    assert_eq!(first.body_len, 0);
    assert_no_key_in(&client.debug());
}

/// 400, 401, 403, 404 and 429 reach the core with their bodies and `Retry-After`.
pub fn error_statuses_are_typed_with_their_bodies<A: Adapter>() {
    let fake = fake()
        .key_without_permission("read-only-key")
        .start_blocking()
        .unwrap();
    let (id, job) = insert_job(&fake);

    let wrong = A::new(
        config_with_key(fake.base_url(), "wrong-key-1234"),
        Options::default(),
    );
    let e = api_error(wrong.status(&job));
    assert!(matches!(e, ApiError::Unauthorized(_)), "{e:?}");
    assert_eq!(e.status().as_u16(), 401);
    let body = e.error_response().expect("a parsed error body");
    assert_eq!(body.code, ErrorCode::Unauthorized);
    assert_eq!(body.message, "access is unauthorized");
    assert!(!e.is_retryable());
    assert!(!format!("{e} {e:?}").contains("wrong-key-1234"));

    let read_only = A::new(
        config_with_key(fake.base_url(), "read-only-key"),
        Options::default(),
    );
    let e = api_error(read_only.status(&job));
    assert!(matches!(e, ApiError::Forbidden(_)), "{e:?}");
    let body = e.error_response().expect("a parsed error body");
    assert_eq!(
        (body.code.clone(), body.message.as_str()),
        (ErrorCode::Forbidden, "insufficient permissions")
    );

    let client = client_for::<A>(fake.base_url());
    let e = api_error(client.status(&events_job("no-such-job")));
    assert!(matches!(e, ApiError::NotFound(_)), "{e:?}");
    assert_eq!(
        e.error_response().unwrap().code,
        ErrorCode::ResourceNotFound
    );
    assert!(!e.is_retryable());

    fake.script(
        Script::on(Route::Status)
            .for_job(id.as_str())
            .respond(Fault::TooManyRequests {
                retry_after: FakeRetryAfter::Seconds(7),
                date_skew_secs: 0,
            }),
    );
    let e = api_error(client.status(&job));
    assert!(matches!(e, ApiError::RateLimited(_)), "{e:?}");
    assert_eq!(
        e.retry_after(),
        Some(RetryAfter::Delay(Duration::from_secs(7)))
    );
    assert_eq!(e.error_response().unwrap().code, ErrorCode::TooManyRequests);
    assert!(e.is_retryable());

    // The fake's status route never answers 400; a raw server does.
    let body = r#"{"code":"invalid_argument","message":"job id is malformed","details":{"field":"job_id"}}"#;
    let server = RawServer::start(vec![http_response(
        "400 Bad Request",
        &[("content-type", "application/json")],
        body,
    )]);
    let e = api_error(client_for::<A>(&server.base_url()).status(&events_job("x")));
    assert!(matches!(e, ApiError::InvalidInput(_)), "{e:?}");
    let parsed = e.error_response().unwrap();
    assert_eq!(parsed.code, ErrorCode::InvalidArgument);
    assert_eq!(parsed.message, "job id is malformed");
    assert!(parsed.extra.contains_key("details"));
    let head = &server.requests()[0];
    assert!(
        head.starts_with("GET /v2/events/batch/x HTTP/1.1\r\n"),
        "{head}"
    );
}

/// 5xx answers, JSON or HTML, with or without `Retry-After`, are read whole (the
/// connection is reused after them).
pub fn server_errors_json_and_html<A: Adapter>() {
    let fake = fake().start_blocking().unwrap();
    let (id, job) = insert_job(&fake);
    let faults = [
        (
            500,
            Fault::Http500 {
                retry_after: None,
                html: false,
            },
        ),
        (
            502,
            Fault::Http502 {
                retry_after: None,
                html: true,
            },
        ),
        (
            503,
            Fault::Http503 {
                retry_after: Some(FakeRetryAfter::Seconds(3)),
                html: false,
            },
        ),
        (
            504,
            Fault::Http504 {
                retry_after: None,
                html: true,
            },
        ),
    ];
    for (n, (_, fault)) in faults.iter().enumerate() {
        fake.script(
            Script::on(Route::Status)
                .for_job(id.as_str())
                .nth(n + 1)
                .respond(fault.clone()),
        );
    }
    let client = client_for::<A>(fake.base_url());
    for (code, fault) in faults {
        let e = api_error(client.status(&job));
        assert!(matches!(e, ApiError::Server(_)), "{e:?}");
        assert_eq!(e.status().as_u16(), code);
        assert!(e.is_retryable());
        let html = matches!(
            fault,
            Fault::Http502 { html: true, .. } | Fault::Http504 { html: true, .. }
        );
        match &e.details().unwrap().body {
            ErrorBody::Api(body) if !html => assert!(!body.message.is_empty()),
            ErrorBody::Raw(raw) if html => assert!(raw.contains("<html>"), "{raw}"),
            other => panic!("unexpected body for {code}: {other:?}"),
        }
        if code == 503 {
            assert_eq!(
                e.retry_after(),
                Some(RetryAfter::Delay(Duration::from_secs(3)))
            );
        }
    }
    assert!(client.status(&job).is_ok());
}

/// A 200 whose JSON is cut short is the server's fault (malformed), not the transport's.
pub fn truncated_json_is_malformed<A: Adapter>() {
    let fake = fake().start_blocking().unwrap();
    let (id, job) = insert_job(&fake);
    fake.script(
        Script::on(Route::Status)
            .for_job(id.as_str())
            .respond(Fault::TruncatedBody),
    );
    let client = client_for::<A>(fake.base_url());
    let e = api_error(client.status(&job));
    let ApiError::Malformed(m) = &e else {
        panic!("expected malformed, got {e:?}")
    };
    assert_eq!(m.status().as_u16(), 200);
    assert!(e.is_retryable());
    assert!(client.status(&job).is_ok());
}

// ---- transport errors ----

/// Nothing listens: `Connect`.
pub fn refused_connection_is_connect<A: Adapter>() {
    let client = client_for::<A>(&refused_base_url());
    assert_eq!(
        transport_kind(client.status(&events_job("x"))),
        TransportKind::Connect
    );
}

/// A refused connection says where it went: `host:port`, once, and never the key.
pub fn a_refused_connection_names_the_host_and_port<A: Adapter>() {
    let base_url = refused_base_url();
    let target = base_url.trim_start_matches("http://");
    let client = client_for::<A>(&base_url);
    let Err(Error::Transport(t)) = client.status(&events_job("x")) else {
        panic!("a refused connection is a transport error")
    };
    assert_eq!(t.target(), Some(target));
    assert_eq!(t.to_string(), format!("could not connect to {target}"));
    let chain = error_chain(&t);
    assert_eq!(chain.matches(target).count(), 1, "{chain}");
    assert_no_key(&t);
}

/// The connection closes mid-body: `Reset`; the next request gets through.
pub fn reset_mid_body_is_reset<A: Adapter>() {
    let fake = fake().start_blocking().unwrap();
    let (id, job) = insert_job(&fake);
    fake.script(
        Script::on(Route::Status)
            .for_job(id.as_str())
            .respond(Fault::ConnectionReset),
    );
    let client = client_for::<A>(fake.base_url());
    assert_eq!(transport_kind(client.status(&job)), TransportKind::Reset);
    assert!(client.status(&job).is_ok(), "the next request gets through");
}

/// No headers come: the request timeout cuts the request, as `Timeout`.
pub fn stall_hits_the_request_timeout<A: Adapter>() {
    let fake = fake().start_blocking().unwrap();
    let (id, job) = insert_job(&fake);
    fake.script(
        Script::on(Route::Status)
            .for_job(id.as_str())
            .respond(Fault::Stall(Duration::from_secs(5))),
    );
    let options = Options::default().request_timeout(Duration::from_millis(300));
    let client = A::new(config(fake.base_url()), options);
    let started = Instant::now();
    assert_eq!(transport_kind(client.status(&job)), TransportKind::Timeout);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(client.status(&job).is_ok());
}

/// Headers at once, the body trickling: the request timeout covers the body too.
pub fn slow_drip_past_the_request_timeout_is_a_timeout<A: Adapter>() {
    let fake = fake().start_blocking().unwrap();
    let (id, job) = insert_job(&fake);
    fake.script(
        Script::on(Route::Status)
            .for_job(id.as_str())
            .respond(Fault::SlowDrip {
                chunk: 4,
                delay: Duration::from_millis(100),
            }),
    );
    let options = Options::default().request_timeout(Duration::from_millis(400));
    let client = A::new(config(fake.base_url()), options);
    let started = Instant::now();
    assert_eq!(transport_kind(client.status(&job)), TransportKind::Timeout);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

/// A certificate no root vouches for: `Tls`, and no request reached the server.
pub fn untrusted_certificate_is_tls<A: Adapter>() {
    let tls = tls_fake();
    let (_, job) = insert_job(&tls.fake);
    let client = A::new(https_config(&tls.fake), Options::default());
    assert_eq!(transport_kind(client.status(&job)), TransportKind::Tls);
    assert!(tls.fake.requests().is_empty(), "no request went out");
}

/// Trusting some other root does not make the server's certificate trusted.
pub fn another_root_does_not_help<A: Adapter>() {
    let tls = tls_fake();
    let (_, job) = insert_job(&tls.fake);
    let (other, _, _) = self_signed();
    let options = Options {
        roots_der: vec![other],
        ..Options::default()
    };
    let client = A::new(https_config(&tls.fake), options);
    assert_eq!(transport_kind(client.status(&job)), TransportKind::Tls);
}

// ---- deadlines ----

/// The request timeout (5 s) is longer than the time left: the `Transmit`'s deadline cuts
/// the stalled request, and the wait ends at the deadline, not after the request timeout.
pub fn the_deadline_cuts_a_stalled_request<A: Adapter>() {
    let fake = fake().start_blocking().unwrap();
    let (id, job) = insert_job(&fake);
    fake.script(
        Script::on(Route::Status)
            .for_job(id.as_str())
            .always()
            .respond(Fault::Stall(Duration::from_secs(10))),
    );
    let client = client_for::<A>(fake.base_url());
    let started = Instant::now();
    let outcome = client.wait(&job, fast_policy_with_timeout(Duration::from_millis(500)));
    let took = started.elapsed();
    let stop = stopped(outcome);
    assert!(
        matches!(stop.reason, StopReason::DeadlineExceeded),
        "{stop:?}"
    );
    assert_eq!(stop.stage, Stage::Wait);
    assert!(stop.last_status.is_none(), "{stop:?}");
    assert!(took < Duration::from_millis(1500), "{took:?}");
}

// ---- body limits ----

/// A `Content-Length` over the limit is refused before the body is read; the next
/// request gets through.
pub fn content_length_over_the_limit_is_refused_unread<A: Adapter>() {
    let fake = fake().start_blocking().unwrap();
    let (id, job) = insert_job(&fake);
    fake.script(
        Script::on(Route::Status)
            .for_job(id.as_str())
            .respond(Fault::OversizedBody { bytes: 256 * 1024 }),
    );
    let client = A::new(
        config(fake.base_url()).with_body_limit(16 * 1024),
        Options::default(),
    );
    assert_eq!(
        transport_kind(client.status(&job)),
        TransportKind::BodyTooLarge
    );
    assert!(client.status(&job).is_ok());
}

/// An error status whose body is over the limit (a proxy's large HTML page on a 503),
/// announced by `Content-Length` or chunked, is still that status: its first bytes reach
/// the core, which sorts it by its status and `Retry-After`; the wait retries after the
/// second asked and finishes.
pub fn an_error_status_over_the_limit_is_cut_not_refused<A: Adapter>() {
    let page = format!("<html>{}</html>", "unavailable ".repeat(200 * 1024 / 12));
    let headers = [("retry-after", "1"), ("content-type", "text/html")];
    let sized = http_response("503 Service Unavailable", &headers, &page);
    let mut chunked = String::from(
        "HTTP/1.1 503 Service Unavailable\r\ntransfer-encoding: chunked\r\n\
         connection: close\r\nretry-after: 1\r\ncontent-type: text/html\r\n\r\n",
    );
    for piece in page.as_bytes().chunks(8 * 1024) {
        let piece = std::str::from_utf8(piece).expect("ascii");
        chunked.push_str(&format!("{:x}\r\n{piece}\r\n", piece.len()));
    }
    chunked.push_str("0\r\n\r\n");
    let done = http_response(
        "200 OK",
        &[("content-type", "application/json")],
        r#"{"imports":1,"job":{"id":"x","status":"COMPLETED"}}"#,
    );
    for first in [sized, chunked.into_bytes()] {
        // One call: the 503 as the error it is.
        let server = RawServer::start(vec![first.clone(), done.clone()]);
        let client = A::new(
            config(&server.base_url()).with_body_limit(16 * 1024),
            Options::default(),
        );
        let e = api_error(client.status(&events_job("x")));
        assert!(matches!(e, ApiError::Server(_)), "{e:?}");
        assert!(e.is_retryable());
        assert_eq!(
            e.retry_after(),
            Some(RetryAfter::Delay(Duration::from_secs(1)))
        );
        let Some(ErrorBody::Raw(excerpt)) = e.details().map(|d| &d.body) else {
            panic!("expected an excerpt of the page: {e:?}")
        };
        assert!(excerpt.starts_with("<html>unavailable "), "{excerpt}");
        // A wait: retried after the second asked, then done.
        let server = RawServer::start(vec![first, done.clone()]);
        let client = A::new(
            config(&server.base_url()).with_body_limit(16 * 1024),
            Options::default(),
        );
        let started = Instant::now();
        let status = finished(client.wait(&events_job("x"), fast_policy()));
        let took = started.elapsed();
        assert_eq!(status.job.status, JobState::Completed);
        assert_eq!(server.requests().len(), 2);
        assert!(took >= Duration::from_secs(1), "retried after {took:?}");
        assert!(took < Duration::from_millis(2500), "took {took:?}");
    }
}

/// A chunked body that never ends: reading stops at the limit (the call returns at all)
/// and the connection is dropped (the server's writes start failing).
pub fn a_body_growing_past_the_limit_stops_there<A: Adapter>() {
    let server = EndlessBody::start();
    let client = A::new(
        config(&server.base_url()).with_body_limit(64 * 1024),
        Options::default(),
    );
    assert_eq!(
        transport_kind(client.status(&events_job("x"))),
        TransportKind::BodyTooLarge
    );
    assert!(
        eventually(Duration::from_secs(3), || server.hung_up()),
        "the client kept the connection open"
    );
    // What the server got out is the limit plus what the kernel buffers held.
    assert!(
        server.written() < 32 << 20,
        "{} bytes written",
        server.written()
    );
}

// ---- TLS roots ----

/// A DER root trusted besides Mozilla's: one status, then a whole wait over HTTPS.
pub fn https_with_a_trusted_der_root<A: Adapter>() {
    let tls = tls_fake();
    let (_, job) = insert_job(&tls.fake);
    let options = Options {
        roots_der: vec![tls.cert_der.clone()],
        ..Options::default()
    };
    let client = A::new(https_config(&tls.fake), options);
    let status = client.status(&job).expect("a status over https");
    assert_eq!(status.job.status, JobState::Completed);
    assert_eq!(finished(client.wait(&job, fast_policy())).imports, 1);
}

/// A PEM root trusted besides Mozilla's.
pub fn https_with_a_trusted_pem_root<A: Adapter>() {
    let tls = tls_fake();
    let (_, job) = insert_job(&tls.fake);
    let options = Options {
        roots_pem: vec![tls.cert_pem.clone()],
        ..Options::default()
    };
    let client = A::new(https_config(&tls.fake), options);
    assert!(client.status(&job).is_ok());
}

// ---- redirects ----

/// A 302 comes back as an unexpected status; its target never sees a connection, so the
/// `Authorization` header cannot travel there.
pub fn redirects_are_not_followed<A: Adapter>() {
    let elsewhere = RawServer::start(vec![http_response("200 OK", &[], "{}")]);
    let location = format!("{}/v2/events/batch/x", elsewhere.base_url());
    let server = RawServer::start(vec![http_response(
        "302 Found",
        &[("location", location.as_str())],
        "",
    )]);
    let e = api_error(client_for::<A>(&server.base_url()).status(&events_job("x")));
    assert!(matches!(e, ApiError::UnexpectedStatus(_)), "{e:?}");
    assert_eq!(e.status().as_u16(), 302);
    assert_eq!(server.requests().len(), 1);
    thread::sleep(Duration::from_millis(100));
    assert!(elsewhere.requests().is_empty(), "the redirect was followed");
}

// ---- the key in traces ----

/// Each request of a wait runs in a `fullstory_batch.request` span naming its stage,
/// attempt, path (the job id) and HTTP status; no span, record or event holds the key or
/// an `Authorization` header.
///
/// Not in [`suite!`](crate::suite): it installs [`Capture`] as the process's global
/// subscriber, so run it alone in a test binary of its own. A subscriber scoped to one thread
/// cannot be trusted while other tests run: a thread with none in scope that registers a
/// callsite at the same moment can cache "never" for it after the scoped one asked again.
pub fn traces_name_the_request_never_the_key<A: Adapter>() {
    let capture = Capture::default();
    tracing::subscriber::set_global_default(capture.clone())
        .expect("the trace check runs alone in its test binary");
    let fake = fake()
        .processing_time(Duration::from_millis(100))
        .start_blocking()
        .unwrap();
    let (id, job) = insert_job(&fake);
    fake.script(
        Script::on(Route::Status)
            .for_job(id.as_str())
            .respond(Fault::ConnectionReset),
    );
    fake.script(
        Script::on(Route::Status)
            .for_job(id.as_str())
            .nth(2)
            .respond(Fault::Http503 {
                retry_after: None,
                html: true,
            }),
    );
    let client = client_for::<A>(fake.base_url());
    let outcome = client.wait(&job, fast_policy());
    let _ = client.status(&job);
    finished(outcome);
    let text = capture.text();
    assert_no_key_in(&text);
    assert!(
        !text.to_ascii_lowercase().contains("authorization"),
        "{text}"
    );
    let path = &status_requests(&fake, &id)[0].path;
    for mark in [
        "fullstory_batch.request",
        "stage=wait",
        "attempt=1",
        "attempt=2",
        "attempt=3",
        "http.status=503",
        "http.status=200",
        path.as_str(),
    ] {
        assert!(text.contains(mark), "{}: no {mark:?} in {text}", A::NAME);
    }
    for mark in A::trace_marks(&id) {
        assert!(text.contains(&mark), "{}: no {mark:?} in {text}", A::NAME);
    }
}

// ---- waits end to end ----

/// One fault after another on the polls of a finished job (each the adapter's to sort or
/// to read), then the answer: every error shows in the progress events, then the job ends.
pub fn a_wait_recovers_from_every_fault<A: Adapter>() {
    let fake = fake().manual_clock().start_blocking().unwrap();
    let (id, job) = insert_job(&fake);
    fake.advance(Duration::from_secs(5));
    let faults = [
        Fault::ConnectionReset,
        Fault::TruncatedBody,
        Fault::Http500 {
            retry_after: None,
            html: true,
        },
        Fault::Http502 {
            retry_after: None,
            html: false,
        },
        Fault::Http504 {
            retry_after: None,
            html: true,
        },
        Fault::Stall(Duration::from_secs(5)),
    ];
    for (n, fault) in faults.into_iter().enumerate() {
        fake.script(
            Script::on(Route::Status)
                .for_job(id.as_str())
                .nth(n + 1)
                .respond(fault),
        );
    }
    let options = Options::default().request_timeout(Duration::from_millis(300));
    let client = A::new(config(fake.base_url()).with_body_limit(16 * 1024), options);
    let started = Instant::now();
    let events = client.watch(&job, fast_policy());
    let took = started.elapsed();
    let (last, progress) = events.split_last().expect("events");
    let Event::Done(outcome) = last else {
        panic!("{last:?}")
    };
    assert!(outcome.is_completed(), "{outcome:?}");
    let kinds: Vec<&str> = progress
        .iter()
        .map(|event| {
            let Event::Progress(p) = event else {
                panic!("{event:?}")
            };
            let e = p
                .last_error
                .as_ref()
                .expect("each poll before the last failed");
            assert_no_key(e);
            e.kind()
        })
        .collect();
    let expected = [
        "reset",
        "malformed_response",
        "server_error",
        "server_error",
        "server_error",
        "timeout",
    ];
    assert_eq!(kinds, expected);
    assert!(took < Duration::from_secs(5), "{took:?}");
}

/// The gap between the first status request of `id` (which met the fault) and the next.
fn gap_after(fake: &fullstory_batch_fake::FakeServer, id: &str, faulted: usize) -> Duration {
    let requests = status_requests(fake, id);
    assert!(requests.len() > faulted, "{requests:?}");
    assert!(requests[faulted - 1].fault.is_some(), "{requests:?}");
    requests[faulted]
        .instant
        .duration_since(requests[faulted - 1].instant)
}

/// `Retry-After: 1` on a 429 and on a 503 holds the next poll back a second, end to end
/// (the header reaches the core, the adapter sleeps as told).
pub fn retry_after_seconds_is_obeyed<A: Adapter>() {
    let faults = [
        Fault::TooManyRequests {
            retry_after: FakeRetryAfter::Seconds(1),
            date_skew_secs: 0,
        },
        Fault::Http503 {
            retry_after: Some(FakeRetryAfter::Seconds(1)),
            html: false,
        },
    ];
    thread::scope(|scope| {
        for fault in faults {
            scope.spawn(move || {
                let (fake, id) = finished_job_failing_first(fault, 1);
                let client = client_for::<A>(fake.base_url());
                assert!(client.wait(&events_job(&id), fast_policy()).is_completed());
                let gap = gap_after(&fake, &id, 1);
                assert!(gap >= Duration::from_secs(1), "retried after {gap:?}");
                assert!(gap < Duration::from_millis(2500), "waited {gap:?}");
            });
        }
    });
}

/// `Retry-After` as an HTTP date one second after the server's own `Date`, from a server
/// whose clock runs an hour ahead (then behind): the wait is one second either way, so
/// the `Date` header reaches the core too.
pub fn retry_after_http_date_is_read_against_the_server_date<A: Adapter>() {
    thread::scope(|scope| {
        for skew in [3600, -3600] {
            scope.spawn(move || {
                let fault = Fault::TooManyRequests {
                    retry_after: FakeRetryAfter::HttpDate(1),
                    date_skew_secs: skew,
                };
                let (fake, id) = finished_job_failing_first(fault, 2);
                let client = client_for::<A>(fake.base_url());
                let job = events_job(&id);
                // One look at the answer itself: the dates are the server's.
                let e = api_error(client.status(&job));
                let Some(RetryAfter::At {
                    date,
                    server_date: Some(server_date),
                }) = e.retry_after()
                else {
                    panic!("expected an http-date retry-after with a date: {e:?}");
                };
                assert_eq!(
                    date.duration_since(server_date).unwrap(),
                    Duration::from_secs(1)
                );
                let off = if skew > 0 {
                    server_date
                        .duration_since(SystemTime::now())
                        .unwrap_or_default()
                } else {
                    SystemTime::now()
                        .duration_since(server_date)
                        .unwrap_or_default()
                };
                assert!(
                    off > Duration::from_secs(3590),
                    "skew {skew}: server date off by {off:?}"
                );

                assert!(client.wait(&job, fast_policy()).is_completed());
                let gap = gap_after(&fake, &id, 2);
                assert!(
                    gap >= Duration::from_secs(1),
                    "skew {skew}: retried after {gap:?}"
                );
                assert!(
                    gap < Duration::from_millis(2500),
                    "skew {skew}: waited {gap:?}"
                );
            });
        }
    });
}

/// A 404 ends the wait after one request, with the error (and no key) in the stop.
pub fn a_wait_gives_up_on_404_after_one_request<A: Adapter>() {
    let fake = fake().start_blocking().unwrap();
    let job = events_job("missing");
    let stop = stopped(client_for::<A>(fake.base_url()).wait(&job, fast_policy()));
    assert_eq!(stop.stage, Stage::Wait);
    assert_eq!(stop.job.as_ref(), Some(&job));
    let StopReason::GaveUp(e) = &stop.reason else {
        panic!("{stop:?}")
    };
    assert!(matches!(e, Error::Api(ApiError::NotFound(_))), "{e:?}");
    assert_no_key(&stop);
    assert_eq!(fake.requests().len(), 1);
}

/// A job that ended FAILED finishes (it is not a stop), with its counts.
pub fn a_failed_job_finishes_with_its_counts<A: Adapter>() {
    let fake = fake().manual_clock().start_blocking().unwrap();
    let items = vec![
        serde_json::json!({"name": "ok"}),
        serde_json::json!({"name": "bad-one"}),
    ];
    let id = fake.insert_job(FakeResource::Events, items);
    fake.advance(Duration::from_secs(5));
    let outcome = client_for::<A>(fake.base_url()).wait(&events_job(&id), fast_policy());
    assert!(!outcome.is_completed());
    let status = finished(outcome);
    assert_eq!(status.job.status, JobState::Failed);
    assert_eq!((status.imports, status.errors), (1, 1));
}

/// Nothing listens and nothing ever answered: the wait stops after three attempts (the
/// core's `connect_attempts_at_start`), each failure sorted as `Connect`.
pub fn refused_with_no_answer_ever_stops_after_three_attempts<A: Adapter>() {
    let client = client_for::<A>(&refused_base_url());
    let job = events_job("x");
    let events = client.watch(&job, fast_policy());
    let (last, progress) = events.split_last().expect("events");
    let attempts: Vec<u32> = progress
        .iter()
        .map(|event| {
            let Event::Progress(p) = event else {
                panic!("{event:?}")
            };
            let kind = p.last_error.as_ref().map(Error::kind);
            assert_eq!(kind, Some("connect"), "{p:?}");
            p.attempts
        })
        .collect();
    assert_eq!(attempts, [1, 2], "the third attempt ends it");
    let Event::Done(outcome) = last else {
        panic!("{last:?}")
    };
    let stop = stopped(outcome.clone());
    let StopReason::TooManyErrors(Error::Transport(t)) = &stop.reason else {
        panic!("{stop:?}")
    };
    assert_eq!(t.kind, TransportKind::Connect);
    assert_no_key(&stop);
}

// ---- many jobs ----

/// No jobs: no events, no requests.
pub fn wait_many_of_nothing_sends_nothing<A: Adapter>() {
    let fake = fake().start_blocking().unwrap();
    let results =
        client_for::<A>(fake.base_url()).wait_many(Vec::new(), fast_policy(), Budget::new(1.0, 1));
    assert!(results.is_empty());
    assert!(fake.requests().is_empty());
}

/// Each job's outcome comes once, under the key of its place in the input.
pub fn wait_many_reports_each_job_under_its_key<A: Adapter>() {
    let fake = fake().manual_clock().start_blocking().unwrap();
    let good = fake.insert_job(
        FakeResource::Events,
        vec![serde_json::json!({"name": "ok"})],
    );
    let bad = fake.insert_job(
        FakeResource::Events,
        vec![serde_json::json!({"name": "bad"})],
    );
    fake.advance(Duration::from_secs(5));
    let late = fake.insert_job(
        FakeResource::Events,
        vec![serde_json::json!({"name": "ok"})],
    );
    let jobs = vec![
        events_job(&good),
        events_job("missing"),
        events_job(&bad),
        events_job(&late),
    ];
    let policy = fast_policy_with_timeout(Duration::from_millis(400));
    let results = client_for::<A>(fake.base_url()).wait_many(jobs, policy, Budget::new(1000.0, 10));
    let by_key: HashMap<u64, Outcome> = results
        .iter()
        .map(|(k, o)| (k.index(), o.clone()))
        .collect();
    assert_eq!(results.len(), 4);
    assert_eq!(by_key.len(), 4, "each job once: {results:?}");
    assert!(by_key[&0].is_completed(), "{:?}", by_key[&0]);
    let stop = stopped(by_key[&1].clone());
    assert!(
        matches!(
            stop.reason,
            StopReason::GaveUp(Error::Api(ApiError::NotFound(_)))
        ),
        "{stop:?}"
    );
    assert_eq!(finished(by_key[&2].clone()).job.status, JobState::Failed);
    let stop = stopped(by_key[&3].clone());
    assert!(
        matches!(stop.reason, StopReason::DeadlineExceeded),
        "{stop:?}"
    );
    assert_eq!(
        stop.last_status.map(|s| s.job.status),
        Some(JobState::Processing)
    );
}

/// Sixty jobs through a relay that counts sockets: never more open than the cap. Each job
/// runs until every job was polled once (the fake's clock stands still till then), so the
/// cap holds over repeated polls however slow the machine.
pub fn wait_many_holds_the_connection_cap<A: Adapter>() {
    let fake = fake()
        .manual_clock()
        .org_limits(OrgLimits::unlimited())
        .start_blocking()
        .unwrap();
    let jobs: Vec<_> = (0..60).map(|_| insert_job(&fake).1).collect();
    let proxy = CountingProxy::start(fake.addr());
    let cap = 4;
    let client = A::new(
        config(&proxy.base_url()),
        Options::default().max_connections(cap),
    );
    let waited = AtomicBool::new(false);
    let results = thread::scope(|scope| {
        scope.spawn(|| {
            while fake.stats().requests.status < 60 && !waited.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(10));
            }
            fake.advance(Duration::from_secs(5));
        });
        let results = client.wait_many(jobs, fast_policy(), Budget::new(1000.0, 50));
        waited.store(true, Ordering::SeqCst);
        results
    });
    assert_eq!(results.len(), 60);
    for (key, outcome) in &results {
        assert!(outcome.is_completed(), "{key:?}: {outcome:?}");
    }
    let polls = fake
        .requests()
        .iter()
        .filter(|r| r.route == Some(Route::Status))
        .count();
    assert!(polls >= 120, "{polls} polls");
    assert!(proxy.total() >= 1);
    assert!(
        proxy.peak() <= cap,
        "{}: {} connections open at once, cap {cap}",
        A::NAME,
        proxy.peak()
    );
}

/// Thirty jobs through random faults on a few connections: every one finishes.
pub fn wait_many_through_random_faults<A: Adapter>() {
    let kinds = [
        FaultKind::Http500,
        FaultKind::Http503,
        FaultKind::ConnectionReset,
        FaultKind::TruncatedBody,
    ];
    let fake = fake()
        .processing_time(Duration::from_millis(100))
        .random_faults(0.25, 7, &kinds)
        .start_blocking()
        .unwrap();
    let jobs: Vec<_> = (0..30).map(|_| insert_job(&fake).1).collect();
    let client = A::new(
        config(fake.base_url()),
        Options::default().max_connections(3),
    );
    let results = client.wait_many(jobs, fast_policy(), Budget::new(1000.0, 50));
    assert_eq!(results.len(), 30);
    for (key, outcome) in &results {
        assert!(outcome.status().is_some(), "{key:?}: {outcome:?}");
    }
    assert!(
        fake.requests().iter().any(|r| r.fault.is_some()),
        "some requests met a fault"
    );
}

// ---- imports end to end ----

/// Create, wait, every imports page, the errors page: 46 of 50 imported in pages of 7,
/// 4 failed with the server's reasons, one job.
pub fn import_with_a_partial_failure_across_pages<A: Adapter>() {
    let fake = fake()
        .processing_time(Duration::from_millis(200))
        .page_size(7)
        .start_blocking()
        .unwrap();
    let report = client_for::<A>(fake.base_url())
        .import(&events(50, 4), None, fast_policy())
        .unwrap();
    assert_eq!(
        report.outcome.status().map(|s| s.job.status.clone()),
        Some(JobState::Failed)
    );
    assert!(report.job.is_some());
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
    assert_eq!(count_paths(&fake, "/imports"), 7, "46 items in pages of 7");
    assert_eq!(count_paths(&fake, "/errors"), 1);
    assert_eq!(fake.jobs_created(), 1);
}

/// Users, all imported: a COMPLETED job has no errors page to read.
pub fn import_of_users_reads_no_error_pages<A: Adapter>() {
    let fake = fake()
        .processing_time(Duration::from_millis(100))
        .start_blocking()
        .unwrap();
    let users: Vec<UserRequest> = (0..5)
        .map(|i| UserRequest {
            uid: Some(format!("u{i}")),
            ..UserRequest::default()
        })
        .collect();
    let report = client_for::<A>(fake.base_url())
        .import(&users, None, fast_policy())
        .unwrap();
    assert!(report.outcome.is_completed(), "{:?}", report.outcome);
    assert_eq!(report.imported.len(), 5);
    assert_eq!(report.imported[0].uid.as_deref(), Some("u0"));
    assert_eq!(count_paths(&fake, "/errors"), 0);
}

/// The first create is accepted but its answer lost: the retry carries the same
/// idempotency key and body, and exactly one job exists.
pub fn a_lost_create_answer_makes_one_job<A: Adapter>() {
    let fake = fake()
        .processing_time(Duration::from_millis(100))
        .start_blocking()
        .unwrap();
    fake.script(
        Script::on(Route::Create)
            .nth(1)
            .respond(Fault::AcceptThenFail),
    );
    let key = IdempotencyKey::new("import-42").unwrap();
    let report = client_for::<A>(fake.base_url())
        .import(&events(3, 0), Some(key), fast_policy())
        .unwrap();
    assert!(report.outcome.is_completed(), "{:?}", report.outcome);
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
    assert_eq!(creates[0].body_len, creates[1].body_len);
}

/// A page request that fails is sent again.
pub fn a_failed_page_request_is_retried<A: Adapter>() {
    let fake = fake()
        .processing_time(Duration::from_millis(50))
        .start_blocking()
        .unwrap();
    fake.script(Script::on(Route::Imports).nth(1).respond(Fault::Http503 {
        retry_after: None,
        html: true,
    }));
    let report = client_for::<A>(fake.base_url())
        .import(&events(4, 0), None, fast_policy())
        .unwrap();
    assert_eq!(report.imported.len(), 4);
    assert_eq!(count_paths(&fake, "/imports"), 2);
}

/// An item that breaks a limit, or no item at all, is refused before anything is sent.
pub fn invalid_items_send_nothing<A: Adapter>() {
    let fake = fake().start_blocking().unwrap();
    let client = client_for::<A>(fake.base_url());
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
    let err = client
        .import::<fullstory_batch::EventRequest>(&[], None, fast_policy())
        .unwrap_err();
    assert_eq!(err, ValidationError::Empty);
    assert!(fake.requests().is_empty());
}

// ---- create alone ----

/// `create` makes the job and returns it after one request, with the idempotency key: it
/// waits for nothing and reads nothing.
pub fn create_makes_one_job_and_returns_it<A: Adapter>() {
    let fake = fake()
        .processing_time(Duration::from_secs(60))
        .start_blocking()
        .unwrap();
    let key = IdempotencyKey::new("create-7").unwrap();
    let job = client_for::<A>(fake.base_url())
        .create(&events(3, 0), Some(key), fast_policy())
        .unwrap();
    assert_eq!(job.resource, Resource::Events);
    let made = fake.job(job.id.as_str()).expect("the job exists");
    assert_eq!(made.items, 3);
    assert_eq!(made.idempotency_key.as_deref(), Some("create-7"));
    let requests = fake.requests();
    assert_eq!(requests.len(), 1, "one create, no status: {requests:?}");
    assert_eq!(requests[0].route, Some(Route::Create));
    assert_eq!(requests[0].header("idempotency-key"), Some("create-7"));
    assert_eq!(fake.jobs_created(), 1);
}

/// A create that fails is sent again with the same key and body: one job.
pub fn a_create_is_retried_under_its_key<A: Adapter>() {
    let fake = fake().start_blocking().unwrap();
    fake.script(Script::on(Route::Create).nth(1).respond(Fault::Http503 {
        retry_after: None,
        html: true,
    }));
    let job = client_for::<A>(fake.base_url())
        .create(&events(2, 0), None, fast_policy())
        .unwrap();
    assert!(fake.job(job.id.as_str()).is_some());
    assert_eq!(fake.jobs_created(), 1);
    let creates = fake.requests();
    assert_eq!(creates.len(), 2, "{creates:?}");
    let key = creates[0]
        .header("idempotency-key")
        .expect("a key is always sent");
    assert_eq!(creates[1].header("idempotency-key"), Some(key));
    assert_eq!(creates[0].body_len, creates[1].body_len);
}

/// An invalid item sends nothing; a server never reached stops at create, saying where.
pub fn a_create_that_never_succeeds_says_why<A: Adapter>() {
    let fake = fake().start_blocking().unwrap();
    let mut items = events(2, 0);
    items[0].name.clear();
    let err = client_for::<A>(fake.base_url())
        .create(&items, None, fast_policy())
        .unwrap_err();
    assert!(
        matches!(
            err,
            CreateError::Invalid(ValidationError::Item { index: 0, .. })
        ),
        "{err:?}"
    );
    assert!(fake.requests().is_empty());

    let base_url = refused_base_url();
    let err = client_for::<A>(&base_url)
        .create(&events(2, 0), None, fast_policy())
        .unwrap_err();
    let CreateError::Stopped(stop) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(stop.stage, Stage::Create);
    assert!(stop.job.is_none());
    let StopReason::TooManyErrors(Error::Transport(t)) = &stop.reason else {
        panic!("{stop:?}")
    };
    assert_eq!(t.kind, TransportKind::Connect);
    let chain = error_chain(&err);
    let target = base_url.trim_start_matches("http://");
    assert_eq!(chain.matches(target).count(), 1, "{chain}");
    assert_no_key(&err);
}
