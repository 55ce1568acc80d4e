//! Waits on many jobs at once through the adapter, against the fake server, and prints the
//! client's peak memory and request rate.
//!
//! ```text
//! cargo run --release -p fullstory-batch-hyper --example many_jobs -- [JOBS] [--multi-thread] [--interval-ms N]
//! ```
//!
//! Jobs run 2 s on the fake. Each is polled first at once, then as the core's schedule
//! says: by default at 40 % of the job's age, from 500 ms up to 2 s; with `--interval-ms N`
//! every N ms exactly. N is at least 100 (`fullstory_batch::MIN_INTERVAL`: the core refuses
//! a policy that would flood the API); 100 makes the run request-bound, so requests/s
//! shows the client's throughput.
//!
//! The fake runs in a child process (this same binary, re-run with `--serve-fake`), so the
//! peak RSS printed (`VmHWM` of `/proc/self/status`) is the client's alone.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fullstory_batch_fake::{FakeServer, OrgLimits, Resource as FakeResource};
use fullstory_batch_hyper::{
    ApiKey, BaseUrl, Budget, Client, ClientOptions, Config, JobId, JobRef, Policy, Resource,
};

const KEY: &str = "many-jobs-key";
const PROCESSING: Duration = Duration::from_secs(2);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut jobs, mut interval_ms) = (10_000usize, None::<u64>);
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if arg == "--interval-ms" {
            interval_ms = rest.next().and_then(|v| v.parse().ok());
        } else if let Ok(n) = arg.parse() {
            jobs = n;
        }
    }
    if args.iter().any(|a| a == "--serve-fake") {
        return serve_fake(jobs);
    }
    let runtime = if args.iter().any(|a| a == "--multi-thread") {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    };
    runtime.block_on(client_side(jobs, interval_ms))
}

/// The child: a fake with `jobs` jobs; prints its URL and the job ids, then, once stdin
/// closes, how many requests it served.
fn serve_fake(jobs: usize) -> Result<(), Box<dyn std::error::Error>> {
    let fake = FakeServer::builder()
        .key(KEY)
        .processing_time(PROCESSING)
        .org_limits(OrgLimits::unlimited())
        .request_log_capacity(1_000_000)
        .start_blocking()?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    writeln!(out, "{}", fake.base_url())?;
    for _ in 0..jobs {
        let id = fake.insert_job(FakeResource::Events, vec![serde_json::json!({"name": "e"})]);
        writeln!(out, "{id}")?;
    }
    writeln!(out, "ready")?;
    out.flush()?;
    drop(out);
    // Wait for the parent to close stdin.
    let mut sink = String::new();
    while std::io::stdin().read_line(&mut sink)? > 0 {}
    println!("requests {}", fake.requests().len());
    Ok(())
}

async fn client_side(
    jobs: usize,
    interval_ms: Option<u64>,
) -> Result<(), Box<dyn std::error::Error>> {
    // Checked before the fake starts: the core refuses an interval under 100 ms.
    let policy = match interval_ms {
        None => Policy::builder()
            .min_interval(Duration::from_millis(500))
            .max_interval(Duration::from_secs(2)),
        Some(ms) => Policy::builder()
            .min_interval(Duration::from_millis(ms))
            .max_interval(Duration::from_millis(ms))
            .poll_jitter(0.0),
    }
    .timeout(Duration::from_secs(120))
    .build()?;
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args([jobs.to_string(), "--serve-fake".to_owned()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().ok_or("no child stdout")?).lines();
    let base_url = lines.next().ok_or("fake printed nothing")??;
    let mut refs = Vec::with_capacity(jobs);
    for line in lines.by_ref() {
        let line = line?;
        if line == "ready" {
            break;
        }
        refs.push(JobRef::new(Resource::Events, JobId::new(line)?));
    }

    let config =
        Config::new(ApiKey::new(KEY)?).with_base_url(BaseUrl::parse_allow_http(&base_url)?);
    let options = ClientOptions::new();
    let connections = options.max_connections();
    let client = Client::new(config, options)?;
    let budget = Budget::new(50_000.0, 1_000);

    let before = memory("VmRSS");
    let started = Instant::now();
    let results = client.wait_many(refs, policy, budget).outcomes().await;
    let took = started.elapsed();

    let completed = results.iter().filter(|(_, o)| o.is_completed()).count();
    drop(child.stdin.take());
    let requests: u64 = lines
        .find_map(|l| l.ok()?.strip_prefix("requests ")?.parse().ok())
        .unwrap_or(0);
    child.wait()?;

    println!("jobs:              {jobs} ({completed} completed)");
    println!("connections (cap): {connections}");
    println!("wall time:         {took:.2?}");
    println!("requests:          {requests}");
    println!(
        "requests/s:        {:.0}",
        requests as f64 / took.as_secs_f64()
    );
    println!("VmRSS before wait: {:.1} MiB", mib(before));
    println!("peak RSS (VmHWM):  {:.1} MiB", mib(memory("VmHWM")));
    Ok(())
}

/// A `/proc/self/status` field in KiB (0 where there is none).
fn memory(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                let rest = line.strip_prefix(field)?.strip_prefix(':')?;
                rest.trim().trim_end_matches("kB").trim().parse().ok()
            })
        })
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
