//! The job status as the API sends it, read tolerantly and kept typed.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// An instant with its UTC offset, as the API's RFC 3339 timestamps carry it.
pub type Timestamp = OffsetDateTime;

/// The answer to `GET /v2/{events,users}/batch/{job_id}`.
///
/// Serialises in the API's own shape: counts as numbers, absent timestamps left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobStatusResponse {
    /// Items imported so far. A missing count is 0 (proto3 JSON leaves zeros out).
    pub imports: u64,
    /// Items that failed to import. Only sent for failed jobs; 0 when missing.
    pub errors: u64,
    /// The job itself.
    pub job: JobMetadata,
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

/// `JobStatusResponse` as it arrives; strings borrow from the body where they can.
///
/// Every field reads absent, `null` and empty alike: a count as 0, a job as one with no id
/// and the status `UNKNOWN`, as proto3 JSON means when it leaves a field out.
#[derive(Deserialize)]
struct WireStatus<'a> {
    #[serde(default = "WireCount::empty")]
    imports: WireCount,
    #[serde(default = "WireCount::empty")]
    errors: WireCount,
    #[serde(borrow, default)]
    job: Option<WireJob<'a>>,
}

/// `JobMetadata` as it arrives: absent, `null` and `""` read alike for each field.
#[derive(Deserialize, Default)]
pub(crate) struct WireJob<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    created: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    finished: Option<Cow<'a, str>>,
}

impl WireJob<'_> {
    pub(crate) fn check(self) -> Result<JobMetadata, FieldError> {
        Ok(JobMetadata {
            id: self.id.map(Cow::into_owned).unwrap_or_default(),
            status: match self.status.as_deref() {
                None | Some("") => JobState::Other("UNKNOWN".to_owned()),
                Some(s) => JobState::from_wire(s),
            },
            created: timestamp(self.created.as_deref(), "job.created")?,
            finished: timestamp(self.finished.as_deref(), "job.finished")?,
        })
    }
}

fn timestamp(s: Option<&str>, field: &'static str) -> Result<Option<Timestamp>, FieldError> {
    s.filter(|s| !s.is_empty())
        .map(|s| {
            OffsetDateTime::parse(s, &Rfc3339).map_err(|e| (field, FieldProblem::BadTimestamp(e)))
        })
        .transpose()
}

/// Parses a status body. The outer error is the JSON's; the inner one names a field.
pub(crate) fn parse_status_body(
    body: &[u8],
) -> Result<Result<JobStatusResponse, FieldError>, serde_json::Error> {
    refuse_list(body)?;
    let wire: WireStatus<'_> = serde_json::from_slice(body)?;
    Ok(wire.check())
}

/// Every answer of the API is an object; serde's derive would also read a struct from a
/// list, so a body that is one is refused here as json of the wrong shape.
pub(crate) fn refuse_list(body: &[u8]) -> Result<(), serde_json::Error> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => Err(de::Error::custom("invalid type: list, expected an object")),
        _ => Ok(()),
    }
}

impl WireStatus<'_> {
    fn check(self) -> Result<JobStatusResponse, FieldError> {
        Ok(JobStatusResponse {
            imports: self.imports.check("imports")?,
            errors: self.errors.check("errors")?,
            job: self.job.unwrap_or_default().check()?,
        })
    }
}

impl<'de> Deserialize<'de> for JobStatusResponse {
    /// Reads the API's shape with the same tolerance as the response parser.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = WireStatus::deserialize(d)?;
        wire.check()
            .map_err(|(field, problem)| de::Error::custom(format_args!("`{field}` {problem}")))
    }
}

impl<'de> Deserialize<'de> for JobMetadata {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = WireJob::deserialize(d)?;
        wire.check()
            .map_err(|(field, problem)| de::Error::custom(format_args!("`{field}` {problem}")))
    }
}

impl JobStatusResponse {
    /// Shorthand for `self.job.status.is_terminal()`.
    pub fn is_terminal(&self) -> bool {
        self.job.status.is_terminal()
    }
}
