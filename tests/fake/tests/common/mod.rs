//! Test helpers: a tiny HTTP/1.1 client on hyper's client connection (no
//! dependency on the project's adapters) and a swagger subset validator.
#![allow(dead_code)] // each test binary uses a different part

pub mod swagger;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fullstory_batch_fake::FakeServer;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::{HeaderMap, Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};

pub const KEY: &str = "test-key";

/// A complete answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// How many data frames the body came in.
    pub frames: usize,
    pub elapsed: Duration,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// What went wrong, at which stage.
#[derive(Debug)]
pub enum Failure {
    /// No response head arrived (connection closed or refused).
    NoResponse(String),
    /// The head arrived, the body broke.
    Body {
        status: u16,
        headers: HeaderMap,
        received: usize,
        error: String,
    },
}

/// One request on a fresh connection over `io`.
pub async fn exchange<I>(io: I, request: Request<Full<Bytes>>) -> Result<Answer, Failure>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let started = Instant::now();
    let (mut sender, connection) = http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| Failure::NoResponse(e.to_string()))?;
    tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| Failure::NoResponse(e.to_string()))?;
    let (parts, mut body) = response.into_parts();
    let mut data = Vec::new();
    let mut frames = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(chunk) = frame.into_data() {
                    frames += 1;
                    data.extend_from_slice(&chunk);
                }
            }
            Err(e) => {
                let status = parts.status.as_u16();
                let received = data.len();
                return Err(Failure::Body {
                    status,
                    headers: parts.headers,
                    received,
                    error: e.to_string(),
                });
            }
        }
    }
    Ok(Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: Bytes::from(data),
        frames,
        elapsed: started.elapsed(),
    })
}

/// Builds a request; `key` None sends no `Authorization`.
pub fn request(
    method: Method,
    path: &str,
    key: Option<&str>,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Request<Full<Bytes>> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "fake.test");
    if let Some(key) = key {
        builder = builder.header("authorization", format!("Basic {key}"));
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    if !body.is_empty() {
        builder = builder.header("content-type", "application/json");
    }
    builder.body(Full::new(body)).unwrap()
}

/// A client for one fake server and one key.
#[derive(Debug, Clone)]
pub struct Client {
    pub addr: SocketAddr,
    pub key: Option<String>,
}

impl Client {
    pub fn new(fake: &FakeServer) -> Client {
        Client {
            addr: fake.addr(),
            key: Some(KEY.to_owned()),
        }
    }

    pub fn with_key(&self, key: Option<&str>) -> Client {
        Client {
            addr: self.addr,
            key: key.map(str::to_owned),
        }
    }

    pub async fn try_send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Answer, Failure> {
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(|e| Failure::NoResponse(e.to_string()))?;
        exchange(
            stream,
            request(method, path, self.key.as_deref(), headers, body),
        )
        .await
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Answer {
        let name = method.clone();
        self.try_send(method, path, headers, body)
            .await
            .unwrap_or_else(|e| panic!("{name} {path}: {e:?}"))
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, &[], Bytes::new()).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.send(Method::POST, path, &[], Bytes::from(body.to_string()))
            .await
    }

    pub async fn post_with_key(&self, path: &str, body: &Value, idempotency_key: &str) -> Answer {
        let headers = [("idempotency-key", idempotency_key)];
        self.send(Method::POST, path, &headers, Bytes::from(body.to_string()))
            .await
    }

    /// Creates a job and returns its id (asserting a 200).
    pub async fn create(&self, resource: &str, items: Value) -> String {
        let answer = self
            .post(
                &format!("/v2/{resource}/batch"),
                &serde_json::json!({ "requests": items }),
            )
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        answer.json()["job"]["id"].as_str().unwrap().to_owned()
    }
}

/// Percent-encodes a job id for a path segment (ids hold `=`, `-`, `_`).
pub fn encode_id(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Whether `text` looks like `2019-04-18T14:36:11.123Z` (milliseconds, `Z`).
pub fn is_millis_utc(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits =
        |range: std::ops::Range<usize>| range.into_iter().all(|i| bytes[i].is_ascii_digit());
    bytes.len() == 24
        && digits(0..4)
        && bytes[4] == b'-'
        && digits(5..7)
        && bytes[7] == b'-'
        && digits(8..10)
        && bytes[10] == b'T'
        && digits(11..13)
        && bytes[13] == b':'
        && digits(14..16)
        && bytes[16] == b':'
        && digits(17..19)
        && bytes[19] == b'.'
        && digits(20..23)
        && bytes[23] == b'Z'
}

/// `n` event items named `event-0`, ... with the indexes in `bad` named `bad-i`.
pub fn events(n: usize, bad: &[usize]) -> Value {
    let items: Vec<Value> = (0..n)
        .map(|i| {
            let name = if bad.contains(&i) {
                format!("bad-{i}")
            } else {
                format!("event-{i}")
            };
            serde_json::json!({ "name": name, "properties": { "index": i } })
        })
        .collect();
    Value::Array(items)
}

/// `n` user items with uids `user-i` (or `bad-i`).
pub fn users(n: usize, bad: &[usize]) -> Value {
    let items: Vec<Value> = (0..n)
        .map(|i| {
            let uid = if bad.contains(&i) { format!("bad-{i}") } else { format!("user-{i}") };
            serde_json::json!({ "uid": uid, "display_name": format!("User {i}"), "properties": { "plan": "free" } })
        })
        .collect();
    Value::Array(items)
}
