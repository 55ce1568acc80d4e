//! `Client::status`: one request, every answer typed.

mod common;

use std::time::{Duration, Instant};

use common::*;
use fullstory_batch_fake::{Fault, RetryAfter as FakeRetryAfter, Route, Script};
use fullstory_batch_ureq::fullstory_batch::{ErrorBody, ErrorCode, RetryAfter};
use fullstory_batch_ureq::{
    ApiError, ApiKey, BaseUrl, Client, Config, Error, JobId, JobRef, JobState, Resource,
    TransportKind,
};

fn api_error(result: Result<fullstory_batch_ureq::JobStatusResponse, Error>) -> ApiError {
    match result {
        Err(Error::Api(e)) => {
            assert_no_key(&Error::Api(e.clone()));
            e
        }
        other => panic!("expected an api error, got {other:?}"),
    }
}

fn transport_kind(result: Result<fullstory_batch_ureq::JobStatusResponse, Error>) -> TransportKind {
    match result {
        Err(Error::Transport(e)) => {
            let kind = e.kind;
            assert_no_key(&Error::Transport(e));
            kind
        }
        other => panic!("expected a transport error, got {other:?}"),
    }
}

#[test]
fn success_sends_the_core_request() {
    let fake = fake().manual_clock().start_blocking().unwrap();
    let (id, job) = insert_job(&fake);
    let client = client(fake.base_url());

    let status = client.status(&job).expect("a status");
    assert_eq!(status.job.id, id);
    assert_eq!(status.job.status, JobState::Processing);

    fake.advance(Duration::from_secs(5));
    let status = client.status(&job).expect("a status");
    assert_eq!(status.job.status, JobState::Completed);
    assert_eq!(status.imports, 1);

    let requests = status_requests(&fake, &id);
    assert_eq!(requests.len(), 2);
    let first = &requests[0];
    assert_eq!(first.method, "GET");
    assert_eq!(first.header("authorization"), Some("Basic [redacted]"));
    assert_eq!(first.header("accept"), Some("application/json"));
    assert!(
        first
            .header("user-agent")
            .unwrap()
            .starts_with("fullstory-batch/")
    );
    assert_eq!(
        first.header("accept-encoding"),
        None,
        "no compression is asked for"
    );
    assert_eq!(first.body_len, 0);
    assert!(
        !format!("{client:?}").contains(KEY),
        "client debug leaks the key"
    );
}

#[test]
fn unauthorized_body_is_parsed() {
    let fake = fake().start_blocking().unwrap();
    let (_, job) = insert_job(&fake);
    let config = Config::new(ApiKey::new("wrong-key").unwrap())
        .with_base_url(BaseUrl::parse_allow_http(fake.base_url()).unwrap());
    let client = Client::with_options(config, quick_options());
    let e = api_error(client.status(&job));
    assert!(matches!(e, ApiError::Unauthorized(_)), "{e:?}");
    assert_eq!(e.status().as_u16(), 401);
    let body = e.error_response().expect("a parsed error body");
    assert_eq!(body.code, ErrorCode::Unauthorized);
    assert_eq!(body.message, "access is unauthorized");
    assert!(!e.is_retryable());
}

#[test]
fn forbidden_body_is_parsed() {
    let fake = fake()
        .key_without_permission("read-only")
        .start_blocking()
        .unwrap();
    let (_, job) = insert_job(&fake);
    let config = Config::new(ApiKey::new("read-only").unwrap())
        .with_base_url(BaseUrl::parse_allow_http(fake.base_url()).unwrap());
    let e = api_error(Client::with_options(config, quick_options()).status(&job));
    assert!(matches!(e, ApiError::Forbidden(_)), "{e:?}");
    let body = e.error_response().expect("a parsed error body");
    assert_eq!(body.code, ErrorCode::Forbidden);
    assert_eq!(body.message, "insufficient permissions");
}

#[test]
fn not_found_body_is_parsed() {
    let fake = fake().start_blocking().unwrap();
    let client = client(fake.base_url());
    let job = JobRef::new(Resource::Users, JobId::new("no-such-job").unwrap());
    let e = api_error(client.status(&job));
    assert!(matches!(e, ApiError::NotFound(_)), "{e:?}");
    assert_eq!(
        e.error_response().unwrap().code,
        ErrorCode::ResourceNotFound
    );
    assert!(!e.is_retryable());
}

#[test]
fn bad_request_body_is_parsed() {
    // The fake's status route never answers 400; a raw server does.
    let body = r#"{"code":"invalid_argument","message":"job id is malformed","details":{"field":"job_id"}}"#;
    let server = RawServer::start(vec![http_response(
        "400 Bad Request",
        &[("content-type", "application/json")],
        body,
    )]);
    let client = client(&server.base_url());
    let job = JobRef::new(Resource::Events, JobId::new("x").unwrap());
    let e = api_error(client.status(&job));
    assert!(matches!(e, ApiError::InvalidInput(_)), "{e:?}");
    let parsed = e.error_response().unwrap();
    assert_eq!(parsed.code, ErrorCode::InvalidArgument);
    assert_eq!(parsed.message, "job id is malformed");
    assert!(parsed.extra.contains_key("details"));
    let head = &server.requests.lock().unwrap()[0];
    assert!(
        head.starts_with("GET /v2/events/batch/x HTTP/1.1\r\n"),
        "{head}"
    );
}

#[test]
fn rate_limited_keeps_retry_after() {
    let fake = fake().start_blocking().unwrap();
    let (id, job) = insert_job(&fake);
    fake.script(
        Script::on(Route::Status)
            .for_job(id.as_str())
            .respond(Fault::TooManyRequests {
                retry_after: FakeRetryAfter::Seconds(7),
                date_skew_secs: 0,
            }),
    );
    let e = api_error(client(fake.base_url()).status(&job));
    assert!(matches!(e, ApiError::RateLimited(_)), "{e:?}");
    assert_eq!(
        e.retry_after(),
        Some(RetryAfter::Delay(Duration::from_secs(7)))
    );
    assert_eq!(e.error_response().unwrap().code, ErrorCode::TooManyRequests);
    assert!(e.is_retryable());
}

#[test]
fn server_errors_json_and_html() {
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
    let client = client(fake.base_url());
    for (code, fault) in faults {
        let e = api_error(client.status(&job));
        assert!(matches!(e, ApiError::Server(_)), "{e:?}");
        assert_eq!(e.status().as_u16(), code);
        assert!(e.is_retryable());
        let details = e.details().unwrap();
        let html = matches!(
            fault,
            Fault::Http502 { html: true, .. } | Fault::Http504 { html: true, .. }
        );
        match &details.body {
            ErrorBody::Api(body) if !html => assert!(!body.message.is_empty()),
            ErrorBody::Raw(raw) if html => assert!(raw.contains('<'), "{raw}"),
            other => panic!("unexpected body for {code}: {other:?}"),
        }
        if code == 503 {
            assert_eq!(
                e.retry_after(),
                Some(RetryAfter::Delay(Duration::from_secs(3)))
            );
        }
    }
    // The fault answers reused the connection: error bodies are read in full.
    assert!(client.status(&job).is_ok());
}

#[test]
fn reset_mid_body_is_a_reset() {
    let fake = fake().start_blocking().unwrap();
    let (id, job) = insert_job(&fake);
    fake.script(
        Script::on(Route::Status)
            .for_job(id.as_str())
            .respond(Fault::ConnectionReset),
    );
    let client = client(fake.base_url());
    assert_eq!(transport_kind(client.status(&job)), TransportKind::Reset);
    assert!(client.status(&job).is_ok(), "the next request gets through");
}

#[test]
fn truncated_json_is_malformed() {
    let fake = fake().start_blocking().unwrap();
    let (id, job) = insert_job(&fake);
    fake.script(
        Script::on(Route::Status)
            .for_job(id.as_str())
            .respond(Fault::TruncatedBody),
    );
    let client = client(fake.base_url());
    let e = api_error(client.status(&job));
    let ApiError::Malformed(m) = &e else {
        panic!("expected malformed, got {e:?}")
    };
    assert_eq!(m.status().as_u16(), 200);
    assert!(e.is_retryable());
    assert!(client.status(&job).is_ok());
}

#[test]
fn oversized_body_is_refused() {
    let fake = fake().start_blocking().unwrap();
    let (id, job) = insert_job(&fake);
    fake.script(
        Script::on(Route::Status)
            .for_job(id.as_str())
            .respond(Fault::OversizedBody { bytes: 256 * 1024 }),
    );
    let client = Client::with_options(
        config(fake.base_url()).with_body_limit(16 * 1024),
        quick_options(),
    );
    assert_eq!(
        transport_kind(client.status(&job)),
        TransportKind::BodyTooLarge
    );
    assert!(client.status(&job).is_ok());
}

#[test]
fn oversized_chunked_body_stops_at_the_limit() {
    // No Content-Length: the limit is found while reading.
    let chunk = "x".repeat(4096);
    let mut body = String::new();
    for _ in 0..8 {
        body.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    body.push_str("0\r\n\r\n");
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n{body}"
    );
    let server = RawServer::start(vec![response.into_bytes()]);
    let client = Client::with_options(
        config(&server.base_url()).with_body_limit(10_000),
        quick_options(),
    );
    let job = JobRef::new(Resource::Events, JobId::new("x").unwrap());
    assert_eq!(
        transport_kind(client.status(&job)),
        TransportKind::BodyTooLarge
    );
}

#[test]
fn stall_hits_the_request_timeout() {
    let fake = fake().start_blocking().unwrap();
    let (id, job) = insert_job(&fake);
    fake.script(
        Script::on(Route::Status)
            .for_job(id.as_str())
            .respond(Fault::Stall(Duration::from_secs(5))),
    );
    let client = client_with(
        fake.base_url(),
        quick_options().with_request_timeout(Duration::from_millis(300)),
    );
    let started = Instant::now();
    assert_eq!(transport_kind(client.status(&job)), TransportKind::Timeout);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(client.status(&job).is_ok());
}

#[test]
fn slow_drip_past_the_timeout_is_a_timeout() {
    let fake = fake().start_blocking().unwrap();
    let (id, job) = insert_job(&fake);
    // Headers come at once, the body trickles: the timeout covers the body too.
    fake.script(
        Script::on(Route::Status)
            .for_job(id.as_str())
            .respond(Fault::SlowDrip {
                chunk: 4,
                delay: Duration::from_millis(100),
            }),
    );
    let client = client_with(
        fake.base_url(),
        quick_options().with_request_timeout(Duration::from_millis(400)),
    );
    assert_eq!(transport_kind(client.status(&job)), TransportKind::Timeout);
}

#[test]
fn refused_connection_is_connect() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = client(&format!("http://127.0.0.1:{port}"));
    let job = JobRef::new(Resource::Events, JobId::new("x").unwrap());
    assert_eq!(transport_kind(client.status(&job)), TransportKind::Connect);
}

#[test]
fn redirect_is_not_followed() {
    let elsewhere = RawServer::start(vec![http_response("200 OK", &[], "{}")]);
    let location = format!("{}/v2/events/batch/x", elsewhere.base_url());
    let server = RawServer::start(vec![http_response(
        "302 Found",
        &[("location", location.as_str())],
        "",
    )]);
    let client = client(&server.base_url());
    let job = JobRef::new(Resource::Events, JobId::new("x").unwrap());
    let e = api_error(client.status(&job));
    assert!(matches!(e, ApiError::UnexpectedStatus(_)), "{e:?}");
    assert_eq!(e.status().as_u16(), 302);
    assert_eq!(server.request_count(), 1);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(elsewhere.request_count(), 0, "the redirect was followed");
}
