//! Bring your own runtime: the core driven by a hand-made HTTP/1.1 client over a plain
//! `TcpStream`, with no adapter. The transport is a closure; everything else (what to send,
//! what the answer means, when to ask again) is the core's.
//!
//! `cargo run -p fsbatch --example custom_transport`

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime};

use fullstory_batch::http::{Request, Response};
use fullstory_batch::{
    Action, ApiKey, BaseUrl, Config, JobId, JobRef, Outcome, Policy, Poller, Resource,
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
    let outcome = wait(&config, job, |request| send(&request));
    match outcome {
        Outcome::Completed(status) => println!("completed: {} imported", status.imports),
        other => println!("ended: {other:?}"),
    }
    Ok(())
}

/// The whole driver: the poller's loop with `thread::sleep` as the timer and any transport.
fn wait(
    config: &Config,
    job: JobRef,
    mut transport: impl FnMut(Request<Vec<u8>>) -> Result<Response<Vec<u8>>, TransportError>,
) -> Outcome {
    let mut poller = Poller::new(
        job,
        Policy::default().with_timeout(Duration::from_secs(60)),
        SystemTime::now(),
        7,
    );
    loop {
        match poller.poll(SystemTime::now()) {
            Action::Send { .. } => match transport(config.status_request(poller.job())) {
                Ok(response) => {
                    poller.handle_response(config.parse_status(&response), SystemTime::now())
                }
                Err(e) => poller.handle_transport_error(e, SystemTime::now()),
            },
            Action::Wait(until) => {
                std::thread::sleep(until.duration_since(SystemTime::now()).unwrap_or_default())
            }
            Action::AwaitResponse => {
                unreachable!("this driver answers each request before polling again")
            }
            Action::Done(outcome) => return outcome,
        }
    }
}

/// HTTP/1.1 by hand: one request per connection, `Content-Length` bodies, at most 1 MiB.
fn send(request: &Request<Vec<u8>>) -> Result<Response<Vec<u8>>, TransportError> {
    let io = |kind| move |e: std::io::Error| TransportError::with_source(kind, e);
    let authority = request
        .uri()
        .authority()
        .expect("the core builds absolute URIs")
        .as_str();
    let mut stream = TcpStream::connect(authority).map_err(io(TransportKind::Connect))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(io(TransportKind::Other))?;
    let mut head = format!(
        "{} {} HTTP/1.1\r\nhost: {authority}\r\nconnection: close\r\n",
        request.method(),
        request.uri().path()
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
