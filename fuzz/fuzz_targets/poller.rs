#![no_main]
//! The poller fed an arbitrary sequence of answers and times. Checks, besides never
//! panicking, the promises that hold for any input: waits move forward, nothing is sent
//! after the deadline, and a finished poller stays finished.

use std::time::{Duration, SystemTime};

use fullstory_batch::http::Response;
use fullstory_batch::{
    Action, ApiKey, Config, JobId, JobRef, Policy, Poller, Resource, TransportError, TransportKind,
};
use libfuzzer_sys::fuzz_target;

const BODIES: [&str; 6] = [
    r#"{"job":{"id":"j","status":"PROCESSING"}}"#,
    r#"{"imports":"4","job":{"id":"j","status":"COMPLETED"}}"#,
    r#"{"imports":4,"errors":1,"job":{"id":"j","status":"FAILED"}}"#,
    r#"{"job":{"id":"j","status":"PENDING"}}"#,
    r#"{"message":"m","code":"too_many_requests"}"#,
    "<html>",
];

fuzz_target!(|data: &[u8]| {
    let config = Config::new(ApiKey::new("k").expect("a valid key"));
    let job = JobRef::new(Resource::Events, JobId::new("j").expect("a valid id"));
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let timeout = data.first().map(|&b| Duration::from_secs(u64::from(b) * 10)).filter(|t| !t.is_zero());
    let policy = Policy { timeout, max_errors_in_row: 5, ..Policy::default() };
    let deadline = timeout.map(|t| start + t);
    let mut poller = Poller::new(job, policy, start, 1);
    let mut now = start;
    let mut done = false;
    for chunk in data.get(1..).unwrap_or_default().chunks(3) {
        let [op, a, b] = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        match op % 4 {
            0 => now += Duration::from_millis(u64::from(u16::from_le_bytes([a, b])) * 10),
            1 => match poller.poll(now) {
                Action::Send { .. } => {
                    assert!(!done, "sent after finishing");
                    assert!(deadline.is_none_or(|d| now <= d), "sent after the deadline");
                }
                Action::Wait(t) => {
                    assert!(t > now, "a wait into the past");
                    assert!(deadline.is_none_or(|d| t <= d), "a wait past the deadline");
                    now = t;
                }
                Action::AwaitResponse => {}
                Action::Done(_) => done = true,
            },
            2 => {
                let status = [200u16, 200, 429, 500, 502, 503, 504, 404, 401, 408][usize::from(a) % 10];
                let mut response = Response::builder().status(status);
                match b % 4 {
                    0 => {}
                    1 => response = response.header("retry-after", (b / 4).to_string()),
                    2 => response = response.header("retry-after", "Sun, 06 Nov 2094 08:49:37 GMT"),
                    _ => response = response.header("retry-after", "0.5"),
                }
                let body = BODIES[usize::from(b) % BODIES.len()];
                let response = response.body(body.as_bytes()).expect("a valid response");
                poller.handle_response(config.parse_status(&response), now);
            }
            _ => poller.handle_transport_error(TransportError::new(TransportKind::Timeout), now),
        }
    }
});
