//! Conformance: every answer the fake gives is checked against the swagger
//! specs (copies in tests/spec). With the default encoding there must be no
//! violation at all; each quirk encoding must produce exactly its documented
//! deviation, and nothing else.
//!
//! Deliberate deviations from the spec (all opt-in through `Encoding`, except
//! the last two):
//! - `omit_zero_counts`: `imports` / `errors` missing although marked required;
//! - `counts_as_strings`: `imports` / `errors` as strings although typed integer;
//! - `pending_first`: status `PENDING`, outside the enum;
//! - `omit_empty_fields`: users imports pages without the required `results`;
//! - 405 (wrong method) and 413 (body too large) are answers the spec does not list;
//! - the 202 body is empty (or `{}`), matching the spec's empty schema.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::swagger::Spec;
use common::{Answer, Client, KEY, encode_id, events, users};
use fullstory_batch_fake::{Encoding, FakeServer, Fault, Route, Script};
use hyper::Method;
use serde_json::{Value, json};

const ERROR: &str = "fullstory.v2.apierror.ErrorResponse";
const STATUS: &str = "fullstory.v2.job.JobStatusResponse";

struct Api {
    spec: Spec,
    resource: &'static str,
    version: &'static str,
}

impl Api {
    fn spec_path(&self, suffix: &str) -> String {
        format!("/{}/{}/batch{suffix}", self.version, self.resource)
    }

    /// The definition of the create body, from the path's `body` parameter.
    fn request_definition(&self) -> String {
        let parameters = &self.spec.doc()["paths"][self.spec_path("")]["post"]["parameters"];
        let body = parameters
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["in"] == "body")
            .unwrap();
        body["schema"]["$ref"]
            .as_str()
            .unwrap()
            .trim_start_matches("#/definitions/")
            .to_owned()
    }

    /// Checks `answer` against what the spec declares for this path and status.
    fn check(&self, suffix: &str, method: &str, answer: &Answer) -> Vec<String> {
        let status = answer.status.to_string();
        if status == "202" {
            let declared =
                &self.spec.doc()["paths"][self.spec_path(suffix)][method]["responses"]["202"];
            assert_eq!(declared["schema"], json!({}), "202 has an empty schema");
            assert!(answer.body.is_empty() || answer.json() == json!({}));
            return Vec::new();
        }
        let definition = self
            .spec
            .response_definition(&self.spec_path(suffix), method, &status);
        self.spec.violations(&definition, &answer.json())
    }

    fn assert_conforms(&self, suffix: &str, method: &str, answer: &Answer) {
        let violations = self.check(suffix, method, answer);
        assert!(
            violations.is_empty(),
            "{} {suffix} {}: {violations:#?}\n{}",
            self.resource,
            answer.status,
            answer.text()
        );
    }
}

fn apis() -> Vec<Api> {
    let mut apis = Vec::new();
    for version in ["v2", "v2beta"] {
        apis.push(Api {
            spec: Spec::events(),
            resource: "events",
            version,
        });
        apis.push(Api {
            spec: Spec::users(),
            resource: "users",
            version,
        });
    }
    apis
}

fn items(api: &Api, n: usize, bad: &[usize]) -> Value {
    if api.resource == "events" {
        events(n, bad)
    } else {
        users(n, bad)
    }
}

async fn fake(encoding: Encoding) -> FakeServer {
    FakeServer::builder()
        .key(KEY)
        .key_without_permission("ro-key")
        .manual_clock()
        .rate_limit(1000.0, 1000)
        .processing_time(Duration::from_secs(1))
        .page_size(2)
        .encoding(encoding)
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn every_answer_conforms_with_the_default_encoding() {
    for api in apis() {
        let fake = fake(Encoding::default()).await;
        let client = Client::new(&fake);
        let body = json!({ "requests": items(&api, 5, &[1, 2, 4]) });
        api.spec.assert_valid(&api.request_definition(), &body);
        let created = client.post(&api.spec_path(""), &body).await;
        api.assert_conforms("", "post", &created);
        let id = encode_id(created.json()["job"]["id"].as_str().unwrap());
        let status_path = "/{job_id}";
        let status = client.get(&api.spec_path(&format!("/{id}"))).await;
        api.assert_conforms(status_path, "get", &status);
        for page in ["imports", "errors"] {
            let early = client.get(&api.spec_path(&format!("/{id}/{page}"))).await;
            assert_eq!(early.status, 202);
            api.assert_conforms(&format!("/{{job_id}}/{page}"), "get", &early);
        }
        fake.advance(Duration::from_secs(1));
        api.assert_conforms(
            status_path,
            "get",
            &client.get(&api.spec_path(&format!("/{id}"))).await,
        );
        for page in ["imports?include_schema=true", "imports", "errors"] {
            let name = page.split('?').next().unwrap();
            let mut url = api.spec_path(&format!("/{id}/{page}"));
            let mut seen = 0;
            loop {
                let answer = client.get(&url).await;
                api.assert_conforms(&format!("/{{job_id}}/{name}"), "get", &answer);
                let body = answer.json();
                seen += body["results"].as_array().unwrap().len();
                let token = body["next_page_token"].as_str().unwrap();
                if token.is_empty() {
                    break;
                }
                let sep = if page.contains('?') { '&' } else { '?' };
                url = format!(
                    "{}{sep}page_token={}",
                    api.spec_path(&format!("/{id}/{page}")),
                    encode_id(token)
                );
            }
            assert_eq!(
                seen,
                if name == "errors" { 3 } else { 2 },
                "{} {page}",
                api.resource
            );
        }
    }
}

#[tokio::test]
async fn every_error_answer_is_a_declared_error_response() {
    for api in apis() {
        let fake = fake(Encoding {
            extra_fields: true,
            ..Encoding::default()
        })
        .await;
        let client = Client::new(&fake);
        let id = encode_id(&client.create(api.resource, items(&api, 1, &[])).await);
        let status_suffix = format!("/{id}");
        fake.advance(Duration::from_secs(1));
        let cases: Vec<(&str, Answer)> = vec![
            (
                "",
                client
                    .post(&api.spec_path(""), &json!({"requests": []}))
                    .await,
            ),
            (
                "",
                client
                    .with_key(None)
                    .post(&api.spec_path(""), &json!({"requests": []}))
                    .await,
            ),
            (
                "/{job_id}",
                client
                    .with_key(Some("ro-key"))
                    .get(&api.spec_path(&status_suffix))
                    .await,
            ),
            ("/{job_id}", client.get(&api.spec_path("/missing")).await),
            (
                "/{job_id}/imports",
                client
                    .get(&api.spec_path(&format!("{status_suffix}/imports?page_token=zz")))
                    .await,
            ),
        ];
        let mut statuses = Vec::new();
        for (suffix, answer) in &cases {
            api.assert_conforms(
                suffix,
                if suffix.is_empty() { "post" } else { "get" },
                answer,
            );
            api.spec.assert_valid(ERROR, &answer.json());
            statuses.push(answer.status);
        }
        assert_eq!(statuses, [400, 401, 403, 404, 400], "{}", api.resource);
        fake.script(Script::on(Route::Status).respond(Fault::TooManyRequests {
            retry_after: fullstory_batch_fake::RetryAfter::Seconds(1),
            date_skew_secs: 0,
        }));
        let limited = client.get(&api.spec_path(&status_suffix)).await;
        api.assert_conforms("/{job_id}", "get", &limited);
        fake.script(Script::on(Route::Status).respond(Fault::Http500 {
            retry_after: None,
            html: false,
        }));
        api.assert_conforms(
            "/{job_id}",
            "get",
            &client.get(&api.spec_path(&status_suffix)).await,
        );
    }
}

#[tokio::test]
async fn undeclared_statuses_are_the_documented_ones() {
    let fake = fake(Encoding::default()).await;
    let client = Client::new(&fake);
    let spec = Spec::events();
    let declared = |path: &str, method: &str| -> Vec<String> {
        spec.doc()["paths"][path][method]["responses"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    let wrong_method = client
        .send(Method::PUT, "/v2/events/batch", &[], Bytes::new())
        .await;
    assert_eq!(wrong_method.status, 405);
    assert!(!declared("/v2/events/batch", "post").contains(&"405".to_owned()));
    spec.assert_valid(ERROR, &wrong_method.json());
    assert_eq!(
        declared("/v2/events/batch/{job_id}", "get"),
        ["200", "400", "401", "403", "404", "429", "500"]
    );
    assert_eq!(
        declared("/v2/events/batch/{job_id}/imports", "get"),
        ["200", "202", "400", "401", "403", "404", "429", "500"]
    );
}

async fn status_with(encoding: Encoding, bad: &[usize], advance: Duration) -> (Spec, Value) {
    let fake = fake(encoding).await;
    let client = Client::new(&fake);
    let id = client.create("events", events(3, bad)).await;
    fake.advance(advance);
    let status = client
        .get(&format!("/v2/events/batch/{}", encode_id(&id)))
        .await
        .json();
    (Spec::events(), status)
}

#[tokio::test]
async fn each_quirk_is_exactly_its_documented_deviation() {
    let (spec, processing) = status_with(
        Encoding {
            omit_zero_counts: true,
            ..Encoding::default()
        },
        &[],
        Duration::ZERO,
    )
    .await;
    assert_eq!(
        spec.violations(STATUS, &processing),
        [
            "$.imports: required but missing",
            "$.errors: required but missing"
        ]
    );
    let (spec, completed) = status_with(
        Encoding {
            omit_zero_counts: true,
            ..Encoding::default()
        },
        &[],
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(
        spec.violations(STATUS, &completed),
        ["$.errors: required but missing"]
    );

    let (spec, strings) = status_with(
        Encoding {
            counts_as_strings: true,
            ..Encoding::default()
        },
        &[0],
        Duration::from_secs(1),
    )
    .await;
    let mut violations = spec.violations(STATUS, &strings);
    violations.sort();
    assert_eq!(
        violations,
        [
            "$.errors: expected integer, got \"1\"",
            "$.imports: expected integer, got \"2\""
        ]
    );

    let (spec, pending) = status_with(
        Encoding {
            pending_first: true,
            ..Encoding::default()
        },
        &[],
        Duration::ZERO,
    )
    .await;
    let violations = spec.violations(STATUS, &pending);
    assert_eq!(violations.len(), 1);
    assert!(
        violations[0].starts_with("$.job.status: \"PENDING\" not in enum"),
        "{violations:?}"
    );

    let (spec, extra) = status_with(
        Encoding {
            extra_fields: true,
            ..Encoding::default()
        },
        &[0],
        Duration::from_secs(1),
    )
    .await;
    assert!(extra.get(fullstory_batch_fake::EXTRA_FIELD).is_some());
    spec.assert_valid(STATUS, &extra);

    // Users imports pages require `results`; proto3 omits an empty one.
    let fake = fake(Encoding {
        omit_empty_fields: true,
        ..Encoding::default()
    })
    .await;
    let client = Client::new(&fake);
    let id = client.create("users", users(2, &[0, 1])).await;
    fake.advance(Duration::from_secs(1));
    let page = client
        .get(&format!("/v2/users/batch/{}/imports", encode_id(&id)))
        .await
        .json();
    assert_eq!(
        Spec::users().violations("fullstory.v2.users.GetBatchUserImportsResponse", &page),
        ["$.results: required but missing"]
    );
}

#[test]
fn validator_catches_what_it_claims_to() {
    let spec = Spec::events();
    let good = json!({"imports": 1, "errors": 0, "job": {"id": "a", "status": "COMPLETED", "created": "2019-04-18T14:36:11.123Z", "finished": "2019-04-18T15:36:11.123Z"}});
    spec.assert_valid(STATUS, &good);
    let cases = [
        (
            json!({"imports": 1, "errors": 0}),
            "$.job: required but missing",
        ),
        (
            json!({"imports": 1.5, "errors": 0, "job": good["job"]}),
            "$.imports: expected integer, got 1.5",
        ),
        (
            json!({"imports": 3_000_000_000u64, "errors": 0, "job": good["job"]}),
            "$.imports: 3000000000 is not int32",
        ),
        (
            json!({"imports": 1, "errors": 0, "job": {"id": "a", "status": "DONE", "created": "2019-04-18T14:36:11.123Z"}}),
            "$.job.status: \"DONE\" not in enum",
        ),
        (
            json!({"imports": 1, "errors": 0, "job": {"id": "a", "status": "FAILED", "created": "yesterday"}}),
            "$.job.created: \"yesterday\" is not an RFC 3339 date-time",
        ),
        (
            json!({"imports": 1, "errors": 0, "job": {"id": 5, "status": "FAILED", "created": "2019-04-18T14:36:11Z"}}),
            "$.job.id: expected string, got 5",
        ),
        (json!([]), "$: expected object, got []"),
    ];
    for (value, expected) in cases {
        let violations = spec.violations(STATUS, &value);
        assert!(
            violations.iter().any(|v| v.starts_with(expected)),
            "{value}: {violations:?} lacks {expected}"
        );
    }
    let request = "fullstory.v2.events.CreateBatchEventsImportJobRequest";
    let long =
        json!({"requests": [{"name": "a"}, {"name": "b", "user": {"uid": "u".repeat(257)}}]});
    assert_eq!(
        spec.violations(request, &long),
        ["$.requests[1].user.uid: longer than 256"]
    );
    assert_eq!(
        spec.violations(request, &json!({"requests": [{"properties": {}}]})),
        ["$.requests[0].name: required but missing"]
    );
    let users = Spec::users();
    let props: serde_json::Map<String, Value> =
        (0..501).map(|i| (format!("p{i}"), json!(1))).collect();
    let many = json!({"requests": [{"properties": props}]});
    assert_eq!(
        users.violations("fullstory.v2.users.CreateBatchUserImportJobRequest", &many),
        ["$.requests[0].properties: more than 500 properties"]
    );
}

/// The fake accepts a create body exactly when the spec's request schema does
/// (for the shape rules the spec can express).
#[tokio::test]
async fn fake_validation_agrees_with_the_request_schemas() {
    let fake = fake(Encoding::default()).await;
    let client = Client::new(&fake);
    let candidates = [
        ("events", json!({"requests": [{"name": "a"}]})),
        (
            "events",
            json!({"requests": [{"name": "a", "user": {"uid": "u".repeat(256)}}]}),
        ),
        (
            "events",
            json!({"requests": [{"name": "a", "user": {"uid": "u".repeat(257)}}]}),
        ),
        (
            "events",
            json!({"requests": [{"name": "a", "context": {"device": {"screen_width": 5}}}]}),
        ),
        (
            "events",
            json!({"requests": [{"name": "a", "context": {"device": {"screen_width": "5"}}}]}),
        ),
        (
            "events",
            json!({"requests": [{"name": "a", "session": {"use_most_recent": "yes"}}]}),
        ),
        (
            "events",
            json!({"requests": [{"name": "a", "properties": {"k": [1, 2]}}]}),
        ),
        ("events", json!({"requests": [{"user": {"uid": "x"}}]})),
        ("events", json!({"shared": {}})),
        ("users", json!({"requests": [{}]})),
        (
            "users",
            json!({"requests": [{"uid": "u", "email": "e".repeat(128)}]}),
        ),
        (
            "users",
            json!({"requests": [{"uid": "u", "email": "e".repeat(129)}]}),
        ),
        (
            "users",
            json!({"requests": [{"uid": "u", "display_name": ["x"]}]}),
        ),
        (
            "users",
            json!({"requests": [{"uid": "u", "schema": {"properties": {"a": "str"}}}]}),
        ),
        (
            "users",
            json!({"requests": [{"uid": "u", "schema": {"properties": 3}}]}),
        ),
    ];
    for (resource, body) in candidates {
        let spec = if resource == "events" {
            Spec::events()
        } else {
            Spec::users()
        };
        let definition = if resource == "events" {
            "fullstory.v2.events.CreateBatchEventsImportJobRequest"
        } else {
            "fullstory.v2.users.CreateBatchUserImportJobRequest"
        };
        let spec_ok = spec.violations(definition, &body).is_empty();
        let answer = client.post(&format!("/v2/{resource}/batch"), &body).await;
        assert_eq!(
            answer.status == 200,
            spec_ok,
            "{resource} {body}: spec says {spec_ok}, fake answered {}",
            answer.text()
        );
    }
}
