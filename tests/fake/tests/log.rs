//! The request log: contents, redaction, capacity.

mod common;

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use common::{Client, KEY, encode_id, events};
use fullstory_batch_fake::{FakeServer, Fault, FaultKind, Resource, Route, Script};
use hyper::Method;
use serde_json::json;

const SECRET: &str = "s3cr3t-key-value";

#[tokio::test]
async fn logs_every_request_with_authorization_redacted() {
    let fake = FakeServer::builder()
        .key(SECRET)
        .key_without_permission("ro-secret")
        .manual_clock()
        .start()
        .await
        .unwrap();
    let client = Client::new(&fake).with_key(Some(SECRET));
    let before = SystemTime::now();
    let body = Bytes::from(json!({"requests": events(2, &[])}).to_string());
    let created = client
        .send(
            Method::POST,
            "/v2/events/batch",
            &[
                ("idempotency-key", "idem-1"),
                ("integration-source", "tests"),
            ],
            body.clone(),
        )
        .await;
    let id = created.json()["job"]["id"].as_str().unwrap().to_owned();
    fake.advance(Duration::from_secs(3));
    fake.script(Script::on(Route::Errors).respond(Fault::Http503 {
        retry_after: None,
        html: true,
    }));
    client
        .get(&format!(
            "/v2/events/batch/{}/errors?page_token=",
            encode_id(&id)
        ))
        .await;
    client
        .with_key(Some("ro-secret"))
        .get("/v2/users/batch/x")
        .await;

    let log = fake.requests();
    assert_eq!(log.len(), 3);
    let create = &log[0];
    assert_eq!(
        (create.method.as_str(), create.path.as_str()),
        ("POST", "/v2/events/batch")
    );
    assert_eq!(
        (create.route, create.resource, create.status, create.fault),
        (Some(Route::Create), Some(Resource::Events), Some(200), None)
    );
    assert_eq!(create.body_len, body.len());
    assert_eq!(create.header("Idempotency-Key"), Some("idem-1"));
    assert_eq!(create.header("integration-source"), Some("tests"));
    assert_eq!(create.header("authorization"), Some("Basic [redacted]"));
    assert!(create.system_time >= before);
    assert_eq!(create.clock, Duration::ZERO);

    let errors = &log[1];
    assert_eq!(
        (errors.route, errors.status, errors.fault),
        (Some(Route::Errors), Some(503), Some(FaultKind::Http503))
    );
    assert_eq!(errors.job_id.as_deref(), Some(id.as_str()));
    assert_eq!(errors.query.as_deref(), Some("page_token="));
    assert_eq!(errors.clock, Duration::from_secs(3));
    assert!(errors.instant >= create.instant && errors.seq > create.seq);
    assert_eq!(log[2].status, Some(403));

    let debug = format!("{log:?} {fake:?}");
    assert!(
        !debug.contains(SECRET) && !debug.contains("ro-secret"),
        "a key leaked: {debug}"
    );
    assert!(debug.contains("[redacted]"));
}

#[tokio::test]
async fn capacity_keeps_the_newest_and_zero_turns_it_off() {
    let fake = FakeServer::builder()
        .request_log_capacity(3)
        .start()
        .await
        .unwrap();
    let client = Client::new(&fake);
    for i in 0..5 {
        client.get(&format!("/v2/events/batch/job-{i}")).await;
    }
    let paths: Vec<String> = fake.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            "/v2/events/batch/job-2",
            "/v2/events/batch/job-3",
            "/v2/events/batch/job-4"
        ]
    );
    fake.clear_requests();
    assert!(fake.requests().is_empty());

    let quiet = FakeServer::builder()
        .key(KEY)
        .request_log_capacity(0)
        .start()
        .await
        .unwrap();
    let client = Client::new(&quiet);
    client.create("events", events(1, &[])).await;
    assert!(quiet.requests().is_empty());
    assert_eq!(quiet.jobs_created(), 1);
}
