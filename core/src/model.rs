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
    NotACount,
    BadTimestamp(time::error::Parse),
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NegativeCount => f.write_str("count is negative"),
            Self::FractionalCount => f.write_str("count is fractional"),
            Self::NotACount => f.write_str("count is not a number"),
            Self::BadTimestamp(_) => f.write_str("timestamp is not rfc 3339"),
        }
    }
}

/// A field that failed validation: which one and why.
pub(crate) type FieldError = (&'static str, FieldProblem);

/// A count as sent: a number, a numeric string, or something to complain about later with
/// the field's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WireCount(Result<u64, CountProblem>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CountProblem {
    Negative,
    Fractional,
    NotNumeric,
}

impl WireCount {
    pub(crate) fn check(self, field: &'static str) -> Result<u64, FieldError> {
        self.0.map_err(|p| {
            let problem = match p {
                CountProblem::Negative => FieldProblem::NegativeCount,
                CountProblem::Fractional => FieldProblem::FractionalCount,
                CountProblem::NotNumeric => FieldProblem::NotACount,
            };
            (field, problem)
        })
    }

    fn zero() -> Self {
        Self(Ok(0))
    }

    fn from_str(s: &str) -> Self {
        if let Some(rest) = s.strip_prefix('-')
            && !rest.is_empty()
            && rest.bytes().all(|b| b.is_ascii_digit())
        {
            return Self(Err(CountProblem::Negative));
        }
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Self(Err(CountProblem::NotNumeric));
        }
        Self(s.parse().map_err(|_| CountProblem::NotNumeric))
    }

    fn from_f64(v: f64) -> Self {
        // 2^53: above it a float no longer holds every integer, so it is no count we trust.
        const EXACT: f64 = 9_007_199_254_740_992.0;
        if v.is_nan() {
            Self(Err(CountProblem::NotNumeric))
        } else if v < 0.0 {
            Self(Err(CountProblem::Negative))
        } else if v.fract() != 0.0 || v > EXACT {
            Self(Err(CountProblem::Fractional))
        } else {
            // Exact: v is a whole number in 0..=2^53.
            Self(Ok(v as u64))
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
        Ok(WireCount(Ok(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<WireCount, E> {
        Ok(WireCount(
            u64::try_from(v).map_err(|_| CountProblem::Negative),
        ))
    }

    fn visit_f64<E>(self, v: f64) -> Result<WireCount, E> {
        Ok(WireCount::from_f64(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<WireCount, E> {
        Ok(WireCount::from_str(v))
    }

    fn visit_unit<E>(self) -> Result<WireCount, E> {
        Ok(WireCount::zero())
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
#[derive(Deserialize)]
struct WireStatus<'a> {
    #[serde(default = "WireCount::zero")]
    imports: WireCount,
    #[serde(default = "WireCount::zero")]
    errors: WireCount,
    #[serde(borrow)]
    job: WireJob<'a>,
}

#[derive(Deserialize)]
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
            status: self.status.as_deref().map_or_else(
                || JobState::Other("UNKNOWN".to_owned()),
                JobState::from_wire,
            ),
            created: timestamp(self.created.as_deref(), "job.created")?,
            finished: timestamp(self.finished.as_deref(), "job.finished")?,
        })
    }
}

fn timestamp(s: Option<&str>, field: &'static str) -> Result<Option<Timestamp>, FieldError> {
    s.map(|s| {
        OffsetDateTime::parse(s, &Rfc3339).map_err(|e| (field, FieldProblem::BadTimestamp(e)))
    })
    .transpose()
}

/// Parses a status body. The outer error is the JSON's; the inner one names a field.
pub(crate) fn parse_status_body(
    body: &[u8],
) -> Result<Result<JobStatusResponse, FieldError>, serde_json::Error> {
    let wire: WireStatus<'_> = serde_json::from_slice(body)?;
    Ok(wire.check())
}

impl WireStatus<'_> {
    fn check(self) -> Result<JobStatusResponse, FieldError> {
        Ok(JobStatusResponse {
            imports: self.imports.check("imports")?,
            errors: self.errors.check("errors")?,
            job: self.job.check()?,
        })
    }
}

impl<'de> Deserialize<'de> for JobStatusResponse {
    /// Reads the API's shape with the same tolerance as the response parser.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = WireStatus::deserialize(d)?;
        wire.check()
            .map_err(|(field, problem)| de::Error::custom(format_args!("{field}: {problem}")))
    }
}

impl<'de> Deserialize<'de> for JobMetadata {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = WireJob::deserialize(d)?;
        wire.check()
            .map_err(|(field, problem)| de::Error::custom(format_args!("{field}: {problem}")))
    }
}

impl JobStatusResponse {
    /// Shorthand for `self.job.status.is_terminal()`.
    pub fn is_terminal(&self) -> bool {
        self.job.status.is_terminal()
    }
}
