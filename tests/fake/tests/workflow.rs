//! The whole workflow over real HTTP: create, poll, pages.

mod common;

use std::time::Duration;

use common::{Client, KEY, encode_id, events, is_millis_utc, users};
use fullstory_batch_fake::{FakeServer, JobStatus, OrgLimits, Resource};
use serde_json::{Value, json};

async fn fake(page_size: usize) -> FakeServer {
    FakeServer::builder()
        .key(KEY)
        .manual_clock()
        .processing_time(Duration::from_secs(2))
        .page_size(page_size)
        .start()
        .await
        .unwrap()
}

/// Follows `next_page_token` to the end, checking `total_records` on the way.
async fn all_pages(client: &Client, path: &str, total: usize) -> Vec<Value> {
    let mut results = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let url = if token.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?page_token={}", encode_id(&token))
        };
        let answer = client.get(&url).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        let page = answer.json();
        assert_eq!(
            page["total_records"],
            json!(total.to_string()),
            "total_records is a string"
        );
        results.extend(page["results"].as_array().unwrap().iter().cloned());
        pages += 1;
        token = page["next_page_token"].as_str().unwrap().to_owned();
        if token.is_empty() {
            return results;
        }
        assert!(pages < 100, "paging does not end");
    }
}

#[tokio::test]
async fn events_job_from_create_to_failed_with_pages() {
    let fake = fake(2).await;
    let client = Client::new(&fake);
    let items = events(5, &[1, 3]);
    let answer = client
        .post("/v2/events/batch", &json!({ "requests": items }))
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let job = answer.json()["job"].clone();
    let id = job["id"].as_str().unwrap().to_owned();
    assert_eq!(job["status"], "PROCESSING");
    assert!(is_millis_utc(job["created"].as_str().unwrap()), "{job}");
    assert!(job.get("finished").is_none());

    let base = format!("/v2/events/batch/{}", encode_id(&id));
    let status = client.get(&base).await.json();
    assert_eq!(status, json!({"imports": 0, "errors": 0, "job": job}));
    for page in ["imports", "errors"] {
        let answer = client.get(&format!("{base}/{page}")).await;
        assert_eq!(answer.status, 202, "{page} while processing");
        assert!(answer.body.is_empty());
    }

    fake.advance(Duration::from_millis(1999));
    assert_eq!(
        client.get(&base).await.json()["job"]["status"],
        "PROCESSING"
    );
    fake.advance(Duration::from_millis(1));
    let status = client.get(&base).await.json();
    assert_eq!(status["job"]["status"], "FAILED");
    assert_eq!(
        (status["imports"].clone(), status["errors"].clone()),
        (json!(3), json!(2))
    );
    let finished = status["job"]["finished"].as_str().unwrap();
    assert!(is_millis_utc(finished));
    assert!(finished > job["created"].as_str().unwrap());

    let imports = all_pages(&client, &format!("{base}/imports"), 3).await;
    let names: Vec<&str> = imports
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["event-0", "event-2", "event-4"]);
    assert!(
        imports
            .iter()
            .all(|r| r["properties"]["index"].is_number() && r["timestamp"].is_string())
    );
    assert!(imports.iter().all(|r| r.get("schema").is_none()));

    let errors = all_pages(&client, &format!("{base}/errors"), 2).await;
    let originals: Vec<Value> = errors.iter().map(|e| e["event"].clone()).collect();
    assert_eq!(originals, [items[1].clone(), items[3].clone()]);
    assert!(
        errors
            .iter()
            .all(|e| e["code"] == "invalid_argument" && e["message"].is_string())
    );

    let truth = fake.job(&id).unwrap();
    assert_eq!(truth.status, JobStatus::Failed);
    assert_eq!((truth.items, truth.imports, truth.errors), (5, 3, 2));
    assert_eq!(truth.failed_indexes, [1, 3]);
    assert_eq!(fake.jobs_created(), 1);
}

#[tokio::test]
async fn users_job_on_v2beta_completes_with_schema_and_empty_errors() {
    let fake = fake(100).await;
    let client = Client::new(&fake);
    let answer = client
        .post("/v2beta/users/batch", &json!({ "requests": users(3, &[]) }))
        .await;
    assert_eq!(answer.status, 200);
    let id = answer.json()["job"]["id"].as_str().unwrap().to_owned();
    fake.advance(Duration::from_secs(2));

    let base = format!("/v2beta/users/batch/{}", encode_id(&id));
    let status = client.get(&base).await.json();
    assert_eq!(status["job"]["status"], "COMPLETED");
    assert_eq!(
        (status["imports"].clone(), status["errors"].clone()),
        (json!(3), json!(0))
    );
    // The same job is visible under /v2 too.
    assert_eq!(
        client
            .get(&format!("/v2/users/batch/{}", encode_id(&id)))
            .await
            .status,
        200
    );

    let page = client
        .get(&format!("{base}/imports?include_schema=true"))
        .await
        .json();
    let results = page["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    for (i, user) in results.iter().enumerate() {
        assert_eq!(user["uid"], format!("user-{i}"));
        assert_eq!(user["display_name"], format!("User {i}"));
        assert!(
            user["id"]
                .as_str()
                .unwrap()
                .chars()
                .all(|c| c.is_ascii_digit()),
            "{user}"
        );
        assert_eq!(user["schema"], json!({"properties": {"plan": "str"}}));
    }
    assert_eq!(page["next_page_token"], "");
    let errors = client.get(&format!("{base}/errors")).await.json();
    assert_eq!(
        errors,
        json!({"results": [], "total_records": "0", "next_page_token": ""})
    );
    assert_eq!(
        client
            .get(&format!("{base}/imports?include_schema=maybe"))
            .await
            .status,
        400
    );
}

#[tokio::test]
async fn users_that_break_rules_fail_individually() {
    let fake = fake(100).await;
    let client = Client::new(&fake);
    let items =
        json!([{"uid": "ok"}, {"uid": "bad-1"}, {"uid": "x", "properties": {"9lives": true}}]);
    let id = client.create("users", items.clone()).await;
    fake.advance(Duration::from_secs(2));
    let errors = client
        .get(&format!("/v2/users/batch/{}/errors", encode_id(&id)))
        .await
        .json();
    let failed: Vec<Value> = errors["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["user"].clone())
        .collect();
    assert_eq!(failed, [items[1].clone(), items[2].clone()]);
    assert!(
        errors["results"][1]["message"]
            .as_str()
            .unwrap()
            .contains("9lives")
    );
}

#[tokio::test]
async fn events_with_shared_context_conflicts_fail_those_events() {
    let fake = fake(100).await;
    let client = Client::new(&fake);
    let body = json!({
        "requests": [{"name": "a"}, {"name": "b", "context": {"browser": {"url": "https://x"}}}],
        "shared": {"context": {"browser": {"user_agent": "ua"}}}
    });
    let answer = client.post("/v2/events/batch", &body).await;
    let id = answer.json()["job"]["id"].as_str().unwrap().to_owned();
    fake.advance(Duration::from_secs(2));
    assert_eq!(fake.job(&id).unwrap().failed_indexes, [1]);
}

#[tokio::test]
async fn event_results_echo_user_session_and_timestamp() {
    let fake = fake(100).await;
    let client = Client::new(&fake);
    let items = json!([
        {"name": "a", "user": {"uid": "u1"}, "timestamp": "2022-03-15T14:23:23Z"},
        {"name": "b", "session": {"id": "123:456"}},
    ]);
    let id = client.create("events", items).await;
    fake.advance(Duration::from_secs(2));
    let page = client
        .get(&format!("/v2/events/batch/{}/imports", encode_id(&id)))
        .await
        .json();
    let first = &page["results"][0];
    assert_eq!(first["timestamp"], "2022-03-15T14:23:23Z");
    assert_eq!(first["user"]["uid"], "u1");
    assert!(first["user"]["id"].is_string());
    assert_eq!(page["results"][1]["session"], json!({"id": "123:456"}));
    assert!(is_millis_utc(
        page["results"][1]["timestamp"].as_str().unwrap()
    ));
}

#[tokio::test]
async fn job_ids_need_percent_decoding() {
    let fake = fake(100).await;
    let client = Client::new(&fake);
    let ids: Vec<String> = (0..30)
        .map(|_| fake.insert_job(Resource::Events, vec![json!({"name": "x"})]))
        .collect();
    for needle in ['=', '-', '_'] {
        assert!(
            ids.iter().any(|id| id.contains(needle)),
            "no generated id holds {needle}: {ids:?}"
        );
    }
    for id in &ids {
        let encoded = encode_id(id);
        let answer = client.get(&format!("/v2/events/batch/{encoded}")).await;
        assert_eq!(answer.status, 200, "{id} sent as {encoded}");
        assert_eq!(answer.json()["job"]["id"], json!(id));
    }
    let padded = ids.iter().find(|id| id.ends_with('=')).unwrap();
    let logged = fake.requests();
    let entry = logged
        .iter()
        .find(|r| r.job_id.as_deref() == Some(padded.as_str()))
        .unwrap();
    assert!(
        entry.path.contains("%3D"),
        "the log keeps the raw path: {}",
        entry.path
    );
}

#[tokio::test]
async fn page_tokens_are_checked() {
    let fake = fake(1).await;
    let client = Client::new(&fake);
    let first = client.create("events", events(3, &[])).await;
    let second = client.create("events", events(3, &[])).await;
    fake.advance(Duration::from_secs(2));
    let path = |id: &str| format!("/v2/events/batch/{}/imports", encode_id(id));
    let page = client.get(&path(&first)).await.json();
    let token = page["next_page_token"].as_str().unwrap().to_owned();
    assert!(!token.is_empty());
    let ok = client
        .get(&format!(
            "{}?page_token={}",
            path(&first),
            encode_id(&token)
        ))
        .await;
    assert_eq!(ok.status, 200);
    // Raw `=` in the query works too: the value is everything after the first `=`.
    let raw = client
        .get(&format!("{}?page_token={token}", path(&first)))
        .await;
    assert_eq!(raw.json(), ok.json());
    for bad in [
        format!("{}?page_token=nonsense", path(&first)),
        format!("{}?page_token={}", path(&second), encode_id(&token)),
    ] {
        let answer = client.get(&bad).await;
        assert_eq!(answer.status, 400, "{bad}");
        assert_eq!(answer.json()["code"], "invalid_argument");
    }
}

#[tokio::test]
async fn real_clock_finishes_jobs_by_itself() {
    let fake = FakeServer::builder()
        .processing_time(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    let client = Client::new(&fake); // no key configured: any key passes
    let id = client.create("events", events(1, &[])).await;
    assert_eq!(fake.job(&id).unwrap().status, JobStatus::Processing);
    tokio::time::sleep(Duration::from_millis(80)).await;
    let status = client
        .get(&format!("/v2/events/batch/{}", encode_id(&id)))
        .await
        .json();
    assert_eq!(status["job"]["status"], "COMPLETED");
    // advance() jumps a real clock forward too.
    let later = client.create("events", events(1, &[])).await;
    fake.advance(Duration::from_secs(1));
    assert_eq!(fake.job(&later).unwrap().status, JobStatus::Completed);
}

#[tokio::test]
async fn jobs_beyond_the_concurrent_slots_wait() {
    let limits = OrgLimits {
        concurrent_jobs: 2,
        ..OrgLimits::default()
    };
    let fake = FakeServer::builder()
        .manual_clock()
        .processing_time(Duration::from_secs(2))
        .org_limits(limits)
        .start()
        .await
        .unwrap();
    let ids: Vec<String> = (0..3)
        .map(|_| fake.insert_job(Resource::Users, vec![json!({"uid": "u"})]))
        .collect();
    fake.advance(Duration::from_secs(2));
    let statuses: Vec<JobStatus> = ids.iter().map(|id| fake.job(id).unwrap().status).collect();
    assert_eq!(
        statuses,
        [
            JobStatus::Completed,
            JobStatus::Completed,
            JobStatus::Processing
        ]
    );
    fake.advance(Duration::from_secs(2));
    assert_eq!(fake.job(&ids[2]).unwrap().status, JobStatus::Completed);
    assert_eq!(
        fake.jobs().iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
        ids
    );
}
