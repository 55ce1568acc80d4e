//! Every error answer: validation, auth, not found, method, rate and org
//! limits, body size.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{Answer, Client, KEY, encode_id, events};
use fullstory_batch_fake::{FakeServer, OrgLimits, Resource};
use hyper::Method;
use serde_json::{Value, json};

async fn fake() -> FakeServer {
    FakeServer::builder()
        .key(KEY)
        .key("second-key")
        .key_without_permission("ro-key")
        .manual_clock()
        .max_items(10)
        .start()
        .await
        .unwrap()
}

fn assert_error(answer: &Answer, status: u16, code: &str) -> String {
    assert_eq!(answer.status, status, "{}", answer.text());
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let body = answer.json();
    assert_eq!(body["code"], code, "{body}");
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["code", "message"], "ErrorResponse shape");
    body["message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn validation_errors_name_the_item() {
    let fake = fake().await;
    let client = Client::new(&fake);
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "events",
            json!({}),
            "required_field",
            "requests is required",
        ),
        (
            "events",
            json!({"requests": "x"}),
            "invalid_argument",
            "requests must be an array",
        ),
        (
            "events",
            json!({"requests": []}),
            "invalid_argument",
            "1 to 10 items",
        ),
        (
            "events",
            json!({"requests": events(11, &[])}),
            "invalid_argument",
            "got 11",
        ),
        (
            "events",
            json!({"requests": [{"name": "a"}, {"name": "b"}, {"properties": {}}]}),
            "required_field",
            "requests[2].name is required",
        ),
        (
            "events",
            json!({"requests": [{"name": "a", "user": {"uid": "u".repeat(257)}}]}),
            "invalid_argument",
            "requests[0].user.uid must be at most 256",
        ),
        (
            "events",
            json!({"requests": [{"name": "a", "properties": [1]}]}),
            "invalid_argument",
            "requests[0].properties has the wrong type",
        ),
        (
            "users",
            json!({"requests": [{"uid": "a"}, {"uid": 7}]}),
            "invalid_argument",
            "requests[1].uid has the wrong type",
        ),
        (
            "users",
            json!({"requests": [{"display_name": "d".repeat(257)}]}),
            "invalid_argument",
            "requests[0].display_name",
        ),
        (
            "users",
            json!({"requests": [{"email": 5}]}),
            "invalid_argument",
            "requests[0].email",
        ),
    ];
    for (resource, body, code, needle) in cases {
        let answer = client.post(&format!("/v2/{resource}/batch"), &body).await;
        let message = assert_error(&answer, 400, code);
        assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    }
    let answer = client
        .send(
            Method::POST,
            "/v2/users/batch",
            &[],
            Bytes::from_static(b"{\"requests\": ["),
        )
        .await;
    assert!(assert_error(&answer, 400, "invalid_argument").contains("not valid JSON"));
    assert_eq!(fake.jobs_created(), 0, "a rejected batch makes no job");
}

#[tokio::test]
async fn auth_errors() {
    let fake = fake().await;
    let id = fake.insert_job(Resource::Events, vec![json!({"name": "x"})]);
    let client = Client::new(&fake);
    let path = format!("/v2/events/batch/{}", encode_id(&id));
    for key in [
        None,
        Some("wrong-key"),
        Some(""),
        Some("test-key-but-longer"),
    ] {
        let message = assert_error(&client.with_key(key).get(&path).await, 401, "unauthorized");
        assert_eq!(message, "access is unauthorized");
    }
    let bearer = client
        .with_key(None)
        .send(
            Method::GET,
            &path,
            &[("authorization", "Bearer test-key")],
            Bytes::new(),
        )
        .await;
    assert_error(&bearer, 401, "unauthorized");
    let forbidden = client.with_key(Some("ro-key")).get(&path).await;
    assert_eq!(
        assert_error(&forbidden, 403, "forbidden"),
        "insufficient permissions"
    );
    assert_eq!(
        client.with_key(Some("second-key")).get(&path).await.status,
        200
    );
    assert_eq!(client.get(&path).await.status, 200);
}

#[tokio::test]
async fn not_found_and_wrong_method() {
    let fake = fake().await;
    let id = fake.insert_job(Resource::Events, vec![json!({"name": "x"})]);
    let client = Client::new(&fake);
    let encoded = encode_id(&id);
    for path in [
        "/v2/events/batch/no-such-job".to_owned(),
        "/v2/events/batch/no-such-job/imports".to_owned(),
        format!("/v2/users/batch/{encoded}"),
        format!("/v2/users/batch/{encoded}/errors"),
        "/v2/sessions/batch".to_owned(),
        "/v1/events/batch".to_owned(),
        format!("/v2/events/batch/{encoded}/other"),
        "/".to_owned(),
    ] {
        assert_error(&client.get(&path).await, 404, "resource_not_found");
    }
    let wrong = client
        .send(
            Method::DELETE,
            &format!("/v2/events/batch/{encoded}"),
            &[],
            Bytes::new(),
        )
        .await;
    assert_error(&wrong, 405, "method_not_allowed");
    assert_eq!(wrong.header("allow"), Some("GET"));
    let get_create = client.get("/v2/events/batch").await;
    assert_error(&get_create, 405, "method_not_allowed");
    assert_eq!(get_create.header("allow"), Some("POST"));
}

#[tokio::test]
async fn token_bucket_per_key_with_retry_after() {
    let fake = FakeServer::builder()
        .key(KEY)
        .key("second-key")
        .manual_clock()
        .rate_limit(0.5, 2)
        .start()
        .await
        .unwrap();
    let id = fake.insert_job(Resource::Events, vec![json!({"name": "x"})]);
    let client = Client::new(&fake);
    let path = format!("/v2/events/batch/{}", encode_id(&id));
    assert_eq!(client.get(&path).await.status, 200);
    assert_eq!(client.get(&path).await.status, 200);
    let limited = client.get(&path).await;
    assert_error(&limited, 429, "too_many_requests");
    assert_eq!(
        limited.header("retry-after"),
        Some("2"),
        "one token at 0.5/s takes 2 s"
    );
    // Another key has its own bucket.
    assert_eq!(
        client.with_key(Some("second-key")).get(&path).await.status,
        200
    );
    fake.advance(Duration::from_secs(1));
    assert_eq!(client.get(&path).await.header("retry-after"), Some("1"));
    fake.advance(Duration::from_secs(1));
    assert_eq!(client.get(&path).await.status, 200);
    assert_eq!(client.get(&path).await.status, 429);
    // Unauthorized requests are refused before they can spend tokens.
    assert_eq!(client.with_key(Some("nope")).get(&path).await.status, 401);
}

#[tokio::test]
async fn org_limits_refuse_creates_until_jobs_finish() {
    let limits = OrgLimits {
        concurrent_jobs: 100,
        max_in_progress_jobs: 2,
        max_in_progress_items: 10,
    };
    let fake = FakeServer::builder()
        .key(KEY)
        .manual_clock()
        .processing_time(Duration::from_secs(30))
        .org_limits(limits)
        .start()
        .await
        .unwrap();
    let client = Client::new(&fake);
    client.create("events", events(1, &[])).await;
    fake.advance(Duration::from_millis(10_500));
    client.create("events", events(1, &[])).await;
    let refused = client
        .post("/v2/events/batch", &json!({"requests": events(1, &[])}))
        .await;
    assert_error(&refused, 429, "too_many_requests");
    assert_eq!(
        refused.header("retry-after"),
        Some("20"),
        "the first job finishes in 19.5 s"
    );
    assert_eq!(fake.jobs_created(), 2);
    fake.advance(Duration::from_secs(20));
    // One job finished: room for one more job, but not for more than 9 items.
    let too_big = client
        .post("/v2/events/batch", &json!({"requests": events(10, &[])}))
        .await;
    assert_error(&too_big, 429, "too_many_requests");
    assert_eq!(
        too_big.header("retry-after"),
        Some("10"),
        "the second job finishes in 10 s"
    );
    client.create("events", events(9, &[])).await;
    assert_eq!(fake.jobs_created(), 3);
}

#[tokio::test]
async fn default_org_limits_are_200_jobs() {
    let fake = FakeServer::builder()
        .key(KEY)
        .manual_clock()
        .start()
        .await
        .unwrap();
    let client = Client::new(&fake);
    for _ in 0..199 {
        fake.insert_job(Resource::Events, vec![json!({"name": "x"})]);
    }
    client.create("events", events(1, &[])).await;
    let refused = client
        .post("/v2/events/batch", &json!({"requests": events(1, &[])}))
        .await;
    assert_error(&refused, 429, "too_many_requests");
    fake.advance(Duration::from_secs(1));
    client.create("events", events(1, &[])).await;
}

#[tokio::test]
async fn oversized_request_bodies_get_413() {
    let fake = FakeServer::builder()
        .key(KEY)
        .max_body_bytes(1000)
        .start()
        .await
        .unwrap();
    let client = Client::new(&fake);
    let big = json!({"requests": events(40, &[])});
    assert!(big.to_string().len() > 1000);
    let answer = client.post("/v2/events/batch", &big).await;
    assert_eq!(answer.status, 413);
    assert_eq!(answer.json()["code"], "payload_too_large");
    let small = client
        .post("/v2/events/batch", &json!({"requests": events(2, &[])}))
        .await;
    assert_eq!(small.status, 200);
    assert_eq!(fake.jobs_created(), 1);
}
