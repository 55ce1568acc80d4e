//! `Client::status`: one request, every answer sorted into the core's typed errors.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use fullstory_batch::{ErrorBody, ErrorCode, RetryAfter};
use fullstory_batch_fake::{Fault, Resource as FakeResource, Route, Script};
use fullstory_batch_hyper::{ApiError, Client, ClientOptions, Error, JobState, TransportKind};

fn api_error(result: Result<fullstory_batch_hyper::JobStatusResponse, Error>) -> ApiError {
    match result {
        Err(Error::Api(e)) => {
            assert_error_has_no_key(&Error::Api(e.clone()));
            e
        }
        other => panic!("expected an api error, got {other:?}"),
    }
}

fn transport_kind(
    result: Result<fullstory_batch_hyper::JobStatusResponse, Error>,
) -> TransportKind {
    match result {
        Err(e @ Error::Transport(_)) => {
            assert_error_has_no_key(&e);
            let Error::Transport(t) = e else {
                unreachable!()
            };
            assert!(
                std::error::Error::source(&t).is_some(),
                "{t:?} keeps no source"
            );
            t.kind
        }
        other => panic!("expected a transport error, got {other:?}"),
    }
}

#[tokio::test]
async fn success_and_request_shape() {
    let fake = fake_builder().manual_clock().start().await.unwrap();
    let id = fake.insert_job(FakeResource::Events, one_event());
    let client = client(fake.base_url(), ClientOptions::new());
    let job = events_job(&id);

    let status = client.status(&job).await.unwrap();
    assert_eq!(status.job.status, JobState::Processing);
    assert_eq!(status.job.id, id);

    fake.advance(Duration::from_secs(5));
    let status = client.status(&job).await.unwrap();
    assert_eq!(status.job.status, JobState::Completed);
    assert_eq!(status.imports, 1);

    let log = fake.requests();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].method, "GET");
    assert_eq!(log[0].route, Some(Route::Status));
    assert_eq!(log[0].header("authorization"), Some("Basic [redacted]"));
    assert_eq!(log[0].header("accept"), Some("application/json"));
    assert_no_key(&format!("{client:?}"));
}

#[tokio::test]
async fn status_400_invalid_input() {
    let body = br#"{"message":"job id is malformed","code":"invalid_argument"}"#;
    let response: &'static [u8] = Box::leak(
        [
            format!(
                "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
            body,
        ]
        .concat()
        .into_boxed_slice(),
    );
    let (addr, _server) = canned(response).await;
    let client = client(&format!("http://{addr}"), ClientOptions::new());
    let err = api_error(client.status(&events_job("x")).await);
    assert!(matches!(err, ApiError::InvalidInput(_)), "{err:?}");
    assert_eq!(err.status(), 400);
    assert_eq!(
        err.error_response().map(|e| &e.code),
        Some(&ErrorCode::InvalidArgument)
    );
}

#[tokio::test]
async fn status_401_wrong_key() {
    let fake = fake_builder().start().await.unwrap();
    let id = fake.insert_job(FakeResource::Events, one_event());
    let wrong = Client::new(
        config_for(fake.base_url(), "wrong-key-1234"),
        ClientOptions::new(),
    )
    .unwrap();
    let err = api_error(wrong.status(&events_job(&id)).await);
    assert!(matches!(err, ApiError::Unauthorized(_)), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("wrong-key-1234"));
}

#[tokio::test]
async fn status_403_forbidden() {
    let fake = fake_builder()
        .key_without_permission("read-only-key")
        .start()
        .await
        .unwrap();
    let id = fake.insert_job(FakeResource::Events, one_event());
    let client = Client::new(
        config_for(fake.base_url(), "read-only-key"),
        ClientOptions::new(),
    )
    .unwrap();
    let err = api_error(client.status(&events_job(&id)).await);
    assert!(matches!(err, ApiError::Forbidden(_)), "{err:?}");
}

#[tokio::test]
async fn status_404_not_found() {
    let fake = fake_builder().start().await.unwrap();
    let client = client(fake.base_url(), ClientOptions::new());
    let err = api_error(client.status(&events_job("no-such-job")).await);
    assert!(matches!(err, ApiError::NotFound(_)), "{err:?}");
    assert_eq!(
        err.error_response().map(|e| &e.code),
        Some(&ErrorCode::ResourceNotFound)
    );
}

#[tokio::test]
async fn status_429_keeps_retry_after() {
    let fake = fake_builder().start().await.unwrap();
    let id = fake.insert_job(FakeResource::Events, one_event());
    fake.script(Script::on(Route::Status).respond(Fault::TooManyRequests {
        retry_after: fullstory_batch_fake::RetryAfter::Seconds(7),
        date_skew_secs: 0,
    }));
    let client = client(fake.base_url(), ClientOptions::new());
    let err = api_error(client.status(&events_job(&id)).await);
    assert!(matches!(err, ApiError::RateLimited(_)), "{err:?}");
    assert_eq!(
        err.retry_after(),
        Some(RetryAfter::Delay(Duration::from_secs(7)))
    );
}

#[tokio::test]
async fn status_5xx_json_and_html() {
    let fake = fake_builder().start().await.unwrap();
    let id = fake.insert_job(FakeResource::Events, one_event());
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
                retry_after: Some(fullstory_batch_fake::RetryAfter::Seconds(3)),
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
    let client = client(fake.base_url(), ClientOptions::new());
    for (code, fault) in faults {
        let html = matches!(
            fault,
            Fault::Http502 { html: true, .. } | Fault::Http504 { html: true, .. }
        );
        fake.script(Script::on(Route::Status).respond(fault));
        let err = api_error(client.status(&events_job(&id)).await);
        assert!(matches!(err, ApiError::Server(_)), "{err:?}");
        assert_eq!(err.status(), code);
        let body = &err.details().unwrap().body;
        if html {
            assert!(
                matches!(body, ErrorBody::Raw(raw) if raw.contains("<html>")),
                "{body:?}"
            );
        } else {
            assert!(matches!(body, ErrorBody::Api(_)), "{body:?}");
        }
        if code == 503 {
            assert_eq!(
                err.retry_after(),
                Some(RetryAfter::Delay(Duration::from_secs(3)))
            );
        }
        fake.clear_scripts();
    }
}

#[tokio::test]
async fn reset_mid_body() {
    let fake = fake_builder().start().await.unwrap();
    let id = fake.insert_job(FakeResource::Events, one_event());
    fake.script(Script::on(Route::Status).respond(Fault::ConnectionReset));
    let client = client(fake.base_url(), ClientOptions::new());
    assert_eq!(
        transport_kind(client.status(&events_job(&id)).await),
        TransportKind::Reset
    );
    // The next request gets a fresh connection and succeeds.
    client.status(&events_job(&id)).await.unwrap();
}

#[tokio::test]
async fn stall_before_headers_times_out() {
    let fake = fake_builder().start().await.unwrap();
    let id = fake.insert_job(FakeResource::Events, one_event());
    fake.script(Script::on(Route::Status).respond(Fault::Stall(Duration::from_secs(5))));
    let options = ClientOptions::new().with_request_timeout(Duration::from_millis(200));
    let client = client(fake.base_url(), options);
    let started = std::time::Instant::now();
    assert_eq!(
        transport_kind(client.status(&events_job(&id)).await),
        TransportKind::Timeout
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

#[tokio::test]
async fn slow_drip_counts_against_the_request_timeout() {
    let fake = fake_builder().start().await.unwrap();
    let id = fake.insert_job(FakeResource::Events, one_event());
    fake.script(Script::on(Route::Status).respond(Fault::SlowDrip {
        chunk: 4,
        delay: Duration::from_millis(50),
    }));
    let options = ClientOptions::new().with_request_timeout(Duration::from_millis(300));
    let client = client(fake.base_url(), options);
    // The headers come at once; the body would take seconds.
    assert_eq!(
        transport_kind(client.status(&events_job(&id)).await),
        TransportKind::Timeout
    );
}

#[tokio::test]
async fn oversized_body_refused_by_content_length() {
    let fake = fake_builder().start().await.unwrap();
    let id = fake.insert_job(FakeResource::Events, one_event());
    fake.script(Script::on(Route::Status).respond(Fault::OversizedBody { bytes: 4 << 20 }));
    let config = config_for(fake.base_url(), KEY).with_body_limit(64 * 1024);
    let client = Client::new(config, ClientOptions::new()).unwrap();
    assert_eq!(
        transport_kind(client.status(&events_job(&id)).await),
        TransportKind::BodyTooLarge
    );
}

#[tokio::test]
async fn endless_body_stops_at_the_limit() {
    let server = EndlessBody::start().await;
    let limit = 64 * 1024;
    let config = config_for(&format!("http://{}", server.addr), KEY).with_body_limit(limit);
    let client = Client::new(config, ClientOptions::new()).unwrap();
    // An endless body: returning at all shows reading stopped.
    let kind = transport_kind(client.status(&events_job("x")).await);
    assert_eq!(kind, TransportKind::BodyTooLarge);
    // And the connection was dropped: the server's writes start failing.
    for _ in 0..200 {
        if server.hung_up.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        server.hung_up.load(Ordering::SeqCst),
        "the client kept the connection open"
    );
    // What the server got out is the limit plus what the kernel buffers held.
    let written = server.written.load(Ordering::SeqCst);
    assert!(written < 32 << 20, "{written} bytes written");
}

#[tokio::test]
async fn truncated_json_is_malformed() {
    let fake = fake_builder().start().await.unwrap();
    let id = fake.insert_job(FakeResource::Events, one_event());
    fake.script(Script::on(Route::Status).respond(Fault::TruncatedBody));
    let client = client(fake.base_url(), ClientOptions::new());
    let err = api_error(client.status(&events_job(&id)).await);
    assert!(matches!(err, ApiError::Malformed(_)), "{err:?}");
}

#[tokio::test]
async fn connection_refused() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = client(&format!("http://{addr}"), ClientOptions::new());
    assert_eq!(
        transport_kind(client.status(&events_job("x")).await),
        TransportKind::Connect
    );
}

/// A redirect is an error, never followed: the key must not travel to another host.
#[tokio::test]
async fn redirects_are_not_followed() {
    let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other_addr = other.local_addr().unwrap();
    let response: &'static [u8] = Box::leak(
        format!(
            "HTTP/1.1 302 Found\r\nlocation: http://{other_addr}/steal\r\ncontent-length: 0\r\n\r\n"
        )
        .into_bytes()
        .into_boxed_slice(),
    );
    let (addr, _server) = canned(response).await;
    let client = client(&format!("http://{addr}"), ClientOptions::new());
    let err = api_error(client.status(&events_job("x")).await);
    assert!(matches!(err, ApiError::UnexpectedStatus(_)), "{err:?}");
    assert_eq!(err.status(), 302);
    let accepted =
        tokio::time::timeout(std::time::Duration::from_millis(200), other.accept()).await;
    assert!(accepted.is_err(), "the redirect target got a connection");
}
