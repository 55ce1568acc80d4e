//! Helpers for adapter tests: the fake with a known key, a fast policy, a few raw servers
//! for answers the fake does not give (all on `std` threads, so they need no runtime), a
//! relay that counts open connections, self-signed TLS, and the key-leak checks.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use fullstory_batch::{
    ApiKey, BaseUrl, Config, Error, EventRequest, JobId, JobRef, Policy, Resource, TransportKind,
};
use fullstory_batch_fake::{FakeServer, FakeServerBuilder, LoggedRequest, Route};

/// The key every test uses: distinctive, so a leak is easy to spot.
pub const KEY: &str = "sekrit-KEY-4f9c2e";

/// A fake that knows [`KEY`].
pub fn fake() -> FakeServerBuilder {
    FakeServer::builder().key(KEY)
}

/// The core configuration for `base_url` (plain HTTP allowed) with [`KEY`].
pub fn config(base_url: &str) -> Config {
    config_with_key(base_url, KEY)
}

/// The core configuration for `base_url` (plain HTTP allowed) with `key`.
pub fn config_with_key(base_url: &str, key: &str) -> Config {
    Config::new(ApiKey::new(key).expect("a valid key"))
        .with_base_url(BaseUrl::parse_allow_http(base_url).expect("a valid base url"))
}

/// Polls every 100 ms (the shortest a policy allows), retries after 50-200 ms, gives up
/// after 10 s. No jitter on polls.
pub fn fast_policy() -> Policy {
    Policy::builder()
        .min_interval(Duration::from_millis(100))
        .max_interval(Duration::from_millis(100))
        .poll_jitter(0.0)
        .error_backoff(Duration::from_millis(100))
        .max_error_backoff(Duration::from_millis(200))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a valid policy")
}

/// [`fast_policy`] with another timeout.
pub fn fast_policy_with_timeout(timeout: Duration) -> Policy {
    fast_policy().with_timeout(timeout)
}

/// An events job of one item inserted into the fake: its id and its reference.
pub fn insert_job(fake: &FakeServer) -> (String, JobRef) {
    let id = fake.insert_job(
        fullstory_batch_fake::Resource::Events,
        vec![serde_json::json!({"name": "signup"})],
    );
    (id.clone(), events_job(&id))
}

/// A reference to events job `id`.
pub fn events_job(id: &str) -> JobRef {
    JobRef::new(Resource::Events, JobId::new(id).expect("a valid id"))
}

/// `n` events, the first `bad` of each thousand named so that the fake fails them.
pub fn events(n: usize, bad: usize) -> Vec<EventRequest> {
    (0..n)
        .map(|i| EventRequest {
            name: if i % 1000 < bad {
                format!("bad-{i}")
            } else {
                format!("event-{i}")
            },
            ..EventRequest::default()
        })
        .collect()
}

/// The status requests the fake logged for job `id`, in order.
pub fn status_requests(fake: &FakeServer, id: &str) -> Vec<LoggedRequest> {
    fake.requests()
        .into_iter()
        .filter(|r| r.route == Some(Route::Status) && r.job_id.as_deref() == Some(id))
        .collect()
}

/// Requests the fake logged whose path ends with `suffix`.
pub fn count_paths(fake: &FakeServer, suffix: &str) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.path.ends_with(suffix))
        .count()
}

/// Panics if `text` holds the key, or a telling part of it.
pub fn assert_no_key_in(text: &str) {
    assert!(
        !text.contains(KEY) && !text.contains("4f9c2e"),
        "the key leaked: {text}"
    );
}

/// Panics if the key shows anywhere in the error: Display, Debug, or any source's.
pub fn assert_no_key(error: &(dyn std::error::Error + 'static)) {
    assert_no_key_in(&format!("{error} {error:?} {error:#?}"));
    let mut source = error.source();
    while let Some(e) = source {
        assert_no_key_in(&format!("{e} {e:?}"));
        source = e.source();
    }
}

/// The error and every cause below it, joined with ": ", each as its own `Display` says.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// A loopback port nothing listens on.
pub fn refused_base_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = listener.local_addr().expect("local addr").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// Polls `done` every 10 ms for up to `within`.
pub fn eventually(within: Duration, done: impl Fn() -> bool) -> bool {
    let step = Duration::from_millis(10);
    let mut waited = Duration::ZERO;
    while !done() {
        if waited >= within {
            return false;
        }
        thread::sleep(step);
        waited += step;
    }
    true
}

/// A tiny HTTP/1.1 server on loopback that answers each connection with the next canned
/// response (the last one repeats), then closes, and records the request heads it read.
pub struct RawServer {
    /// Where it listens.
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
}

impl RawServer {
    /// Serves `responses`, one per connection.
    pub fn start(responses: Vec<Vec<u8>>) -> Self {
        assert!(!responses.is_empty());
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

    /// `http://` and its address.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The request heads read so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }
}

/// Reads a request head, up to the blank line; `None` if the connection ends first.
fn read_head(reader: &mut impl BufRead) -> Option<String> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        let end = line == "\r\n";
        head.push_str(&line);
        if end {
            return Some(head);
        }
    }
}

fn serve_one(stream: TcpStream, response: &[u8], log: &Mutex<Vec<String>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(stream);
    let Some(head) = read_head(&mut reader) else {
        return;
    };
    log.lock().expect("lock").push(head);
    let mut stream = reader.into_inner();
    let _ = stream.write_all(response);
    let _ = stream.flush();
    // Let the client read everything before the socket closes.
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.read(&mut [0; 64]);
}

/// A whole response with a body and `Connection: close`.
pub fn http_response(status: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut text = format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        let _ = write!(text, "{name}: {value}\r\n");
    }
    text.push_str("\r\n");
    text.push_str(body);
    text.into_bytes()
}

/// A server that answers 200 with a chunked body that never ends, until the client hangs
/// up: a body that grows past any limit while it is read.
pub struct EndlessBody {
    /// Where it listens.
    pub addr: SocketAddr,
    written: Arc<AtomicU64>,
    hung_up: Arc<AtomicBool>,
}

impl EndlessBody {
    /// Listens on loopback and serves the first connection.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let written = Arc::new(AtomicU64::new(0));
        let hung_up = Arc::new(AtomicBool::new(false));
        let (w, h) = (Arc::clone(&written), Arc::clone(&hung_up));
        thread::spawn(move || {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let mut reader = BufReader::new(stream);
            if read_head(&mut reader).is_none() {
                return;
            }
            let mut stream = reader.into_inner();
            let head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
            if stream.write_all(head).is_err() {
                return;
            }
            let mut chunk = format!("{:x}\r\n", 16 * 1024).into_bytes();
            chunk.extend(std::iter::repeat_n(b' ', 16 * 1024));
            chunk.extend_from_slice(b"\r\n");
            loop {
                if stream.write_all(&chunk).is_err() {
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
        }
    }

    /// `http://` and its address.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }

    /// Whether the client hung up (the server's writes failed).
    pub fn hung_up(&self) -> bool {
        self.hung_up.load(Ordering::SeqCst)
    }
}

/// A TCP relay in front of `target` that counts the connections open through it. A
/// connection counts as open exactly while the client side holds it.
pub struct CountingProxy {
    /// Where it listens.
    pub addr: SocketAddr,
    open: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    total: Arc<AtomicUsize>,
}

impl CountingProxy {
    /// Relays to `target`.
    pub fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let open = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let total = Arc::new(AtomicUsize::new(0));
        let (o, p, t) = (Arc::clone(&open), Arc::clone(&peak), Arc::clone(&total));
        thread::spawn(move || {
            for inbound in listener.incoming() {
                let Ok(inbound) = inbound else { continue };
                let now_open = o.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now_open, Ordering::SeqCst);
                t.fetch_add(1, Ordering::SeqCst);
                let o = Arc::clone(&o);
                thread::spawn(move || {
                    relay(inbound, target);
                    o.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Self {
            addr,
            open,
            peak,
            total,
        }
    }

    /// `http://` and its address.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The most connections open at once so far.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn total(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }
}

/// Copies both ways; returns once the client side has closed.
fn relay(inbound: TcpStream, target: SocketAddr) {
    let _ = inbound.set_nodelay(true);
    let Ok(outbound) = TcpStream::connect(target) else {
        return;
    };
    let _ = outbound.set_nodelay(true);
    let (Ok(mut server_read), Ok(mut client_write)) = (outbound.try_clone(), inbound.try_clone())
    else {
        return;
    };
    thread::spawn(move || {
        let _ = std::io::copy(&mut server_read, &mut client_write);
        // The server closed: let the client see the end too.
        let _ = client_write.shutdown(Shutdown::Write);
    });
    let (mut client_read, mut server_write) = (inbound, outbound);
    let _ = std::io::copy(&mut client_read, &mut server_write);
    let _ = server_write.shutdown(Shutdown::Both);
    let _ = client_read.shutdown(Shutdown::Both);
}

/// A self-signed certificate for `localhost`, and the fake served over TLS with it.
pub struct TlsFake {
    /// The fake, at `https://localhost:PORT`.
    pub fake: FakeServer,
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// The certificate, PEM.
    pub cert_pem: String,
}

/// A fresh self-signed certificate for `localhost`: DER and PEM.
pub fn self_signed() -> (Vec<u8>, String, Vec<u8>) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("a certificate");
    (
        certified.cert.der().to_vec(),
        certified.cert.pem(),
        certified.signing_key.serialize_der(),
    )
}

/// The fake over TLS with a fresh self-signed certificate; jobs finish at once.
pub fn tls_fake() -> TlsFake {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let (cert_der, cert_pem, key_der) = self_signed();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der));
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("default versions")
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(cert_der.clone())], key)
        .expect("a server config");
    let fake = fake()
        .processing_time(Duration::ZERO)
        .tls(server)
        .start_blocking()
        .expect("the fake starts");
    TlsFake {
        fake,
        cert_der,
        cert_pem,
    }
}

/// The core configuration for an `https` fake: `parse`, not `parse_allow_http`.
pub fn https_config(fake: &FakeServer) -> Config {
    assert!(
        fake.base_url().starts_with("https://localhost:"),
        "{}",
        fake.base_url()
    );
    Config::new(ApiKey::new(KEY).expect("a valid key"))
        .with_base_url(BaseUrl::parse(fake.base_url()).expect("a valid base url"))
}

/// A subscriber that writes every span (name and fields), every later record and every
/// event (target and fields) into one string.
#[derive(Clone, Default)]
pub struct Capture {
    text: Arc<Mutex<String>>,
    ids: Arc<AtomicU64>,
}

impl Capture {
    /// Everything captured so far.
    pub fn text(&self) -> String {
        self.text.lock().expect("lock").clone()
    }
}

struct Writer<'a>(&'a mut String);

impl tracing::field::Visit for Writer<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let id = self.ids.fetch_add(1, Ordering::SeqCst) + 1;
        let mut text = self.text.lock().expect("lock");
        let _ = write!(text, "\nspan {id} {}:", span.metadata().name());
        span.record(&mut Writer(&mut text));
        tracing::span::Id::from_u64(id)
    }

    fn record(&self, span: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut text = self.text.lock().expect("lock");
        let _ = write!(text, "\nrecord {}:", span.into_u64());
        values.record(&mut Writer(&mut text));
    }

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut text = self.text.lock().expect("lock");
        let _ = write!(text, "\nevent {}:", event.metadata().target());
        event.record(&mut Writer(&mut text));
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

/// The transport kind of an error, after checking it keeps a source and holds no key.
pub fn transport_kind<T: std::fmt::Debug>(result: Result<T, Error>) -> TransportKind {
    match result {
        Err(e @ Error::Transport(_)) => {
            assert_no_key(&e);
            let Error::Transport(t) = e else {
                unreachable!()
            };
            // A body refused for its `Content-Length` has no lower error to keep.
            assert!(
                std::error::Error::source(&t).is_some() || t.kind == TransportKind::BodyTooLarge,
                "{t:?} keeps no source"
            );
            t.kind
        }
        other => panic!("expected a transport error, got {other:?}"),
    }
}

/// The API error of a result, after checking it holds no key.
pub fn api_error<T: std::fmt::Debug>(result: Result<T, Error>) -> fullstory_batch::ApiError {
    match result {
        Err(e @ Error::Api(_)) => {
            assert_no_key(&e);
            let Error::Api(api) = e else { unreachable!() };
            api
        }
        other => panic!("expected an api error, got {other:?}"),
    }
}
