//! The request log: what clients sent and what they got, with the
//! `Authorization` header redacted.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use crate::fault::FaultKind;
use crate::model::{Resource, Route};

/// What `Authorization` values become in the log.
pub const REDACTED: &str = "[redacted]";

/// One request as the fake saw it. The `Authorization` header is stored as
/// `"Basic [redacted]"`, so neither this value nor its `Debug` form holds a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    /// Arrival order, from 0.
    pub seq: u64,
    /// Arrival time (real monotonic clock).
    pub instant: Instant,
    /// Arrival time (real wall clock).
    pub system_time: SystemTime,
    /// Arrival time on the fake clock (time since the server started, plus manual advances).
    pub clock: Duration,
    /// `"GET"`, `"POST"`, ...
    pub method: String,
    /// The path as sent (still percent-encoded).
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// Request headers in order, names lower-cased, `Authorization` redacted.
    pub headers: Vec<(String, String)>,
    /// Request body size in bytes (0 when refused before reading).
    pub body_len: usize,
    /// Status of the answer; `None` when the connection closed without one.
    pub status: Option<u16>,
    /// The fault injected into this answer, if any.
    pub fault: Option<FaultKind>,
    /// The endpoint, when the path is one of the API's.
    pub route: Option<Route>,
    /// Events or users, when the path names one.
    pub resource: Option<Resource>,
    /// The job id from the path, percent-decoded.
    pub job_id: Option<String>,
}

impl LoggedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Redacts an `Authorization` value, keeping only the scheme.
pub(crate) fn redact(value: &str) -> String {
    match value.split_once(' ') {
        Some((scheme, _)) => format!("{scheme} {REDACTED}"),
        None => REDACTED.to_owned(),
    }
}

/// A log that keeps at most `capacity` entries, dropping the oldest.
#[derive(Debug)]
pub(crate) struct RequestLog {
    capacity: usize,
    entries: VecDeque<LoggedRequest>,
}

impl RequestLog {
    pub fn new(capacity: usize) -> RequestLog {
        RequestLog {
            capacity,
            entries: VecDeque::new(),
        }
    }

    pub fn push(&mut self, entry: LoggedRequest) {
        if self.capacity == 0 {
            return;
        }
        if self.entries.len() >= self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    /// Entries in arrival order.
    pub fn snapshot(&self) -> Vec<LoggedRequest> {
        let mut entries: Vec<LoggedRequest> = self.entries.iter().cloned().collect();
        entries.sort_by_key(|e| e.seq);
        entries
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64) -> LoggedRequest {
        LoggedRequest {
            seq,
            instant: Instant::now(),
            system_time: SystemTime::now(),
            clock: Duration::ZERO,
            method: "GET".into(),
            path: "/".into(),
            query: None,
            headers: vec![("authorization".into(), redact("Basic secret"))],
            body_len: 0,
            status: Some(200),
            fault: None,
            route: None,
            resource: None,
            job_id: None,
        }
    }

    #[test]
    fn redaction_keeps_scheme_only() {
        assert_eq!(redact("Basic abc def"), "Basic [redacted]");
        assert_eq!(redact("abc"), "[redacted]");
        assert!(!format!("{:?}", entry(0)).contains("secret"));
        assert_eq!(entry(0).header("Authorization"), Some("Basic [redacted]"));
    }

    #[test]
    fn capacity_keeps_newest_and_zero_disables() {
        let mut log = RequestLog::new(2);
        for seq in [2, 0, 1] {
            log.push(entry(seq));
        }
        let seqs: Vec<u64> = log.snapshot().iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [0, 1]);
        let mut off = RequestLog::new(0);
        off.push(entry(0));
        assert!(off.snapshot().is_empty());
    }
}
