//! `fsbatch demo`: the workflow against a fake server started in this process.

use std::time::Duration;

use fullstory_batch::{ApiKey, BaseUrl, Config, JobId, JobRef, Policy, Resource};
use fullstory_batch_fake::FakeServer;
use fullstory_batch_ureq::Client;
use serde_json::json;

use crate::output::Exit;

const ITEMS: usize = 1_000;
const KEY: &str = "demo-key";

pub fn run() -> Exit {
    let fake = match FakeServer::builder()
        .key(KEY)
        .processing_time(Duration::from_secs(3))
        .start_blocking()
    {
        Ok(fake) => fake,
        Err(e) => {
            eprintln!("error: could not start the fake server: {e}");
            return Exit::Api;
        }
    };
    eprintln!("fake Fullstory API on {}", fake.base_url());
    // Every 40th event is named `bad-…`, which the fake fails: a partial failure.
    let items = (0..ITEMS)
        .map(|i| {
            let name = if i % 40 == 7 { format!("bad-event-{i}") } else { format!("demo-event-{i}") };
            json!({"name": name, "user": {"uid": format!("user-{}", i % 50)}, "properties": {"n": i}})
        })
        .collect();
    let id = fake.insert_job(fullstory_batch_fake::Resource::Events, items);
    eprintln!("created a job of {ITEMS} events: {id}");

    let base_url = BaseUrl::parse_allow_http(fake.base_url()).expect("the fake's url is valid");
    let config = Config::new(ApiKey::new(KEY).expect("a valid key")).with_base_url(base_url);
    let job = JobRef::new(
        Resource::Events,
        JobId::new(id).expect("the fake's ids are valid"),
    );
    let policy = Policy::default().with_timeout(Duration::from_secs(60));
    match crate::wait_with_progress(&Client::new(config), job, policy, false) {
        // A partial failure is what the demo shows; the demo itself succeeded.
        Exit::Ok | Exit::JobFailed => Exit::Ok,
        other => other,
    }
}
