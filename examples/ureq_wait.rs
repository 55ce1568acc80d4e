//! Blocking: wait for a job with the ureq adapter, printing each status as it comes. The
//! wait is an iterator of the job's events: a `Progress` after each answer, `Done` last.
//!
//! `cargo run -p fsbatch --example ureq_wait`

use std::time::Duration;

use fullstory_batch_fake::FakeServer;
use fullstory_batch_ureq::{
    ApiKey, BaseUrl, Client, ClientOptions, Config, Event, JobId, JobRef, JobState, Outcome,
    Policy, Resource,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fake = FakeServer::builder()
        .key("my-key")
        .processing_time(Duration::from_secs(2))
        .start_blocking()?;
    let items = (0..100)
        .map(|i| serde_json::json!({"name": if i % 10 == 0 { "bad" } else { "ok" }}))
        .collect();
    let id = fake.insert_job(fullstory_batch_fake::Resource::Events, items);

    let config = Config::new(ApiKey::new("my-key")?)
        .with_base_url(BaseUrl::parse_allow_http(fake.base_url())?);
    let client = Client::new(config, ClientOptions::new())?;
    let job = JobRef::new(Resource::Events, JobId::new(id)?);
    let policy = Policy::default().with_timeout(Duration::from_secs(60));
    for (_, event) in client.watch(job, policy) {
        match event {
            Event::Progress(p) => println!(
                "attempt {}: {:?}",
                p.attempts,
                p.last_status.map(|s| s.job.status)
            ),
            Event::Done(Outcome::Finished(s)) if s.job.status == JobState::Completed => {
                println!("completed: {} imported", s.imports)
            }
            Event::Done(Outcome::Finished(s)) => println!(
                "failed in part: {} imported, {} failed",
                s.imports, s.errors
            ),
            Event::Done(Outcome::Stopped(stopped)) => println!("stopped: {stopped}"),
            _ => {}
        }
    }
    Ok(())
}
