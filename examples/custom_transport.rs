//! Bring your own runtime: the core driven by a hand-made HTTP/1.1 client over a plain
//! `TcpStream`, with no adapter. The transport is a closure; everything else (what to send,
//! what the answer means, when to ask again, when to give up) is the core's [`Job`], run
//! with its loop: take events, send what `poll_transmit` gives, sleep until
//! `poll_timeout`, hand back each answer.
//!
//! `cargo run -p fsbatch --example custom_transport`

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime};

use fullstory_batch::bytes::Bytes;
use fullstory_batch::http::{Request, Response};
use fullstory_batch::{
    ApiKey, BaseUrl, Config, Event, Job, JobId, JobRef, Outcome, Policy, Resource, Transmit,
    TransportError, TransportKind,
};
use fullstory_batch_fake::FakeServer;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fake = FakeServer::builder()
        .key("my-key")
        .processing_time(Duration::from_secs(2))
        .start_blocking()?;
    let id = fake.insert_job(
        fullstory_batch_fake::Resource::Events,
        vec![serde_json::json!({"name": "signup"})],
    );

    let config = Config::new(ApiKey::new("my-key")?)
        .with_base_url(BaseUrl::parse_allow_http(fake.base_url())?);
    let job = JobRef::new(Resource::Events, JobId::new(id)?);
    let outcome = wait(config, job, send);
    match outcome {
        Outcome::Finished(status) => println!(
            "{}: {} imported, {} failed",
            status.job.status, status.imports, status.errors
        ),
        Outcome::Stopped(stopped) => println!("stopped: {stopped} ({:?})", stopped.reason),
    }
    Ok(())
}

/// The whole driver: the job's loop with `thread::sleep` as the timer and any transport,
/// one request at a time (a job never has more than one out).
fn wait(
    config: Config,
    job: JobRef,
    mut transport: impl FnMut(&Transmit) -> Result<Response<Vec<u8>>, TransportError>,
) -> Outcome {
    let policy = Policy::default().with_timeout(Duration::from_secs(60));
    let mut machine: Job = Job::wait(config, job, policy, SystemTime::now(), 7);
    loop {
        // 1. Events: progress after each answer, `Done` last.
        while let Some(event) = machine.poll_event() {
            match event {
                Event::Progress(p) => println!(
                    "request {}: {:?}",
                    p.attempts,
                    p.last_status.map(|s| s.job.status)
                ),
                Event::Done(outcome) => return outcome,
                _ => {}
            }
        }
        // 2. The request due now, if one is: send it and hand back what came of it.
        if let Some(transmit) = machine.poll_transmit(SystemTime::now()) {
            match transport(&transmit) {
                Ok(response) => machine.handle_response(transmit.id, &response, SystemTime::now()),
                Err(e) => machine.handle_send_failed(transmit.id, e, SystemTime::now()),
            }
            continue;
        }
        // 3. Nothing due: sleep until the machine's next wake-up.
        if let Some(wake) = machine.poll_timeout() {
            std::thread::sleep(wake.duration_since(SystemTime::now()).unwrap_or_default());
        }
    }
}

/// HTTP/1.1 by hand: one request per connection, `Content-Length` bodies, at most 1 MiB.
/// The read timeout is 30 s, or less when the transmit's deadline (the policy's) is nearer.
fn send(transmit: &Transmit) -> Result<Response<Vec<u8>>, TransportError> {
    let request: &Request<Bytes> = &transmit.request;
    let io = |kind| {
        move |e: std::io::Error| {
            use std::io::ErrorKind::{TimedOut, WouldBlock};
            let kind = if matches!(e.kind(), TimedOut | WouldBlock) {
                TransportKind::Timeout
            } else {
                kind
            };
            TransportError::with_source(kind, e)
        }
    };
    let mut timeout = Duration::from_secs(30);
    if let Some(deadline) = transmit.deadline {
        let left = deadline
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        if left.is_zero() {
            return Err(TransportError::new(TransportKind::Timeout));
        }
        timeout = timeout.min(left);
    }
    let authority = request
        .uri()
        .authority()
        .expect("the core builds absolute URIs")
        .as_str();
    let mut stream = TcpStream::connect(authority).map_err(io(TransportKind::Connect))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(io(TransportKind::Other))?;
    let mut head = format!(
        "{} {} HTTP/1.1\r\nhost: {authority}\r\nconnection: close\r\n",
        request.method(),
        request.uri().path_and_query().map_or("/", |p| p.as_str())
    );
    for (name, value) in request.headers() {
        head.push_str(&format!(
            "{name}: {}\r\n",
            value.to_str().unwrap_or_default()
        ));
    }
    head.push_str(&format!("content-length: {}\r\n\r\n", request.body().len()));
    stream
        .write_all(head.as_bytes())
        .map_err(io(TransportKind::Reset))?;
    stream
        .write_all(request.body())
        .map_err(io(TransportKind::Reset))?;

    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .map_err(io(TransportKind::Reset))?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(TransportError::new(TransportKind::Other))?;
    let mut response = Response::builder().status(status);
    let mut length = 0usize;
    loop {
        line.clear();
        reader
            .read_line(&mut line)
            .map_err(io(TransportKind::Reset))?;
        let Some((name, value)) = line.trim_end().split_once(':') else {
            break;
        };
        if name.eq_ignore_ascii_case("content-length") {
            length = value
                .trim()
                .parse()
                .map_err(|_| TransportError::new(TransportKind::Other))?;
        }
        response = response.header(name.trim(), value.trim());
    }
    if length > 1024 * 1024 {
        return Err(TransportError::new(TransportKind::BodyTooLarge));
    }
    let mut body = vec![0; length];
    reader
        .read_exact(&mut body)
        .map_err(io(TransportKind::Reset))?;
    response
        .body(body)
        .map_err(|e| TransportError::with_source(TransportKind::Other, e))
}
