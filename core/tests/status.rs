//! The status call: building the request and parsing every answer, with the bodies from the
//! API's reference page and specs.

use std::error::Error as _;
use std::time::{Duration, SystemTime};

use fullstory_batch::http::{Response, StatusCode};
use fullstory_batch::{
    ApiError, ApiKey, BaseUrl, Config, ConfigError, ErrorBody, ErrorCode, JobId, JobRef, JobState,
    Resource, RetryAfter,
};

const REFERENCE_EXAMPLE: &str = r#"{
"imports": 42,
"errors": 2,
"job": {
"id": "abd123=",
"status": "FAILED",
"created": "2019-04-18T14:36:11.123Z",
"finished": "2019-04-18T15:36:11.123Z"
}
}"#;

fn config() -> Config {
    Config::new(ApiKey::new("secret-key-123").unwrap())
}

fn job(id: &str) -> JobRef {
    JobRef::new(Resource::Events, JobId::new(id).unwrap())
}

fn response(status: u16, body: &str) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .body(body.as_bytes().to_vec())
        .unwrap()
}

fn parse(status: u16, body: &str) -> Result<fullstory_batch::JobStatusResponse, ApiError> {
    config().parse_status(&response(status, body))
}

#[test]
fn request_has_path_and_headers() {
    let config = config().with_integration_source("my-integration").unwrap();
    let request = config.status_request(&job("abd123="));
    assert_eq!(request.method(), "GET");
    assert_eq!(
        request.uri(),
        "https://api.fullstory.com/v2/events/batch/abd123="
    );
    let h = request.headers();
    assert_eq!(h["authorization"], "Basic secret-key-123");
    assert!(h["authorization"].is_sensitive());
    assert_eq!(h["accept"], "application/json");
    assert_eq!(
        h["user-agent"],
        concat!("fullstory-batch/", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(h["integration-source"], "my-integration");
    assert!(request.body().is_empty());
}

#[test]
fn users_and_eu_and_prefix() {
    let config = config().with_base_url(BaseUrl::eu());
    let request = config.status_request(&JobRef::new(Resource::Users, JobId::new("x").unwrap()));
    assert_eq!(
        request.uri(),
        "https://api.eu1.fullstory.com/v2/users/batch/x"
    );

    let config =
        config.with_base_url(BaseUrl::parse_allow_http("http://127.0.0.1:8080/proxy/").unwrap());
    assert_eq!(
        config.status_request(&job("x")).uri(),
        "http://127.0.0.1:8080/proxy/v2/events/batch/x"
    );
}

#[test]
fn job_id_is_one_encoded_segment() {
    let uri = |id| config().status_request(&job(id)).uri().path().to_owned();
    assert_eq!(uri("a/b?c#d e%"), "/v2/events/batch/a%2Fb%3Fc%23d%20e%25");
    assert_eq!(uri(".."), "/v2/events/batch/%2E%2E");
    assert_eq!(uri("."), "/v2/events/batch/%2E");
    assert_eq!(uri("%2F"), "/v2/events/batch/%252F");
    assert_eq!(uri("é"), "/v2/events/batch/%C3%A9");
    assert_eq!(uri("a..b"), "/v2/events/batch/a..b");
    let long = "x".repeat(1024);
    assert_eq!(uri(&long), format!("/v2/events/batch/{long}"));
}

#[test]
fn job_id_bounds() {
    assert_eq!(JobId::new(""), Err(ConfigError::EmptyJobId));
    assert_eq!(
        JobId::new("x".repeat(1025)),
        Err(ConfigError::JobIdTooLong(1025))
    );
}

#[test]
fn api_key_is_secret_and_checked() {
    let key = ApiKey::new("secret-key-123").unwrap();
    assert!(!format!("{key:?} {key}").contains("secret"));
    let config = config();
    assert!(!format!("{config:?}").contains("secret-key-123"));
    assert_eq!(
        ApiKey::new("Bearer tok").unwrap().header_value(),
        "Bearer tok"
    );
    for bad in [
        "a\r\nX-Injected: 1",
        "a\nb",
        "a\rb",
        "a\0b",
        "a\tb",
        "a\u{7f}b",
    ] {
        assert_eq!(
            ApiKey::new(bad).err(),
            Some(ConfigError::InvalidApiKey),
            "{bad:?}"
        );
    }
    assert_eq!(ApiKey::new("").err(), Some(ConfigError::EmptyApiKey));
    assert_eq!(ApiKey::new("  ").err(), Some(ConfigError::EmptyApiKey));
    assert!(
        ApiKey::new("ké").is_err(),
        "non-ASCII cannot be a header value"
    );
}

#[test]
fn integration_source_is_checked() {
    for bad in ["a\r\nb", "a\nb", "a\0"] {
        assert_eq!(
            config().with_integration_source(bad).err(),
            Some(ConfigError::InvalidIntegrationSource)
        );
    }
}

#[test]
fn base_url_rules() {
    assert_eq!(
        BaseUrl::parse("http://api.fullstory.com"),
        Err(ConfigError::InsecureBaseUrl)
    );
    assert!(BaseUrl::parse_allow_http("http://127.0.0.1:1").is_ok());
    for bad in [
        "ftp://x",
        "api.fullstory.com",
        "https://",
        "https://x?y=1",
        "https://x#f",
        "https://user:pw@x",
        "",
    ] {
        assert!(
            matches!(
                BaseUrl::parse_allow_http(bad),
                Err(ConfigError::InvalidBaseUrl(_))
            ),
            "{bad}"
        );
    }
    assert_eq!(BaseUrl::us().to_string(), "https://api.fullstory.com");
}

#[test]
fn parses_the_reference_example() {
    let status = parse(200, REFERENCE_EXAMPLE).unwrap();
    assert_eq!((status.imports, status.errors), (42, 2));
    assert_eq!(status.job.id, "abd123=");
    assert_eq!(status.job.status, JobState::Failed);
    let created = status.job.created.unwrap();
    assert_eq!(created.unix_timestamp(), 1_555_598_171);
    assert_eq!(created.millisecond(), 123);
    assert_eq!(status.job.finished.unwrap().unix_timestamp(), 1_555_601_771);
}

#[test]
fn serialises_in_the_api_shape() {
    let status = parse(200, REFERENCE_EXAMPLE).unwrap();
    let json = serde_json::to_value(&status).unwrap();
    let expected: serde_json::Value = serde_json::from_str(REFERENCE_EXAMPLE).unwrap();
    assert_eq!(json, expected);

    let running = parse(200, r#"{"job":{"id":"X","status":"PROCESSING"}}"#).unwrap();
    assert_eq!(
        serde_json::to_string(&running).unwrap(),
        r#"{"imports":0,"errors":0,"job":{"id":"X","status":"PROCESSING"}}"#
    );
}

#[test]
fn tolerates_what_the_sdk_tests_send() {
    let s = parse(200, r#"{"job":{"id":"X","status":"COMPLETED"}}"#).unwrap();
    assert_eq!(
        (s.imports, s.errors, s.job.status),
        (0, 0, JobState::Completed)
    );
    assert_eq!(s.job.created, None);
    let s = parse(200, r#"{"job":{"id":"X"}}"#).unwrap();
    assert_eq!(s.job.status, JobState::Other("UNKNOWN".into()));
    assert!(!s.is_terminal());
}

#[test]
fn counts_as_strings_null_and_floats() {
    let s = parse(
        200,
        r#"{"imports":"42","errors":"0","job":{"id":"X","status":"COMPLETED"}}"#,
    )
    .unwrap();
    assert_eq!((s.imports, s.errors), (42, 0));
    let s = parse(
        200,
        r#"{"imports":null,"errors":7.0,"job":{"id":"X","status":"FAILED"}}"#,
    )
    .unwrap();
    assert_eq!((s.imports, s.errors), (0, 7));
}

#[test]
fn bad_counts_name_the_field() {
    for (body, field, text) in [
        (r#"{"imports":-1,"job":{}}"#, "imports", "negative"),
        (r#"{"imports":"-1","job":{}}"#, "imports", "negative"),
        (r#"{"errors":1.5,"job":{}}"#, "errors", "fractional"),
        (r#"{"errors":"x","job":{}}"#, "errors", "not a count"),
        (r#"{"errors":"1x","job":{}}"#, "errors", "not a count"),
        (r#"{"errors":"1.5","job":{}}"#, "errors", "fractional"),
        (r#"{"errors":true,"job":{}}"#, "errors", "not a count"),
        (r#"{"errors":[1],"job":{}}"#, "errors", "not a count"),
        (r#"{"errors":{},"job":{}}"#, "errors", "not a count"),
        // Beyond 64 bits, as a string or a number: too large, not "fractional".
        (
            r#"{"imports":"99999999999999999999999","job":{}}"#,
            "imports",
            "too large",
        ),
        (
            r#"{"imports":18446744073709551616,"job":{}}"#,
            "imports",
            "too large",
        ),
        // Past 2^53 a float count is not exact.
        (r#"{"imports":1e16,"job":{}}"#, "imports", "too large"),
    ] {
        let Err(ApiError::Malformed(m)) = parse(200, body) else {
            panic!("{body}")
        };
        assert_eq!(m.field_name(), Some(field), "{body}");
        assert!(m.to_string().contains(text), "{body}: {m}");
        assert!(m.to_string().contains(field), "{body}: {m}");
    }
}

#[test]
fn bad_timestamps_name_the_field() {
    for (body, field) in [
        (r#"{"job":{"created":"yesterday"}}"#, "job.created"),
        (
            r#"{"job":{"finished":"2019-13-01T00:00:00Z"}}"#,
            "job.finished",
        ),
    ] {
        let Err(ApiError::Malformed(m)) = parse(200, body) else {
            panic!("{body}")
        };
        assert_eq!(m.field_name(), Some(field));
        assert!(
            m.source().is_some(),
            "the time parser's error is the source"
        );
    }
}

#[test]
fn timestamps_keep_offsets_and_precision() {
    let s = parse(
        200,
        r#"{"job":{"created":"2019-04-18T16:36:11.123456789+02:00"}}"#,
    )
    .unwrap();
    let created = s.job.created.unwrap();
    assert_eq!(created.unix_timestamp(), 1_555_598_171);
    assert_eq!(created.nanosecond(), 123_456_789);
    assert_eq!(created.offset().whole_hours(), 2);
}

#[test]
fn unknown_statuses_and_fields() {
    let s = parse(
        200,
        r#"{"x":1,"imports":1,"job":{"id":"X","status":"PENDING","y":[1,{}]},"z":null}"#,
    )
    .unwrap();
    assert_eq!(s.job.status, JobState::Other("PENDING".into()));
    assert!(!s.job.status.is_terminal());
    assert_eq!(s.job.status.to_string(), "PENDING");
    // Unknown fields are kept as sent, at the top and in the job.
    assert_eq!(s.extra.len(), 2, "{:?}", s.extra);
    assert_eq!(s.extra["x"], serde_json::json!(1));
    assert_eq!(s.extra["z"], serde_json::Value::Null);
    assert_eq!(s.job.extra.len(), 1, "{:?}", s.job.extra);
    assert_eq!(s.job.extra["y"], serde_json::json!([1, {}]));
    // ... and written back (`--json`), then read again to the same value.
    let written = serde_json::to_value(&s).unwrap();
    assert_eq!(
        written,
        serde_json::json!({"imports": 1, "errors": 0, "x": 1, "z": null,
            "job": {"id": "X", "status": "PENDING", "y": [1, {}]}})
    );
    let again: fullstory_batch::JobStatusResponse = serde_json::from_value(written).unwrap();
    assert_eq!(again, s);
}

/// An unknown number is kept as the same float through `--json` and back: serde_json's
/// default float reading is not exact for a long one (found by the `status` fuzzer).
#[test]
fn an_unknown_long_number_reads_back_the_same() {
    let s = parse(200, r#"{"":4007000000000000000000000002,"s":3}"#).unwrap();
    let again: fullstory_batch::JobStatusResponse =
        serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(again, s);
}

#[test]
fn a_known_answer_has_no_extra_fields() {
    let s = parse(200, REFERENCE_EXAMPLE).unwrap();
    assert!(s.extra.is_empty() && s.job.extra.is_empty());
    // A repeated unknown key keeps its last value; a repeated known one is refused.
    let s = parse(200, r#"{"x":1,"x":2,"job":{"y":1,"y":[]}}"#).unwrap();
    assert_eq!(s.extra["x"], serde_json::json!(2));
    assert_eq!(s.job.extra["y"], serde_json::json!([]));
    for body in [
        r#"{"imports":1,"imports":2}"#,
        r#"{"job":{"id":"a","id":"b"}}"#,
    ] {
        let Err(ApiError::Malformed(m)) = parse(200, body) else {
            panic!("{body}")
        };
        assert!(!ApiError::Malformed(m).is_retryable(), "{body}");
    }
}

#[test]
fn malformed_success_bodies() {
    // Not json, or cut short: a proxy or a broken transfer, worth another try.
    for body in ["", "{", "<html>oops</html>", r#"{"imports":1"#] {
        let Err(ApiError::Malformed(m)) = parse(200, body) else {
            panic!("{body:?}")
        };
        assert!(
            m.source().is_some(),
            "{body:?}: the json error is the source"
        );
        assert_eq!(m.field_name(), None);
        assert_eq!(m.excerpt(), body);
        assert!(ApiError::Malformed(m).is_retryable(), "{body:?}");
    }
    // Json of the wrong shape: the same server sends it again.
    for body in ["null", "[]", r#"{"job":"x"}"#, "1"] {
        let Err(ApiError::Malformed(m)) = parse(200, body) else {
            panic!("{body:?}")
        };
        assert!(
            m.source().is_some(),
            "{body:?}: the json error is the source"
        );
        assert!(!ApiError::Malformed(m).is_retryable(), "{body:?}");
    }
    // An absent job reads as proto3 means it: no id, status UNKNOWN.
    let s = parse(200, r#"{"imports":1}"#).unwrap();
    assert_eq!(s.job.status, JobState::Other("UNKNOWN".into()));
    let not_utf8 = Response::builder()
        .status(200)
        .body(vec![b'{', 0xff, b'}'])
        .unwrap();
    assert!(matches!(
        config().parse_status(&not_utf8),
        Err(ApiError::Malformed(_))
    ));
}

#[test]
fn every_truncated_prefix_is_an_error_not_a_panic() {
    let body = REFERENCE_EXAMPLE.as_bytes();
    for cut in 0..body.len() - 1 {
        let response = Response::builder().status(200).body(&body[..cut]).unwrap();
        assert!(
            config().parse_status(&response).is_err(),
            "prefix of {cut} bytes parsed"
        );
    }
}

#[test]
fn excerpt_is_bounded() {
    let big = format!("<html>{}</html>", "é".repeat(2000));
    let Err(e) = parse(502, &big) else { panic!() };
    let Some(ErrorBody::Raw(raw)) = e.details().map(|d| &d.body) else {
        panic!()
    };
    assert!(raw.len() <= fullstory_batch::EXCERPT_LEN);
    assert!(big.starts_with(raw.as_str()), "cut on a character boundary");
}

#[test]
fn body_over_the_limit_is_not_parsed() {
    let config = config().with_body_limit(16);
    let err = config
        .parse_status(&response(200, REFERENCE_EXAMPLE))
        .unwrap_err();
    assert!(
        matches!(err, ApiError::BodyTooLarge { limit: 16, .. }),
        "{err:?}"
    );
    assert_eq!(err.status(), StatusCode::OK);
}

/// One case per status the reference page lists, with its example body.
#[test]
fn error_statuses_from_the_reference_page() {
    let cases = [
        (
            400,
            "uid is required",
            "required_field",
            ErrorCode::RequiredField,
            "invalid_input",
            false,
        ),
        (
            401,
            "access is unauthorized",
            "unauthorized",
            ErrorCode::Unauthorized,
            "unauthorized",
            false,
        ),
        (
            403,
            "insufficient permissions",
            "forbidden",
            ErrorCode::Forbidden,
            "forbidden",
            false,
        ),
        (
            404,
            "Requested resource does not exist",
            "resource_not_found",
            ErrorCode::ResourceNotFound,
            "not_found",
            false,
        ),
        (
            429,
            "Too many requests.",
            "too_many_requests",
            ErrorCode::TooManyRequests,
            "rate_limited",
            true,
        ),
        (
            500,
            "Server error was encountered",
            "server_error",
            ErrorCode::ServerError,
            "server_error",
            true,
        ),
    ];
    for (status, message, code, known, kind, retryable) in cases {
        let body = format!(r#"{{"message":"{message}","code":"{code}"}}"#);
        let err = parse(status, &body).unwrap_err();
        assert_eq!(err.status().as_u16(), status);
        assert_eq!(err.kind(), kind);
        assert_eq!(err.is_retryable(), retryable, "{status}");
        let server = err.error_response().expect("an ErrorResponse");
        assert_eq!(server.code, known);
        assert_eq!(server.message, message);
        let shown = err.to_string();
        assert!(
            shown.contains(&status.to_string()) && shown.contains(code) && shown.contains(message),
            "{shown}"
        );
    }
}

#[test]
fn each_variant() {
    let v = |status| parse(status, "").unwrap_err();
    assert!(matches!(v(400), ApiError::InvalidInput(_)));
    assert!(matches!(v(401), ApiError::Unauthorized(_)));
    assert!(matches!(v(403), ApiError::Forbidden(_)));
    assert!(matches!(v(404), ApiError::NotFound(_)));
    assert!(matches!(v(429), ApiError::RateLimited(_)));
    for s in [500, 501, 502, 503, 504, 599] {
        assert!(matches!(v(s), ApiError::Server(_)), "{s}");
    }
    for s in [301, 302, 304, 408, 409, 418, 451] {
        assert!(matches!(v(s), ApiError::UnexpectedStatus(_)), "{s}");
    }
    let retryable: Vec<u16> = (300..600).filter(|&s| v(s).is_retryable()).collect();
    assert_eq!(retryable, [408, 429, 500, 502, 503, 504]);
}

#[test]
fn extra_fields_and_unknown_codes_are_kept() {
    let body = r#"{"message":"bad","code":"brand_new_code","details":{"field":"uid"}}"#;
    let err = parse(400, body).unwrap_err();
    let server = err.error_response().unwrap();
    assert_eq!(server.code, ErrorCode::Other("brand_new_code".into()));
    assert_eq!(server.extra["details"]["field"], "uid");
    assert_eq!(
        serde_json::to_value(server).unwrap(),
        serde_json::from_str::<serde_json::Value>(body).unwrap()
    );
}

#[test]
fn html_from_a_proxy_is_kept_as_an_excerpt() {
    let err = parse(502, "<html><body>Bad Gateway</body></html>").unwrap_err();
    assert!(err.error_response().is_none());
    assert!(matches!(&err.details().unwrap().body, ErrorBody::Raw(r) if r.contains("Bad Gateway")));
    assert_eq!(
        err.to_string(),
        "server error: http 502, body is not an api error"
    );
}

#[test]
fn retry_after_is_kept_on_errors() {
    let response = Response::builder()
        .status(429)
        .header("retry-after", "7")
        .body(Vec::new())
        .unwrap();
    let err = config().parse_status(&response).unwrap_err();
    assert_eq!(
        err.retry_after(),
        Some(RetryAfter::Delay(Duration::from_secs(7)))
    );
    let wait = err
        .retry_after()
        .unwrap()
        .delay(SystemTime::now(), Duration::from_secs(3600));
    assert_eq!(wait, Duration::from_secs(7));
}

#[test]
fn errors_never_show_the_key() {
    let config = config();
    for status in [200, 400, 401, 429, 500, 502] {
        let err = config.parse_status(&response(status, "{")).unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("secret-key-123"), "{shown}");
    }
}
