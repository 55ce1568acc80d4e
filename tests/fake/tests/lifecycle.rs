//! Starting and stopping: blocking mode without a runtime, drop inside and
//! outside a runtime, shutdown with open connections.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Client, KEY, encode_id};
use fullstory_batch_fake::{FakeServer, JobStatus, Resource};
use serde_json::json;

/// One raw HTTP/1.1 exchange with std only (no runtime in the caller).
fn raw_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: fake\r\nAuthorization: Basic {KEY}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

fn refused_soon(addr: std::net::SocketAddr) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn blocking_server_serves_callers_without_a_runtime() {
    let fake = FakeServer::builder()
        .key(KEY)
        .manual_clock()
        .start_blocking()
        .unwrap();
    let id = fake.insert_job(Resource::Users, vec![json!({"uid": "u"})]);
    let answer = raw_get(fake.addr(), &format!("/v2/users/batch/{}", encode_id(&id)));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"PROCESSING\""));
    fake.advance(Duration::from_secs(1));
    assert_eq!(fake.job(&id).unwrap().status, JobStatus::Completed);

    // An idle keep-alive connection must not hold up the drop.
    let mut idle = TcpStream::connect(fake.addr()).unwrap();
    idle.write_all(b"GET /v2/users/batch/x HTTP/1.1\r\nHost: fake\r\n\r\n")
        .unwrap();
    let addr = fake.addr();
    let started = Instant::now();
    drop(fake);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "drop took {:?}",
        started.elapsed()
    );
    assert!(
        TcpStream::connect(addr).is_err(),
        "listener still open after drop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_server_can_be_used_and_dropped_inside_a_runtime() {
    let fake = FakeServer::builder().key(KEY).start_blocking().unwrap();
    let client = Client::new(&fake);
    assert_eq!(client.get("/v2/events/batch/nope").await.status, 404);
    let started = Instant::now();
    drop(fake);
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn dropping_an_async_server_closes_its_port() {
    let fake = FakeServer::builder().key(KEY).start().await.unwrap();
    let client = Client::new(&fake);
    assert_eq!(client.get("/v2/events/batch/nope").await.status, 404);
    let addr = fake.addr();
    drop(fake);
    let closed = tokio::task::spawn_blocking(move || refused_soon(addr))
        .await
        .unwrap();
    assert!(closed);
}

#[tokio::test]
async fn shutdown_and_wait_returns_once_the_listener_is_gone() {
    let fake = FakeServer::builder().start().await.unwrap();
    let addr = fake.addr();
    let keep_alive = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::time::timeout(Duration::from_secs(3), fake.shutdown_and_wait())
        .await
        .unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    drop(keep_alive);
}

#[test]
fn async_server_outliving_its_runtime_drops_quietly() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let fake = runtime.block_on(FakeServer::builder().start()).unwrap();
    drop(runtime);
    let started = Instant::now();
    drop(fake);
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn binding_a_taken_port_fails_cleanly() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let result = FakeServer::builder()
        .bind(taken.local_addr().unwrap())
        .start_blocking();
    assert!(result.is_err());
}

#[test]
fn handles_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<FakeServer>();
    assert_send_sync::<fullstory_batch_fake::FakeServerBuilder>();
}
