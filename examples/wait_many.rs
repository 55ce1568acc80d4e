//! Many jobs at once under one request budget: 200 jobs, at most 100 requests a second,
//! all on one task (no task per job, at most 16 requests in flight). A 429 on any of them
//! would pause them all until its Retry-After.
//!
//! `cargo run -p fsbatch --example wait_many`

use std::time::{Duration, Instant};

use fullstory_batch_fake::FakeServer;
use fullstory_batch_hyper::{
    ApiKey, BaseUrl, Budget, Client, ClientOptions, Config, JobId, JobRef, JobState, Policy,
    Resource,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fake = FakeServer::builder()
        .key("my-key")
        .processing_time(Duration::from_secs(3))
        .start()
        .await?;
    let jobs: Vec<JobRef> = (0..200)
        .map(|i| {
            let item = serde_json::json!({"name": if i % 7 == 0 { "bad" } else { "ok" }});
            let id = fake.insert_job(fullstory_batch_fake::Resource::Events, vec![item]);
            JobRef::new(
                Resource::Events,
                JobId::new(id).expect("the fake's ids are valid"),
            )
        })
        .collect();

    let config = Config::new(ApiKey::new("my-key")?)
        .with_base_url(BaseUrl::parse_allow_http(fake.base_url())?);
    let client = Client::new(config, ClientOptions::default().with_max_connections(16))?;
    let started = Instant::now();
    // One run of every job's events; `outcomes` keeps each job's `Done`, in the order the
    // jobs ended (the key is the job's place in `jobs`).
    let results = client
        .wait_many(jobs, Policy::default(), Budget::new(100.0, 20))
        .outcomes()
        .await;
    let completed = results.iter().filter(|(_, o)| o.is_completed()).count();
    let failed = results
        .iter()
        .filter(|(_, o)| o.status().is_some_and(|s| s.job.status == JobState::Failed))
        .count();
    let stopped = results.len() - completed - failed;
    println!(
        "{} jobs: {completed} completed, {failed} failed, {stopped} stopped, {} requests, {:.1?}",
        results.len(),
        fake.requests().len(),
        started.elapsed()
    );
    Ok(())
}
