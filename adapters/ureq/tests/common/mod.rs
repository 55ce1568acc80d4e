//! Shared helpers: a fake server with a known key, a client for it, a fast policy, a tiny
//! raw HTTP server for answers the fake cannot give, and the key-leak check.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use fullstory_batch_fake::{
    FakeServer, FakeServerBuilder, LoggedRequest, Resource as FakeResource,
};
use fullstory_batch_ureq::{
    ApiKey, BaseUrl, Client, ClientOptions, Config, Error, JobId, JobRef, Policy, Resource,
};

/// The key every test uses: distinctive, so a leak is easy to spot.
pub const KEY: &str = "sekrit-KEY-4f9c2e";

pub fn fake() -> FakeServerBuilder {
    FakeServer::builder().key(KEY)
}

pub fn config(base_url: &str) -> Config {
    Config::new(ApiKey::new(KEY).expect("a valid key"))
        .with_base_url(BaseUrl::parse_allow_http(base_url).expect("a valid base url"))
}

pub fn client(base_url: &str) -> Client {
    client_with(base_url, quick_options())
}

pub fn client_with(base_url: &str, options: ClientOptions) -> Client {
    Client::with_options(config(base_url), options)
}

/// Timeouts short enough that a hung test fails fast.
pub fn quick_options() -> ClientOptions {
    ClientOptions::default()
        .with_connect_timeout(Duration::from_secs(2))
        .with_request_timeout(Duration::from_secs(5))
}

/// Polls and retries within tens of milliseconds; gives up after 10 s.
pub fn fast_policy() -> Policy {
    Policy {
        initial_interval: Duration::from_millis(20),
        multiplier: 1.5,
        max_interval: Duration::from_millis(100),
        poll_jitter: 0.1,
        error_backoff: Duration::from_millis(20),
        max_error_backoff: Duration::from_millis(100),
        max_errors_in_row: 8,
        timeout: Some(Duration::from_secs(10)),
        ..Policy::default()
    }
}

/// An events job inserted into the fake.
pub fn insert_job(fake: &FakeServer) -> (String, JobRef) {
    let id = fake.insert_job(
        FakeResource::Events,
        vec![serde_json::json!({"name": "signup"})],
    );
    let job = JobRef::new(
        Resource::Events,
        JobId::new(id.clone()).expect("a valid id"),
    );
    (id, job)
}

/// The status requests the fake logged for `id`, in order.
pub fn status_requests(fake: &FakeServer, id: &str) -> Vec<LoggedRequest> {
    fake.requests()
        .into_iter()
        .filter(|r| r.job_id.as_deref() == Some(id))
        .collect()
}

/// Fails if the key shows anywhere in the error: Display, Debug, or any source's Display.
pub fn assert_no_key(error: &Error) {
    let mut texts = vec![
        error.to_string(),
        format!("{error:?}"),
        format!("{error:#?}"),
    ];
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        texts.push(e.to_string());
        texts.push(format!("{e:?}"));
        source = e.source();
    }
    for text in texts {
        assert!(!text.contains(KEY), "the key leaked: {text}");
        assert!(!text.contains("4f9c2e"), "the key leaked: {text}");
    }
}

/// A tiny HTTP/1.1 server on loopback that answers each connection with the next canned
/// response (the last one repeats) and records the request heads it read.
pub struct RawServer {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl RawServer {
    pub fn start(responses: Vec<Vec<u8>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&requests);
        thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { return };
                let response = responses[n.min(responses.len() - 1)].clone();
                let log = Arc::clone(&log);
                thread::spawn(move || serve_one(stream, &response, &log));
            }
        });
        Self { addr, requests }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn request_count(&self) -> usize {
        self.requests.lock().expect("lock").len()
    }
}

fn serve_one(stream: TcpStream, response: &[u8], log: &Mutex<Vec<String>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let end = line == "\r\n";
        head.push_str(&line);
        if end {
            break;
        }
    }
    log.lock().expect("lock").push(head);
    let mut stream = reader.into_inner();
    let _ = stream.write_all(response);
    let _ = stream.flush();
    // Let the client read everything before the socket closes.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.read(&mut [0; 64]);
}

/// A whole response with a body and `Connection: close`.
pub fn http_response(status: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut text = format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(body);
    text.into_bytes()
}
