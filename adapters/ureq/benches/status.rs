//! One status call through the adapter against the same GET with a bare ureq agent and
//! `serde_json::from_slice` into a plain struct, both against the fake on loopback.
//!
//! `cargo bench -p fullstory-batch-ureq --bench status`; medians are in
//! `target/criterion/status/{adapter,raw_ureq}/new/estimates.json`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use fullstory_batch_fake::{FakeServer, Resource as FakeResource};
use fullstory_batch_ureq::{
    ApiKey, BaseUrl, Client, ClientOptions, Config, JobId, JobRef, JobState, Resource,
};
use serde::Deserialize;

const KEY: &str = "bench-key";

/// What a hand-written client would parse: no validation beyond serde's.
#[derive(Deserialize)]
#[allow(dead_code)]
struct PlainStatus {
    #[serde(default)]
    imports: u64,
    #[serde(default)]
    errors: u64,
    job: PlainJob,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct PlainJob {
    id: String,
    status: String,
    created: Option<String>,
    finished: Option<String>,
}

/// `--serve-fake`: the fake alone in this process, for the CPU figures below. Prints its
/// URL and a job's id, then serves until stdin closes.
fn serve_fake() {
    let fake = FakeServer::builder()
        .key(KEY)
        .processing_time(Duration::ZERO)
        .request_log_capacity(0)
        .start_blocking()
        .expect("the fake starts");
    let id = fake.insert_job(
        FakeResource::Events,
        vec![serde_json::json!({"name": "signup"})],
    );
    println!("{}\n{id}", fake.base_url());
    let mut sink = String::new();
    while std::io::stdin().read_line(&mut sink).unwrap_or(0) > 0 {}
}

/// CPU time of this whole process, threads that have ended included.
fn process_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// `FSB_CPU=<rounds>`: the client's CPU alone. The fake runs in a child process (this
/// binary with `--serve-fake`), so the process CPU clock counts the client and any thread
/// it starts, nothing of the server. Each round runs 1,000 calls of each client in a
/// rotating order; prints the medians per 1,000 calls and the median per-round ratios.
fn cpu_client_alone(rounds: usize) {
    use std::io::BufRead;
    const CALLS: u32 = 1000;
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

    let config = Config::new(ApiKey::new(KEY).expect("a key"))
        .with_base_url(BaseUrl::parse_allow_http(&url).expect("a url"));
    let limit = config.body_limit() as u64 + 1;
    let client = Client::new(config, ClientOptions::new()).expect("no custom roots");
    let job = JobRef::new(Resource::Events, JobId::new(id.clone()).expect("an id"));
    let status_url = format!("{url}/v2/events/batch/{id}");
    let with_timeout = raw_agent(true);
    let without_timeout = raw_agent(false);
    let raw = |agent: &ureq::Agent| raw_call(agent, &status_url, limit);

    type Call<'a> = Box<dyn Fn() + 'a>;
    let mut clients: Vec<(&str, Call<'_>)> = vec![
        (
            "adapter",
            Box::new(|| {
                black_box(client.status(&job).expect("a status"));
            }),
        ),
        (
            "raw ureq, timeouts set",
            Box::new(|| {
                black_box(raw(&with_timeout));
            }),
        ),
        (
            "raw ureq, no timeout",
            Box::new(|| {
                black_box(raw(&without_timeout));
            }),
        ),
    ];
    for (_, call) in &clients {
        for _ in 0..100 {
            call();
        }
    }
    let mut ms = vec![Vec::new(); clients.len()];
    for round in 0..rounds {
        for k in 0..clients.len() {
            let i = (round + k) % clients.len();
            let before = process_cpu();
            for _ in 0..CALLS {
                (clients[i].1)();
            }
            ms[i].push((process_cpu() - before).as_secs_f64() * 1e3);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let ratio = |a: usize, b: usize| {
        let mut r: Vec<f64> = ms[a].iter().zip(&ms[b]).map(|(a, b)| a / b).collect();
        median(&mut r)
    };
    let (r_none, r_set) = (ratio(0, 2), ratio(0, 1));
    for (i, (name, _)) in clients.iter_mut().enumerate() {
        println!(
            "client CPU per {CALLS} status calls, median of {rounds} rounds: {name}: {:.1} ms",
            median(&mut ms[i])
        );
    }
    println!(
        "median per-round ratio: adapter / raw ureq without a timeout {r_none:.3}, \
         adapter / raw ureq with timeouts {r_set:.3}"
    );
    drop(child.stdin.take());
    let _ = child.wait();
}

/// A bare agent with the adapter's settings; `timeouts` sets the same timeouts, which make
/// ureq's default resolver start a thread per request.
fn raw_agent(timeouts: bool) -> ureq::Agent {
    let builder = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_idle_connections(32)
        .max_idle_connections_per_host(32);
    let builder = if timeouts {
        builder
            .timeout_global(Some(Duration::from_secs(30)))
            .timeout_connect(Some(Duration::from_secs(10)))
    } else {
        builder
    };
    builder.build().into()
}

/// The status GET with a bare agent, parsed by serde_json into plain strings.
fn raw_call(agent: &ureq::Agent, url: &str, limit: u64) -> PlainStatus {
    let mut response = agent
        .get(url)
        .header("authorization", &format!("Basic {KEY}"))
        .header("accept", "application/json")
        .header("user-agent", "bench")
        .call()
        .expect("a response");
    let body = response
        .body_mut()
        .with_config()
        .limit(limit)
        .read_to_vec()
        .expect("a body");
    serde_json::from_slice::<PlainStatus>(&body).expect("a status")
}

fn status(c: &mut Criterion) {
    let fake = FakeServer::builder()
        .key(KEY)
        .processing_time(Duration::ZERO)
        .request_log_capacity(0)
        .start_blocking()
        .expect("the fake starts");
    let id = fake.insert_job(
        FakeResource::Events,
        vec![serde_json::json!({"name": "signup"})],
    );

    let config = Config::new(ApiKey::new(KEY).expect("a key"))
        .with_base_url(BaseUrl::parse_allow_http(fake.base_url()).expect("a url"));
    let limit = config.body_limit() as u64 + 1;
    let client = Client::new(config.clone(), ClientOptions::new()).expect("no custom roots");
    let job = JobRef::new(Resource::Events, JobId::new(id.clone()).expect("an id"));
    assert_eq!(
        client.status(&job).expect("a status").job.status,
        JobState::Completed
    );

    // The same agent settings and request, with nothing of the adapter around them.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(30)))
        .timeout_connect(Some(Duration::from_secs(10)))
        .max_idle_connections(32)
        .max_idle_connections_per_host(32)
        .build()
        .into();
    let url = format!("{}/v2/events/batch/{id}", fake.base_url());
    let authorization = format!("Basic {KEY}");
    let raw = || {
        let mut response = agent
            .get(&url)
            .header("authorization", &authorization)
            .header("accept", "application/json")
            .header("user-agent", "bench")
            .call()
            .expect("a response");
        let body = response
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .expect("a body");
        serde_json::from_slice::<PlainStatus>(&body).expect("a status")
    };
    assert_eq!(raw().job.status, "COMPLETED");

    interleaved(
        || {
            black_box(client.status(&job).expect("a status"));
        },
        || {
            black_box(raw());
        },
    );

    let mut group = c.benchmark_group("status");
    group
        .sample_size(60)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    group.bench_function("adapter", |b| {
        b.iter(|| black_box(client.status(&job).expect("a status")))
    });
    group.bench_function("raw_ureq", |b| b.iter(|| black_box(raw())));
    group.finish();
}

/// Times single calls of `a` and `b` alternately (the order flipping every pair), so drift
/// from other work on a shared machine hits both alike, and prints both medians and their
/// ratio. Criterion's separate runs of each below can drift apart by more than the
/// difference being measured.
fn interleaved(mut a: impl FnMut(), mut b: impl FnMut()) {
    const PAIRS: usize = 3000;
    let mut times_a = Vec::with_capacity(PAIRS);
    let mut times_b = Vec::with_capacity(PAIRS);
    let time = |f: &mut dyn FnMut(), into: &mut Vec<Duration>| {
        let started = Instant::now();
        f();
        into.push(started.elapsed());
    };
    for _ in 0..200 {
        a();
        b();
    }
    for i in 0..PAIRS {
        if i % 2 == 0 {
            time(&mut a, &mut times_a);
            time(&mut b, &mut times_b);
        } else {
            time(&mut b, &mut times_b);
            time(&mut a, &mut times_a);
        }
    }
    let median = |times: &mut Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let (ma, mb) = (median(&mut times_a), median(&mut times_b));
    println!(
        "status/interleaved ({PAIRS} pairs): adapter median {:.1} us, raw_ureq median {:.1} us, ratio {:.3}",
        ma.as_secs_f64() * 1e6,
        mb.as_secs_f64() * 1e6,
        ma.as_secs_f64() / mb.as_secs_f64()
    );
}

criterion_group!(benches, status);

fn main() {
    if std::env::args().any(|a| a == "--serve-fake") {
        return serve_fake();
    }
    if let Some(rounds) = std::env::var("FSB_CPU").ok().and_then(|n| n.parse().ok()) {
        return cpu_client_alone(rounds);
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
