//! Async: wait for a job with the hyper adapter, watching progress through a
//! `tokio::sync::watch` channel while the wait runs.
//!
//! `cargo run -p fsbatch --example hyper_wait`

use std::time::{Duration, SystemTime};

use fullstory_batch_fake::FakeServer;
use fullstory_batch_hyper::{
    ApiKey, BaseUrl, Client, ClientOptions, Config, JobId, JobRef, Outcome, Policy, Progress,
    Resource,
};
use tokio::sync::watch;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fake = FakeServer::builder()
        .key("my-key")
        .processing_time(Duration::from_secs(2))
        .start()
        .await?;
    let id = fake.insert_job(
        fullstory_batch_fake::Resource::Users,
        vec![serde_json::json!({"uid": "u1"})],
    );

    let config = Config::new(ApiKey::new("my-key")?)
        .with_base_url(BaseUrl::parse_allow_http(fake.base_url())?);
    let client = Client::new(config, ClientOptions::default())?;
    let job = JobRef::new(Resource::Users, JobId::new(id)?);

    let (tx, mut rx) = watch::channel(Progress::default());
    let watcher = tokio::spawn(async move {
        // Ends when the wait ends: it drops the sender.
        while rx.changed().await.is_ok() {
            let p = rx.borrow_and_update().clone();
            let next = p.next_request.map(|at| {
                at.duration_since(SystemTime::now())
                    .unwrap_or_default()
                    .as_millis()
            });
            println!(
                "attempt {}: {:?}, next request in {next:?} ms",
                p.attempts,
                p.last_status.map(|s| s.job.status),
            );
        }
    });
    let outcome = client.wait_with_progress(&job, Policy::default(), tx).await;
    watcher.await?;
    match outcome {
        Outcome::Finished(status) => {
            println!("{}: {} imported", status.job.status, status.imports)
        }
        Outcome::Stopped(stopped) => println!("stopped: {stopped}"),
    }
    Ok(())
}
