//! Helpers shared by the integration tests: a client for a fake, fast policies, a proxy
//! that counts open connections, and raw servers for answers the fake does not give.
#![allow(dead_code, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use fullstory_batch_fake::{FakeServer, FakeServerBuilder};
use fullstory_batch_hyper::{
    ApiKey, BaseUrl, Client, ClientOptions, Config, JobId, JobRef, Policy, Resource,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A key distinctive enough to search for in every error text.
pub const KEY: &str = "sekrit-Key-7f3a9c";

pub fn fake_builder() -> FakeServerBuilder {
    FakeServer::builder().key(KEY)
}

pub fn config_for(base_url: &str, key: &str) -> Config {
    Config::new(ApiKey::new(key).unwrap())
        .with_base_url(BaseUrl::parse_allow_http(base_url).unwrap())
}

pub fn client(base_url: &str, options: ClientOptions) -> Client {
    Client::new(config_for(base_url, KEY), options).unwrap()
}

pub fn events_job(id: &str) -> JobRef {
    JobRef::new(Resource::Events, JobId::new(id).unwrap())
}

pub fn one_event() -> Vec<serde_json::Value> {
    vec![serde_json::json!({"name": "signup"})]
}

/// Polls every 20 ms, retries after 20-40 ms, gives up after 10 s.
pub fn fast_policy() -> Policy {
    Policy {
        initial_interval: Duration::from_millis(20),
        multiplier: 1.0,
        max_interval: Duration::from_millis(20),
        poll_jitter: 0.0,
        error_backoff: Duration::from_millis(20),
        max_error_backoff: Duration::from_millis(40),
        max_errors_in_row: 5,
        timeout: Some(Duration::from_secs(10)),
        ..Policy::default()
    }
}

/// Panics if `text` holds the key.
pub fn assert_no_key(text: &str) {
    assert!(!text.contains(KEY), "the key leaked into: {text}");
}

/// Display, Debug and every source's Display of `err`, none of which may hold the key.
pub fn assert_error_has_no_key(err: &(dyn std::error::Error + 'static)) {
    assert_no_key(&format!("{err} {err:?}"));
    let mut source = err.source();
    while let Some(e) = source {
        assert_no_key(&format!("{e} {e:?}"));
        source = e.source();
    }
}

/// A TCP relay in front of `target` that counts the connections open through it.
pub struct CountingProxy {
    pub addr: SocketAddr,
    open: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    total: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl CountingProxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let total = Arc::new(AtomicUsize::new(0));
        let (o, p, t) = (open.clone(), peak.clone(), total.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    continue;
                };
                let now_open = o.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now_open, Ordering::SeqCst);
                t.fetch_add(1, Ordering::SeqCst);
                let o = o.clone();
                tokio::spawn(async move {
                    let _ = inbound.set_nodelay(true);
                    if let Ok(outbound) = TcpStream::connect(target).await {
                        let _ = outbound.set_nodelay(true);
                        relay(inbound, outbound).await;
                    }
                    o.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Self {
            addr,
            open,
            peak,
            total,
            task,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The most connections open at once so far.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn total(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies both ways; returns as soon as the client side closes, so a connection counts as
/// open exactly while the client holds it.
async fn relay(inbound: TcpStream, outbound: TcpStream) {
    let (mut client_read, mut client_write) = inbound.into_split();
    let (mut server_read, mut server_write) = outbound.into_split();
    let upstream = async {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
    };
    let downstream = async {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    };
    tokio::select! {
        () = upstream => {}
        () = downstream => {}
    }
}

/// Reads a request head (up to the blank line).
async fn read_head(stream: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut byte = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => head.extend_from_slice(&byte[..n]),
        }
    }
    true
}

/// A server that answers every request with these exact bytes, then closes.
pub async fn canned(response: &'static [u8]) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                if read_head(&mut stream).await {
                    let _ = stream.write_all(response).await;
                    let _ = stream.shutdown().await;
                }
            });
        }
    });
    (addr, task)
}

/// A server that answers 200 with a chunked body that never ends, until the client hangs
/// up. Reports the bytes it got to write and whether the client hung up.
pub struct EndlessBody {
    pub addr: SocketAddr,
    pub written: Arc<AtomicU64>,
    pub hung_up: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl EndlessBody {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let written = Arc::new(AtomicU64::new(0));
        let hung_up = Arc::new(AtomicBool::new(false));
        let (w, h) = (written.clone(), hung_up.clone());
        let task = tokio::spawn(async move {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            if !read_head(&mut stream).await {
                return;
            }
            let head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
            if stream.write_all(head).await.is_err() {
                return;
            }
            let mut chunk = format!("{:x}\r\n", 16 * 1024).into_bytes();
            chunk.extend(std::iter::repeat_n(b' ', 16 * 1024));
            chunk.extend_from_slice(b"\r\n");
            loop {
                if stream.write_all(&chunk).await.is_err() {
                    h.store(true, Ordering::SeqCst);
                    return;
                }
                w.fetch_add(chunk.len() as u64, Ordering::SeqCst);
            }
        });
        Self {
            addr,
            written,
            hung_up,
            task,
        }
    }
}

impl Drop for EndlessBody {
    fn drop(&mut self) {
        self.task.abort();
    }
}
