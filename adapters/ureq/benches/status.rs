//! One status call through the adapter against the same GET with a bare ureq agent and
//! `serde_json::from_slice` into a plain struct, both against the fake on loopback.
//!
//! `cargo bench -p fullstory-batch-ureq --bench status`; medians are in
//! `target/criterion/status/{adapter,raw_ureq}/new/estimates.json`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
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
    let client = Client::with_options(config.clone(), ClientOptions::default());
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
criterion_main!(benches);
