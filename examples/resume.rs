//! Save a poller's state mid-way (say, before a deploy restarts the process) and resume:
//! the next poll stays due when it was, and any `Retry-After` still holds.
//!
//! `cargo run -p fsbatch --example resume`

use std::time::{Duration, SystemTime};

use fullstory_batch::{BaseUrl, Poller, PollerState};
use fullstory_batch_fake::FakeServer;
use fullstory_batch_ureq::{
    ApiKey, Client, Config, Event, JobId, JobRef, Outcome, Policy, Resource,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fake = FakeServer::builder()
        .key("my-key")
        .processing_time(Duration::from_secs(3))
        .start_blocking()?;
    let id = fake.insert_job(
        fullstory_batch_fake::Resource::Users,
        vec![serde_json::json!({"uid": "u1"})],
    );
    let config = Config::new(ApiKey::new("my-key")?)
        .with_base_url(BaseUrl::parse_allow_http(fake.base_url())?);
    let client = Client::new(config);
    let job = JobRef::new(Resource::Users, JobId::new(id)?);

    // Poll twice, then save the state as JSON, as a process would before it stops.
    let mut waiter = client.waiter(job.clone(), Policy::default());
    for _ in 0..2 {
        if let Some(Event::Progress(snapshot)) = waiter.next() {
            println!(
                "attempt {}: {:?}",
                snapshot.attempts,
                snapshot.last_status.map(|s| s.job.status)
            );
        }
    }
    let saved = serde_json::to_string(&waiter.poller().save())?;
    drop(waiter);
    println!("saved {} bytes of state", saved.len());

    // Later, perhaps in a new process: restore (checking it is the same job) and go on.
    let state: PollerState = serde_json::from_str(&saved)?;
    let poller = Poller::restore(state, &job)?;
    println!(
        "resumed; next poll due in {:?}",
        poller
            .next_due()
            .and_then(|t| t.duration_since(SystemTime::now()).ok())
    );
    match client.resume(poller).outcome() {
        Outcome::Completed(status) => {
            println!("completed after resume: {} imported", status.imports)
        }
        other => println!("ended: {other:?}"),
    }
    Ok(())
}
