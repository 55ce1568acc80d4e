//! One request from arrival to answer: read the body (bounded), pick a fault,
//! answer, log.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, HeaderMap};
use hyper::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::api::{PathTarget, Request, parse_path};
use crate::body::FakeBody;
use crate::codec::{hash_of, rfc3339_millis};
use crate::fault::{Fault, Target};
use crate::log::{LoggedRequest, redact};
use crate::model::Route;
use crate::reply::{Delivery, Reply, skewed};
use crate::server::Shared;
use crate::stats::is_inspection;

/// The hyper service: never fails except to close a connection on purpose.
pub(crate) async fn respond(
    shared: Arc<Shared>,
    request: hyper::Request<Incoming>,
) -> Result<Response<FakeBody>, io::Error> {
    let (parts, body) = request.into_parts();
    if is_inspection(parts.uri.path()) {
        // Before the log, the tally and the faults: looking must not change what is seen.
        return Ok(shared
            .inspect(&parts.method, parts.uri.path())
            .into_response());
    }
    let target = parse_path(parts.uri.path());
    shared.lock_tally().request(
        target.as_ref().map(|t| t.route),
        target.as_ref().map(|t| t.resource),
    );
    let mut logged = LogOnDrop {
        entry: Some(log_entry(&shared, &parts, target.as_ref())),
        shared: Arc::clone(&shared),
    };
    let entry = logged
        .entry
        .as_mut()
        .expect("set just above, taken only on drop");
    let (body, reply) = match read_body(body, &parts.headers, shared.config.max_body_bytes).await {
        Ok(body) => (body, None),
        Err(BodyError::TooLarge) => {
            let message = "request body is too large";
            let reply = Reply::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                message,
                false,
            );
            (
                Bytes::new(),
                Some(reply.dated(shared.clock.wall(shared.clock.now()), None)),
            )
        }
        Err(BodyError::Broken) => (Bytes::new(), Some(Reply::closed())),
    };
    entry.body_len = body.len();
    let reply = match reply {
        Some(reply) => reply,
        None => {
            answer(
                &shared,
                &parts.method,
                &parts.headers,
                parts.uri.query(),
                target.as_ref(),
                &body,
                entry,
            )
            .await
        }
    };
    entry.status = reply.logged_status();
    drop(logged);
    if reply.delivery == Delivery::Close {
        return Err(io::Error::other(
            "fake: connection closed without a response",
        ));
    }
    Ok(reply.into_response())
}

/// Logs its request when dropped: on the way out, or when the client hangs up while a stall
/// or delay is under way (hyper then drops this task with the connection). The second kind
/// is logged with no status, as the client got no answer.
struct LogOnDrop {
    shared: Arc<Shared>,
    entry: Option<LoggedRequest>,
}

impl Drop for LogOnDrop {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            self.shared.lock_log().push(entry);
        }
    }
}

async fn answer(
    shared: &Shared,
    method: &Method,
    headers: &HeaderMap,
    query: Option<&str>,
    target: Option<&PathTarget>,
    body: &[u8],
    entry: &mut LoggedRequest,
) -> Reply {
    let path_and_query = (entry.path.as_str(), query);
    let fault = pick_fault(shared, method, path_and_query, target, body);
    entry.fault = fault.as_ref().map(Fault::kind);
    if fault.is_some() {
        shared.lock_tally().faults += 1;
    }
    let request = Request {
        method,
        target,
        headers,
        query,
        body,
    };
    match fault {
        Some(fault) => answer_with_fault(shared, fault, &request).await,
        None => shared.handle(&request),
    }
}

fn log_entry(
    shared: &Shared,
    parts: &hyper::http::request::Parts,
    target: Option<&PathTarget>,
) -> LoggedRequest {
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes());
            let value = if name == AUTHORIZATION {
                redact(&value)
            } else {
                value.into_owned()
            };
            (name.as_str().to_owned(), value)
        })
        .collect();
    LoggedRequest {
        seq: shared.seq.fetch_add(1, Ordering::Relaxed),
        instant: Instant::now(),
        system_time: SystemTime::now(),
        clock: shared.clock.now(),
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers,
        body_len: 0,
        status: None,
        fault: None,
        route: target.map(|t| t.route),
        resource: target.map(|t| t.resource),
        job_id: target.and_then(|t| t.job_id.clone()),
    }
}

enum BodyError {
    TooLarge,
    Broken,
}

/// Reads the whole body, refusing (without reading) one that declares more
/// than `max` bytes and stopping one that turns out larger.
async fn read_body(body: Incoming, headers: &HeaderMap, max: usize) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        return Err(BodyError::TooLarge);
    }
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(BodyError::TooLarge),
        Err(_) => Err(BodyError::Broken),
    }
}

/// Scripts first (each counts its matches; the first to fire wins), then the
/// random draw for requests to known routes.
fn pick_fault(
    shared: &Shared,
    method: &Method,
    path_and_query: (&str, Option<&str>),
    target: Option<&PathTarget>,
    body: &[u8],
) -> Option<Fault> {
    let matched = Target {
        route: target.map(|t| t.route),
        resource: target.map(|t| t.resource),
        job: target.and_then(|t| t.job_id.as_deref()),
    };
    let mut state = shared.lock_state();
    let mut chosen = None;
    for script in &mut state.scripts {
        let fired = script.observe(&matched);
        chosen = chosen.or(fired);
    }
    if chosen.is_some() {
        return chosen;
    }
    let random = shared.config.random.as_ref()?;
    target?;
    let fingerprint = hash_of(&(method.as_str(), path_and_query, body));
    let seen = state.random_seen.entry(fingerprint).or_insert(0);
    *seen += 1;
    random.draw(hash_of(&(fingerprint, *seen)))
}

/// Sleeps (real time) unless the server shuts down first.
async fn pause(shared: &Shared, time: Duration) {
    let mut shutdown = shared.shutdown.subscribe();
    tokio::select! {
        _ = tokio::time::sleep(time) => {}
        _ = shutdown.wait_for(|stop| *stop) => {}
    }
}

async fn answer_with_fault(shared: &Shared, fault: Fault, request: &Request<'_>) -> Reply {
    let mut fault = fault;
    let mut handled = None;
    while let Fault::AcceptThen(inner) = fault {
        handled = handled.or_else(|| Some(shared.handle(request)));
        fault = *inner;
    }
    if fault.processes_request() && handled.is_none() {
        handled = Some(shared.handle(request));
    }
    match (fault, handled) {
        (Fault::Delay(time), Some(reply)) => {
            pause(shared, time).await;
            reply
        }
        (Fault::OversizedBody { bytes }, Some(reply)) => oversize(reply, bytes),
        (Fault::SlowDrip { chunk, delay }, Some(mut reply)) => {
            reply.delivery = Delivery::Drip { chunk, delay };
            reply
        }
        (fault, _) => failure(shared, fault, request.target).await,
    }
}

/// The answer for a fault that stands in for the real one.
async fn failure(shared: &Shared, fault: Fault, target: Option<&PathTarget>) -> Reply {
    let now = shared.clock.wall(shared.clock.now());
    let status_reply = |status: StatusCode, code: &str, message: &str, html: bool| {
        if html {
            Reply::html(status)
        } else {
            Reply::error(status, code, message, shared.config.encoding.extra_fields)
        }
    };
    match fault {
        Fault::Http500 { retry_after, html } => status_reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "Server error was encountered",
            html,
        )
        .dated(now, retry_after),
        Fault::Http502 { retry_after, html } => {
            status_reply(StatusCode::BAD_GATEWAY, "bad_gateway", "Bad gateway", html)
                .dated(now, retry_after)
        }
        Fault::Http503 { retry_after, html } => status_reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            html,
        )
        .dated(now, retry_after),
        Fault::Http504 { retry_after, html } => status_reply(
            StatusCode::GATEWAY_TIMEOUT,
            "gateway_timeout",
            "Gateway timeout",
            html,
        )
        .dated(now, retry_after),
        Fault::TooManyRequests {
            retry_after,
            date_skew_secs,
        } => {
            let message =
                "Too many requests. Client has exceeded the rate limit for this endpoint.";
            status_reply(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                message,
                false,
            )
            .dated(skewed(now, date_skew_secs), Some(retry_after))
        }
        Fault::ConnectionReset => {
            let full = plausible_body(target, now).to_string();
            let sent = Bytes::from(full[..full.len() / 2].to_owned());
            let mut reply =
                Reply::new(StatusCode::OK, Some(crate::reply::JSON), sent).dated(now, None);
            reply.delivery = Delivery::Cut {
                declared: full.len() + 1024,
            };
            reply
        }
        Fault::Stall(time) => {
            pause(shared, time).await;
            Reply::closed()
        }
        Fault::TruncatedBody => {
            let full = plausible_body(target, now).to_string();
            let half = full[..full.len() / 2].to_owned();
            Reply::new(StatusCode::OK, Some(crate::reply::JSON), half).dated(now, None)
        }
        // Faults that process the request end here only once it was processed.
        _ => status_reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "Server error was encountered",
            false,
        )
        .dated(now, None),
    }
}

/// A well-formed answer of the route's shape (all ASCII, so any cut is a char boundary).
fn plausible_body(target: Option<&PathTarget>, now: SystemTime) -> Value {
    let created = rfc3339_millis(now);
    let id = target
        .and_then(|t| t.job_id.clone())
        .unwrap_or_else(|| "abd123=".into());
    let id: String = id.chars().filter(char::is_ascii).collect();
    match target.map(|t| t.route) {
        Some(Route::Imports | Route::Errors) => json!({
            "results": [{ "name": "Support Ticket", "timestamp": created }],
            "total_records": "1",
            "next_page_token": "",
        }),
        _ => json!({
            "imports": 0,
            "errors": 0,
            "job": { "id": id, "status": "PROCESSING", "created": created },
        }),
    }
}

/// Pads a JSON object answer with an unknown field up to about `bytes`.
fn oversize(mut reply: Reply, bytes: usize) -> Reply {
    let mut value: Value = serde_json::from_slice(&reply.body).unwrap_or_else(|_| json!({}));
    if !value.is_object() {
        value = json!({ "value": value });
    }
    let padding = bytes.saturating_sub(reply.body.len() + 16);
    value["padding"] = json!("x".repeat(padding));
    reply.body = Bytes::from(value.to_string());
    if !reply.has_header(&hyper::header::CONTENT_TYPE) {
        reply = reply.header(hyper::header::CONTENT_TYPE, crate::reply::JSON);
    }
    reply
}
