//! `Idempotency-Key`: retries make one job; a reused key with another body is refused.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{Client, Failure, KEY, events, users};
use fullstory_batch_fake::{FakeServer, Fault, FaultKind, Route, Script};
use hyper::Method;
use serde_json::json;

async fn fake() -> FakeServer {
    FakeServer::builder()
        .key(KEY)
        .manual_clock()
        .processing_time(Duration::from_secs(2))
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn same_key_and_body_is_the_same_job() {
    let fake = fake().await;
    let client = Client::new(&fake);
    let body = json!({"requests": events(3, &[])});
    let first = client
        .post_with_key("/v2/events/batch", &body, "key-1")
        .await;
    assert_eq!(first.status, 200);
    fake.advance(Duration::from_secs(5));
    let again = client
        .post_with_key("/v2/events/batch", &body, "key-1")
        .await;
    assert_eq!(again.status, 200);
    // The original answer is replayed, even after the job finished.
    assert_eq!(again.json(), first.json());
    assert_eq!(fake.jobs_created(), 1);
    let id = first.json()["job"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        fake.job(&id).unwrap().idempotency_key.as_deref(),
        Some("key-1")
    );
}

#[tokio::test]
async fn same_key_with_another_body_or_resource_is_refused() {
    let fake = fake().await;
    let client = Client::new(&fake);
    let body = json!({"requests": events(3, &[])});
    assert_eq!(
        client
            .post_with_key("/v2/events/batch", &body, "k")
            .await
            .status,
        200
    );
    let other = client
        .post_with_key(
            "/v2/events/batch",
            &json!({"requests": events(4, &[])}),
            "k",
        )
        .await;
    assert_eq!(other.status, 400);
    assert_eq!(other.json()["code"], "invalid_argument");
    let users_body = json!({"requests": users(1, &[])});
    assert_eq!(
        client
            .post_with_key("/v2/users/batch", &users_body, "k")
            .await
            .status,
        400
    );
    // Without a key, or under a new key, the same body makes new jobs.
    assert_eq!(client.post("/v2/events/batch", &body).await.status, 200);
    assert_eq!(client.post("/v2/events/batch", &body).await.status, 200);
    assert_eq!(
        client
            .post_with_key("/v2/events/batch", &body, "k2")
            .await
            .status,
        200
    );
    assert_eq!(fake.jobs_created(), 4);
}

#[tokio::test]
async fn keys_expire_after_the_ttl() {
    let fake = FakeServer::builder()
        .key(KEY)
        .manual_clock()
        .idempotency_ttl(Duration::from_secs(60))
        .start()
        .await
        .unwrap();
    let client = Client::new(&fake);
    let body = json!({"requests": events(1, &[])});
    let first = client
        .post_with_key("/v2/events/batch", &body, "k")
        .await
        .json();
    fake.advance(Duration::from_secs(61));
    let later = client
        .post_with_key("/v2/events/batch", &body, "k")
        .await
        .json();
    assert_ne!(first["job"]["id"], later["job"]["id"]);
    assert_eq!(fake.jobs_created(), 2);
}

#[tokio::test]
async fn accept_then_fail_makes_exactly_one_job_for_keyed_retries() {
    let fake = fake().await;
    let client = Client::new(&fake);
    let id = fake.script(Script::on(Route::Create).respond(Fault::AcceptThenFail));
    let body = json!({"requests": events(2, &[])});
    let failed = client
        .post_with_key("/v2/events/batch", &body, "retry-me")
        .await;
    assert_eq!(failed.status, 500);
    assert_eq!(failed.json()["code"], "server_error");
    assert_eq!(
        fake.jobs_created(),
        1,
        "the job was accepted before the failure"
    );
    let retried = client
        .post_with_key("/v2/events/batch", &body, "retry-me")
        .await;
    assert_eq!(retried.status, 200);
    assert_eq!(fake.jobs_created(), 1);
    let job = retried.json()["job"]["id"].as_str().unwrap().to_owned();
    assert_eq!(fake.jobs()[0].id, job);
    assert_eq!(fake.script_fired(id), 1);
    let logged: Vec<Option<FaultKind>> = fake.requests().iter().map(|r| r.fault).collect();
    assert_eq!(logged, [Some(FaultKind::AcceptThenFail), None]);
}

#[tokio::test]
async fn accept_then_fail_without_a_key_imports_twice() {
    let fake = fake().await;
    let client = Client::new(&fake);
    fake.script(Script::on(Route::Create).respond(Fault::AcceptThenFail));
    let body = json!({"requests": events(2, &[])});
    assert_eq!(client.post("/v2/events/batch", &body).await.status, 500);
    assert_eq!(client.post("/v2/events/batch", &body).await.status, 200);
    assert_eq!(fake.jobs_created(), 2, "why clients must send a key");
}

#[tokio::test]
async fn accept_then_reset_also_keeps_one_job() {
    let fake = fake().await;
    let client = Client::new(&fake);
    fake.script(
        Script::on(Route::Create).respond(Fault::AcceptThen(Box::new(Fault::ConnectionReset))),
    );
    let body = Bytes::from(json!({"requests": users(2, &[])}).to_string());
    let headers = [("idempotency-key", "reset-key")];
    let broken = client
        .try_send(Method::POST, "/v2/users/batch", &headers, body.clone())
        .await;
    assert!(
        matches!(broken, Err(Failure::Body { status: 200, .. })),
        "{broken:?}"
    );
    assert_eq!(fake.jobs_created(), 1);
    let retried = client
        .send(Method::POST, "/v2/users/batch", &headers, body)
        .await;
    assert_eq!(retried.status, 200);
    assert_eq!(fake.jobs_created(), 1);
}

#[tokio::test]
async fn failures_before_acceptance_make_no_job() {
    let fake = fake().await;
    let client = Client::new(&fake);
    fake.script(Script::on(Route::Create).times(2).respond(Fault::Http503 {
        retry_after: None,
        html: false,
    }));
    let body = json!({"requests": events(1, &[])});
    assert_eq!(client.post("/v2/events/batch", &body).await.status, 503);
    assert_eq!(client.post("/v2/events/batch", &body).await.status, 503);
    assert_eq!(fake.jobs_created(), 0);
    assert_eq!(client.post("/v2/events/batch", &body).await.status, 200);
    assert_eq!(fake.jobs_created(), 1);
}
