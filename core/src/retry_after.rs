//! `Retry-After` (RFC 9110 §10.2.3): delta-seconds or an HTTP-date.

use std::time::{Duration, SystemTime};

use http::HeaderMap;
use http::header::{DATE, RETRY_AFTER};

/// The default cap on a server's `Retry-After`: a longer wait is more likely a bug than a plan.
pub const DEFAULT_RETRY_AFTER_MAX: Duration = Duration::from_secs(60 * 60);

/// What a server asked for in `Retry-After`, kept as said so that no clock is read to parse it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// Wait this long (`Retry-After: 120`).
    Delay(Duration),
    /// Wait until `date` (`Retry-After: Wed, 21 Oct 2015 07:28:00 GMT`).
    At {
        /// The date the server named.
        date: SystemTime,
        /// The response's own `Date` header, when present and valid: the delay is measured
        /// from it, so a client whose clock is off still waits what the server meant.
        server_date: Option<SystemTime>,
    },
}

impl RetryAfter {
    /// Reads `Retry-After` from `headers`: the first valid value wins, across repeated headers
    /// and comma-joined values. A value with a sign, garbage or non-ASCII is skipped, so the
    /// caller falls back to its own backoff.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let found = headers
            .get_all(RETRY_AFTER)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(first_valid)?;
        Some(match found {
            Found::Delay(d) => Self::Delay(d),
            Found::Date(date) => Self::At {
                date,
                server_date: server_date(headers),
            },
        })
    }

    /// How long to wait from `now`, at most `max`. A date in the past means zero.
    pub fn delay(&self, now: SystemTime, max: Duration) -> Duration {
        let wait = match *self {
            Self::Delay(d) => d,
            Self::At { date, server_date } => date
                .duration_since(server_date.unwrap_or(now))
                .unwrap_or(Duration::ZERO),
        };
        wait.min(max)
    }
}

/// The wait a response's `Retry-After` asks for, measured from `now` (or from the response's
/// `Date` header for the date form), capped at `max`. `None` when no valid value is present.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// let mut headers = http::HeaderMap::new();
/// headers.insert("retry-after", "120".parse().unwrap());
/// let wait = fullstory_batch::retry_after(&headers, SystemTime::now(), Duration::from_secs(3600));
/// assert_eq!(wait, Some(Duration::from_secs(120)));
/// ```
pub fn retry_after(headers: &HeaderMap, now: SystemTime, max: Duration) -> Option<Duration> {
    RetryAfter::from_headers(headers).map(|r| r.delay(now, max))
}

enum Found {
    Delay(Duration),
    Date(SystemTime),
}

/// Scans one header value. Commas separate values, but IMF-fixdate and RFC 850 dates hold one
/// comma themselves, so each piece is also tried joined with the next.
fn first_valid(value: &str) -> Option<Found> {
    let pieces: Vec<&str> = value.split(',').collect();
    pieces.iter().enumerate().find_map(|(i, piece)| {
        if let Some(d) = delta_seconds(piece.trim()) {
            return Some(Found::Delay(d));
        }
        let joined = pieces
            .get(i + 1)
            .map(|next| format!("{},{}", piece.trim(), next.trim_end()));
        joined
            .as_deref()
            .and_then(http_date)
            .or_else(|| http_date(piece.trim()))
            .map(Found::Date)
    })
}

fn server_date(headers: &HeaderMap) -> Option<SystemTime> {
    headers
        .get_all(DATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| http_date(v.trim()))
}

fn http_date(s: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(s).ok()
}

/// `digits [ "." digits ]`, saturating; a fraction is rounded up to the millisecond.
fn delta_seconds(s: &str) -> Option<Duration> {
    let (whole, frac) = match s.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (s, None),
    };
    let whole_secs = digits_saturating(whole)?;
    let millis = match frac {
        Some(f) => fraction_millis(f)?,
        None => 0,
    };
    Some(Duration::from_secs(whole_secs).saturating_add(Duration::from_millis(millis)))
}

fn digits_saturating(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |n, b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

/// Milliseconds in a decimal fraction, rounded up: `5` → 500, `0001` → 1.
fn fraction_millis(f: &str) -> Option<u64> {
    if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (head, tail) = f.split_at(f.len().min(3));
    let millis = format!("{head:0<3}").parse::<u64>().ok()?;
    let round_up = tail.bytes().any(|b| b != b'0');
    Some(millis + u64::from(round_up))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_bytes(v.as_bytes()).unwrap(),
            );
        }
        map
    }

    fn wait(pairs: &[(&str, &str)], now: SystemTime) -> Option<Duration> {
        retry_after(&headers(pairs), now, HOUR)
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn seconds_with_whitespace() {
        assert_eq!(
            wait(&[("retry-after", " 120 ")], at(0)),
            Some(Duration::from_secs(120))
        );
    }

    #[test]
    fn fraction_rounds_up_to_the_millisecond() {
        let ms = |v| wait(&[("retry-after", v)], at(0)).map(|d| d.as_millis());
        assert_eq!(ms("0.5"), Some(500));
        assert_eq!(ms("0.0001"), Some(1));
        assert_eq!(ms("1.2340"), Some(1234));
        assert_eq!(ms("1.2341"), Some(1235));
    }

    #[test]
    fn sign_garbage_and_non_ascii_are_ignored() {
        for v in ["-1", "+1", "abc", "1e3", "", " ", "1.", ".5", "١٢"] {
            assert_eq!(wait(&[("retry-after", v)], at(0)), None, "{v:?}");
        }
    }

    #[test]
    fn huge_values_saturate_then_cap() {
        let v = "99999999999999999999999999999999";
        assert_eq!(wait(&[("retry-after", v)], at(0)), Some(HOUR));
        let big = headers(&[("retry-after", v)]);
        assert_eq!(
            retry_after(&big, at(0), Duration::MAX),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn all_three_date_forms() {
        // 1994-11-06T08:49:37Z is 784111777.
        let now = at(784_111_777 - 30);
        for v in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(
                wait(&[("retry-after", v)], now),
                Some(Duration::from_secs(30)),
                "{v}"
            );
        }
    }

    #[test]
    fn date_is_measured_against_the_date_header() {
        let now = at(0); // our clock is far behind the server's
        let got = wait(
            &[
                ("date", "Sun, 06 Nov 1994 08:49:00 GMT"),
                ("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ],
            now,
        );
        assert_eq!(got, Some(Duration::from_secs(37)));
    }

    #[test]
    fn invalid_date_header_falls_back_to_now() {
        let now = at(784_111_777 - 5);
        let got = wait(
            &[
                ("date", "yesterday"),
                ("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ],
            now,
        );
        assert_eq!(got, Some(Duration::from_secs(5)));
    }

    #[test]
    fn date_in_the_past_is_zero() {
        let got = wait(
            &[("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT")],
            at(2_000_000_000),
        );
        assert_eq!(got, Some(Duration::ZERO));
    }

    #[test]
    fn first_valid_value_wins() {
        assert_eq!(
            wait(&[("retry-after", "soon, 7, 9")], at(0)),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            wait(&[("retry-after", "x"), ("retry-after", "8")], at(0)),
            Some(Duration::from_secs(8))
        );
        let now = at(784_111_777 - 2);
        assert_eq!(
            wait(&[("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT, 99")], now),
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn absent_is_none() {
        assert_eq!(wait(&[], at(0)), None);
    }
}
