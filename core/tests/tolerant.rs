//! The tolerant reader: every field of every answer in each of its encodings, pages that
//! never fail on one item, body limits per call, and a property test that builds answers
//! from the swagger schemas and mangles them.

use std::error::Error as _;

use fullstory_batch::http::Response;
use fullstory_batch::{
    ApiError, ApiKey, BodyLimits, CallKind, Config, EventRequest, FailedItem, JobState, PageAnswer,
    UserRequest,
};
use proptest::prelude::*;
use serde_json::{Value, json};

const EVENTS_SPEC: &str = include_str!("../../tests/fake/tests/spec/events.swagger.json");
const USERS_SPEC: &str = include_str!("../../tests/fake/tests/spec/users.swagger.json");

fn config() -> Config {
    Config::new(ApiKey::new("key").unwrap())
}

fn ok(body: &str) -> Response<Vec<u8>> {
    Response::new(body.as_bytes().to_vec())
}

fn page<T: serde::de::DeserializeOwned + std::fmt::Debug>(body: &str) -> fullstory_batch::Page<T> {
    match config().parse_page::<T, _>(&ok(body)) {
        Ok(PageAnswer::Ready(page)) => page,
        other => panic!("{body}: {other:?}"),
    }
}

/// The error and its causes, as the CLI prints them.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

// ---- The field list, derived from the specs ----

/// How a field is typed on the wire, as the specs say.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Wire {
    Count,
    Text,
    Status,
    Time,
    List,
    Object,
}

/// Every response field this crate reads: (spec, definition, field, wire type). The test
/// `field_list_matches_the_specs` keeps it in step with the spec files.
const FIELDS: &[(&str, &str, &str, Wire)] = &[
    (
        "events",
        "fullstory.v2.job.JobStatusResponse",
        "imports",
        Wire::Count,
    ),
    (
        "events",
        "fullstory.v2.job.JobStatusResponse",
        "errors",
        Wire::Count,
    ),
    (
        "events",
        "fullstory.v2.job.JobStatusResponse",
        "job",
        Wire::Object,
    ),
    ("events", "fullstory.v2.job.JobMetadata", "id", Wire::Text),
    (
        "events",
        "fullstory.v2.job.JobMetadata",
        "status",
        Wire::Status,
    ),
    (
        "events",
        "fullstory.v2.job.JobMetadata",
        "created",
        Wire::Time,
    ),
    (
        "events",
        "fullstory.v2.job.JobMetadata",
        "finished",
        Wire::Time,
    ),
    (
        "events",
        "fullstory.v2.events.CreateBatchEventsImportJobResponse",
        "job",
        Wire::Object,
    ),
    (
        "users",
        "fullstory.v2.users.CreateBatchUserImportJobResponse",
        "job",
        Wire::Object,
    ),
    (
        "events",
        "fullstory.v2.events.GetBatchEventsImportsResponse",
        "results",
        Wire::List,
    ),
    (
        "events",
        "fullstory.v2.events.GetBatchEventsImportsResponse",
        "total_records",
        Wire::Count,
    ),
    (
        "events",
        "fullstory.v2.events.GetBatchEventsImportsResponse",
        "next_page_token",
        Wire::Text,
    ),
    (
        "events",
        "fullstory.v2.events.GetBatchEventsImportErrorsResponse",
        "results",
        Wire::List,
    ),
    (
        "events",
        "fullstory.v2.events.GetBatchEventsImportErrorsResponse",
        "total_records",
        Wire::Count,
    ),
    (
        "events",
        "fullstory.v2.events.GetBatchEventsImportErrorsResponse",
        "next_page_token",
        Wire::Text,
    ),
    (
        "users",
        "fullstory.v2.users.GetBatchUserImportsResponse",
        "results",
        Wire::List,
    ),
    (
        "users",
        "fullstory.v2.users.GetBatchUserImportsResponse",
        "total_records",
        Wire::Count,
    ),
    (
        "users",
        "fullstory.v2.users.GetBatchUserImportsResponse",
        "next_page_token",
        Wire::Text,
    ),
    (
        "users",
        "fullstory.v2.users.GetBatchUserImportErrorsResponse",
        "results",
        Wire::List,
    ),
    (
        "users",
        "fullstory.v2.users.GetBatchUserImportErrorsResponse",
        "total_records",
        Wire::Count,
    ),
    (
        "users",
        "fullstory.v2.users.GetBatchUserImportErrorsResponse",
        "next_page_token",
        Wire::Text,
    ),
    (
        "events",
        "fullstory.v2.events.GetBatchEventsImportErrorsResponse.FailedEventsImport",
        "message",
        Wire::Text,
    ),
    (
        "events",
        "fullstory.v2.events.GetBatchEventsImportErrorsResponse.FailedEventsImport",
        "code",
        Wire::Text,
    ),
    (
        "events",
        "fullstory.v2.events.GetBatchEventsImportErrorsResponse.FailedEventsImport",
        "event",
        Wire::Object,
    ),
    (
        "events",
        "fullstory.v2.events.GetBatchEventsImportErrorsResponse.FailedEventsImport",
        "shared",
        Wire::Object,
    ),
    (
        "users",
        "fullstory.v2.users.GetBatchUserImportErrorsResponse.FailedUserImport",
        "message",
        Wire::Text,
    ),
    (
        "users",
        "fullstory.v2.users.GetBatchUserImportErrorsResponse.FailedUserImport",
        "code",
        Wire::Text,
    ),
    (
        "users",
        "fullstory.v2.users.GetBatchUserImportErrorsResponse.FailedUserImport",
        "user",
        Wire::Object,
    ),
    (
        "events",
        "fullstory.v2.events.BatchCreateEventsResponse",
        "user",
        Wire::Object,
    ),
    (
        "events",
        "fullstory.v2.events.BatchCreateEventsResponse",
        "session",
        Wire::Object,
    ),
    (
        "events",
        "fullstory.v2.events.BatchCreateEventsResponse",
        "context",
        Wire::Object,
    ),
    (
        "events",
        "fullstory.v2.events.BatchCreateEventsResponse",
        "name",
        Wire::Text,
    ),
    (
        "events",
        "fullstory.v2.events.BatchCreateEventsResponse",
        "timestamp",
        Wire::Text,
    ),
    (
        "events",
        "fullstory.v2.events.BatchCreateEventsResponse",
        "properties",
        Wire::Object,
    ),
    (
        "events",
        "fullstory.v2.events.BatchCreateEventsResponse",
        "schema",
        Wire::Object,
    ),
    (
        "users",
        "fullstory.v2.users.BatchUserImportResponse",
        "id",
        Wire::Text,
    ),
    (
        "users",
        "fullstory.v2.users.BatchUserImportResponse",
        "uid",
        Wire::Text,
    ),
    (
        "users",
        "fullstory.v2.users.BatchUserImportResponse",
        "display_name",
        Wire::Text,
    ),
    (
        "users",
        "fullstory.v2.users.BatchUserImportResponse",
        "email",
        Wire::Text,
    ),
    (
        "users",
        "fullstory.v2.users.BatchUserImportResponse",
        "properties",
        Wire::Object,
    ),
    (
        "users",
        "fullstory.v2.users.BatchUserImportResponse",
        "schema",
        Wire::Object,
    ),
    (
        "users",
        "fullstory.v2.users.BatchUserImportResponse",
        "type_conflicts",
        Wire::Object,
    ),
    (
        "events",
        "fullstory.v2.apierror.ErrorResponse",
        "message",
        Wire::Text,
    ),
    (
        "events",
        "fullstory.v2.apierror.ErrorResponse",
        "code",
        Wire::Text,
    ),
];

fn spec(name: &str) -> Value {
    let text = if name == "events" {
        EVENTS_SPEC
    } else {
        USERS_SPEC
    };
    serde_json::from_str(text).unwrap()
}

/// The wire type a spec property stands for.
fn wire_of(property: &Value) -> Wire {
    match (property["type"].as_str(), property["format"].as_str()) {
        (Some("integer"), _) => Wire::Count,
        // `total_records` is an int64 sent as a string.
        (Some("string"), Some("date-time")) => Wire::Time,
        (Some("string"), _) => Wire::Text,
        (Some("array"), _) => Wire::List,
        (Some("object"), _) | (None, _) => Wire::Object,
        other => panic!("unexpected type {other:?}"),
    }
}

#[test]
fn field_list_matches_the_specs() {
    for &(file, definition, field, wire) in FIELDS {
        let spec = spec(file);
        let property = &spec["definitions"][definition]["properties"][field];
        assert!(
            property.is_object(),
            "{file} {definition}.{field} is not in the spec"
        );
        let from_spec = match (field, wire_of(property)) {
            ("total_records", Wire::Text) => Wire::Count,
            ("status", Wire::Object) => Wire::Status,
            (_, w) => w,
        };
        assert_eq!(from_spec, wire, "{definition}.{field}");
    }
    // And no property of a listed definition is left out.
    for &(file, definition, _, _) in FIELDS {
        let spec = spec(file);
        let properties = spec["definitions"][definition]["properties"]
            .as_object()
            .unwrap();
        for name in properties.keys() {
            assert!(
                FIELDS
                    .iter()
                    .any(|&(_, d, f, _)| d == definition && f == name),
                "{definition}.{name} is in the spec but not in FIELDS"
            );
        }
    }
}

// ---- One reading of "empty", field by field ----

/// The forms of an empty value: absent, `null`, and where it means the same, empty.
fn empties(wire: Wire) -> &'static [Option<&'static str>] {
    match wire {
        Wire::List => &[None, Some("null"), Some("[]")],
        Wire::Object => &[None, Some("null")],
        _ => &[None, Some("null"), Some(r#""""#)],
    }
}

/// `{ ..., "field": value }` with the field left out when `value` is `None`.
fn with(base: &str, field: &str, value: Option<&str>) -> String {
    let mut map: serde_json::Map<String, Value> = serde_json::from_str(base).unwrap();
    map.remove(field);
    let mut text = serde_json::to_string(&map).unwrap();
    if let Some(value) = value {
        text.pop();
        let sep = if map.is_empty() { "" } else { "," };
        text.push_str(&format!(r#"{sep}"{field}":{value}}}"#));
    }
    text
}

#[test]
fn status_fields_read_empty_alike() {
    let base = r#"{"imports":0,"errors":0,"job":{"id":"j","status":"COMPLETED"}}"#;
    for field in ["imports", "errors"] {
        for &form in empties(Wire::Count) {
            let s = config()
                .parse_status(&ok(&with(base, field, form)))
                .unwrap();
            assert_eq!((s.imports, s.errors), (0, 0), "{field} {form:?}");
        }
    }
    for &form in empties(Wire::Object) {
        let s = config()
            .parse_status(&ok(&with(base, "job", form)))
            .unwrap();
        assert_eq!(s.job.id, "", "{form:?}");
        assert_eq!(s.job.status, JobState::Other("UNKNOWN".into()));
    }
    let job = r#"{"id":"j","status":"COMPLETED","created":"2019-04-18T14:36:11.123Z"}"#;
    for (field, wire) in [
        ("id", Wire::Text),
        ("status", Wire::Status),
        ("created", Wire::Time),
        ("finished", Wire::Time),
    ] {
        for &form in empties(wire) {
            let body = format!(r#"{{"job":{}}}"#, with(job, field, form));
            let s = config().parse_status(&ok(&body)).unwrap();
            match field {
                "id" => assert_eq!(s.job.id, ""),
                "status" => assert_eq!(s.job.status, JobState::Other("UNKNOWN".into())),
                "created" => assert_eq!(s.job.created, None),
                _ => assert_eq!(s.job.finished, None),
            }
            // The create answer reads its job the same way, but needs its id.
            match config().parse_create(&ok(&body)) {
                Ok(created) => assert_eq!(created, s.job, "{field} {form:?}"),
                Err(ApiError::Malformed(m)) => assert_eq!(m.field_name(), Some("job.id")),
                Err(e) => panic!("{e:?}"),
            }
        }
    }
}

#[test]
fn page_fields_read_empty_alike() {
    let base = r#"{"results":[],"total_records":"0","next_page_token":"t"}"#;
    for &form in empties(Wire::List) {
        let p = page::<EventRequest>(&with(base, "results", form));
        assert!(p.is_empty(), "{form:?}");
    }
    for &form in empties(Wire::Count) {
        let p = page::<EventRequest>(&with(base, "total_records", form));
        assert_eq!(p.total_records, None, "{form:?}");
    }
    for &form in empties(Wire::Text) {
        let p = page::<EventRequest>(&with(base, "next_page_token", form));
        assert_eq!(p.next_page_token, None, "{form:?}");
    }
    // A token or a total the other way round is read too.
    let p = page::<EventRequest>(r#"{"total_records":98,"next_page_token":12}"#);
    assert_eq!(
        (p.total_records, p.next_page_token.as_deref()),
        (Some(98), Some("12"))
    );
}

#[test]
fn item_fields_read_empty_alike() {
    let event = r#"{"name":"n","timestamp":"2022-03-15T14:23:23Z","user":{"uid":"u"},"session":{"id":"s"},"context":{},"properties":{},"schema":{}}"#;
    for (field, wire) in [
        ("name", Wire::Text),
        ("timestamp", Wire::Text),
        ("user", Wire::Object),
        ("session", Wire::Object),
        ("context", Wire::Object),
        ("properties", Wire::Object),
        ("schema", Wire::Object),
    ] {
        for &form in empties(wire) {
            let body = format!(r#"{{"results":[{}]}}"#, with(event, field, form));
            let p = page::<EventRequest>(&body);
            assert_eq!(
                (p.results.len(), p.unread.len()),
                (1, 0),
                "{field} {form:?}"
            );
        }
    }
    let user = r#"{"id":"1","uid":"u","display_name":"d","email":"e","properties":{},"schema":null,"type_conflicts":null}"#;
    for field in [
        "id",
        "uid",
        "display_name",
        "email",
        "properties",
        "schema",
        "type_conflicts",
    ] {
        for &form in empties(Wire::Object) {
            let body = format!(r#"{{"results":[{}]}}"#, with(user, field, form));
            let p = page::<UserRequest>(&body);
            assert_eq!(
                (p.results.len(), p.unread.len()),
                (1, 0),
                "{field} {form:?}"
            );
        }
    }
    let failure = r#"{"code":"c","message":"m","event":{"name":"n"},"shared":{}}"#;
    for field in ["code", "message", "event", "shared"] {
        for &form in empties(Wire::Object) {
            let body = format!(r#"{{"results":[{}]}}"#, with(failure, field, form));
            let p = page::<FailedItem<EventRequest>>(&body);
            assert_eq!(
                (p.results.len(), p.unread.len()),
                (1, 0),
                "{field} {form:?}"
            );
            let f = &p.results[0];
            assert!(f.unread_item.is_none());
            match field {
                "code" => assert_eq!(f.code, ""),
                "message" => assert_eq!(f.message, ""),
                "event" => assert!(f.item.is_none()),
                _ => {}
            }
        }
    }
}

#[test]
fn error_bodies_read_empty_alike() {
    for body in [
        r#"{"message":"m"}"#,
        r#"{"message":"m","code":null}"#,
        r#"{"message":"m","code":""}"#,
    ] {
        let e = config()
            .parse_status(&Response::builder().status(404).body(body).unwrap())
            .unwrap_err();
        let api = e.error_response().expect(body);
        assert_eq!((api.code.as_str(), api.message.as_str()), ("", "m"));
    }
    let e = config()
        .parse_status(
            &Response::builder()
                .status(400)
                .body(r#"{"code":"brand_new","details":[1]}"#)
                .unwrap(),
        )
        .unwrap_err();
    let api = e.error_response().unwrap();
    assert_eq!(api.code.as_str(), "brand_new", "an unknown code is kept");
    assert_eq!(api.extra["details"], json!([1]), "an unknown field is kept");
}

// ---- Pages never fail on one item ----

#[test]
fn an_event_sent_with_an_empty_name_is_read() {
    // proto3 JSON leaves out the empty name: the issue's own case.
    let p = page::<FailedItem<EventRequest>>(
        r#"{"results":[{"code":"invalid_argument","message":"name is required","event":{"user":{"uid":"u1"}}}],"total_records":"1"}"#,
    );
    assert_eq!(p.results.len(), 1);
    let item = p.results[0].item.as_ref().unwrap();
    assert_eq!(item.name, "");
    assert_eq!(item.user.as_ref().unwrap().uid.as_deref(), Some("u1"));
}

#[test]
fn a_misfit_item_is_kept_raw_and_named() {
    let body = r#"{"results":[{"name":"a"},{"name":"b","user":"not an object"},{"name":"c"}],"next_page_token":"n"}"#;
    let p = page::<EventRequest>(body);
    let names: Vec<_> = p.results.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        ["a", "c"],
        "the typed fields stay typed for the rest"
    );
    assert_eq!(p.unread.len(), 1);
    assert_eq!(p.len(), 3);
    let raw = &p.unread[0];
    assert_eq!(
        raw.json.get(),
        r#"{"name":"b","user":"not an object"}"#,
        "byte for byte"
    );
    assert!(
        raw.problem.starts_with("`results[1].user`: "),
        "{}",
        raw.problem
    );
    assert!(!raw.problem.contains("line 1"), "{}", raw.problem);
    assert_eq!(p.next_page_token.as_deref(), Some("n"));
    // A page with its misfits still serialises, the misfits as sent.
    let text = serde_json::to_string(&p).unwrap();
    assert!(text.contains(r#""user":"not an object""#), "{text}");
}

#[test]
fn items_that_are_not_objects_are_kept() {
    let p = page::<UserRequest>(r#"{"results":[1,"x",null,{"uid":"u"},[]]}"#);
    assert_eq!(p.results.len(), 1);
    assert_eq!(p.unread.len(), 4);
    assert!(
        p.unread[0].problem.starts_with("`results[0]`: "),
        "{}",
        p.unread[0].problem
    );
}

#[test]
fn a_failure_whose_item_does_not_fit_keeps_its_reason() {
    let body = r#"{"results":[{"code":"x","message":"bad","event":{"name":7},"shared":{"context":{}},"later":1}]}"#;
    let p = page::<FailedItem<EventRequest>>(body);
    assert!(p.unread.is_empty());
    let f = &p.results[0];
    assert_eq!((f.code.as_str(), f.message.as_str()), ("x", "bad"));
    assert!(f.item.is_none());
    let raw = f.unread_item.as_ref().unwrap();
    assert_eq!(raw.json.get(), r#"{"name":7}"#);
    assert!(raw.problem.starts_with("`event.name`: "), "{}", raw.problem);
    assert_eq!(
        f.extra["shared"],
        json!({"context": {}}),
        "unknown fields are kept"
    );
    assert_eq!(f.extra["later"], json!(1));
    let text = serde_json::to_string(f).unwrap();
    assert!(text.contains(r#""event":{"name":7}"#), "{text}");
    assert!(text.contains(r#""shared""#), "{text}");
}

#[test]
fn the_page_around_the_items_names_its_fault() {
    for (body, field) in [
        (r#"{"results":"x"}"#, "results"),
        (r#"{"results":{}}"#, "results"),
        (r#"{"total_records":"-3"}"#, "total_records"),
        (r#"{"total_records":"1e30"}"#, "total_records"),
        (r#"{"next_page_token":[]}"#, "next_page_token"),
        (r#"{"next_page_token":true}"#, "next_page_token"),
    ] {
        let e = config()
            .parse_page::<EventRequest, _>(&ok(body))
            .unwrap_err();
        let ApiError::Malformed(m) = &e else {
            panic!("{body}: {e:?}")
        };
        assert_eq!(m.field_name(), Some(field), "{body}");
        assert!(
            !e.is_retryable(),
            "{body}: the same server sends the same page"
        );
    }
}

// ---- Body limits per call ----

#[test]
fn every_transmit_carries_its_calls_limit() {
    use fullstory_batch::{Batch, Job, Pages, Policy, http::Response};
    use std::time::{Duration, SystemTime};
    let limits = BodyLimits {
        status: 1_000,
        create: 2_000,
        page: 3_000,
    };
    let config = config().with_body_limits(limits);
    let items = [EventRequest {
        name: "n".into(),
        ..Default::default()
    }];
    let mut now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let batch = Batch::new(&items, None).unwrap();
    let mut job: Job =
        Job::create(config.clone(), batch, Policy::default(), now, 1).with_pages(Pages::All);
    let answer = |body: &'static str| Response::builder().status(200).body(body).unwrap();
    let create = job.poll_transmit(now).expect("the create goes at once");
    assert_eq!(create.body_limit, 2_000);
    job.handle_response(create.id, &answer(r#"{"job":{"id":"j"}}"#), now);
    now = job.poll_timeout().expect("a poll is due");
    let status = job.poll_transmit(now).expect("the poll");
    assert_eq!(status.body_limit, 1_000);
    job.handle_response(
        status.id,
        &answer(r#"{"imports":1,"job":{"id":"j","status":"COMPLETED"}}"#),
        now,
    );
    let page = job.poll_transmit(now).expect("the first page at once");
    assert_eq!(page.body_limit, 3_000);
    assert_eq!(limits.get(CallKind::Page), 3_000);
    assert_eq!(config.body_limit_of(CallKind::Create), 2_000);
    assert_eq!(config.with_page_limit(99).body_limits().page, 99);
}

#[test]
fn a_page_of_thousands_of_events_fits_by_default() {
    let event = json!({"name": "Support Ticket", "timestamp": "2022-03-15T14:23:23Z",
        "user": {"uid": "xyz123"}, "properties": {"id": 424242, "title": "Account locked out"}});
    let body = json!({"results": vec![event; 8000], "total_records": "8000"}).to_string();
    assert!(body.len() > 1024 * 1024, "over the old shared limit");
    let p = page::<EventRequest>(&body);
    assert_eq!(p.results.len(), 8000);
    // The status limit stays small.
    assert!(config().body_limits().status < body.len());
}

#[test]
fn a_body_over_its_limit_is_named_and_not_retried() {
    let config = config().with_body_limits(BodyLimits {
        status: 8,
        create: 8,
        page: 16,
    });
    let body = r#"{"results":[],"next_page_token":""}"#;
    let e = config.parse_page::<EventRequest, _>(&ok(body)).unwrap_err();
    assert!(
        matches!(
            e,
            ApiError::BodyTooLarge {
                limit: 16,
                call: CallKind::Page,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(!e.is_retryable());
    assert_eq!(
        e.to_string(),
        "page response body over its limit of 16 bytes (http 200)"
    );
    // An error status is sorted by its status whatever its size: a 503 is tried again.
    let e = config
        .parse_status(
            &Response::builder()
                .status(503)
                .body("<html>".repeat(100))
                .unwrap(),
        )
        .unwrap_err();
    assert!(
        matches!(e, ApiError::Server(_)) && e.is_retryable(),
        "{e:?}"
    );
}

#[test]
fn the_largest_user_bound_is_the_spec_arithmetic() {
    // 500 properties of a 512-character name and an 8,192-byte value, and the four
    // strings with a maxLength, escaped at worst: see MAX_USER_ITEM_BYTES.
    let users = spec("users");
    let item = &users["definitions"]["fullstory.v2.users.BatchUserImportRequest"]["properties"];
    assert_eq!(item["properties"]["maxProperties"], 500);
    let described = item["properties"]["description"].as_str().unwrap();
    assert!(described.contains("8192 bytes") && described.contains("512 characters"));
    let max_len: u64 = ["uid", "display_name", "email"]
        .iter()
        .map(|f| item[f]["maxLength"].as_u64().unwrap())
        .sum::<u64>()
        + 256; // `id`, whose maxLength the response schema gives
    assert_eq!(max_len, 896);
    assert_eq!(
        fullstory_batch::MAX_USER_ITEM_BYTES,
        500 * (512 + 8192 + 6) + 896 * 6 + 100 + 16 * 1024
    );
    const { assert!(fullstory_batch::DEFAULT_PAGE_LIMIT >= 15 * fullstory_batch::MAX_USER_ITEM_BYTES) };
}

// ---- The property: answers built from the schemas, then mangled ----

/// What is done to one field.
#[derive(Debug, Clone, Copy)]
enum Mangle {
    Keep,
    Drop,
    Null,
    Empty,
    Stringify,
    Duplicate,
}

fn mangle() -> impl Strategy<Value = Mangle> {
    prop_oneof![
        3 => Just(Mangle::Keep),
        1 => Just(Mangle::Drop),
        1 => Just(Mangle::Null),
        1 => Just(Mangle::Empty),
        1 => Just(Mangle::Stringify),
        1 => Just(Mangle::Duplicate),
    ]
}

/// The `"key":value` pairs of one field (its value as JSON text) after `how`.
fn pairs(key: &str, value: &str, wire: Wire, how: Mangle) -> Vec<String> {
    let pair = |v: &str| format!("{}:{v}", json!(key));
    match how {
        Mangle::Keep => vec![pair(value)],
        Mangle::Drop => vec![],
        Mangle::Null => vec![pair("null")],
        Mangle::Empty => vec![pair(match wire {
            Wire::List => "[]",
            Wire::Object => "{}",
            _ => r#""""#,
        })],
        Mangle::Stringify if value.starts_with(|c: char| c.is_ascii_digit()) => {
            vec![pair(&json!(value).to_string())]
        }
        Mangle::Stringify => vec![pair(value)],
        Mangle::Duplicate => vec![pair(value), pair(value)],
    }
}

/// An object of `fields` after their mangles, in the order of `order`, with `extra` fields.
fn object(fields: &[(&str, String, Wire, Mangle)], order: &[u8], extra: usize) -> String {
    let mut all: Vec<(u8, String)> = Vec::new();
    for (i, (key, value, wire, how)) in fields.iter().enumerate() {
        for p in pairs(key, value, *wire, *how) {
            all.push((order.get(i).copied().unwrap_or(0), p));
        }
    }
    for i in 0..extra {
        let at = order.get(order.len() - 1 - i).copied().unwrap_or(0);
        all.push((at, format!(r#""zz_new_{i}":{{"a":[1,null]}}"#)));
    }
    all.sort_by_key(|(k, _)| *k);
    let body: Vec<String> = all.into_iter().map(|(_, p)| p).collect();
    format!("{{{}}}", body.join(","))
}

fn text(v: Value) -> String {
    v.to_string()
}

/// `Ok` when `how` reads back as `expected`, or the error names the field (a duplicate).
fn check_named(how: Mangle, field: &str, error: Option<&ApiError>) -> Result<(), TestCaseError> {
    match error {
        None => Ok(()),
        Some(e) => {
            prop_assert!(
                matches!(how, Mangle::Duplicate),
                "{field} {how:?}: {}",
                chain(e)
            );
            prop_assert!(chain(e).contains(field), "{field}: {}", chain(e));
            Ok(())
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn mangled_status_answers_read_right_or_name_the_field(
        imports in 0u32..=i32::MAX as u32,
        errors in 0u32..1000,
        hows in prop::collection::vec(mangle(), 7),
        order in prop::collection::vec(any::<u8>(), 8),
        extra in 0usize..3,
        status in prop::sample::select(vec!["PROCESSING", "COMPLETED", "FAILED", "PENDING"]),
    ) {
        let job = object(&[
            ("id", text(json!("abd123=")), Wire::Text, hows[3]),
            ("status", text(json!(status)), Wire::Status, hows[4]),
            ("created", text(json!("2019-04-18T14:36:11.123Z")), Wire::Time, hows[5]),
            ("finished", text(json!("2019-04-18T15:36:11.123Z")), Wire::Time, hows[6]),
        ], &order, extra);
        let body = object(&[
            ("imports", imports.to_string(), Wire::Count, hows[0]),
            ("errors", errors.to_string(), Wire::Count, hows[1]),
            ("job", job, Wire::Object, hows[2]),
        ], &order, extra);
        match config().parse_status(&ok(&body)) {
            Ok(s) => {
                let count = |how: Mangle, n: u32| match how {
                    Mangle::Drop | Mangle::Null | Mangle::Empty => 0,
                    _ => u64::from(n),
                };
                prop_assert_eq!(s.imports, count(hows[0], imports), "{}", body);
                prop_assert_eq!(s.errors, count(hows[1], errors), "{}", body);
                // Unknown fields are kept, wherever they came.
                prop_assert_eq!(s.extra.len(), extra, "{}", body);
                prop_assert!(s.extra.values().all(|v| *v == json!({"a": [1, null]})), "{}", body);
                if matches!(hows[2], Mangle::Keep | Mangle::Stringify | Mangle::Duplicate) {
                    prop_assert_eq!(s.job.extra.len(), extra, "{}", body);
                    let id_kept = !matches!(hows[3], Mangle::Drop | Mangle::Null | Mangle::Empty);
                    prop_assert_eq!(s.job.id == "abd123=", id_kept, "{}", body);
                    let status_kept = !matches!(hows[4], Mangle::Drop | Mangle::Null | Mangle::Empty);
                    prop_assert_eq!(s.job.status.as_str() == status, status_kept, "{}", body);
                    let created_kept = !matches!(hows[5], Mangle::Drop | Mangle::Null | Mangle::Empty);
                    prop_assert_eq!(s.job.created.is_some(), created_kept, "{}", body);
                } else {
                    prop_assert_eq!(s.job.status.as_str(), "UNKNOWN", "{}", body);
                }
            }
            Err(e) => {
                let names = ["imports", "errors", "job", "id", "status", "created", "finished"];
                let at_fault = names.iter().zip(&hows).find(|(n, _)| chain(&e).contains(**n));
                prop_assert!(at_fault.is_some(), "{}: {}", body, chain(&e));
                let (name, how) = at_fault.unwrap();
                check_named(*how, name, Some(&e))?;
            }
        }
    }

    #[test]
    fn mangled_pages_read_right_or_name_the_field(
        names in prop::collection::vec("[a-z]{0,8}", 0..6),
        item_hows in prop::collection::vec(mangle(), 6),
        page_hows in prop::collection::vec(mangle(), 3),
        order in prop::collection::vec(any::<u8>(), 8),
        extra in 0usize..3,
        total in 0u32..100_000,
    ) {
        let items: Vec<String> = names.iter().enumerate().map(|(i, name)| object(&[
            ("name", text(json!(name)), Wire::Text, item_hows[i % 6]),
            ("timestamp", text(json!("2022-03-15T14:23:23Z")), Wire::Text, item_hows[(i + 1) % 6]),
            ("user", text(json!({"uid": "u"})), Wire::Object, item_hows[(i + 2) % 6]),
            ("properties", text(json!({"p": 1})), Wire::Object, item_hows[(i + 3) % 6]),
        ], &order, extra)).collect();
        let results = format!("[{}]", items.join(","));
        let mut body = object(&[
            ("total_records", text(json!(total.to_string())), Wire::Count, page_hows[1]),
            ("next_page_token", text(json!("tok")), Wire::Text, page_hows[2]),
        ], &order, extra);
        // `results` goes in raw, so its items keep their duplicates and order.
        match page_hows[0] {
            Mangle::Drop => {}
            Mangle::Null => body = body.replacen('{', r#"{"results":null,"#, 1),
            Mangle::Empty => body = body.replacen('{', r#"{"results":[],"#, 1),
            Mangle::Duplicate => body = body.replacen('{', &format!(r#"{{"results":{results},"results":{results},"#), 1),
            Mangle::Keep | Mangle::Stringify => body = body.replacen('{', &format!(r#"{{"results":{results},"#), 1),
        }
        let body = body.replace(",}", "}");
        for parsed in [
            config().parse_page::<EventRequest, _>(&ok(&body)).map(|a| match a {
                PageAnswer::Ready(p) => (p.len(), p.total_records, p.next_page_token),
                PageAnswer::NotReady => unreachable!(),
            }),
            config().parse_page::<FailedItem<EventRequest>, _>(&ok(&body)).map(|a| match a {
                PageAnswer::Ready(p) => (p.len(), p.total_records, p.next_page_token),
                PageAnswer::NotReady => unreachable!(),
            }),
        ] {
            match parsed {
                Ok((len, total_records, token)) => {
                    let expect_items = match page_hows[0] {
                        Mangle::Keep | Mangle::Stringify | Mangle::Duplicate => names.len(),
                        _ => 0,
                    };
                    prop_assert_eq!(len, expect_items, "{}", body);
                    let emptied = |h: Mangle| matches!(h, Mangle::Drop | Mangle::Null | Mangle::Empty);
                    prop_assert_eq!(total_records, (!emptied(page_hows[1])).then_some(u64::from(total)), "{}", body);
                    prop_assert_eq!(token.is_some(), !emptied(page_hows[2]), "{}", body);
                }
                Err(e) => {
                    let names = ["results", "total_records", "next_page_token"];
                    let at_fault = names.iter().zip(&page_hows).find(|(n, _)| chain(&e).contains(**n));
                    prop_assert!(at_fault.is_some(), "{}: {}", body, chain(&e));
                    let (name, how) = at_fault.unwrap();
                    check_named(*how, name, Some(&e))?;
                }
            }
        }
    }
}

#[test]
fn no_error_text_repeats_its_cause() {
    let e = config()
        .parse_status(&ok(r#"{"imports":-1,"job":{}}"#))
        .unwrap_err();
    let text = chain(&e);
    assert_eq!(
        text,
        "malformed response (http 200): `imports` is a negative count"
    );
    let e = config()
        .parse_status(&ok(r#"{"job":{"created":"x"}}"#))
        .unwrap_err();
    assert_eq!(
        e.source().unwrap().to_string(),
        "`job.created` is not an rfc 3339 timestamp"
    );
}
