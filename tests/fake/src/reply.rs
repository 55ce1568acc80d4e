//! Answers before they become hyper responses: status, headers, body and
//! how the body is delivered.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use crate::body::FakeBody;
use crate::fault::RetryAfter;

/// How the body goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    Whole,
    Drip {
        chunk: usize,
        delay: Duration,
    },
    /// Declare this Content-Length, send the body (shorter), drop the connection.
    Cut {
        declared: usize,
    },
    /// No response at all: the connection is closed.
    Close,
}

#[derive(Debug)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, String)>,
    pub body: Bytes,
    pub delivery: Delivery,
}

pub(crate) const JSON: &str = "application/json";
const HTML: &str = "text/html; charset=utf-8";

impl Reply {
    pub fn new(status: StatusCode, content_type: Option<&str>, body: impl Into<Bytes>) -> Reply {
        let headers = content_type
            .map(|ct| vec![(hyper::header::CONTENT_TYPE, ct.to_owned())])
            .unwrap_or_default();
        Reply {
            status,
            headers,
            body: body.into(),
            delivery: Delivery::Whole,
        }
    }

    pub fn json(status: StatusCode, value: &Value) -> Reply {
        Reply::new(status, Some(JSON), value.to_string())
    }

    /// An `ErrorResponse` body; `extra` adds a `details` array as real servers may.
    pub fn error(status: StatusCode, code: &str, message: &str, extra: bool) -> Reply {
        let mut body = json!({ "message": message, "code": code });
        if extra {
            body["details"] =
                json!([{ "@type": "type.googleapis.com/google.rpc.DebugInfo", "detail": "fake" }]);
        }
        Reply::json(status, &body)
    }

    /// An HTML error page, as a proxy or load balancer sends.
    pub fn html(status: StatusCode) -> Reply {
        let reason = status.canonical_reason().unwrap_or("Error");
        let page = format!(
            "<!DOCTYPE html>\n<html><head><title>{code} {reason}</title></head>\
             <body><center><h1>{code} {reason}</h1></center><hr><center>nginx</center></body></html>\n",
            code = status.as_u16()
        );
        Reply::new(status, Some(HTML), page)
    }

    pub fn closed() -> Reply {
        let mut reply = Reply::new(StatusCode::OK, None, Bytes::new());
        reply.delivery = Delivery::Close;
        reply
    }

    pub fn header(mut self, name: HeaderName, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    pub fn has_header(&self, name: &HeaderName) -> bool {
        self.headers.iter().any(|(n, _)| n == name)
    }

    /// Sets `Date` to `now` (unless set already) and `Retry-After`.
    /// Whole seconds keep an HTTP-date `Retry-After` exactly N s after `Date`.
    pub fn dated(mut self, now: SystemTime, retry_after: Option<RetryAfter>) -> Reply {
        let base = truncate_to_secs(now);
        if !self.has_header(&hyper::header::DATE) {
            self.headers
                .push((hyper::header::DATE, httpdate::fmt_http_date(base)));
        }
        match retry_after {
            Some(RetryAfter::Seconds(secs)) => {
                self.header(hyper::header::RETRY_AFTER, secs.to_string())
            }
            Some(RetryAfter::HttpDate(secs)) => {
                let at = base + Duration::from_secs(secs);
                self.header(hyper::header::RETRY_AFTER, httpdate::fmt_http_date(at))
            }
            None => self,
        }
    }

    /// The status to log: none when the connection is simply closed.
    pub fn logged_status(&self) -> Option<u16> {
        (self.delivery != Delivery::Close).then_some(self.status.as_u16())
    }

    pub fn into_response(self) -> Response<FakeBody> {
        let body = match self.delivery {
            Delivery::Whole | Delivery::Close => FakeBody::whole(self.body),
            Delivery::Drip { chunk, delay } => FakeBody::drip(self.body, chunk, delay),
            Delivery::Cut { .. } => FakeBody::cut(self.body),
        };
        let mut response = Response::new(body);
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.append(name, value);
            }
        }
        if let Delivery::Cut { declared } = self.delivery {
            headers.insert(hyper::header::CONTENT_LENGTH, HeaderValue::from(declared));
        }
        response
    }
}

/// HTTP dates have whole seconds; drop the rest so arithmetic stays exact.
fn truncate_to_secs(at: SystemTime) -> SystemTime {
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    SystemTime::UNIX_EPOCH + Duration::from_secs(since.as_secs())
}

/// `at` moved by a signed number of seconds.
pub(crate) fn skewed(at: SystemTime, secs: i64) -> SystemTime {
    let by = Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 {
        at + by
    } else {
        at.checked_sub(by).unwrap_or(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_date_retry_after_is_n_seconds_after_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_700);
        let reply = Reply::json(StatusCode::TOO_MANY_REQUESTS, &json!({}))
            .dated(skewed(now, 3600), Some(RetryAfter::HttpDate(5)));
        let get = |name: &HeaderName| {
            reply
                .headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        let date = httpdate::parse_http_date(&get(&hyper::header::DATE)).unwrap();
        let retry = httpdate::parse_http_date(&get(&hyper::header::RETRY_AFTER)).unwrap();
        assert_eq!(retry.duration_since(date).unwrap(), Duration::from_secs(5));
        assert_eq!(
            date,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_003_600)
        );
    }

    #[test]
    fn error_bodies() {
        let reply = Reply::error(StatusCode::NOT_FOUND, "resource_not_found", "gone", true);
        let body: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["code"], "resource_not_found");
        assert!(body["details"].is_array());
        let page = Reply::html(StatusCode::BAD_GATEWAY);
        assert!(String::from_utf8_lossy(&page.body).contains("502 Bad Gateway"));
        let ten = SystemTime::UNIX_EPOCH + Duration::from_secs(10);
        assert_eq!(
            skewed(ten, -5),
            SystemTime::UNIX_EPOCH + Duration::from_secs(5)
        );
        assert_eq!(
            skewed(ten, 5),
            SystemTime::UNIX_EPOCH + Duration::from_secs(15)
        );
    }
}
