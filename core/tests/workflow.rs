//! The whole import on a simulated clock, against a small in-memory server.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use fullstory_batch::http::{Request, Response};
use fullstory_batch::{
    ApiError, ApiKey, Config, Error, EventRequest, FailedItem, IdempotencyKey, ImportOutcome,
    JobId, JobState, Outcome, Page, PageAnswer, Policy, Stage, UserId, UserRequest,
    ValidationError, Workflow, WorkflowAction,
};
use fullstory_batch::{ImportEvent, ImportQueue, QueueAction};
use proptest::prelude::*;
use serde_json::{Value, json};

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn config() -> Config {
    Config::new(ApiKey::new("k").unwrap())
}

/// A scripted stand-in for the API: jobs by idempotency key, processing for `processing`,
/// items whose name or uid starts with `bad` fail, pages of `page_size`.
struct Server {
    processing: Duration,
    page_size: usize,
    jobs: Vec<(SystemTime, Vec<Value>)>,
    keys: HashMap<String, usize>,
    /// Per request number: replace the answer with this status (after handling it).
    faults: HashMap<usize, u16>,
    /// Answer 202 to this many page requests first.
    not_ready: usize,
    repeat_token: bool,
    requests: Vec<String>,
}

impl Server {
    fn new() -> Self {
        Self {
            processing: Duration::from_secs(10),
            page_size: 10,
            jobs: Vec::new(),
            keys: HashMap::new(),
            faults: HashMap::new(),
            not_ready: 0,
            repeat_token: false,
            requests: Vec::new(),
        }
    }

    fn handle(&mut self, request: &Request<Vec<u8>>, now: SystemTime) -> Response<Vec<u8>> {
        let path = request.uri().path_and_query().unwrap().to_string();
        self.requests.push(format!("{} {path}", request.method()));
        let (status, body) = self.route(request, &path, now);
        let status = self
            .faults
            .get(&self.requests.len())
            .copied()
            .unwrap_or(status);
        Response::builder()
            .status(status)
            .body(body.to_string().into_bytes())
            .unwrap()
    }

    fn route(&mut self, request: &Request<Vec<u8>>, path: &str, now: SystemTime) -> (u16, Value) {
        let parts: Vec<&str> = path.split(['/', '?']).collect();
        match (request.method().as_str(), &parts[..]) {
            ("POST", ["", "v2", _, "batch"]) => {
                let key = request.headers()["idempotency-key"]
                    .to_str()
                    .unwrap()
                    .to_owned();
                let index = match self.keys.get(&key) {
                    Some(&i) => i,
                    None => {
                        let body: Value = serde_json::from_slice(request.body()).unwrap();
                        self.jobs
                            .push((now, body["requests"].as_array().unwrap().clone()));
                        self.keys.insert(key, self.jobs.len() - 1);
                        self.jobs.len() - 1
                    }
                };
                (
                    200,
                    json!({"job": {"id": format!("job={index}"), "status": "PROCESSING", "created": "2024-01-01T00:00:00Z"}}),
                )
            }
            ("GET", ["", "v2", _, "batch", id]) => (200, self.status(id, now)),
            ("GET", ["", "v2", _, "batch", id, kind, query @ ..]) => {
                self.page(id, kind, query.first().copied(), now)
            }
            _ => (
                404,
                json!({"message": "no route", "code": "resource_not_found"}),
            ),
        }
    }

    fn job(&self, id: &str) -> (Vec<Value>, Vec<Value>, usize) {
        let index: usize = id
            .trim_start_matches("job%3D")
            .trim_start_matches("job=")
            .parse()
            .unwrap();
        let (_, items) = &self.jobs[index];
        let bad = |v: &Value| {
            let name = v
                .get("name")
                .or_else(|| v.get("uid"))
                .and_then(Value::as_str)
                .unwrap_or("");
            name.starts_with("bad")
        };
        let (failed, ok): (Vec<Value>, Vec<Value>) = items.iter().cloned().partition(bad);
        (ok, failed, index)
    }

    fn status(&self, id: &str, now: SystemTime) -> Value {
        let (ok, failed, index) = self.job(id);
        let done = now >= self.jobs[index].0 + self.processing;
        let status = match (done, failed.is_empty()) {
            (false, _) => "PROCESSING",
            (true, true) => "COMPLETED",
            (true, false) => "FAILED",
        };
        json!({"imports": if done { ok.len() } else { 0 }, "errors": if done { failed.len() } else { 0 },
               "job": {"id": format!("job={index}"), "status": status, "created": "2024-01-01T00:00:00Z"}})
    }

    fn page(&mut self, id: &str, kind: &str, query: Option<&str>, now: SystemTime) -> (u16, Value) {
        let (ok, failed, index) = self.job(id);
        if now < self.jobs[index].0 + self.processing || self.not_ready > 0 {
            self.not_ready = self.not_ready.saturating_sub(1);
            return (202, json!({}));
        }
        let start: usize = query
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("page_token=")))
            .map_or(0, |t| t.trim_start_matches("p").parse().unwrap());
        let results: Vec<Value> = if kind == "imports" {
            ok.clone()
        } else {
            failed
                .iter()
                .map(|item| json!({"code": "invalid", "message": "bad name", "event": item}))
                .collect()
        };
        let total = results.len();
        let end = (start + self.page_size).min(total);
        let token = if end < total {
            json!(if self.repeat_token {
                "p0".to_owned()
            } else {
                format!("p{end}")
            })
        } else {
            json!("")
        };
        (
            200,
            json!({"results": results[start..end], "total_records": total.to_string(), "next_page_token": token}),
        )
    }
}

#[derive(Debug, Default)]
struct Report<T> {
    created: Vec<String>,
    imported: Vec<T>,
    failed: Vec<FailedItem<T>>,
}

fn run<T: fullstory_batch::BatchItem>(
    server: &mut Server,
    mut workflow: Workflow<T>,
) -> (ImportOutcome, Report<T>) {
    let mut now = t0();
    let mut report = Report {
        created: Vec::new(),
        imported: Vec::new(),
        failed: Vec::new(),
    };
    for _ in 0..100_000 {
        match workflow.poll(now) {
            WorkflowAction::Send(request) => {
                now += Duration::from_millis(20);
                let response = server.handle(&request, now);
                workflow.handle_response(&response, now);
            }
            WorkflowAction::Wait(t) => {
                assert!(t > now);
                now = t;
            }
            WorkflowAction::AwaitResponse => panic!("every request is answered at once"),
            WorkflowAction::Created(job) => report.created.push(job.id),
            WorkflowAction::Imported(items) => report.imported.extend(items),
            WorkflowAction::Failed(items) => report.failed.extend(items),
            WorkflowAction::Done(outcome) => {
                let expected = match &outcome {
                    ImportOutcome::Finished(_) => Stage::Done,
                    ImportOutcome::Stopped { stage, .. } => *stage,
                };
                assert_eq!(workflow.stage(), expected);
                return (outcome, report);
            }
        }
    }
    panic!("the workflow never finished");
}

fn events(n: usize, bad: usize) -> Vec<EventRequest> {
    (0..n)
        .map(|i| EventRequest {
            name: if i < bad {
                format!("bad-{i}")
            } else {
                format!("event-{i}")
            },
            user: Some(UserId {
                uid: Some(format!("u{i}")),
                id: None,
            }),
            ..EventRequest::default()
        })
        .collect()
}

#[test]
fn partial_failure_reads_imports_and_errors() {
    let mut server = Server::new();
    let workflow =
        Workflow::new(config(), &events(25, 3), None, Policy::default(), t0(), 1).unwrap();
    let (outcome, report) = run(&mut server, workflow);
    let ImportOutcome::Finished(status) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(status.job.status, JobState::Failed);
    assert_eq!((status.imports, status.errors), (22, 3));
    assert_eq!(
        report.imported.len(),
        22,
        "imported items of a FAILED job are read too"
    );
    assert_eq!(report.failed.len(), 3);
    assert_eq!(report.failed[0].item.as_ref().unwrap().name, "bad-0");
    assert_eq!(report.failed[0].code, "invalid");
    assert_eq!(report.created, ["job=0"]);
    let pages: Vec<_> = server
        .requests
        .iter()
        .filter(|r| r.contains("/imports"))
        .collect();
    assert_eq!(pages.len(), 3, "22 items in pages of 10: {pages:?}");
    assert!(pages[1].ends_with("?page_token=p10"), "{pages:?}");
    assert!(
        server.requests[1].contains("/batch/job=0"),
        "{:?}",
        server.requests
    );
}

#[test]
fn completed_reads_imports_only() {
    let mut server = Server::new();
    let workflow =
        Workflow::new(config(), &events(5, 0), None, Policy::default(), t0(), 1).unwrap();
    let (outcome, report) = run(&mut server, workflow);
    assert!(
        matches!(outcome, ImportOutcome::Finished(ref s) if s.job.status == JobState::Completed)
    );
    assert_eq!(report.imported.len(), 5);
    assert!(server.requests.iter().all(|r| !r.contains("/errors")));
}

#[test]
fn users_end_to_end() {
    let mut server = Server::new();
    let users: Vec<UserRequest> = (0..12)
        .map(|i| UserRequest {
            uid: Some(if i == 0 {
                "bad".into()
            } else {
                format!("u{i}")
            }),
            ..UserRequest::default()
        })
        .collect();
    let workflow = Workflow::new(config(), &users, None, Policy::default(), t0(), 1).unwrap();
    let (outcome, report) = run(&mut server, workflow);
    assert!(matches!(outcome, ImportOutcome::Finished(ref s) if s.job.status == JobState::Failed));
    assert_eq!((report.imported.len(), report.failed.len()), (11, 1));
    assert!(server.requests[0].starts_with("POST /v2/users/batch"));
}

#[test]
fn a_create_that_failed_after_acceptance_is_retried_with_the_same_key() {
    let mut server = Server::new();
    server.faults.insert(1, 503); // the server made the job, then the answer was lost
    server.faults.insert(2, 502);
    let workflow =
        Workflow::new(config(), &events(3, 0), None, Policy::default(), t0(), 1).unwrap();
    let (outcome, report) = run(&mut server, workflow);
    assert!(matches!(outcome, ImportOutcome::Finished(_)), "{outcome:?}");
    assert_eq!(server.jobs.len(), 1, "exactly one job exists");
    assert_eq!(
        server
            .requests
            .iter()
            .filter(|r| r.starts_with("POST"))
            .count(),
        3
    );
    assert_eq!(report.created, ["job=0"]);
}

#[test]
fn pages_answer_202_until_ready() {
    let mut server = Server::new();
    server.not_ready = 3;
    let workflow =
        Workflow::new(config(), &events(4, 0), None, Policy::default(), t0(), 1).unwrap();
    let (outcome, report) = run(&mut server, workflow);
    assert!(matches!(outcome, ImportOutcome::Finished(_)), "{outcome:?}");
    assert_eq!(report.imported.len(), 4);
    assert_eq!(
        server
            .requests
            .iter()
            .filter(|r| r.contains("/imports"))
            .count(),
        4
    );
}

#[test]
fn a_repeated_page_token_stops_instead_of_looping() {
    let mut server = Server::new();
    server.repeat_token = true;
    let workflow =
        Workflow::new(config(), &events(35, 0), None, Policy::default(), t0(), 1).unwrap();
    let (outcome, _) = run(&mut server, workflow);
    let ImportOutcome::Stopped {
        stage: Stage::Imports,
        why: Outcome::GaveUp(Error::Api(ApiError::Malformed(m))),
        ..
    } = &outcome
    else {
        panic!("{outcome:?}")
    };
    assert!(m.to_string().contains("repeated"));
    assert!(server.requests.len() < 10);
}

#[test]
fn resume_from_a_job_id() {
    let mut server = Server::new();
    let first = Workflow::new(config(), &events(7, 2), None, Policy::default(), t0(), 1).unwrap();
    let _ = run(&mut server, first);
    let resumed = Workflow::<EventRequest>::resume(
        config(),
        JobId::new("job=0").unwrap(),
        Policy::default(),
        t0(),
        2,
    );
    let (outcome, report) = run(&mut server, resumed);
    assert!(matches!(outcome, ImportOutcome::Finished(_)));
    assert_eq!((report.imported.len(), report.failed.len()), (5, 2));
    assert_eq!(server.jobs.len(), 1);
}

#[test]
fn deadline_while_waiting() {
    let mut server = Server::new();
    server.processing = Duration::from_secs(3600);
    let policy = Policy::default().with_timeout(Duration::from_secs(60));
    let workflow = Workflow::new(config(), &events(2, 0), None, policy, t0(), 1).unwrap();
    let (outcome, _) = run(&mut server, workflow);
    let ImportOutcome::Stopped {
        job,
        stage,
        why: Outcome::DeadlineExceeded { last_status },
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(stage, Stage::Wait);
    assert_eq!(job.unwrap().id, "job=0");
    assert_eq!(last_status.unwrap().job.status, JobState::Processing);
}

#[test]
fn non_retryable_create_stops() {
    let mut server = Server::new();
    server.faults.insert(1, 401);
    let workflow =
        Workflow::new(config(), &events(2, 0), None, Policy::default(), t0(), 1).unwrap();
    let (outcome, _) = run(&mut server, workflow);
    assert!(
        matches!(
            outcome,
            ImportOutcome::Stopped {
                stage: Stage::Create,
                job: None,
                why: Outcome::GaveUp(_)
            }
        ),
        "{outcome:?}"
    );
}

#[test]
fn create_request_shape() {
    let key = IdempotencyKey::new("my-key-1").unwrap();
    let request = config().create_request(&events(2, 0), &key).unwrap();
    assert_eq!(request.method(), "POST");
    assert_eq!(request.uri().path(), "/v2/events/batch");
    assert_eq!(request.headers()["idempotency-key"], "my-key-1");
    assert_eq!(request.headers()["content-type"], "application/json");
    let body: Value = serde_json::from_slice(request.body()).unwrap();
    assert_eq!(
        body,
        json!({"requests": [{"name": "event-0", "user": {"uid": "u0"}}, {"name": "event-1", "user": {"uid": "u1"}}]})
    );
}

#[test]
fn idempotency_keys() {
    assert_ne!(IdempotencyKey::generate(), IdempotencyKey::generate());
    for bad in ["", "a b", "a\r\nb", "é", &"x".repeat(256)] {
        assert!(IdempotencyKey::new(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn validation_names_the_item_and_field() {
    let check = |items: &[EventRequest]| fullstory_batch::validate(items).unwrap_err();
    assert_eq!(check(&[]), ValidationError::Empty);
    assert_eq!(check(&events(50_001, 0)), ValidationError::TooMany(50_001));
    assert!(fullstory_batch::validate(&events(50_000, 0)).is_ok());
    let mut items = events(3, 0);
    items[2].name = " ".into();
    assert_eq!(
        check(&items),
        ValidationError::Item {
            index: 2,
            field: "name",
            problem: "is required"
        }
    );
    let mut items = events(3, 0);
    items[1].user = Some(UserId {
        uid: Some("u".repeat(257)),
        id: None,
    });
    assert!(matches!(
        check(&items),
        ValidationError::Item {
            index: 1,
            field: "user.uid",
            ..
        }
    ));
    let users = [UserRequest {
        email: Some("e".repeat(129)),
        ..UserRequest::default()
    }];
    assert!(matches!(
        fullstory_batch::validate(&users),
        Err(ValidationError::Item {
            index: 0,
            field: "email",
            ..
        })
    ));
    let mut properties = serde_json::Map::new();
    properties.insert("1bad".into(), json!(1));
    let users = [UserRequest {
        properties: Some(properties),
        ..UserRequest::default()
    }];
    assert!(matches!(
        fullstory_batch::validate(&users),
        Err(ValidationError::Item {
            field: "properties",
            ..
        })
    ));
    assert!(
        Workflow::new(config(), &items, None, Policy::default(), t0(), 1).is_err(),
        "nothing is sent"
    );
}

#[test]
fn page_query_is_encoded() {
    let job = fullstory_batch::JobRef::new(
        fullstory_batch::Resource::Events,
        JobId::new("a/b").unwrap(),
    );
    let request =
        config().page_request(&job, fullstory_batch::PageKind::Imports, Some("x=&y"), true);
    assert_eq!(
        request.uri().path_and_query().unwrap(),
        "/v2/events/batch/a%2Fb/imports?page_token=x%3D%26y&include_schema=true"
    );
    let request = config().page_request(&job, fullstory_batch::PageKind::Errors, None, true);
    assert_eq!(
        request.uri().path_and_query().unwrap(),
        "/v2/events/batch/a%2Fb/errors"
    );
}

fn parse_page(status: u16, body: &str) -> Result<PageAnswer<Value>, ApiError> {
    config().parse_page(
        &Response::builder()
            .status(status)
            .body(body.as_bytes())
            .unwrap(),
    )
}

#[test]
fn page_parsing() {
    assert_eq!(parse_page(202, "").unwrap(), PageAnswer::NotReady);
    let page = parse_page(
        200,
        r#"{"results":[1,2],"total_records":"98","next_page_token":""}"#,
    )
    .unwrap();
    assert_eq!(
        page,
        PageAnswer::Ready(Page {
            results: vec![json!(1), json!(2)],
            unread: vec![],
            total_records: Some(98),
            next_page_token: None
        })
    );
    let page = parse_page(200, r#"{"total_records":98,"next_page_token":"t"}"#).unwrap();
    assert_eq!(
        page,
        PageAnswer::Ready(Page {
            results: vec![],
            unread: vec![],
            total_records: Some(98),
            next_page_token: Some("t".into())
        })
    );
    let Err(ApiError::Malformed(m)) = parse_page(200, r#"{"total_records":"-1"}"#) else {
        panic!()
    };
    assert_eq!(m.field_name(), Some("total_records"));
    assert!(matches!(
        parse_page(404, r#"{"message":"m","code":"resource_not_found"}"#),
        Err(ApiError::NotFound(_))
    ));
}

#[test]
fn create_response_parsing() {
    let ok = Response::new(
        r#"{"job":{"id":"otpo123","status":"PROCESSING","created":"2019-04-18T14:36:11.123Z"}}"#,
    );
    let job = config().parse_create(&ok).unwrap();
    assert_eq!(
        (job.id.as_str(), job.status),
        ("otpo123", JobState::Processing)
    );
    assert!(matches!(
        config().parse_create(&Response::new("{}")),
        Err(ApiError::Malformed(_))
    ));
}

#[test]
fn a_hundred_and_twenty_thousand_items_make_three_jobs_two_at_a_time() {
    let mut server = Server::new();
    server.page_size = 10_000; // about 400 KB a page, under the 1 MiB body limit
    let items = events(120_000, 0);
    let mut queue = ImportQueue::new(config(), items, 50_000, Policy::default(), 1)
        .unwrap()
        .with_max_in_progress(2);
    let mut now = t0();
    let (mut active, mut most_active, mut imported, mut finished) =
        (0usize, 0usize, 0usize, 0usize);
    loop {
        match queue.poll(now) {
            QueueAction::Send { batch, request } => {
                now += Duration::from_millis(20);
                let response = server.handle(&request, now);
                queue.handle_response(batch, &response, now);
            }
            QueueAction::Wait(t) => now = t,
            QueueAction::AwaitResponse => panic!("every request is answered at once"),
            QueueAction::Event {
                event: ImportEvent::Created(_),
                ..
            } => {
                active += 1;
                most_active = most_active.max(active);
            }
            QueueAction::Event {
                event: ImportEvent::Imported(items),
                ..
            } => imported += items.len(),
            QueueAction::Event {
                event: ImportEvent::Done(outcome),
                ..
            } => {
                assert!(matches!(outcome, ImportOutcome::Finished(_)), "{outcome:?}");
                active -= 1;
                finished += 1;
            }
            QueueAction::Event { .. } => {}
            QueueAction::Done => break,
        }
    }
    assert_eq!(server.jobs.len(), 3);
    assert_eq!(
        server
            .jobs
            .iter()
            .map(|(_, items)| items.len())
            .collect::<Vec<_>>(),
        [50_000, 50_000, 20_000]
    );
    assert_eq!((finished, imported), (3, 120_000));
    assert_eq!(most_active, 2);
}

#[test]
fn queue_validation_counts_from_the_first_item() {
    let mut items = events(7, 0);
    items[5].name.clear();
    let err = ImportQueue::new(config(), items, 3, Policy::default(), 1).unwrap_err();
    assert_eq!(
        err,
        ValidationError::Item {
            index: 5,
            field: "name",
            problem: "is required"
        }
    );
}

proptest! {
    /// Pages parse back in any encoding of their counts and tokens.
    #[test]
    fn pages_round_trip(n in 0usize..20, total: u32, as_string: bool, token in prop::option::of("[a-zA-Z0-9=_-]{0,12}")) {
        let results: Vec<Value> = (0..n).map(|i| json!({"name": format!("e{i}")})).collect();
        let mut body = json!({"results": results});
        body["total_records"] = if as_string { json!(total.to_string()) } else { json!(total) };
        if let Some(t) = &token {
            body["next_page_token"] = json!(t);
        }
        let page = config().parse_page::<EventRequest, _>(&Response::new(body.to_string().into_bytes())).unwrap();
        let PageAnswer::Ready(page) = page else { panic!() };
        prop_assert_eq!(page.results.len(), n);
        prop_assert_eq!(page.total_records, Some(u64::from(total)));
        prop_assert_eq!(page.next_page_token, token.filter(|t| !t.is_empty()));
    }

    /// Nothing in a page body makes the parser panic.
    #[test]
    fn pages_never_panic(body in prop::collection::vec(any::<u8>(), 0..200), status in 100u16..600) {
        if let Ok(response) = Response::builder().status(status).body(body) {
            let _ = config().parse_page::<FailedItem<EventRequest>, _>(&response);
            let _ = config().parse_create(&response);
        }
    }
}
