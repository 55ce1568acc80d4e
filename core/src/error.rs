//! What can go wrong with an answer from the server.

use std::fmt;
use std::sync::Arc;

use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize, Serializer};

use crate::config::CallKind;
use crate::model::{FieldError, FieldProblem};
use crate::retry_after::RetryAfter;

/// How much of a body that is not what the API promises is kept for the error message.
pub const EXCERPT_LEN: usize = 512;

/// The server's answer was not the one asked for: an error status, or a body that breaks
/// the API's contract.
///
/// Each variant keeps the HTTP status and, for error statuses, the server's parsed
/// [`ErrorResponse`] or an excerpt of the raw body (a proxy's HTML page, say).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ApiError {
    /// 400: the request was refused as invalid. Fix it; retrying will not help.
    InvalidInput(ErrorDetails),
    /// 401: the API key is missing, wrong or revoked.
    Unauthorized(ErrorDetails),
    /// 403: the key lacks a permission this call needs.
    Forbidden(ErrorDetails),
    /// 404: no such job (or route).
    NotFound(ErrorDetails),
    /// 429: too many requests; wait for `Retry-After`.
    RateLimited(ErrorDetails),
    /// 5xx: the server failed.
    Server(ErrorDetails),
    /// Any other status, such as a redirect or 408.
    UnexpectedStatus(ErrorDetails),
    /// A success status whose body is not what the API promises.
    Malformed(Malformed),
    /// A success body larger than the limit of its kind of call; it was not parsed.
    BodyTooLarge {
        /// The response's status.
        status: StatusCode,
        /// The configured limit, in bytes.
        limit: usize,
        /// The kind of call whose limit it broke.
        call: CallKind,
    },
}

impl ApiError {
    /// The HTTP status of the response.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidInput(d)
            | Self::Unauthorized(d)
            | Self::Forbidden(d)
            | Self::NotFound(d)
            | Self::RateLimited(d)
            | Self::Server(d)
            | Self::UnexpectedStatus(d) => d.status,
            Self::Malformed(m) => m.status,
            Self::BodyTooLarge { status, .. } => *status,
        }
    }

    /// The details of an error status, if this is one.
    pub fn details(&self) -> Option<&ErrorDetails> {
        match self {
            Self::InvalidInput(d)
            | Self::Unauthorized(d)
            | Self::Forbidden(d)
            | Self::NotFound(d)
            | Self::RateLimited(d)
            | Self::Server(d)
            | Self::UnexpectedStatus(d) => Some(d),
            Self::Malformed(_) | Self::BodyTooLarge { .. } => None,
        }
    }

    /// The server's structured error, when the body was one.
    pub fn error_response(&self) -> Option<&ErrorResponse> {
        self.details().and_then(|d| match &d.body {
            ErrorBody::Api(e) => Some(e),
            ErrorBody::Raw(_) => None,
        })
    }

    /// The wait the server asked for, if it sent a valid `Retry-After`.
    pub fn retry_after(&self) -> Option<RetryAfter> {
        self.details().and_then(|d| d.retry_after)
    }

    /// Whether the same request may succeed later: the rows of [`Error::is_retryable`]'s
    /// table for an answer that came.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Malformed(m) => m.is_retryable(),
            Self::BodyTooLarge { .. } => false,
            _ => is_retryable_status(self.status()),
        }
    }

    /// A short lower-case name of the variant, stable for scripts (`"rate_limited"`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidInput(_) => "invalid_input",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::RateLimited(_) => "rate_limited",
            Self::Server(_) => "server_error",
            Self::UnexpectedStatus(_) => "unexpected_status",
            Self::Malformed(_) => "malformed_response",
            Self::BodyTooLarge { .. } => "body_too_large",
        }
    }

    /// Sorts an error status (not 2xx) into its variant.
    pub(crate) fn from_status(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Self {
        let details = ErrorDetails {
            status,
            body: ErrorBody::parse(body),
            retry_after: RetryAfter::from_headers(headers),
        };
        match status.as_u16() {
            400 => Self::InvalidInput(details),
            401 => Self::Unauthorized(details),
            403 => Self::Forbidden(details),
            404 => Self::NotFound(details),
            429 => Self::RateLimited(details),
            500..=599 => Self::Server(details),
            _ => Self::UnexpectedStatus(details),
        }
    }
}

/// 408, 429, 500, 502, 503 and 504: the statuses worth asking again.
pub fn is_retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            Self::InvalidInput(_) => "invalid input",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not found",
            Self::RateLimited(_) => "rate limited",
            Self::Server(_) => "server error",
            Self::UnexpectedStatus(_) => "unexpected status",
            Self::Malformed(m) => {
                return write!(f, "malformed response (http {})", m.status.as_u16());
            }
            Self::BodyTooLarge {
                status,
                limit,
                call,
            } => {
                return write!(
                    f,
                    "{call} response body over its limit of {limit} bytes (http {})",
                    status.as_u16()
                );
            }
        };
        match self.details() {
            Some(d) => write!(f, "{what}: {d}"),
            None => f.write_str(what),
        }
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Malformed(m) => Some(m),
            _ => None,
        }
    }
}

/// An error status as the server sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorDetails {
    /// The HTTP status.
    pub status: StatusCode,
    /// The server's error, or an excerpt of whatever else the body was.
    pub body: ErrorBody,
    /// `Retry-After`, when the response carried a valid one.
    pub retry_after: Option<RetryAfter>,
}

impl fmt::Display for ErrorDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http {}", self.status.as_u16())?;
        match &self.body {
            ErrorBody::Api(e) if e.code.as_str().is_empty() => write!(f, ": {}", e.message),
            ErrorBody::Api(e) if e.message.is_empty() => write!(f, " {}", e.code),
            ErrorBody::Api(e) => write!(f, " {}: {}", e.code, e.message),
            ErrorBody::Raw(raw) if raw.is_empty() => f.write_str(", empty body"),
            ErrorBody::Raw(_) => f.write_str(", body is not an api error"),
        }
    }
}

/// The body of an error status.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ErrorBody {
    /// The API's `ErrorResponse`.
    Api(ErrorResponse),
    /// Anything else, cut to [`EXCERPT_LEN`] bytes and decoded lossily.
    Raw(String),
}

impl ErrorBody {
    fn parse(body: &[u8]) -> Self {
        match serde_json::from_slice::<ErrorResponse>(body) {
            Ok(e) => Self::Api(e),
            Err(_) => Self::Raw(excerpt(body)),
        }
    }
}

/// The API's error body: `{"message": "...", "code": "snake_case", ...}`.
///
/// Read tolerantly: a `code` or `message` that is absent, `null` or not a string is empty
/// (one that is not a string is kept in `extra`), so long as one of the two is a string;
/// any other body is [`ErrorBody::Raw`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorResponse {
    /// A short snake-case value, safe to handle programmatically.
    pub code: ErrorCode,
    /// A long-form description of what went wrong.
    pub message: String,
    /// Any other fields, such as `details`, kept as sent.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl<'de> Deserialize<'de> for ErrorResponse {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut extra = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let code = take_string(&mut extra, "code");
        let message = take_string(&mut extra, "message");
        if code.is_none() && message.is_none() {
            return Err(serde::de::Error::custom(
                "neither `code` nor `message` is a string",
            ));
        }
        Ok(Self {
            code: ErrorCode::from_wire(code.as_deref().unwrap_or_default()),
            message: message.unwrap_or_default(),
            extra,
        })
    }
}

/// Removes `key` from `map` if it holds a string or `null`; other values stay.
fn take_string(map: &mut serde_json::Map<String, serde_json::Value>, key: &str) -> Option<String> {
    match map.get(key)? {
        serde_json::Value::String(_) => match map.remove(key) {
            Some(serde_json::Value::String(s)) => Some(s),
            _ => None,
        },
        serde_json::Value::Null => {
            map.remove(key);
            None
        }
        _ => None,
    }
}

/// The error codes the API is known to send; others are kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `required_field`
    RequiredField,
    /// `invalid_argument`
    InvalidArgument,
    /// `unauthorized`
    Unauthorized,
    /// `forbidden`
    Forbidden,
    /// `resource_not_found`
    ResourceNotFound,
    /// `user_not_found`
    UserNotFound,
    /// `too_many_requests`
    TooManyRequests,
    /// `server_error`
    ServerError,
    /// `internal`
    Internal,
    /// Any other code.
    Other(String),
}

impl ErrorCode {
    /// The code as the API spells it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::RequiredField => "required_field",
            Self::InvalidArgument => "invalid_argument",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::ResourceNotFound => "resource_not_found",
            Self::UserNotFound => "user_not_found",
            Self::TooManyRequests => "too_many_requests",
            Self::ServerError => "server_error",
            Self::Internal => "internal",
            Self::Other(s) => s,
        }
    }

    fn from_wire(s: &str) -> Self {
        match s {
            "required_field" => Self::RequiredField,
            "invalid_argument" => Self::InvalidArgument,
            "unauthorized" => Self::Unauthorized,
            "forbidden" => Self::Forbidden,
            "resource_not_found" => Self::ResourceNotFound,
            "user_not_found" => Self::UserNotFound,
            "too_many_requests" => Self::TooManyRequests,
            "server_error" => Self::ServerError,
            "internal" => Self::Internal,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        Ok(Self::from_wire(&s))
    }
}

/// A success status whose body is not what the API promises: invalid JSON, the wrong shape,
/// cut short, empty, not UTF-8, or a field with an impossible value.
#[derive(Debug, Clone)]
pub struct Malformed {
    status: StatusCode,
    cause: Cause,
    excerpt: String,
}

#[derive(Debug, Clone)]
enum Cause {
    // Shared so that errors stay `Clone`; serde_json's error is not.
    Json(Arc<serde_json::Error>),
    Field(&'static str, FieldProblem),
    Contract(&'static str),
}

impl Malformed {
    pub(crate) fn json(status: StatusCode, body: &[u8], err: serde_json::Error) -> Self {
        Self {
            status,
            cause: Cause::Json(Arc::new(err)),
            excerpt: excerpt(body),
        }
    }

    pub(crate) fn field(status: StatusCode, body: &[u8], (field, problem): FieldError) -> Self {
        Self {
            status,
            cause: Cause::Field(field, problem),
            excerpt: excerpt(body),
        }
    }

    /// The body parsed but broke a rule of the API, such as a page token that repeats.
    pub(crate) fn contract(status: StatusCode, body: &[u8], rule: &'static str) -> Self {
        Self {
            status,
            cause: Cause::Contract(rule),
            excerpt: excerpt(body),
        }
    }

    /// Whether the same request may bring a body that parses: yes when the body is not JSON
    /// at all (a proxy's HTML page) or is cut short (a transfer that broke, an empty body);
    /// no when it is valid JSON of the wrong shape, a field with an impossible value, or a
    /// broken rule of the API: the same server sends the same body again.
    pub fn is_retryable(&self) -> bool {
        match &self.cause {
            Cause::Json(e) => matches!(
                e.classify(),
                serde_json::error::Category::Syntax
                    | serde_json::error::Category::Eof
                    | serde_json::error::Category::Io
            ),
            Cause::Field(..) | Cause::Contract(_) => false,
        }
    }

    /// The field at fault (`imports`, `job.created`, ...), when one is.
    pub fn field_name(&self) -> Option<&'static str> {
        match self.cause {
            Cause::Field(name, _) => Some(name),
            Cause::Json(_) | Cause::Contract(_) => None,
        }
    }

    /// The start of the body, at most [`EXCERPT_LEN`] bytes, decoded lossily.
    pub fn excerpt(&self) -> &str {
        &self.excerpt
    }

    /// The response's status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use serde_json::error::Category;
        match &self.cause {
            Cause::Json(e) => f.write_str(match e.classify() {
                Category::Eof if self.excerpt.trim().is_empty() => "body is empty",
                Category::Eof => "body is cut short",
                Category::Syntax => "body is not json",
                Category::Data => "body is json of the wrong shape",
                Category::Io => "body could not be read",
            }),
            Cause::Field(name, problem) => write!(f, "`{name}` {problem}"),
            Cause::Contract(rule) => f.write_str(rule),
        }
    }
}

impl std::error::Error for Malformed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.cause {
            Cause::Json(e) => Some(&**e),
            // `time`'s error prints its own cause and returns it too: hand on the cause alone.
            Cause::Field(_, FieldProblem::BadTimestamp(e)) => {
                Some(std::error::Error::source(e).unwrap_or(e))
            }
            Cause::Field(..) | Cause::Contract(_) => None,
        }
    }
}

/// The first [`EXCERPT_LEN`] bytes of `body`, decoded lossily, never splitting a character
/// into a replacement mark at the cut.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let cut = &body[..body.len().min(EXCERPT_LEN)];
    match std::str::from_utf8(cut) {
        Ok(s) => s.to_owned(),
        Err(e) if e.error_len().is_none() => {
            String::from_utf8_lossy(&cut[..e.valid_up_to()]).into_owned()
        }
        Err(_) => String::from_utf8_lossy(cut).into_owned(),
    }
}

/// One call that went wrong: the server answered with an error, or no answer came.
///
/// This is the error type of every adapter's single call, and what a [`crate::Job`] keeps
/// of the last failure.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with an error.
    Api(ApiError),
    /// The request got no usable answer.
    Transport(TransportError),
}

impl Error {
    /// Whether sending the same request again may bring a different answer.
    ///
    /// Every request this crate builds is safe to repeat (a create carries its
    /// `Idempotency-Key`), so the only question is whether another try can help:
    ///
    /// | error | retry | why |
    /// |---|---|---|
    /// | 408, 429, 500, 502, 503, 504 | yes | the server says it may work later |
    /// | 400, 401, 403, 404, other 4xx | no | the same request is refused the same way |
    /// | 501, 505 and other 5xx | no | a missing feature does not appear by waiting |
    /// | 1xx, 3xx (unexpected status) | no | this client follows no redirects |
    /// | 2xx, body not json (a proxy's HTML page) | yes | the proxy's fault passes |
    /// | 2xx, body empty or cut short | yes | a transfer that broke |
    /// | 2xx, json of the wrong shape, a field with an impossible value | no | the same server sends the same body |
    /// | 2xx, a broken rule of the API (a page token that repeats) | no | as above |
    /// | 2xx, body over its limit ([`ApiError::BodyTooLarge`], [`TransportKind::BodyTooLarge`]) | no | the same request gets the same body; raise the limit |
    /// | transport: connect, timeout, reset | yes | the network may recover |
    /// | transport: tls | no | a certificate not trusted now is not trusted in a second |
    /// | transport: other | yes | unknown, so not given up on |
    ///
    /// An error status is sorted by its status alone, whatever its body and size. An item
    /// of a page that does not fit its type is no error at all (see [`crate::Page::unread`]).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Api(e) => e.is_retryable(),
            Self::Transport(t) => t.kind.is_retryable(),
        }
    }

    /// A short lower-case name of what happened, stable for scripts.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Api(e) => e.kind(),
            Self::Transport(t) => t.kind.as_str(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Api(e) => e.fmt(f),
            Self::Transport(t) => t.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Api(e) => e.source(),
            Self::Transport(t) => t.source(),
        }
    }
}

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl From<TransportError> for Error {
    fn from(e: TransportError) -> Self {
        Self::Transport(e)
    }
}

/// Why a request got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportKind {
    /// No connection could be made (refused, DNS).
    Connect,
    /// The TLS handshake failed (an untrusted certificate, say).
    Tls,
    /// The request or the response took longer than allowed.
    Timeout,
    /// The connection broke before the whole response arrived.
    Reset,
    /// The body grew past the configured limit while being read; reading stopped there.
    BodyTooLarge,
    /// Anything else the HTTP client reported.
    Other,
}

impl TransportKind {
    /// Whether another try may help: not for [`TransportKind::Tls`] and
    /// [`TransportKind::BodyTooLarge`]; see [`Error::is_retryable`].
    pub fn is_retryable(self) -> bool {
        !matches!(self, Self::Tls | Self::BodyTooLarge)
    }

    /// A short lower-case name, stable for scripts.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Tls => "tls",
            Self::Timeout => "timeout",
            Self::Reset => "reset",
            Self::BodyTooLarge => "body_too_large",
            Self::Other => "transport",
        }
    }
}

/// A request that got no usable answer, with the HTTP client's own error as `source()`.
///
/// The core never makes one itself: adapters (or your own driver) do, and hand it to
/// [`crate::Job::handle_send_failed`].
///
/// Adapters name where the request went with [`TransportError::at`], so that `Display`
/// says "could not connect to api.fullstory.com:443" rather than "could not connect".
#[derive(Debug, Clone)]
pub struct TransportError {
    /// What kind of failure.
    pub kind: TransportKind,
    /// `host:port` of the server the request went to, when known.
    target: Option<Arc<str>>,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl TransportError {
    /// A failure of `kind` with no underlying error.
    pub fn new(kind: TransportKind) -> Self {
        Self {
            kind,
            target: None,
            source: None,
        }
    }

    /// A failure of `kind` caused by `source`.
    pub fn with_source(
        kind: TransportKind,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            kind,
            target: None,
            source: Some(Arc::from(source.into())),
        }
    }

    /// The same failure, naming the server of `uri` as `host:port` (the scheme's port when
    /// the URI gives none). Only the host and port are kept: no user info, path or query.
    /// A URI without a host leaves the error as it was.
    #[must_use]
    pub fn at(mut self, uri: &http::Uri) -> Self {
        if let Some(host) = uri.host() {
            let port = uri.port_u16().or(match uri.scheme_str() {
                Some("https") => Some(443),
                Some("http") => Some(80),
                _ => None,
            });
            self.target = Some(match port {
                Some(port) => Arc::from(format!("{host}:{port}")),
                None => Arc::from(host),
            });
        }
        self
    }

    /// `host:port` of the server the request went to, when the driver named it
    /// ([`TransportError::at`]).
    pub fn target(&self) -> Option<&str> {
        self.target.as_deref()
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(to) = self.target() else {
            return f.write_str(match self.kind {
                TransportKind::Connect => "could not connect",
                TransportKind::Tls => "tls handshake failed",
                TransportKind::Timeout => "timed out",
                TransportKind::Reset => "connection broke before the response was complete",
                TransportKind::BodyTooLarge => "response body over the limit",
                TransportKind::Other => "transport failed",
            });
        };
        match self.kind {
            TransportKind::Connect => write!(f, "could not connect to {to}"),
            TransportKind::Tls => write!(f, "tls handshake with {to} failed"),
            TransportKind::Timeout => write!(f, "timed out waiting for {to}"),
            TransportKind::Reset => write!(
                f,
                "connection to {to} broke before the response was complete"
            ),
            TransportKind::BodyTooLarge => write!(f, "response body from {to} over the limit"),
            TransportKind::Other => write!(f, "transport to {to} failed"),
        }
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
