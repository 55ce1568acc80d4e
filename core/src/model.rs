//! The job status as the API sends it, read tolerantly and kept typed.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::batch::Object;

/// An instant with its UTC offset, as the API's RFC 3339 timestamps carry it.
pub type Timestamp = OffsetDateTime;

/// The answer to `GET /v2/{events,users}/batch/{job_id}`.
///
/// Serialises in the API's own shape: counts as numbers, absent timestamps left out, and
/// the fields this crate does not know as they came.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobStatusResponse {
    /// Items imported so far. A missing count is 0 (proto3 JSON leaves zeros out).
    pub imports: u64,
    /// Items that failed to import. Only sent for failed jobs; 0 when missing.
    pub errors: u64,
    /// The job itself.
    pub job: JobMetadata,
    /// Any other fields of the answer, kept as sent (a field the API added later, say).
    #[serde(flatten)]
    pub extra: Object,
}

/// Metadata about an asynchronous import job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobMetadata {
    /// The job's id (empty when the server left it out).
    pub id: String,
    /// Where the job is.
    pub status: JobState,
    /// When the job was accepted; some servers leave it out.
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub created: Option<Timestamp>,
    /// When the job ended, successfully or not; absent until then.
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub finished: Option<Timestamp>,
    /// Any other fields of the job, kept as sent.
    #[serde(flatten)]
    pub extra: Object,
}

/// A job's status. Statuses this crate does not know are kept verbatim and count as running.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Accepted and being processed.
    Processing,
    /// Done, every item imported.
    Completed,
    /// Done with failures, possibly partial: a failed job can still have imported items.
    Failed,
    /// Any other status, verbatim, such as `PENDING` or the spec's default `UNKNOWN`
    /// (also what a missing status means).
    Other(String),
}

impl JobState {
    /// The status as the API spells it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Processing => "PROCESSING",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
            Self::Other(s) => s,
        }
    }

    /// `true` for `COMPLETED` and `FAILED`: the job will not change any more.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }

    fn from_wire(s: &str) -> Self {
        match s {
            "PROCESSING" => Self::Processing,
            "COMPLETED" => Self::Completed,
            "FAILED" => Self::Failed,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for JobState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for JobState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Cow::<str>::deserialize(d)?;
        Ok(Self::from_wire(&s))
    }
}

/// What is wrong with a field of an otherwise well-formed body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FieldProblem {
    NegativeCount,
    FractionalCount,
    TooLargeCount,
    NotACount,
    NotAList,
    NotAString,
    Missing,
    BadTimestamp(time::error::Parse),
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NegativeCount => "is a negative count",
            Self::FractionalCount => "is a fractional count",
            Self::TooLargeCount => "is a count too large to hold exactly",
            Self::NotACount => "is not a count",
            Self::NotAList => "is not a list",
            Self::NotAString => "is not a string",
            Self::Missing => "is missing or empty",
            Self::BadTimestamp(_) => "is not an rfc 3339 timestamp",
        })
    }
}

/// A field that failed validation: which one and why.
pub(crate) type FieldError = (&'static str, FieldProblem);

/// A count as sent: a number, a numeric string, empty (`null` or `""`, which read as an
/// absent count), or something to complain about later with the field's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WireCount(Result<Option<u64>, CountProblem>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CountProblem {
    Negative,
    Fractional,
    TooLarge,
    NotNumeric,
}

impl WireCount {
    /// The count, 0 when it was empty or absent (proto3 JSON leaves zeros out).
    pub(crate) fn check(self, field: &'static str) -> Result<u64, FieldError> {
        self.check_optional(field).map(Option::unwrap_or_default)
    }

    /// The count, `None` when it was empty or absent.
    pub(crate) fn check_optional(self, field: &'static str) -> Result<Option<u64>, FieldError> {
        self.0.map_err(|p| {
            let problem = match p {
                CountProblem::Negative => FieldProblem::NegativeCount,
                CountProblem::Fractional => FieldProblem::FractionalCount,
                CountProblem::TooLarge => FieldProblem::TooLargeCount,
                CountProblem::NotNumeric => FieldProblem::NotACount,
            };
            (field, problem)
        })
    }

    /// An absent count.
    pub(crate) fn empty() -> Self {
        Self(Ok(None))
    }

    fn from_str(s: &str) -> Self {
        let s = s.trim();
        if s.is_empty() {
            return Self::empty();
        }
        let (negative, digits) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            // "1.5" or "1e3": a number, but not a whole one in the int64 string form.
            return match s.parse::<f64>() {
                Ok(v) if v.is_finite() => Self::from_f64(v),
                _ => Self(Err(CountProblem::NotNumeric)),
            };
        }
        if negative && digits.bytes().any(|b| b != b'0') {
            return Self(Err(CountProblem::Negative));
        }
        // Only digits are left, so the one way to fail is to overflow.
        Self(digits.parse().map(Some).map_err(|_| CountProblem::TooLarge))
    }

    fn from_f64(v: f64) -> Self {
        // 2^53: above it a float no longer holds every integer, so it is no count we trust.
        const EXACT: f64 = 9_007_199_254_740_992.0;
        if v.is_nan() {
            Self(Err(CountProblem::NotNumeric))
        } else if v < 0.0 {
            Self(Err(CountProblem::Negative))
        } else if v > EXACT {
            Self(Err(CountProblem::TooLarge))
        } else if v.fract() != 0.0 {
            Self(Err(CountProblem::Fractional))
        } else {
            // Exact: v is a whole number in 0..=2^53.
            Self(Ok(Some(v as u64)))
        }
    }
}

impl<'de> Deserialize<'de> for WireCount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CountVisitor)
    }
}

struct CountVisitor;

impl<'de> Visitor<'de> for CountVisitor {
    type Value = WireCount;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a count as a number or a numeric string")
    }

    fn visit_u64<E>(self, v: u64) -> Result<WireCount, E> {
        Ok(WireCount(Ok(Some(v))))
    }

    fn visit_i64<E>(self, v: i64) -> Result<WireCount, E> {
        Ok(WireCount(
            u64::try_from(v)
                .map(Some)
                .map_err(|_| CountProblem::Negative),
        ))
    }

    fn visit_f64<E>(self, v: f64) -> Result<WireCount, E> {
        Ok(WireCount::from_f64(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<WireCount, E> {
        Ok(WireCount::from_str(v))
    }

    fn visit_unit<E>(self) -> Result<WireCount, E> {
        Ok(WireCount::empty())
    }

    fn visit_none<E>(self) -> Result<WireCount, E> {
        Ok(WireCount::empty())
    }

    fn visit_bool<E>(self, _: bool) -> Result<WireCount, E> {
        Ok(WireCount(Err(CountProblem::NotNumeric)))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<WireCount, A::Error> {
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        Ok(WireCount(Err(CountProblem::NotNumeric)))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<WireCount, A::Error> {
        while map
            .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
            .is_some()
        {}
        Ok(WireCount(Err(CountProblem::NotNumeric)))
    }
}

/// `JobStatusResponse` as it arrives, checked as soon as it is read: strings borrow from
/// the body until the last step.
///
/// Every field reads absent, `null` and empty alike: a count as 0, a job as one with no id
/// and the status `UNKNOWN`, as proto3 JSON means when it leaves a field out. Other keys are
/// kept in `extra`. Read by hand rather than by serde's `flatten`, which would buffer every
/// field of every answer on the way; the checked value is built in place, for it is too
/// large to move around cheaply.
struct WireStatus(Result<JobStatusResponse, FieldError>);

/// `JobMetadata` as it arrives, checked: absent, `null` and `""` read alike for each field;
/// other keys are kept in `extra`.
pub(crate) struct WireJob(Result<JobMetadata, FieldError>);

impl Default for WireJob {
    /// An absent job: no id, the status `UNKNOWN`.
    fn default() -> Self {
        Self(Ok(JobMetadata {
            id: String::new(),
            status: JobState::Other("UNKNOWN".to_owned()),
            created: None,
            finished: None,
            extra: Object::new(),
        }))
    }
}

/// Reads a key: `Some` place among the known names, or `None` with the key put in the slot.
/// Known names are matched as serde's derive does (no call, no loop); only an unknown key is
/// allocated.
macro_rules! key_seed {
    ($seed:ident: $($name:literal => $n:literal),+) => {
        struct $seed<'k>(&'k mut Option<String>);

        impl<'de> de::DeserializeSeed<'de> for $seed<'_> {
            type Value = Option<u8>;
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<u8>, D::Error> {
                d.deserialize_identifier(self)
            }
        }

        impl<'de> Visitor<'de> for $seed<'_> {
            type Value = Option<u8>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E>(self, v: &str) -> Result<Option<u8>, E> {
                Ok(match v {
                    $($name => Some($n),)+
                    other => {
                        *self.0 = Some(other.to_owned());
                        None
                    }
                })
            }
        }
    };
}

key_seed!(StatusKey: "imports" => 0, "errors" => 1, "job" => 2);
key_seed!(JobKey: "id" => 0, "status" => 1, "created" => 2, "finished" => 3);

/// The value of a known field seen once, or the error serde's derive gives a repeat.
fn once<'de, T: Deserialize<'de>, A: de::MapAccess<'de>>(
    slot: &mut Option<T>,
    map: &mut A,
    name: &'static str,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(de::Error::duplicate_field(name));
    }
    *slot = Some(map.next_value()?);
    Ok(())
}

/// An unknown field's value, kept under the key in `other` (the last one wins if the key
/// repeats).
fn keep<'de, A: de::MapAccess<'de>>(
    extra: &mut Object,
    map: &mut A,
    other: &mut Option<String>,
) -> Result<(), A::Error> {
    let value = map.next_value()?;
    extra.insert(other.take().unwrap_or_default(), value);
    Ok(())
}

impl<'de> Deserialize<'de> for WireStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct StatusVisitor;
        impl<'de> Visitor<'de> for StatusVisitor {
            type Value = WireStatus;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a job status object")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<WireStatus, A::Error> {
                let (mut imports, mut errors) = (None::<WireCount>, None::<WireCount>);
                let mut job = None::<Option<WireJob>>;
                let (mut extra, mut other) = (Object::new(), None);
                while let Some(key) = map.next_key_seed(StatusKey(&mut other))? {
                    match key {
                        Some(0) => once(&mut imports, &mut map, "imports")?,
                        Some(1) => once(&mut errors, &mut map, "errors")?,
                        Some(_) => once(&mut job, &mut map, "job")?,
                        None => keep(&mut extra, &mut map, &mut other)?,
                    }
                }
                let count =
                    |c: Option<WireCount>, field| c.unwrap_or_else(WireCount::empty).check(field);
                let checked = (|| {
                    Ok(JobStatusResponse {
                        imports: count(imports, "imports")?,
                        errors: count(errors, "errors")?,
                        job: job.flatten().unwrap_or_default().0?,
                        extra,
                    })
                })();
                Ok(WireStatus(checked))
            }
        }
        d.deserialize_map(StatusVisitor)
    }
}

impl<'de> Deserialize<'de> for WireJob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct JobVisitor;
        impl<'de> Visitor<'de> for JobVisitor {
            type Value = WireJob;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a job object")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<WireJob, A::Error> {
                let (mut id, mut status) = (None::<Option<Text<'de>>>, None::<Option<Text<'de>>>);
                let (mut created, mut finished) =
                    (None::<Option<Text<'de>>>, None::<Option<Text<'de>>>);
                let (mut extra, mut other) = (Object::new(), None);
                while let Some(key) = map.next_key_seed(JobKey(&mut other))? {
                    match key {
                        Some(0) => once(&mut id, &mut map, "id")?,
                        Some(1) => once(&mut status, &mut map, "status")?,
                        Some(2) => once(&mut created, &mut map, "created")?,
                        Some(_) => once(&mut finished, &mut map, "finished")?,
                        None => keep(&mut extra, &mut map, &mut other)?,
                    }
                }
                fn text<'t>(t: &'t Option<Option<Text<'_>>>) -> Option<&'t str> {
                    t.as_ref().and_then(Option::as_ref).map(|t| &*t.0)
                }
                let checked = (|| {
                    Ok(JobMetadata {
                        id: id.flatten().map(|t| t.0.into_owned()).unwrap_or_default(),
                        status: match text(&status) {
                            None | Some("") => JobState::Other("UNKNOWN".to_owned()),
                            Some(s) => JobState::from_wire(s),
                        },
                        created: timestamp(text(&created), "job.created")?,
                        finished: timestamp(text(&finished), "job.finished")?,
                        extra,
                    })
                })();
                Ok(WireJob(checked))
            }
        }
        d.deserialize_map(JobVisitor)
    }
}

/// A string field's text, borrowed from the body unless it holds escapes. serde's own
/// `Cow<str>` (even with `borrow`, inside an `Option`) always copies into a `String`.
pub(crate) struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(TextVisitor)
    }
}

impl WireJob {
    pub(crate) fn check(self) -> Result<JobMetadata, FieldError> {
        self.0
    }
}

fn timestamp(s: Option<&str>, field: &'static str) -> Result<Option<Timestamp>, FieldError> {
    let Some(s) = s.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    match rfc3339_common(s.as_bytes()) {
        Some(at) => Ok(Some(at)),
        None => timestamp_by_time(s, field).map(Some),
    }
}

/// Any other form, and every error, as `time` reads it.
#[cold]
#[inline(never)]
fn timestamp_by_time(s: &str, field: &'static str) -> Result<Timestamp, FieldError> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|e| (field, FieldProblem::BadTimestamp(e)))
}

/// The RFC 3339 form servers send, `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, read in one
/// pass over the bytes. `None` for anything else, valid or not (a leap second, a space or
/// lowercase separator, a day past the month's end...): `time`'s parser then decides, and
/// names the problem. Where this answers, it answers as `time` does (a property test checks):
/// fraction digits past the ninth are dropped, offsets run to ±23:59.
fn rfc3339_common(b: &[u8]) -> Option<OffsetDateTime> {
    use time::{Date, Month, Time, UtcOffset};

    let (head, rest) = b.split_first_chunk::<19>()?;
    // `YYYY-MM-DDTHH:MM:SS` checked eight bytes at a time: bytes 0-7, 8-15 and 11-18.
    const A: Pattern = Pattern::new(b"dddd-dd-");
    const B: Pattern = Pattern::new(b"ddTdd:dd");
    const C: Pattern = Pattern::new(b"dd:dd:dd");
    let at = |i: usize| {
        let mut chunk = [0; 8];
        chunk.copy_from_slice(&head[i..i + 8]);
        u64::from_le_bytes(chunk)
    };
    if !(A.matches(at(0)) && B.matches(at(8)) && C.matches(at(11))) {
        return None;
    }
    let d = |i: usize| head[i] - b'0';
    let two = |i: usize| d(i) * 10 + d(i + 1);
    let year = u16::from(two(0)) * 100 + u16::from(two(2));
    let second = two(17);
    if second > 59 {
        return None; // a leap second: time's stand-in rules
    }

    let (nanosecond, rest) = match rest.split_first() {
        Some((b'.', fraction)) => {
            const SCALE: [u32; 10] = [
                1_000_000_000,
                100_000_000,
                10_000_000,
                1_000_000,
                100_000,
                10_000,
                1_000,
                100,
                10,
                1,
            ];
            let mut n = 0;
            let mut value = 0u32;
            while let Some(&c) = fraction.get(n)
                && c.is_ascii_digit()
            {
                if n < 9 {
                    value = value * 10 + u32::from(c - b'0');
                }
                n += 1;
            }
            if n == 0 {
                return None;
            }
            (value * SCALE[n.min(9)], &fraction[n..])
        }
        _ => (0, rest),
    };
    let offset = match *rest {
        [b'Z'] => UtcOffset::UTC,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let pair = |a: u8, b: u8| {
                let (a, b) = (a.wrapping_sub(b'0'), b.wrapping_sub(b'0'));
                (a < 10 && b < 10).then_some((a * 10 + b) as i8)
            };
            let (h, m) = (pair(h1, h2)?, pair(m1, m2)?);
            if h > 23 {
                return None;
            }
            let (h, m) = if sign == b'-' { (-h, -m) } else { (h, m) };
            UtcOffset::from_hms(h, m, 0).ok()?
        }
        _ => return None,
    };
    let month = Month::try_from(two(5)).ok()?;
    let date = Date::from_calendar_date(i32::from(year), month, two(8)).ok()?;
    let time = Time::from_hms_nano(two(11), two(14), second, nanosecond).ok()?;
    Some(OffsetDateTime::new_in_offset(date, time, offset))
}

/// Eight bytes that must be ASCII digits (`d`) or given bytes, tested at once.
struct Pattern {
    /// `0xff` under each given byte.
    literal_mask: u64,
    literal: u64,
    /// `0x80` under each digit.
    digit_high: u64,
}

impl Pattern {
    const fn new(pattern: &[u8; 8]) -> Self {
        let (mut literal_mask, mut literal, mut digit_high) = (0, 0, 0);
        let mut i = 0;
        while i < 8 {
            if pattern[i] == b'd' {
                digit_high |= 0x80 << (8 * i);
            } else {
                literal_mask |= 0xff << (8 * i);
                literal |= (pattern[i] as u64) << (8 * i);
            }
            i += 1;
        }
        Self {
            literal_mask,
            literal,
            digit_high,
        }
    }

    /// `bytes` (little-endian) fit the pattern. Less '0', a digit is 0-9: adding 0x76 leaves
    /// its top bit clear, and 10-127 set it; a byte with its top bit set already fails (a
    /// carry out of it into the next byte can only spoil a test that fails anyway).
    fn matches(&self, bytes: u64) -> bool {
        const ZEROS: u64 = u64::from_ne_bytes([b'0'; 8]);
        const ADD: u64 = u64::from_ne_bytes([0x76; 8]);
        let x = bytes ^ ZEROS;
        bytes & self.literal_mask == self.literal
            && (x | x.wrapping_add(ADD)) & self.digit_high == 0
    }
}

/// Parses a status body. The outer error is the JSON's; the inner one names a field.
pub(crate) fn parse_status_body(
    body: &[u8],
) -> Result<Result<JobStatusResponse, FieldError>, serde_json::Error> {
    refuse_list(body)?;
    let wire: WireStatus = match std::str::from_utf8(body) {
        // Every answer the API sends: checked once here, serde_json then skips the check of
        // each string (a call per key and value, most of the parse's cost before).
        Ok(text) => serde_json::from_str(text)?,
        // serde_json's own error for the bytes at fault, as it reads them.
        Err(_) => serde_json::from_slice(body)?,
    };
    Ok(wire.0)
}

/// Every answer of the API is an object; serde's derive would also read a struct from a
/// list, so a body that is one is refused here as json of the wrong shape.
pub(crate) fn refuse_list(body: &[u8]) -> Result<(), serde_json::Error> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => Err(de::Error::custom("invalid type: list, expected an object")),
        _ => Ok(()),
    }
}

impl<'de> Deserialize<'de> for JobStatusResponse {
    /// Reads the API's shape with the same tolerance as the response parser.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = WireStatus::deserialize(d)?;
        wire.0
            .map_err(|(field, problem)| de::Error::custom(format_args!("`{field}` {problem}")))
    }
}

impl<'de> Deserialize<'de> for JobMetadata {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = WireJob::deserialize(d)?;
        wire.0
            .map_err(|(field, problem)| de::Error::custom(format_args!("`{field}` {problem}")))
    }
}

impl JobStatusResponse {
    /// Shorthand for `self.job.status.is_terminal()`.
    pub fn is_terminal(&self) -> bool {
        self.job.status.is_terminal()
    }
}

#[cfg(test)]
mod timestamp_tests {
    use proptest::prelude::*;

    use super::*;

    fn by_time(s: &str) -> Option<OffsetDateTime> {
        OffsetDateTime::parse(s, &Rfc3339).ok()
    }

    fn two_digits(max: u8) -> impl Strategy<Value = String> {
        (0..=max).prop_map(|n| format!("{n:02}"))
    }

    /// Timestamps near the common form: each part valid or just out of range, with the
    /// odd separator, fraction length, offset or trailing byte.
    fn near_rfc3339() -> impl Strategy<Value = String> {
        (
            (0u16..=9999).prop_map(|y| format!("{y:04}")),
            two_digits(13),
            two_digits(32),
            prop::sample::select(vec!["T", "t", " ", "x", "TT", ""]),
            (two_digits(25), two_digits(61), two_digits(61)),
            prop::option::of("[0-9]{0,12}"),
            prop::sample::select(vec!["Z", "z", "+", "-", "", "Zx", "+0", "*"]),
            (
                two_digits(25),
                prop::sample::select(vec![":", "", "-"]),
                two_digits(61),
            ),
        )
            .prop_map(|(y, mo, d, sep, (h, mi, s), frac, off, (oh, colon, om))| {
                let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
                let off = match off {
                    "+" | "-" => format!("{off}{oh}{colon}{om}"),
                    other => other.to_owned(),
                };
                format!("{y}-{mo}-{d}{sep}{h}:{mi}:{s}{frac}{off}")
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn fast_path_agrees_with_time(s in near_rfc3339()) {
            let fast = rfc3339_common(s.as_bytes());
            let time = by_time(&s);
            if let Some(fast) = fast {
                prop_assert_eq!(Some(fast), time, "{}", s);
                prop_assert_eq!(fast.offset(), time.unwrap().offset());
            }
            // What the parser returns is time's answer either way.
            let ours = timestamp(Some(&s), "f").ok().flatten();
            prop_assert_eq!(ours, time, "{}", s);
        }

        #[test]
        fn fast_path_takes_the_common_form(
            secs in -62_167_219_200i64..253_402_300_799,
            nanos in 0u32..1_000_000_000,
            digits in 1usize..=9,
            offset_minutes in -(23 * 60 + 59)..=(23 * 60 + 59i16),
        ) {
            let offset = UtcOffset::from_whole_seconds(i32::from(offset_minutes) * 60).unwrap();
            let at = OffsetDateTime::from_unix_timestamp(secs).unwrap()
                .replace_nanosecond(nanos).unwrap()
                .to_offset(offset);
            prop_assume!((0..=9999).contains(&at.year()));
            let scale = 10u32.pow(9 - digits as u32);
            let frac = format!(".{:0digits$}", at.nanosecond() / scale);
            let text = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{frac}{}",
                at.year(), u8::from(at.month()), at.day(),
                at.hour(), at.minute(), at.second(),
                if offset_minutes == 0 { "Z".to_owned() } else {
                    let (sign, m) = if offset_minutes < 0 { ('-', -offset_minutes) } else { ('+', offset_minutes) };
                    format!("{sign}{:02}:{:02}", m / 60, m % 60)
                },
            );
            let fast = rfc3339_common(text.as_bytes());
            prop_assert!(fast.is_some(), "{}", text);
            prop_assert_eq!(fast, by_time(&text), "{}", text);
        }

        #[test]
        fn any_bytes_agree(s in "[0-9TZz:. +-]{0,32}") {
            if let Some(fast) = rfc3339_common(s.as_bytes()) {
                prop_assert_eq!(Some(fast), by_time(&s), "{}", s);
            }
        }
    }

    use time::UtcOffset;

    #[test]
    fn examples() {
        for s in [
            "2019-04-18T14:36:11.123Z",
            "2019-04-18T14:36:11Z",
            "2019-04-18T14:36:11.123456789123+05:30",
            "2019-04-18T14:36:11-00:00",
            "2020-02-29T00:00:00.5-23:59",
        ] {
            let fast = rfc3339_common(s.as_bytes()).expect(s);
            assert_eq!(Some(fast), by_time(s), "{s}");
        }
        for s in [
            "2019-02-29T14:36:11Z",      // no such day: time names it
            "2016-12-31T23:59:60Z",      // a leap second: time's stand-in
            "2019-04-18 14:36:11Z",      // a space
            "2019-04-18T14:36:11.Z",     // an empty fraction
            "2019-04-18T14:36:11+24:00", // an offset out of range
            "2019-04-18T14:36:11Z ",     // trailing
            "2019-04-18T14:36:11",       // no offset
        ] {
            assert_eq!(rfc3339_common(s.as_bytes()), None, "{s}");
        }
    }
}
