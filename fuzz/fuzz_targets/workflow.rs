#![no_main]
//! The import workflow fed an arbitrary sequence of responses, failures and times. Besides
//! never panicking: waits move forward, nothing is sent after the deadline, and a finished
//! workflow sends nothing more.

use std::time::{Duration, SystemTime};

use fullstory_batch::http::Response;
use fullstory_batch::{
    ApiKey, Config, EventRequest, Policy, TransportError, TransportKind, Workflow, WorkflowAction,
};
use libfuzzer_sys::fuzz_target;

const BODIES: [&str; 9] = [
    r#"{"job":{"id":"j=","status":"PROCESSING"}}"#,
    r#"{"imports":"4","job":{"id":"j=","status":"COMPLETED"}}"#,
    r#"{"imports":4,"errors":1,"job":{"id":"j=","status":"FAILED"}}"#,
    r#"{"results":[{"name":"e"}],"total_records":"1","next_page_token":"t1"}"#,
    r#"{"results":[{"name":"e"}],"total_records":2,"next_page_token":""}"#,
    r#"{"results":[{"code":"c","message":"m","event":{"name":"bad"}}],"total_records":"1"}"#,
    r#"{"job":{"id":"","status":"PROCESSING"}}"#,
    r#"{"message":"m","code":"too_many_requests"}"#,
    "<html>",
];

fuzz_target!(|data: &[u8]| {
    let config = Config::new(ApiKey::new("k").expect("a valid key"));
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let timeout = data.first().map(|&b| Duration::from_secs(u64::from(b) * 10)).filter(|t| !t.is_zero());
    let deadline = timeout.map(|t| start + t);
    let policy = Policy { timeout, max_errors_in_row: 4, ..Policy::default() };
    let items = [EventRequest { name: "e".into(), ..EventRequest::default() }];
    let mut workflow = Workflow::new(config, &items, None, policy, start, 1).expect("a valid batch");
    let mut now = start;
    let mut done = false;
    for chunk in data.get(1..).unwrap_or_default().chunks(3) {
        let [op, a, b] = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        match op % 4 {
            0 => now += Duration::from_millis(u64::from(u16::from_le_bytes([a, b])) * 10),
            1 => match workflow.poll(now) {
                WorkflowAction::Send(_) => {
                    assert!(!done, "sent after finishing");
                    assert!(deadline.is_none_or(|d| now <= d), "sent after the deadline");
                }
                WorkflowAction::Wait(t) => {
                    assert!(t > now, "a wait into the past");
                    now = t;
                }
                WorkflowAction::Done(_) => done = true,
                _ => {}
            },
            2 => {
                let status = [200u16, 200, 200, 202, 429, 500, 503, 404, 401, 400][usize::from(a) % 10];
                let mut response = Response::builder().status(status);
                if b % 3 == 1 {
                    response = response.header("retry-after", (b / 3).to_string());
                }
                let body = BODIES[usize::from(b) % BODIES.len()];
                let response = response.body(body.as_bytes()).expect("a valid response");
                workflow.handle_response(&response, now);
            }
            _ => workflow.handle_transport_error(TransportError::new(TransportKind::Reset), now),
        }
    }
});
