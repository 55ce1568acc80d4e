//! Every fault kind as a client observes it, scripts, and random faults.

mod common;

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use common::{Answer, Client, Failure, KEY, encode_id, events};
use fullstory_batch_fake::{FakeServer, Fault, FaultKind, Resource, RetryAfter, Route, Script};
use hyper::Method;
use serde_json::{Value, json};

async fn fake() -> FakeServer {
    FakeServer::builder()
        .key(KEY)
        .manual_clock()
        .start()
        .await
        .unwrap()
}

fn create_body() -> Value {
    json!({"requests": events(2, &[])})
}

async fn status_path(fake: &FakeServer) -> String {
    let id = fake.insert_job(Resource::Events, vec![json!({"name": "x"})]);
    format!("/v2/events/batch/{}", encode_id(&id))
}

fn http_date(answer: &Answer, name: &str) -> SystemTime {
    httpdate::parse_http_date(answer.header(name).unwrap()).unwrap()
}

#[tokio::test]
async fn server_errors_in_json_or_html_with_optional_retry_after() {
    let fake = fake().await;
    let client = Client::new(&fake);
    let cases = [
        (
            Fault::Http500 {
                retry_after: None,
                html: false,
            },
            500,
            "server_error",
        ),
        (
            Fault::Http502 {
                retry_after: Some(RetryAfter::Seconds(4)),
                html: false,
            },
            502,
            "bad_gateway",
        ),
        (
            Fault::Http503 {
                retry_after: Some(RetryAfter::HttpDate(9)),
                html: true,
            },
            503,
            "",
        ),
        (
            Fault::Http504 {
                retry_after: None,
                html: true,
            },
            504,
            "",
        ),
        (
            Fault::Http503 {
                retry_after: Some(RetryAfter::Seconds(1)),
                html: false,
            },
            503,
            "unavailable",
        ),
    ];
    for (fault, status, code) in cases {
        let html = matches!(
            fault,
            Fault::Http503 { html: true, .. } | Fault::Http504 { html: true, .. }
        );
        let retry_after = match &fault {
            Fault::Http500 { retry_after, .. }
            | Fault::Http502 { retry_after, .. }
            | Fault::Http503 { retry_after, .. }
            | Fault::Http504 { retry_after, .. } => *retry_after,
            _ => unreachable!(),
        };
        fake.script(Script::on(Route::Create).respond(fault.clone()));
        let answer = client.post("/v2/events/batch", &create_body()).await;
        assert_eq!(answer.status, status, "{fault:?}");
        if html {
            assert!(
                answer
                    .header("content-type")
                    .unwrap()
                    .starts_with("text/html")
            );
            assert!(
                answer.text().contains(&format!("<h1>{status} ")),
                "{}",
                answer.text()
            );
        } else {
            assert_eq!(answer.json()["code"], code);
        }
        match retry_after {
            None => assert_eq!(answer.header("retry-after"), None),
            Some(RetryAfter::Seconds(n)) => {
                assert_eq!(answer.header("retry-after"), Some(n.to_string().as_str()))
            }
            Some(RetryAfter::HttpDate(n)) => {
                let gap = http_date(&answer, "retry-after")
                    .duration_since(http_date(&answer, "date"))
                    .unwrap();
                assert_eq!(gap, Duration::from_secs(n));
            }
        }
    }
    assert_eq!(fake.jobs_created(), 0, "refused creates make no job");
    assert_eq!(
        client.post("/v2/events/batch", &create_body()).await.status,
        200
    );
}

#[tokio::test]
async fn too_many_requests_with_a_skewed_date() {
    let fake = fake().await;
    let client = Client::new(&fake);
    let path = status_path(&fake).await;
    fake.script(Script::on(Route::Status).respond(Fault::TooManyRequests {
        retry_after: RetryAfter::HttpDate(7),
        date_skew_secs: 3600,
    }));
    let answer = client.get(&path).await;
    assert_eq!(answer.status, 429);
    assert_eq!(answer.json()["code"], "too_many_requests");
    let date = http_date(&answer, "date");
    let ahead = date.duration_since(SystemTime::now()).unwrap();
    assert!(
        ahead > Duration::from_secs(3590) && ahead < Duration::from_secs(3610),
        "{ahead:?}"
    );
    let wait = http_date(&answer, "retry-after")
        .duration_since(date)
        .unwrap();
    assert_eq!(
        wait,
        Duration::from_secs(7),
        "measured against Date, the wait is exact"
    );

    fake.script(Script::on(Route::Status).respond(Fault::TooManyRequests {
        retry_after: RetryAfter::Seconds(3),
        date_skew_secs: -600,
    }));
    let answer = client.get(&path).await;
    assert_eq!(answer.header("retry-after"), Some("3"));
    let behind = SystemTime::now()
        .duration_since(http_date(&answer, "date"))
        .unwrap();
    assert!(behind > Duration::from_secs(590), "{behind:?}");
    // Unskewed answers carry the server's own date.
    let normal = client.get(&path).await;
    let drift = SystemTime::now()
        .duration_since(http_date(&normal, "date"))
        .unwrap_or_default();
    assert!(drift < Duration::from_secs(5));
}

#[tokio::test]
async fn connection_reset_mid_body() {
    let fake = fake().await;
    let client = Client::new(&fake);
    fake.script(Script::on(Route::Create).respond(Fault::ConnectionReset));
    let result = client
        .try_send(
            Method::POST,
            "/v2/events/batch",
            &[],
            Bytes::from(create_body().to_string()),
        )
        .await;
    let Err(Failure::Body {
        status,
        headers,
        received,
        ..
    }) = result
    else {
        panic!("expected a broken body, got {result:?}");
    };
    assert_eq!(status, 200);
    let declared: usize = headers["content-length"].to_str().unwrap().parse().unwrap();
    assert!(
        received > 0 && received < declared,
        "{received} of {declared}"
    );
    assert_eq!(fake.jobs_created(), 0);
}

#[tokio::test]
async fn stall_closes_without_a_response() {
    let fake = fake().await;
    let client = Client::new(&fake);
    let path = status_path(&fake).await;
    fake.script(Script::on(Route::Status).respond(Fault::Stall(Duration::from_millis(150))));
    let started = Instant::now();
    let result = client.try_send(Method::GET, &path, &[], Bytes::new()).await;
    assert!(matches!(result, Err(Failure::NoResponse(_))), "{result:?}");
    assert!(started.elapsed() >= Duration::from_millis(150));
    // A client with a short timeout gives up first.
    fake.script(Script::on(Route::Status).respond(Fault::Stall(Duration::from_secs(30))));
    let timed_out = tokio::time::timeout(
        Duration::from_millis(50),
        client.try_send(Method::GET, &path, &[], Bytes::new()),
    )
    .await;
    assert!(timed_out.is_err());
    // The request the client gave up on is logged too, with no status, once the fake notices.
    let deadline = Instant::now() + Duration::from_secs(5);
    while fake.requests().len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let log = fake.requests();
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(
        log.iter()
            .all(|r| r.status.is_none() && r.fault == Some(FaultKind::Stall)),
        "{log:?}"
    );
}

#[tokio::test]
async fn stall_ends_when_the_server_shuts_down() {
    let fake = fake().await;
    let client = Client::new(&fake);
    let path = status_path(&fake).await;
    fake.script(Script::on(Route::Status).respond(Fault::Stall(Duration::from_secs(60))));
    let started = Instant::now();
    let request =
        tokio::spawn(async move { client.try_send(Method::GET, &path, &[], Bytes::new()).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    fake.shutdown();
    let result = tokio::time::timeout(Duration::from_secs(5), request)
        .await
        .expect("stall outlived shutdown")
        .unwrap();
    assert!(matches!(result, Err(Failure::NoResponse(_))), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn delay_answers_late_but_processes() {
    let fake = fake().await;
    let client = Client::new(&fake);
    fake.script(Script::on(Route::Create).respond(Fault::Delay(Duration::from_millis(120))));
    let answer = client.post("/v2/events/batch", &create_body()).await;
    assert_eq!(answer.status, 200);
    assert!(answer.elapsed >= Duration::from_millis(120));
    assert_eq!(fake.jobs_created(), 1);
}

#[tokio::test]
async fn truncated_body_is_not_json_and_makes_no_job() {
    let fake = fake().await;
    let client = Client::new(&fake);
    fake.script(Script::on(Route::Create).respond(Fault::TruncatedBody));
    let answer = client.post("/v2/events/batch", &create_body()).await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("content-length"),
        Some(answer.body.len().to_string().as_str())
    );
    assert!(answer.body.len() > 10);
    assert!(serde_json::from_slice::<Value>(&answer.body).is_err());
    assert_eq!(fake.jobs_created(), 0);
    let path = status_path(&fake).await;
    fake.script(Script::on(Route::Status).respond(Fault::TruncatedBody));
    let answer = client.get(&path).await;
    assert!(
        answer.text().starts_with('{') && serde_json::from_slice::<Value>(&answer.body).is_err()
    );
}

#[tokio::test]
async fn oversized_body_is_valid_json_and_processed() {
    let fake = fake().await;
    let client = Client::new(&fake);
    fake.script(Script::on(Route::Create).respond(Fault::OversizedBody {
        bytes: 2 * 1024 * 1024,
    }));
    let answer = client.post("/v2/events/batch", &create_body()).await;
    assert_eq!(answer.status, 200);
    assert!(
        answer.body.len() >= 2 * 1024 * 1024 - 64,
        "{}",
        answer.body.len()
    );
    let body = answer.json();
    assert_eq!(body["job"]["id"].as_str(), Some(fake.jobs()[0].id.as_str()));
}

#[tokio::test]
async fn slow_drip_sends_the_body_in_small_pieces() {
    let fake = fake().await;
    let client = Client::new(&fake);
    let path = status_path(&fake).await;
    fake.script(Script::on(Route::Status).respond(Fault::SlowDrip {
        chunk: 10,
        delay: Duration::from_millis(5),
    }));
    let answer = client.get(&path).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["job"]["status"], "PROCESSING");
    let pieces = answer.body.len().div_ceil(10);
    assert!(
        answer.frames >= pieces / 2,
        "{} frames for {pieces} pieces",
        answer.frames
    );
    assert!(answer.elapsed >= Duration::from_millis(5 * (pieces as u64 - 1)));
}

#[tokio::test]
async fn scripts_aim_at_nth_request_resource_and_job() {
    let fake = fake().await;
    let client = Client::new(&fake);
    let a = fake.insert_job(Resource::Events, vec![json!({"name": "x"})]);
    let b = fake.insert_job(Resource::Events, vec![json!({"name": "y"})]);
    let script = fake.script(
        Script::on(Route::Status)
            .for_job(a.as_str())
            .nth(2)
            .times(2)
            .respond(Fault::Http502 {
                retry_after: None,
                html: true,
            }),
    );
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            client
                .get(&format!("/v2/events/batch/{}", encode_id(&b)))
                .await
                .status,
        );
        statuses.push(
            client
                .get(&format!("/v2/events/batch/{}", encode_id(&a)))
                .await
                .status,
        );
    }
    assert_eq!(statuses, [200, 200, 200, 502, 200, 502, 200, 200]);
    assert_eq!(fake.script_fired(script), 2);

    let users_only = fake.script(
        Script::on(Route::Create)
            .resource(Resource::Users)
            .always()
            .respond(Fault::AcceptThenFail),
    );
    assert_eq!(
        client.post("/v2/events/batch", &create_body()).await.status,
        200
    );
    assert_eq!(
        client
            .post("/v2/users/batch", &json!({"requests": [{"uid": "u"}]}))
            .await
            .status,
        500
    );
    assert_eq!(
        client
            .post("/v2/users/batch", &json!({"requests": [{"uid": "v"}]}))
            .await
            .status,
        500
    );
    assert_eq!(fake.script_fired(users_only), 2);

    fake.clear_scripts();
    fake.script(Script::on(Route::Any).respond(Fault::Http504 {
        retry_after: None,
        html: false,
    }));
    assert_eq!(client.get("/not/an/api/path").await.status, 504);
    assert_eq!(client.get("/not/an/api/path").await.status, 404);
}

/// Sends the same sequence of requests and returns what came back.
async fn run_sequence(fake: &FakeServer) -> Vec<(u16, Option<FaultKind>)> {
    let client = Client::new(fake);
    let path = status_path(fake).await;
    for round in 0..150 {
        let body =
            Bytes::from(json!({"requests": [{"name": format!("e{}", round % 7)}]}).to_string());
        let _ = client
            .try_send(Method::POST, "/v2/events/batch", &[], body)
            .await;
        let _ = client.try_send(Method::GET, &path, &[], Bytes::new()).await;
    }
    fake.requests()
        .iter()
        .map(|r| (r.status.unwrap_or(0), r.fault))
        .collect()
}

#[tokio::test]
async fn random_faults_are_reproducible_and_never_fake_state() {
    let kinds = [
        FaultKind::Http500,
        FaultKind::Http503,
        FaultKind::TruncatedBody,
        FaultKind::ConnectionReset,
        FaultKind::AcceptThenFail,
        FaultKind::TooManyRequests,
    ];
    let start = |seed| {
        FakeServer::builder()
            .key(KEY)
            .manual_clock()
            .random_faults(0.3, seed, &kinds)
            .start()
    };
    let one = start(42).await.unwrap();
    let two = start(42).await.unwrap();
    let other = start(43).await.unwrap();
    let first = run_sequence(&one).await;
    assert_eq!(first, run_sequence(&two).await, "same seed, same faults");
    assert_ne!(
        first,
        run_sequence(&other).await,
        "another seed, other faults"
    );

    let faults = first.iter().filter(|(_, f)| f.is_some()).count();
    assert!(
        (45..=135).contains(&faults),
        "{faults} faults in 300 requests at 30%"
    );
    for kind in kinds {
        assert!(
            first.iter().any(|(_, f)| *f == Some(kind)),
            "{kind:?} never drawn"
        );
    }
    // Jobs exist exactly for creates that got through or were accepted first.
    let creates = one
        .requests()
        .into_iter()
        .filter(|r| r.route == Some(Route::Create))
        .collect::<Vec<_>>();
    let accepted = creates
        .iter()
        .filter(|r| {
            r.fault.is_none() && r.status == Some(200) || r.fault == Some(FaultKind::AcceptThenFail)
        })
        .count();
    assert_eq!(one.jobs_created(), accepted + 1, "plus the inserted job");
}
