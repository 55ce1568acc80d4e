//! One status call through the adapter versus the same GET (same headers) done with the
//! raw hyper-util client and `serde_json::from_slice` into a plain struct, against the fake on loopback.
//!
//! ```text
//! cargo bench -p fullstory-batch-hyper --bench status
//! ```
//!
//! After criterion's own report it prints both medians and their ratio.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::Criterion;
use fullstory_batch_fake::{FakeServer, Resource as FakeResource};
use fullstory_batch_hyper::fullstory_batch::USER_AGENT_VALUE;
use fullstory_batch_hyper::fullstory_batch::http::{self, header};
use fullstory_batch_hyper::{
    ApiKey, BaseUrl, Client, ClientOptions, Config, JobId, JobRef, Resource,
};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client as RawClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::Deserialize;

const KEY: &str = "bench-key";

/// What a hand-written client would parse the answer into.
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct PlainStatus {
    #[serde(default)]
    imports: u64,
    #[serde(default)]
    errors: u64,
    job: PlainJob,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct PlainJob {
    id: String,
    status: String,
    created: Option<String>,
    finished: Option<String>,
}

fn output_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("criterion"),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/criterion"),
    }
}

/// `--serve-fake`: the fake alone in this process, for the client-only count below. Prints
/// its URL and a completed job's id, then serves until stdin closes.
fn serve_fake() {
    let fake = FakeServer::builder()
        .key(KEY)
        .manual_clock()
        .request_log_capacity(0)
        .start_blocking()
        .expect("the fake starts");
    let id = fake.insert_job(FakeResource::Events, vec![serde_json::json!({"name": "e"})]);
    fake.advance(Duration::from_secs(10));
    println!("{}\n{id}", fake.base_url());
    let mut sink = String::new();
    while std::io::stdin().read_line(&mut sink).unwrap_or(0) > 0 {}
}

/// `FSB_COUNT=<calls>`: the client alone, for callgrind. The fake runs in a child process
/// (this binary with `--serve-fake`; valgrind does not follow it), and each client makes
/// `calls` status calls inside a function of its own, so
/// `--toggle-collect='*count_adapter*'` or `'*count_raw*'` counts that client's
/// instructions and nothing of the server's. See BENCHMARKS.md for the commands.
fn count_client_alone(calls: u32) {
    use std::io::BufRead;
    let exe = std::env::current_exe().expect("own path");
    let mut child = std::process::Command::new(exe)
        .arg("--serve-fake")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the fake starts");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let url = lines.next().expect("a url").expect("a url");
    let id = lines.next().expect("an id").expect("an id");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let config = Config::new(ApiKey::new(KEY).expect("a valid key"))
        .with_base_url(BaseUrl::parse_allow_http(&url).expect("a valid url"));
    let adapter = Client::new(config, ClientOptions::new()).expect("a client");
    let job = JobRef::new(Resource::Events, JobId::new(id.clone()).expect("an id"));
    let raw = raw_client();
    let uri: http::Uri = format!("{url}/v2/events/batch/{id}")
        .parse()
        .expect("a uri");
    // Connect both and warm up outside the counted functions.
    runtime.block_on(async {
        for _ in 0..10 {
            adapter.status(&job).await.expect("a status");
            raw_status(&raw, &uri).await;
        }
    });
    count_adapter(&runtime, &adapter, &job, calls);
    count_raw(&runtime, &raw, &uri, calls);
    drop(child.stdin.take());
    let _ = child.wait();
}

#[inline(never)]
fn count_adapter(runtime: &tokio::runtime::Runtime, adapter: &Client, job: &JobRef, calls: u32) {
    runtime.block_on(async {
        for _ in 0..calls {
            black_box(adapter.status(job).await.expect("a status"));
        }
    });
}

#[inline(never)]
fn count_raw(runtime: &tokio::runtime::Runtime, raw: &RawHttp, uri: &http::Uri, calls: u32) {
    runtime.block_on(async {
        for _ in 0..calls {
            black_box(raw_status(raw, uri).await);
        }
    });
}

type RawHttp = RawClient<HttpConnector, Empty<Bytes>>;

/// The raw client: hyper-util's legacy client as its docs set it up, no Nagle.
fn raw_client() -> RawHttp {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    RawClient::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .build(http)
}

/// The same GET with the raw client, parsed by serde_json into plain strings.
async fn raw_status(raw: &RawHttp, uri: &http::Uri) -> PlainStatus {
    let request = http::Request::get(uri.clone())
        .header(header::AUTHORIZATION, format!("Basic {KEY}"))
        .header(header::ACCEPT, "application/json")
        .header(header::USER_AGENT, USER_AGENT_VALUE)
        .body(Empty::<Bytes>::new())
        .expect("a valid request");
    let response = raw.request(request).await.expect("an answer");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    serde_json::from_slice::<PlainStatus>(&body).expect("a status")
}

fn main() {
    if std::env::args().any(|a| a == "--serve-fake") {
        return serve_fake();
    }
    if let Some(calls) = std::env::var("FSB_COUNT").ok().and_then(|n| n.parse().ok()) {
        return count_client_alone(calls);
    }
    // The fake runs on a runtime of its own; both clients share one current-thread runtime.
    let fake = FakeServer::builder()
        .key(KEY)
        .manual_clock()
        .request_log_capacity(0)
        .start_blocking()
        .expect("the fake starts");
    let id = fake.insert_job(FakeResource::Events, vec![serde_json::json!({"name": "e"})]);
    fake.advance(Duration::from_secs(10)); // completed: the full answer, with timestamps
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");

    let config = Config::new(ApiKey::new(KEY).expect("a valid key"))
        .with_base_url(BaseUrl::parse_allow_http(fake.base_url()).expect("a valid url"));
    let adapter = Client::new(config.clone(), ClientOptions::new()).expect("a client");
    let job = JobRef::new(
        Resource::Events,
        JobId::new(id.clone()).expect("a valid id"),
    );

    let raw = raw_client();
    let uri: http::Uri = format!("{}/v2/events/batch/{id}", fake.base_url())
        .parse()
        .expect("a valid uri");
    let raw_status = || raw_status(&raw, &uri);

    let mut criterion = Criterion::default()
        .output_directory(&output_dir())
        .sample_size(40)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    {
        let mut group = criterion.benchmark_group("hyper_status");
        group.bench_function("adapter", |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(adapter.status(&job).await.expect("a status"));
                    }
                    start.elapsed()
                })
            });
        });
        group.bench_function("raw_hyper_util", |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(raw_status().await);
                    }
                    start.elapsed()
                })
            });
        });
        group.finish();
    }
    criterion.final_summary();
    report_ratio();

    // Criterion runs one benchmark after the other, so a neighbour's load that comes and
    // goes on a shared machine skews the ratio. Interleaved rounds see the same load.
    if !std::env::args().any(|a| a == "--test" || a == "--list") {
        const ROUNDS: usize = 100;
        const CALLS: u32 = 100;
        let (mut adapter_us, mut raw_us, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            let time_adapter = || {
                runtime.block_on(async {
                    let start = Instant::now();
                    for _ in 0..CALLS {
                        black_box(adapter.status(&job).await.expect("a status"));
                    }
                    start.elapsed().as_secs_f64() * 1e6 / f64::from(CALLS)
                })
            };
            let time_raw = || {
                runtime.block_on(async {
                    let start = Instant::now();
                    for _ in 0..CALLS {
                        black_box(raw_status().await);
                    }
                    start.elapsed().as_secs_f64() * 1e6 / f64::from(CALLS)
                })
            };
            let (a, r) = if round % 2 == 0 {
                let a = time_adapter();
                (a, time_raw())
            } else {
                let r = time_raw();
                (time_adapter(), r)
            };
            adapter_us.push(a);
            raw_us.push(r);
            ratios.push(a / r);
        }
        println!(
            "interleaved, {ROUNDS} rounds x {CALLS} calls: median adapter {:.1} us, \
             median raw hyper-util {:.1} us, median of per-round ratios {:.3}x",
            median(&mut adapter_us),
            median(&mut raw_us),
            median(&mut ratios)
        );
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Reads both medians from criterion's estimates and prints them with their ratio.
fn report_ratio() {
    let median = |name: &str| -> Option<f64> {
        let path = output_dir()
            .join("hyper_status")
            .join(name)
            .join("new/estimates.json");
        let text = std::fs::read_to_string(path).ok()?;
        let json: serde_json::Value = serde_json::from_str(&text).ok()?;
        json["median"]["point_estimate"].as_f64()
    };
    if let (Some(adapter), Some(raw)) = (median("adapter"), median("raw_hyper_util")) {
        println!(
            "median per status call: adapter {:.1} us, raw hyper-util {:.1} us, ratio {:.3}x",
            adapter / 1000.0,
            raw / 1000.0,
            adapter / raw
        );
    }
}
