//! Thousands of concurrent keep-alive connections, with job state exact at the end.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{KEY, encode_id, request};
use fullstory_batch_fake::{FakeServer, JobStatus, OrgLimits};
use http_body_util::BodyExt;
use hyper::Method;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::Barrier;

const CONNECTIONS: usize = 2_000;
const POLLS: usize = 4;

async fn session(
    addr: std::net::SocketAddr,
    index: usize,
    barrier: Arc<Barrier>,
) -> (String, usize) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    // Every connection is open before any request goes out.
    barrier.wait().await;
    let body = Bytes::from(
        json!({"requests": [{"name": format!("e{index}")}, {"name": "bad"}]}).to_string(),
    );
    let created = sender
        .send_request(request(
            Method::POST,
            "/v2/events/batch",
            Some(KEY),
            &[],
            body,
        ))
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    let created: Value =
        serde_json::from_slice(&created.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let id = created["job"]["id"].as_str().unwrap().to_owned();
    let path = format!("/v2/events/batch/{}", encode_id(&id));
    let mut ok = 1;
    for _ in 0..POLLS {
        sender.ready().await.unwrap();
        let answer = sender
            .send_request(request(Method::GET, &path, Some(KEY), &[], Bytes::new()))
            .await
            .unwrap();
        ok += usize::from(answer.status() == 200);
        answer.into_body().collect().await.unwrap();
    }
    (id, ok)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_concurrent_connections() {
    let fake = FakeServer::builder()
        .key(KEY)
        .manual_clock()
        .org_limits(OrgLimits::unlimited())
        .request_log_capacity(1_000)
        .start()
        .await
        .unwrap();
    let barrier = Arc::new(Barrier::new(CONNECTIONS));
    let started = Instant::now();
    let sessions: Vec<_> = (0..CONNECTIONS)
        .map(|i| tokio::spawn(session(fake.addr(), i, Arc::clone(&barrier))))
        .collect();
    let mut ids = Vec::new();
    for session in sessions {
        let (id, ok) = session.await.unwrap();
        assert_eq!(ok, POLLS + 1);
        ids.push(id);
    }
    let elapsed = started.elapsed();
    let requests = CONNECTIONS * (POLLS + 1);
    eprintln!(
        "{requests} requests on {CONNECTIONS} connections in {elapsed:?} ({:.0}/s)",
        requests as f64 / elapsed.as_secs_f64()
    );
    // How fast is for `cargo bench` and BENCHMARKS.md: a busy machine makes any bound here
    // a coin toss.

    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), CONNECTIONS, "every create made its own job");
    assert_eq!(fake.jobs_created(), CONNECTIONS);
    assert_eq!(fake.requests().len(), 1_000, "the log stays capped");
    fake.advance(Duration::from_secs(1));
    let jobs = fake.jobs();
    assert!(
        jobs.iter()
            .all(|j| j.status == JobStatus::Failed && j.imports == 1 && j.errors == 1)
    );
}
