//! Save the machine's state mid-way (say, before a deploy restarts the process) and resume
//! from it: the state is JSON holding no key, and after the restore the next poll stays
//! due when it was, and any `Retry-After` still holds.
//!
//! The adapter drives a [`JobSet`]; its state is a [`SavedJobSet`] (each job in it a
//! `SavedJob`, which a lone `Job` saves and restores the same way).
//!
//! `cargo run -p fsbatch --example resume`

use std::time::{Duration, SystemTime};

use fullstory_batch::SavedJobSet;
use fullstory_batch_fake::FakeServer;
use fullstory_batch_ureq::{
    ApiKey, BaseUrl, Client, ClientOptions, Config, Event, JobId, JobRef, JobSet, Outcome, Policy,
    Resource,
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
    let client = Client::new(config.clone(), ClientOptions::new())?;
    let job = JobRef::new(Resource::Users, JobId::new(id)?);

    // Poll twice, then save the state as JSON, as a process would before it stops. Between
    // two events nothing happens, so the state is whole.
    let mut run = client.watch(job, Policy::default());
    let mut key = None;
    for (k, event) in run.by_ref() {
        if let Event::Progress(p) = event {
            println!(
                "attempt {}: {:?}",
                p.attempts,
                p.last_status.map(|s| s.job.status)
            );
            key = Some(k);
            if p.attempts == 2 {
                break;
            }
        }
    }
    let key = key.expect("the job is still running after its first poll");
    let saved = serde_json::to_string(&run.set().save())?;
    drop(run);
    assert!(!saved.contains("my-key"), "a saved state holds no key");
    println!("saved {} bytes of state", saved.len());

    // Later, perhaps in a new process: restore with the config (the key comes from it).
    let state: SavedJobSet = serde_json::from_str(&saved)?;
    let set: JobSet = JobSet::restore(config, state)?;
    let next = set.progress(key).and_then(|p| p.next_request);
    println!(
        "resumed; next poll due in {:?}",
        next.map(|t| t.duration_since(SystemTime::now()).unwrap_or_default())
    );
    match client.run(set, 1).outcome() {
        Outcome::Finished(status) => {
            println!(
                "{} after resume: {} imported",
                status.job.status, status.imports
            )
        }
        Outcome::Stopped(stopped) => println!("stopped: {stopped}"),
    }
    Ok(())
}
