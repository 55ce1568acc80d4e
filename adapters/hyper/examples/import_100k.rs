//! Imports 100,000 events end to end (two jobs of 50,000: create, wait, read every page)
//! against the fake, and prints the client's wall time and peak memory.
//!
//! ```text
//! cargo run --release -p fullstory-batch-hyper --example import_100k -- [ITEMS]
//! ```
//!
//! The fake runs in a child process (this binary with `--serve-fake`), so the peak RSS
//! printed (`VmHWM`) is the client's alone: the items sent, the pages read back and the
//! reports that hold them all.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fullstory_batch_fake::{FakeServer, OrgLimits};
use fullstory_batch_hyper::{
    ApiKey, BaseUrl, Client, ClientOptions, Config, Event, EventRequest, FailedItem, JobKey,
    Outcome, Policy,
};

const KEY: &str = "import-100k-key";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--serve-fake") {
        return serve_fake();
    }
    let items: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(100_000);
    let mut child = Command::new(std::env::current_exe()?)
        .arg("--serve-fake")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
    let base_url = lines.next().ok_or("the fake printed nothing")??;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let (imported, failed) = runtime.block_on(import(&base_url, items))?;
    let wall = started.elapsed();
    drop(child.stdin.take());
    child.wait()?;
    println!("imported {imported}, failed {failed} of {items} events in {wall:.2?}");
    println!("client peak RSS {} KiB", peak_rss_kib().unwrap_or(0));
    Ok(())
}

async fn import(base_url: &str, n: usize) -> Result<(usize, usize), Box<dyn std::error::Error>> {
    let config = Config::new(ApiKey::new(KEY)?).with_base_url(BaseUrl::parse_allow_http(base_url)?);
    let client = Client::new(config, ClientOptions::default())?;
    let items: Vec<EventRequest> = (0..n)
        .map(|i| EventRequest {
            name: if i % 100 == 0 {
                format!("bad-{i}")
            } else {
                format!("Event {i}")
            },
            ..EventRequest::default()
        })
        .collect();
    let policy = Policy::builder()
        .min_interval(Duration::from_millis(200))
        .max_interval(Duration::from_secs(1))
        .timeout(Duration::from_secs(600))
        .build()?;
    let mut run = client.import_all(futures_util::stream::iter(items), 50_000, 2, policy);
    // Every item read back is held, batch by batch, as a caller gathering reports would.
    let mut reports: BTreeMap<JobKey, (Vec<EventRequest>, Vec<FailedItem<EventRequest>>)> =
        BTreeMap::new();
    while let Some((key, event)) = run.next().await {
        let report = reports.entry(key).or_default();
        match event {
            Event::Imported(items) => report.0.extend(items),
            Event::Failed(items) => report.1.extend(items),
            Event::Done(Outcome::Stopped(stopped)) => {
                return Err(format!("a batch stopped: {stopped:?}").into());
            }
            _ => {}
        }
    }
    Ok((
        reports.values().map(|r| r.0.len()).sum(),
        reports.values().map(|r| r.1.len()).sum(),
    ))
}

/// The child: a fake with big pages and no org limits; prints its URL, serves until stdin closes.
fn serve_fake() -> Result<(), Box<dyn std::error::Error>> {
    let fake = FakeServer::builder()
        .key(KEY)
        .processing_time(Duration::from_secs(1))
        .page_size(5_000)
        .org_limits(OrgLimits::unlimited())
        .start_blocking()?;
    println!("{}", fake.base_url());
    std::io::stdout().flush()?;
    let mut sink = String::new();
    while std::io::stdin().read_line(&mut sink)? > 0 {}
    Ok(())
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
