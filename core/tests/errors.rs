//! One test per error variant: its text, its source, and whether it is retried (each row of
//! the table on `Error::is_retryable`).

use std::error::Error as _;

use fullstory_batch::http::Response;
use fullstory_batch::{
    ApiError, ApiKey, BodyLimits, CallKind, Config, Error, EventRequest, PageAnswer,
    TransportError, TransportKind,
};

fn config() -> Config {
    Config::new(ApiKey::new("key").unwrap())
}

fn status(code: u16, body: &str) -> ApiError {
    let response = Response::builder().status(code).body(body).unwrap();
    config().parse_status(&response).unwrap_err()
}

/// Every line of the chain, in order.
fn lines(e: &dyn std::error::Error) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut source = e.source();
    while let Some(cause) = source {
        out.push(cause.to_string());
        source = cause.source();
    }
    out
}

/// No line repeats what the line before it said.
fn assert_no_repeat(e: &dyn std::error::Error) {
    let lines = lines(e);
    for pair in lines.windows(2) {
        assert!(!pair[0].contains(&pair[1]), "{lines:?}");
    }
}

const API: &str = r#"{"message":"m","code":"c"}"#;

#[test]
fn invalid_input() {
    let e = status(400, API);
    assert!(matches!(e, ApiError::InvalidInput(_)));
    assert_eq!(e.to_string(), "invalid input: http 400 c: m");
    assert!(e.source().is_none());
    assert!(!e.is_retryable());
    assert_eq!(e.kind(), "invalid_input");
}

#[test]
fn unauthorized() {
    let e = status(401, "");
    assert!(matches!(e, ApiError::Unauthorized(_)));
    assert_eq!(e.to_string(), "unauthorized: http 401, empty body");
    assert!(e.source().is_none());
    assert!(!e.is_retryable());
}

#[test]
fn forbidden() {
    let e = status(403, "<html>no</html>");
    assert!(matches!(e, ApiError::Forbidden(_)));
    assert_eq!(
        e.to_string(),
        "forbidden: http 403, body is not an api error"
    );
    assert!(e.source().is_none());
    assert!(!e.is_retryable());
}

#[test]
fn not_found() {
    let e = status(404, r#"{"message":"gone","code":"resource_not_found"}"#);
    assert!(matches!(e, ApiError::NotFound(_)));
    assert_eq!(
        e.to_string(),
        "not found: http 404 resource_not_found: gone"
    );
    assert!(e.source().is_none());
    assert!(!e.is_retryable());
}

#[test]
fn rate_limited() {
    let e = status(429, API);
    assert!(matches!(e, ApiError::RateLimited(_)));
    assert_eq!(e.to_string(), "rate limited: http 429 c: m");
    assert!(e.source().is_none());
    assert!(e.is_retryable());
}

#[test]
fn server() {
    for (code, retry) in [
        (500, true),
        (502, true),
        (503, true),
        (504, true),
        (501, false),
        (505, false),
    ] {
        let e = status(code, API);
        assert!(matches!(e, ApiError::Server(_)));
        assert_eq!(e.to_string(), format!("server error: http {code} c: m"));
        assert!(e.source().is_none());
        assert_eq!(e.is_retryable(), retry, "{code}");
    }
}

#[test]
fn unexpected_status() {
    for (code, retry) in [(408, true), (302, false), (409, false), (418, false)] {
        let e = status(code, API);
        assert!(matches!(e, ApiError::UnexpectedStatus(_)));
        assert_eq!(
            e.to_string(),
            format!("unexpected status: http {code} c: m")
        );
        assert_eq!(e.is_retryable(), retry, "{code}");
    }
}

#[test]
fn malformed_not_json_is_retried() {
    let e = status(200, "<html>proxy</html>");
    assert_eq!(e.to_string(), "malformed response (http 200)");
    let lines = lines(&e);
    assert_eq!(lines[1], "body is not json");
    assert!(lines[2].starts_with("expected value"), "{lines:?}");
    assert_no_repeat(&e);
    assert!(e.is_retryable());
}

#[test]
fn malformed_cut_short_or_empty_is_retried() {
    for (body, text) in [("", "body is empty"), (r#"{"job":{"#, "body is cut short")] {
        let e = status(200, body);
        assert_eq!(lines(&e)[1], text);
        assert_no_repeat(&e);
        assert!(e.is_retryable(), "{body:?}");
    }
}

#[test]
fn malformed_wrong_shape_is_not_retried() {
    let e = status(200, r#"{"job":"x"}"#);
    assert_eq!(lines(&e)[1], "body is json of the wrong shape");
    assert!(lines(&e)[2].contains("invalid type"), "{:?}", lines(&e));
    assert_no_repeat(&e);
    assert!(!e.is_retryable());
}

#[test]
fn malformed_field_is_not_retried() {
    for (body, text) in [
        (r#"{"imports":-1}"#, "`imports` is a negative count"),
        (r#"{"imports":1.5}"#, "`imports` is a fractional count"),
        (
            r#"{"imports":1e300}"#,
            "`imports` is a count too large to hold exactly",
        ),
        (
            r#"{"imports":"99999999999999999999"}"#,
            "`imports` is a count too large to hold exactly",
        ),
        (r#"{"imports":true}"#, "`imports` is not a count"),
    ] {
        let e = status(200, body);
        assert_eq!(lines(&e), ["malformed response (http 200)", text], "{body}");
        assert!(!e.is_retryable(), "{body}");
    }
    let e = status(200, r#"{"job":{"finished":"soon"}}"#);
    let lines = lines(&e);
    assert_eq!(lines[1], "`job.finished` is not an rfc 3339 timestamp");
    assert_eq!(
        lines.len(),
        3,
        "the time parser's error is the last cause: {lines:?}"
    );
    assert_no_repeat(&e);
}

#[test]
fn body_too_large_is_not_retried() {
    let config = config().with_body_limits(BodyLimits {
        status: 4,
        create: 5,
        page: 6,
    });
    let e = config
        .parse_status(&Response::new("{\"job\":{}}"))
        .unwrap_err();
    assert!(matches!(
        e,
        ApiError::BodyTooLarge {
            limit: 4,
            call: CallKind::Status,
            ..
        }
    ));
    assert_eq!(
        e.to_string(),
        "status response body over its limit of 4 bytes (http 200)"
    );
    assert!(e.source().is_none());
    assert!(!e.is_retryable());
    assert_eq!(e.kind(), "body_too_large");
    let e = config
        .parse_create(&Response::new("{\"job\":{}}"))
        .unwrap_err();
    assert!(matches!(
        e,
        ApiError::BodyTooLarge {
            call: CallKind::Create,
            ..
        }
    ));
    let e = config
        .parse_page::<EventRequest, _>(&Response::new("{\"results\":[]}"))
        .map(|a| matches!(a, PageAnswer::NotReady))
        .unwrap_err();
    assert!(matches!(
        e,
        ApiError::BodyTooLarge {
            call: CallKind::Page,
            ..
        }
    ));
}

#[test]
fn error_api_wraps_without_repeating() {
    let e = Error::from(status(200, r#"{"imports":-1}"#));
    assert_eq!(
        lines(&e),
        [
            "malformed response (http 200)",
            "`imports` is a negative count"
        ]
    );
    assert!(!e.is_retryable());
    assert_eq!(e.kind(), "malformed_response");
}

#[test]
fn error_transport_kinds() {
    let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "peer reset");
    for (kind, text, retry) in [
        (TransportKind::Connect, "could not connect", true),
        (TransportKind::Tls, "tls handshake failed", false),
        (TransportKind::Timeout, "timed out", true),
        (
            TransportKind::Reset,
            "connection broke before the response was complete",
            true,
        ),
        (
            TransportKind::BodyTooLarge,
            "response body over the limit",
            false,
        ),
        (TransportKind::Other, "transport failed", true),
    ] {
        let e = Error::from(TransportError::with_source(kind, io.to_string()));
        assert_eq!(e.to_string(), text);
        assert_eq!(
            e.source().map(|s| s.to_string()).as_deref(),
            Some("peer reset")
        );
        assert_eq!(e.is_retryable(), retry, "{kind:?}");
        assert_eq!(kind.is_retryable(), retry);
        assert_eq!(e.kind(), kind.as_str());
        let bare = Error::from(TransportError::new(kind));
        assert!(bare.source().is_none());
    }
}

#[test]
fn transport_errors_name_the_host_and_port_once() {
    let uri: fullstory_batch::http::Uri = "http://127.0.0.1:9/v2/events/batch/abc?x=1"
        .parse()
        .unwrap();
    for (kind, text) in [
        (TransportKind::Connect, "could not connect to 127.0.0.1:9"),
        (TransportKind::Tls, "tls handshake with 127.0.0.1:9 failed"),
        (TransportKind::Timeout, "timed out waiting for 127.0.0.1:9"),
        (
            TransportKind::Reset,
            "connection to 127.0.0.1:9 broke before the response was complete",
        ),
        (
            TransportKind::BodyTooLarge,
            "response body from 127.0.0.1:9 over the limit",
        ),
        (TransportKind::Other, "transport to 127.0.0.1:9 failed"),
    ] {
        let e = TransportError::with_source(kind, "refused").at(&uri);
        assert_eq!(e.target(), Some("127.0.0.1:9"));
        assert_eq!(e.to_string(), text);
        assert_eq!(Error::from(e.clone()).to_string(), text);
        // The cause is still there, and says nothing of the target again.
        assert_eq!(
            e.source().map(|s| s.to_string()).as_deref(),
            Some("refused")
        );
    }
    // The scheme's port when the URI has none; never user info, path or query.
    let https: fullstory_batch::http::Uri = "https://user:pw@api.fullstory.com/v2/events/batch"
        .parse()
        .unwrap();
    let e = TransportError::new(TransportKind::Connect).at(&https);
    assert_eq!(e.target(), Some("api.fullstory.com:443"));
    assert_eq!(e.to_string(), "could not connect to api.fullstory.com:443");
    let plain: fullstory_batch::http::Uri = "http://[::1]/x".parse().unwrap();
    let e = TransportError::new(TransportKind::Timeout).at(&plain);
    assert_eq!(e.to_string(), "timed out waiting for [::1]:80");
    // No host: unchanged.
    let relative: fullstory_batch::http::Uri = "/v2/events/batch".parse().unwrap();
    let e = TransportError::new(TransportKind::Connect).at(&relative);
    assert_eq!(
        (e.target(), e.to_string().as_str()),
        (None, "could not connect")
    );
}
