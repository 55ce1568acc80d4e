//! Properties of the parsers over generated input.

use std::time::{Duration, SystemTime};

use fullstory_batch::http::{HeaderMap, HeaderName, HeaderValue, Response};
use fullstory_batch::{
    ApiKey, Config, JobId, JobMetadata, JobRef, JobState, JobStatusResponse, Resource, retry_after,
};
use proptest::prelude::*;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn config() -> Config {
    Config::new(ApiKey::new("k").unwrap())
}

fn timestamp() -> impl Strategy<Value = OffsetDateTime> {
    (0i64..4_000_000_000, 0u32..1_000_000_000, -23i8..=23).prop_map(|(secs, nanos, hours)| {
        let offset = time::UtcOffset::from_hms(hours, 0, 0).unwrap();
        (OffsetDateTime::from_unix_timestamp(secs).unwrap()
            + time::Duration::nanoseconds(i64::from(nanos)))
        .to_offset(offset)
    })
}

fn state() -> impl Strategy<Value = JobState> {
    prop_oneof![
        Just(JobState::Processing),
        Just(JobState::Completed),
        Just(JobState::Failed),
        "[A-Z_]{1,12}".prop_map(|s| match s.as_str() {
            "PROCESSING" | "COMPLETED" | "FAILED" => JobState::Other("PENDING".into()),
            _ => JobState::Other(s),
        }),
    ]
}

fn status() -> impl Strategy<Value = JobStatusResponse> {
    let count = prop_oneof![Just(0u64), 0u64..1000, 0u64..(1 << 53)];
    (
        count.clone(),
        count,
        ".{0,20}",
        state(),
        prop::option::of(timestamp()),
        prop::option::of(timestamp()),
    )
        .prop_map(
            |(imports, errors, id, status, created, finished)| JobStatusResponse {
                imports,
                errors,
                job: JobMetadata {
                    id,
                    status,
                    created,
                    finished,
                    extra: Default::default(),
                },
                extra: Default::default(),
            },
        )
}

/// How to write one value: the choices a real server may make.
#[derive(Debug, Clone)]
struct Encoding {
    counts_as_strings: bool,
    omit_zero_counts: bool,
    extra_fields: bool,
    space: &'static str,
}

fn encoding() -> impl Strategy<Value = Encoding> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop::sample::select(vec!["", " ", "\n  ", "\t"]),
    )
        .prop_map(
            |(counts_as_strings, omit_zero_counts, extra_fields, space)| Encoding {
                counts_as_strings,
                omit_zero_counts,
                extra_fields,
                space,
            },
        )
}

fn object(mut entries: Vec<(String, String)>, order: &[usize], space: &str) -> String {
    let n = entries.len();
    let mut sorted: Vec<(String, String)> = Vec::with_capacity(n);
    for &i in order.iter().filter(|&&i| i < n) {
        sorted.push(std::mem::take(&mut entries[i]));
    }
    let body: Vec<String> = sorted
        .into_iter()
        .map(|(k, v)| format!("{space}\"{k}\"{space}:{space}{v}"))
        .collect();
    format!("{{{}{space}}}", body.join(","))
}

fn write(status: &JobStatusResponse, enc: &Encoding, order: &[usize]) -> String {
    let json = |s: &str| serde_json::to_string(s).unwrap();
    let mut job = vec![
        ("id".to_owned(), json(&status.job.id)),
        ("status".to_owned(), json(status.job.status.as_str())),
    ];
    for (name, t) in [
        ("created", status.job.created),
        ("finished", status.job.finished),
    ] {
        if let Some(t) = t {
            job.push((name.to_owned(), json(&t.format(&Rfc3339).unwrap())));
        }
    }
    if enc.extra_fields {
        job.push(("shard".to_owned(), r#"{"a":[1,2,{"b":null}]}"#.to_owned()));
    }
    let mut top = vec![("job".to_owned(), object(job, order, enc.space))];
    for (name, n) in [("imports", status.imports), ("errors", status.errors)] {
        if n == 0 && enc.omit_zero_counts {
            continue;
        }
        let v = if enc.counts_as_strings {
            format!("\"{n}\"")
        } else {
            n.to_string()
        };
        top.push((name.to_owned(), v));
    }
    if enc.extra_fields {
        top.push(("trace_id".to_owned(), "\"abc\"".to_owned()));
    }
    object(top, order, enc.space)
}

fn order() -> impl Strategy<Value = Vec<usize>> {
    Just((0..6).collect::<Vec<usize>>()).prop_shuffle()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// (a) Any valid status, written any way the API may write it, parses back to itself.
    #[test]
    fn every_encoding_parses_back(status in status(), enc in encoding(), order in order()) {
        let body = write(&status, &enc, &order);
        let parsed = config().parse_status(&Response::new(body.as_bytes())).map_err(|e| format!("{e}: {body}"));
        // Unknown fields are kept as sent.
        let mut status = status;
        if enc.extra_fields {
            status.extra.insert("trace_id".into(), "abc".into());
            status.job.extra.insert("shard".into(), serde_json::json!({"a": [1, 2, {"b": null}]}));
        }
        prop_assert_eq!(parsed, Ok(status.clone()));
        // And our own serialisation reads back through serde too, unknown fields included.
        let again: JobStatusResponse = serde_json::from_str(&serde_json::to_string(&status).unwrap()).unwrap();
        prop_assert_eq!(again, status);
    }

    /// (b) Nothing a server sends makes the parser panic.
    #[test]
    fn never_panics(
        code in 100u16..1000,
        headers in prop::collection::vec(("[a-z-]{1,12}", prop::collection::vec(any::<u8>(), 0..40)), 0..6),
        body in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut response = Response::builder().status(code);
        for (name, value) in &headers {
            if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(value)) {
                response = response.header(n, v);
            }
        }
        if let Ok(response) = response.body(body) {
            let result = config().parse_status(&response);
            if let Err(e) = result {
                let _ = (e.to_string(), e.is_retryable(), e.retry_after());
            }
        }
    }

    /// (b) Also for bodies that look almost right.
    #[test]
    fn never_panics_on_json_like_bodies(body in r#"\{("(imports|errors|job|id|status|created)":("[0-9A-Z:.TZ-]*"|-?[0-9.e]+|null|\{|\}|,)){0,8}"#) {
        let _ = config().parse_status(&Response::new(body.as_bytes()));
    }

    /// (c) Retry-After in seconds gives exactly that wait, capped.
    #[test]
    fn retry_after_seconds(secs in 0u64..100_000, pad in "[ \t]{0,2}", cap in 1u64..200_000) {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_str(&format!("{pad}{secs}{pad}")).unwrap());
        let got = retry_after(&headers, SystemTime::now(), Duration::from_secs(cap));
        prop_assert_eq!(got, Some(Duration::from_secs(secs.min(cap))));
    }

    /// (c) Retry-After as a date: measured from the `Date` header when present, else from now.
    #[test]
    fn retry_after_dates(now in 0u64..4_000_000_000, ahead in 0u64..10_000, skew in -100_000i64..100_000, with_date: bool, form in 0..3usize) {
        let now_t = SystemTime::UNIX_EPOCH + Duration::from_secs(now);
        let server_now = if with_date { now as i64 + skew } else { now as i64 };
        prop_assume!(server_now >= 0 && server_now + (ahead as i64) < 253_402_300_799);
        let server_t = SystemTime::UNIX_EPOCH + Duration::from_secs(server_now as u64);
        let at = server_t + Duration::from_secs(ahead);
        let imf = httpdate::fmt_http_date(at);
        let value = match form {
            0 => imf,
            1 => rfc850(at),
            _ => asctime(at),
        };
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_str(&value).unwrap());
        if with_date {
            headers.insert("date", HeaderValue::from_str(&httpdate::fmt_http_date(server_t)).unwrap());
        }
        let got = retry_after(&headers, now_t, Duration::MAX);
        prop_assume!(form != 1 || year(at) >= 2000 && year(at) < 2070); // two-digit years
        prop_assert_eq!(got, Some(Duration::from_secs(ahead)), "{}", value);
    }

    /// (c) Garbage never panics and gives no wait.
    #[test]
    fn retry_after_garbage(value in "[^0-9]{0,30}") {
        if let Ok(v) = HeaderValue::from_str(&value) {
            let mut headers = HeaderMap::new();
            headers.insert("retry-after", v);
            let _ = retry_after(&headers, SystemTime::now(), Duration::MAX);
        }
    }

    /// (d) The path segment decodes back to the id, for any id.
    #[test]
    fn path_segment_round_trips(id in ".{1,60}") {
        let job = JobRef::new(Resource::Users, JobId::new(id.clone()).unwrap());
        let request = config().status_request(&job);
        let path = request.uri().path();
        let segment = path.strip_prefix("/v2/users/batch/").unwrap();
        prop_assert!(!segment.contains('/') && !segment.contains('?') && !segment.contains('#'));
        prop_assert!(segment != "." && segment != "..");
        let decoded = percent_encoding::percent_decode_str(segment).decode_utf8().unwrap();
        prop_assert_eq!(decoded, id);
    }
}

fn year(t: SystemTime) -> i32 {
    OffsetDateTime::from(t).year()
}

fn rfc850(t: SystemTime) -> String {
    let d = OffsetDateTime::from(t);
    let weekday = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ][d.weekday().number_days_from_monday() as usize];
    let month = &format!("{:?}", d.month())[..3];
    format!(
        "{weekday}, {:02}-{month}-{:02} {:02}:{:02}:{:02} GMT",
        d.day(),
        d.year() % 100,
        d.hour(),
        d.minute(),
        d.second()
    )
}

fn asctime(t: SystemTime) -> String {
    let d = OffsetDateTime::from(t);
    let weekday = &format!("{:?}", d.weekday())[..3];
    let month = &format!("{:?}", d.month())[..3];
    format!(
        "{weekday} {month} {:>2} {:02}:{:02}:{:02} {}",
        d.day(),
        d.hour(),
        d.minute(),
        d.second(),
        d.year()
    )
}
