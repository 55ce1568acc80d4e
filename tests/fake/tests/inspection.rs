//! `FakeServer::stats`, the read-only `/fake/*` endpoints, and the ids of new servers.

mod common;

use std::time::Duration;

use common::{Client, KEY};
use fullstory_batch_fake::{FakeServer, Fault, FaultKind, Resource, Route, Script};
use serde_json::json;

async fn fake() -> FakeServer {
    FakeServer::builder()
        .key(KEY)
        .manual_clock()
        .processing_time(Duration::from_secs(1))
        .start()
        .await
        .unwrap()
}

fn events(n: usize) -> serde_json::Value {
    let requests: Vec<_> = (0..n).map(|i| json!({"name": format!("e{i}")})).collect();
    json!({ "requests": requests })
}

#[tokio::test]
async fn stats_count_jobs_items_and_requests_by_call() {
    let fake = fake().await;
    let client = Client::new(&fake);
    // One job created three times with the same key: one job, its items once.
    for _ in 0..3 {
        let answer = client
            .post_with_key("/v2/events/batch", &events(4), "same-key")
            .await;
        assert_eq!(answer.status, 200);
    }
    let id = client
        .create("users", json!([{"uid": "u1"}, {"uid": "bad-2"}]))
        .await;
    fake.insert_job(Resource::Events, vec![json!({"name": "x"})]);
    assert_eq!(
        client.get(&format!("/v2/users/batch/{id}")).await.status,
        200
    );
    fake.advance(Duration::from_secs(1));
    assert_eq!(
        client
            .get(&format!("/v2/users/batch/{id}/imports"))
            .await
            .status,
        200
    );
    assert_eq!(
        client
            .get(&format!("/v2/users/batch/{id}/errors"))
            .await
            .status,
        200
    );
    assert_eq!(client.get("/v2/sessions/batch").await.status, 404);
    // Unauthorised requests still count.
    let anonymous = client.with_key(None);
    assert_eq!(
        anonymous.get(&format!("/v2/users/batch/{id}")).await.status,
        401
    );

    let stats = fake.stats();
    assert_eq!((stats.jobs, stats.items), (3, 4 + 2 + 1));
    assert_eq!(stats.replayed_creates, 2);
    assert_eq!(stats.requests.create, 4);
    assert_eq!(stats.requests.status, 2);
    assert_eq!((stats.requests.imports, stats.requests.errors), (1, 1));
    assert_eq!(stats.requests.other, 1);
    assert_eq!(stats.requests.total(), 9);
    assert_eq!((stats.events.jobs, stats.events.items), (2, 5));
    assert_eq!(stats.events.requests.create, 3);
    let users = stats.resource(Resource::Users);
    assert_eq!((users.jobs, users.items, users.requests.status), (1, 2, 2));
    assert_eq!(stats.faults, 0);

    // The endpoint serves the same numbers and adds nothing to them.
    let served = anonymous.get("/fake/stats").await;
    assert_eq!(served.status, 200, "no key needed: {}", served.text());
    assert_eq!(served.header("content-type"), Some("application/json"));
    assert_eq!(served.json(), stats.to_json());
    let v = served.json();
    assert_eq!(v["jobs"], 3);
    assert_eq!(v["items"], 7);
    assert_eq!(v["requests"]["create"], 4);
    assert_eq!(v["by_resource"]["users"]["requests"]["status"], 2);
    assert_eq!(fake.stats(), stats, "inspection requests are not counted");
    assert_eq!(fake.requests().len(), 9, "nor logged");

    // The tally outlives the log.
    fake.clear_requests();
    assert_eq!(fake.stats(), stats);
}

#[tokio::test]
async fn inspection_is_never_faulted_and_read_only() {
    let fake = fake().await;
    let client = Client::new(&fake);
    fake.script(Script::on(Route::Any).always().respond(Fault::Http503 {
        retry_after: None,
        html: true,
    }));
    assert_eq!(client.get("/v2/events/batch/x").await.status, 503);
    for path in [
        "/fake/stats",
        "/fake/jobs",
        "/fake/requests",
        "/fake/stats/",
    ] {
        assert_eq!(client.get(path).await.status, 200, "{path}");
    }
    let stats = fake.stats();
    assert_eq!((stats.requests.total(), stats.faults), (1, 1));
    assert_eq!(fake.requests()[0].fault, Some(FaultKind::Http503));

    let post = client.post("/fake/stats", &json!({})).await;
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    let missing = client.get("/fake/nothing").await;
    assert_eq!(missing.status, 404);
    assert!(missing.text().contains("/fake/stats"), "{}", missing.text());
    assert_eq!(fake.stats(), stats);
}

#[tokio::test]
async fn jobs_and_requests_endpoints_list_what_the_fake_holds() {
    let fake = fake().await;
    let client = Client::new(&fake);
    let first = client
        .create("events", json!([{"name": "a"}, {"name": "bad"}]))
        .await;
    let second = fake.insert_job(Resource::Users, vec![json!({"uid": "u"})]);
    fake.advance(Duration::from_secs(1));

    let jobs = client.get("/fake/jobs").await.json();
    let jobs = jobs["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0]["id"], first.as_str());
    assert_eq!(jobs[0]["resource"], "events");
    assert_eq!(jobs[0]["status"], "FAILED");
    assert_eq!(
        (jobs[0]["items"].as_u64(), jobs[0]["errors"].as_u64()),
        (Some(2), Some(1))
    );
    assert!(jobs[0]["created"].is_string() && jobs[0]["finished"].is_string());
    assert_eq!(jobs[1]["id"], second.as_str());
    assert_eq!(jobs[1]["status"], "COMPLETED");

    let requests = client.get("/fake/requests").await.json();
    let requests = requests["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 1, "only the create: {requests:?}");
    let create = &requests[0];
    assert_eq!(create["method"], "POST");
    assert_eq!(create["path"], "/v2/events/batch");
    assert_eq!(create["status"], 200);
    assert_eq!(create["route"], "create");
    assert_eq!(create["resource"], "events");
    let text = create.to_string();
    assert!(text.contains("Basic [redacted]"), "{text}");
    assert!(!text.contains(KEY), "the key is redacted: {text}");
}

#[tokio::test]
async fn new_servers_hand_out_new_ids_unless_seeded() {
    let ids = |fake: &FakeServer| -> Vec<String> {
        (0..5)
            .map(|_| fake.insert_job(Resource::Events, vec![json!({"name": "e"})]))
            .collect()
    };
    let one = ids(&fake().await);
    let two = ids(&fake().await);
    assert!(one.iter().all(|id| !two.contains(id)), "{one:?} {two:?}");
    for id in &one {
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_=".contains(&b)),
            "{id}"
        );
    }
    let seeded = || FakeServer::builder().job_id_seed(5).start();
    assert_eq!(ids(&seeded().await.unwrap()), ids(&seeded().await.unwrap()));
    let faulty = || {
        FakeServer::builder()
            .random_faults(0.1, 9, &[FaultKind::Http500])
            .start()
    };
    assert_eq!(
        ids(&faulty().await.unwrap()),
        ids(&faulty().await.unwrap()),
        "random faults depend on paths, so a fault seed fixes the ids"
    );
}
