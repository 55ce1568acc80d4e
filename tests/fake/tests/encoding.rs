//! Wire-format quirks real servers show, one switch at a time and all at once.

mod common;

use std::time::Duration;

use common::{Client, KEY, encode_id, events};
use fullstory_batch_fake::{EXTRA_FIELD, Encoding, FakeServer, JobStatus};
use serde_json::{Value, json};

async fn fake(encoding: Encoding) -> FakeServer {
    FakeServer::builder()
        .key(KEY)
        .manual_clock()
        .processing_time(Duration::from_secs(2))
        .page_size(2)
        .encoding(encoding)
        .start()
        .await
        .unwrap()
}

/// Creates a job of 3 events (`bad` of them failing), returns (client, status path).
async fn job(fake: &FakeServer, bad: &[usize]) -> (Client, String) {
    let client = Client::new(fake);
    let id = client.create("events", events(3, bad)).await;
    (client, format!("/v2/events/batch/{}", encode_id(&id)))
}

#[tokio::test]
async fn omit_zero_counts() {
    let fake = fake(Encoding {
        omit_zero_counts: true,
        ..Encoding::default()
    })
    .await;
    let (client, path) = job(&fake, &[]).await;
    let processing = client.get(&path).await.json();
    assert_eq!(
        processing.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["job"]
    );
    fake.advance(Duration::from_secs(2));
    let done = client.get(&path).await.json();
    assert_eq!(done["imports"], 3);
    assert!(done.get("errors").is_none(), "{done}");
}

#[tokio::test]
async fn counts_as_strings() {
    let fake = fake(Encoding {
        counts_as_strings: true,
        ..Encoding::default()
    })
    .await;
    let (client, path) = job(&fake, &[0]).await;
    assert_eq!(client.get(&path).await.json()["imports"], "0");
    fake.advance(Duration::from_secs(2));
    let done = client.get(&path).await.json();
    assert_eq!(
        (done["imports"].clone(), done["errors"].clone()),
        (json!("2"), json!("1"))
    );
}

fn has_extra(value: &Value) -> bool {
    value.get(EXTRA_FIELD).is_some()
}

#[tokio::test]
async fn extra_fields_at_every_level() {
    let fake = fake(Encoding {
        extra_fields: true,
        ..Encoding::default()
    })
    .await;
    let client = Client::new(&fake);
    let created = client
        .post("/v2/events/batch", &json!({"requests": events(3, &[1])}))
        .await
        .json();
    assert!(
        has_extra(&created) && has_extra(&created["job"]),
        "{created}"
    );
    let path = format!(
        "/v2/events/batch/{}",
        encode_id(created["job"]["id"].as_str().unwrap())
    );
    fake.advance(Duration::from_secs(2));
    let status = client.get(&path).await.json();
    assert!(has_extra(&status) && has_extra(&status["job"]));
    for page in ["imports", "errors"] {
        let body = client.get(&format!("{path}/{page}")).await.json();
        assert!(has_extra(&body));
        let results = body["results"].as_array().unwrap();
        assert!(
            !results.is_empty() && results.iter().all(has_extra),
            "{body}"
        );
    }
    // Echoed user data is left alone.
    let errors = client.get(&format!("{path}/errors")).await.json();
    assert!(!has_extra(&errors["results"][0]["event"]));
    assert!(!has_extra(&errors["results"][0]["event"]["properties"]));
    let error = client.get("/v2/events/batch/unknown").await.json();
    assert!(error["details"].is_array(), "{error}");
}

#[tokio::test]
async fn pending_before_processing() {
    let encoding = Encoding {
        pending_first: true,
        pending_time: Duration::from_millis(500),
        ..Encoding::default()
    };
    let fake = fake(encoding).await;
    let client = Client::new(&fake);
    let created = client
        .post("/v2/events/batch", &json!({"requests": events(1, &[])}))
        .await
        .json();
    assert_eq!(created["job"]["status"], "PENDING");
    let id = created["job"]["id"].as_str().unwrap().to_owned();
    let path = format!("/v2/events/batch/{}", encode_id(&id));
    assert_eq!(client.get(&format!("{path}/imports")).await.status, 202);
    fake.advance(Duration::from_millis(500));
    assert_eq!(
        client.get(&path).await.json()["job"]["status"],
        "PROCESSING"
    );
    assert_eq!(fake.job(&id).unwrap().status, JobStatus::Processing);
    fake.advance(Duration::from_millis(1500));
    assert_eq!(client.get(&path).await.json()["job"]["status"], "COMPLETED");
}

#[tokio::test]
async fn omit_empty_fields_and_empty_object_202() {
    let fake = fake(Encoding {
        omit_empty_fields: true,
        empty_object_202: true,
        ..Encoding::default()
    })
    .await;
    let (client, path) = job(&fake, &[]).await;
    let early = client.get(&format!("{path}/imports")).await;
    assert_eq!((early.status, early.text()), (202, "{}".to_owned()));
    fake.advance(Duration::from_secs(2));
    let first = client.get(&format!("{path}/imports")).await.json();
    let token = first["next_page_token"].as_str().unwrap();
    let last = client
        .get(&format!("{path}/imports?page_token={}", encode_id(token)))
        .await
        .json();
    assert_eq!(last["results"].as_array().unwrap().len(), 1);
    assert!(last.get("next_page_token").is_none(), "{last}");
    let errors = client.get(&format!("{path}/errors")).await.json();
    assert_eq!(errors, json!({"total_records": "0"}));
}

#[tokio::test]
async fn default_encoding_is_the_documented_one() {
    let fake = fake(Encoding::default()).await;
    let (client, path) = job(&fake, &[]).await;
    let processing = client.get(&path).await.json();
    assert_eq!(
        (processing["imports"].clone(), processing["errors"].clone()),
        (json!(0), json!(0))
    );
    assert!(!has_extra(&processing));
    let early = client.get(&format!("{path}/errors")).await;
    assert_eq!((early.status, early.body.len()), (202, 0));
}

#[tokio::test]
async fn real_world_turns_everything_on() {
    let fake = fake(Encoding::real_world()).await;
    let (client, path) = job(&fake, &[]).await;
    let pending = client.get(&path).await.json();
    assert_eq!(pending["job"]["status"], "PENDING");
    assert!(pending.get("imports").is_none() && has_extra(&pending));
    fake.advance(Duration::from_secs(2));
    let done = client.get(&path).await.json();
    assert_eq!(done["imports"], "3");
}
