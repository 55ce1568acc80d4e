//! What a caller configures: where to send requests, with which key, for which job.

use std::fmt;

use http::HeaderValue;
use http::uri::{Authority, Scheme};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};

/// Bodies above this size are refused without being parsed, unless configured otherwise.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// The longest job id accepted, in bytes. Real ids are a few dozen bytes; the bound keeps
/// a hostile or mistaken id from making an unbounded URL.
pub const MAX_JOB_ID_LEN: usize = 1024;

/// A mistake by the caller, found before any request is built.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The API key is empty.
    EmptyApiKey,
    /// The API key holds a byte that cannot appear in an HTTP header (CR, LF, other controls).
    InvalidApiKey,
    /// The `Integration-Source` value holds a byte that cannot appear in an HTTP header.
    InvalidIntegrationSource,
    /// The base URL could not be used; the text says why.
    InvalidBaseUrl(&'static str),
    /// The base URL is plain `http` and the caller did not ask for plain HTTP.
    InsecureBaseUrl,
    /// The idempotency key is empty, over 255 bytes, or not printable ASCII without spaces.
    InvalidIdempotencyKey,
    /// The job id is empty.
    EmptyJobId,
    /// The job id is longer than [`MAX_JOB_ID_LEN`] bytes.
    JobIdTooLong(usize),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyApiKey => f.write_str("api key is empty"),
            Self::InvalidApiKey => f.write_str(
                "api key holds a byte not allowed in an http header (CR, LF or a control)",
            ),
            Self::InvalidIntegrationSource => {
                f.write_str("integration source holds a byte not allowed in an http header")
            }
            Self::InvalidBaseUrl(why) => write!(f, "invalid base url: {why}"),
            Self::InsecureBaseUrl => f.write_str(
                "base url is plain http; allow it explicitly to use it (e.g. for loopback tests)",
            ),
            Self::InvalidIdempotencyKey => f.write_str(
                "idempotency key must be 1 to 255 printable ascii characters without spaces",
            ),
            Self::EmptyJobId => f.write_str("job id is empty"),
            Self::JobIdTooLong(len) => {
                write!(f, "job id is {len} bytes, longer than {MAX_JOB_ID_LEN}")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// `text` as a header value if it is printable ASCII and spaces only. `http` would also take
/// tabs and bytes above 127, which no key or name needs and some servers mangle.
pub(crate) fn header_text(text: &str) -> Option<HeaderValue> {
    let printable = text.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
    printable
        .then(|| HeaderValue::from_str(text).ok())
        .flatten()
}

/// The secret API key, held as the ready `Authorization` header value.
///
/// Its `Debug` and `Display` never show the key, and the header value is marked sensitive so
/// HTTP libraries that honour the flag leave it out of their logs too.
#[derive(Clone)]
pub struct ApiKey(HeaderValue);

impl ApiKey {
    /// Makes a key from what Fullstory's settings page shows.
    ///
    /// `Basic ` is put in front unless the text already holds a space (then it is taken as a
    /// whole header value, such as `Bearer xyz`), as the official SDK does.
    ///
    /// # Errors
    /// [`ConfigError::EmptyApiKey`] or [`ConfigError::InvalidApiKey`] when the key could not be
    /// sent as a header: the key is refused here rather than failing later, or worse, splitting
    /// a request.
    pub fn new(key: &str) -> Result<Self, ConfigError> {
        if key.trim().is_empty() {
            return Err(ConfigError::EmptyApiKey);
        }
        let value = if key.contains(' ') {
            header_text(key)
        } else {
            header_text(&format!("Basic {key}"))
        };
        let mut value = value.ok_or(ConfigError::InvalidApiKey)?;
        value.set_sensitive(true);
        Ok(Self(value))
    }

    /// The `Authorization` header value. Handle it with care: it is the secret.
    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Which batch-import API: events or users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resource {
    /// `/v2/events/batch`
    Events,
    /// `/v2/users/batch`
    Users,
}

impl Resource {
    /// The path segment: `events` or `users`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::Users => "users",
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where requests go: scheme, host and an optional path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    scheme: Scheme,
    authority: Authority,
    /// Empty, or starting with `/` and never ending with one.
    prefix: String,
}

impl BaseUrl {
    /// `https://api.fullstory.com`: requests are routed to the right data centre.
    pub const US: &'static str = "https://api.fullstory.com";
    /// `https://api.eu1.fullstory.com`, the EU realm.
    pub const EU: &'static str = "https://api.eu1.fullstory.com";

    /// The default, [`BaseUrl::US`].
    pub fn us() -> Self {
        Self::parse(Self::US).expect("the US preset is a valid https url")
    }

    /// The EU realm, [`BaseUrl::EU`].
    pub fn eu() -> Self {
        Self::parse(Self::EU).expect("the EU preset is a valid https url")
    }

    /// Parses an `https` URL such as `https://api.fullstory.com` or `https://proxy.example/fs`.
    ///
    /// # Errors
    /// [`ConfigError::InsecureBaseUrl`] for plain `http` (see [`BaseUrl::parse_allow_http`]),
    /// [`ConfigError::InvalidBaseUrl`] for anything else that is not an absolute URL without
    /// query or fragment.
    pub fn parse(url: &str) -> Result<Self, ConfigError> {
        let base = Self::parse_allow_http(url)?;
        if base.scheme != Scheme::HTTPS {
            return Err(ConfigError::InsecureBaseUrl);
        }
        Ok(base)
    }

    /// Parses an `https` or plain `http` URL. Plain HTTP sends the API key in clear text: use it
    /// for loopback tests and trusted proxies only.
    ///
    /// # Errors
    /// [`ConfigError::InvalidBaseUrl`] when `url` is not an absolute `http`/`https` URL without
    /// query, fragment or user info.
    pub fn parse_allow_http(url: &str) -> Result<Self, ConfigError> {
        let uri: http::Uri = url
            .trim()
            .parse()
            .map_err(|_| ConfigError::InvalidBaseUrl("not a url"))?;
        let scheme = uri
            .scheme()
            .cloned()
            .ok_or(ConfigError::InvalidBaseUrl("no scheme"))?;
        if scheme != Scheme::HTTPS && scheme != Scheme::HTTP {
            return Err(ConfigError::InvalidBaseUrl(
                "scheme is neither http nor https",
            ));
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or(ConfigError::InvalidBaseUrl("no host"))?;
        if authority.as_str().contains('@') {
            return Err(ConfigError::InvalidBaseUrl("user info is not allowed"));
        }
        if authority.host().is_empty() {
            return Err(ConfigError::InvalidBaseUrl("no host"));
        }
        if uri.query().is_some() || url.contains('#') {
            return Err(ConfigError::InvalidBaseUrl(
                "query or fragment is not allowed",
            ));
        }
        let prefix = uri.path().trim_end_matches('/').to_owned();
        Ok(Self {
            scheme,
            authority,
            prefix,
        })
    }

    /// `true` for `https`.
    pub fn is_https(&self) -> bool {
        self.scheme == Scheme::HTTPS
    }

    /// The host, without port.
    pub fn host(&self) -> &str {
        self.authority.host()
    }

    /// Builds the URI for `path` (which starts with `/`) below this base.
    pub(crate) fn join(&self, path_and_query: &str) -> http::Uri {
        let mut path = self.path_with_capacity(path_and_query.len());
        path.push_str(path_and_query);
        self.uri(path)
    }

    /// An empty path below this base, `additional` more bytes reserved: push the rest of the
    /// path to it and hand it to [`BaseUrl::uri`], for one allocation in all.
    pub(crate) fn path_with_capacity(&self, additional: usize) -> String {
        let mut path = String::with_capacity(self.prefix.len() + additional);
        path.push_str(&self.prefix);
        path
    }

    /// The URI of `path` (the prefix and the rest, percent-encoded) on this base's scheme
    /// and authority: assembled from parts, with no formatting and re-parsing of the whole.
    /// The scheme and authority are shared, not copied (`Bytes` underneath).
    pub(crate) fn uri(&self, path: String) -> http::Uri {
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(
            http::uri::PathAndQuery::try_from(path)
                .expect("the prefix was parsed from a uri and the rest is percent-encoded"),
        );
        http::Uri::from_parts(parts).expect("scheme, authority and path are all present")
    }
}

impl Default for BaseUrl {
    fn default() -> Self {
        Self::us()
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.prefix)
    }
}

/// Everything but RFC 3986 `unreserved` characters and `=` is encoded: `=` is legal in a path
/// segment and ends many base64 ids (`abd123=`), so those stay readable.
pub(crate) const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'=');

/// A batch-import job id: any non-empty string of at most [`MAX_JOB_ID_LEN`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct JobId(String);

impl JobId {
    /// Checks and wraps a job id.
    ///
    /// # Errors
    /// [`ConfigError::EmptyJobId`] or [`ConfigError::JobIdTooLong`].
    pub fn new(id: impl Into<String>) -> Result<Self, ConfigError> {
        let id = id.into();
        if id.is_empty() {
            return Err(ConfigError::EmptyJobId);
        }
        if id.len() > MAX_JOB_ID_LEN {
            return Err(ConfigError::JobIdTooLong(id.len()));
        }
        Ok(Self(id))
    }

    /// The id as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as exactly one percent-encoded path segment.
    ///
    /// `/`, `?`, `#`, `%`, spaces and non-ASCII are encoded; `.` and `..` are encoded whole so
    /// that no id can be read as a relative path step.
    pub fn path_segment(&self) -> String {
        let mut segment = String::with_capacity(self.0.len());
        self.push_path_segment(&mut segment);
        segment
    }

    /// Appends [`JobId::path_segment`] to `path`.
    pub(crate) fn push_path_segment(&self, path: &mut String) {
        match self.0.as_str() {
            "." => path.push_str("%2E"),
            ".." => path.push_str("%2E%2E"),
            id => path.extend(utf8_percent_encode(id, SEGMENT)),
        }
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for JobId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let id = String::deserialize(d)?;
        Self::new(id).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<&str> for JobId {
    type Error = ConfigError;
    fn try_from(id: &str) -> Result<Self, ConfigError> {
        Self::new(id)
    }
}

/// One job: which API it belongs to and its id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct JobRef {
    /// Events or users.
    pub resource: Resource,
    /// The job's id, as the create call returned it.
    pub id: JobId,
}

impl JobRef {
    /// A job of `resource` with `id`.
    pub fn new(resource: Resource, id: JobId) -> Self {
        Self { resource, id }
    }
}

impl fmt::Display for JobRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} job {}", self.resource, self.id)
    }
}

/// The client's configuration: base URL, key, optional `Integration-Source`, limits.
///
/// It builds every request ([`Config::status_request`]) and parses every answer
/// ([`Config::parse_status`]); it holds no connection and no clock.
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) base_url: BaseUrl,
    pub(crate) api_key: ApiKey,
    pub(crate) integration_source: Option<HeaderValue>,
    pub(crate) body_limit: usize,
}

impl Config {
    /// A configuration for the US base URL with default limits.
    pub fn new(api_key: ApiKey) -> Self {
        Self {
            base_url: BaseUrl::default(),
            api_key,
            integration_source: None,
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }

    /// Sends requests below `base_url` instead.
    #[must_use]
    pub fn with_base_url(mut self, base_url: BaseUrl) -> Self {
        self.base_url = base_url;
        self
    }

    /// Names the calling integration in an `Integration-Source` header.
    ///
    /// # Errors
    /// [`ConfigError::InvalidIntegrationSource`] when `source` cannot be a header value.
    pub fn with_integration_source(mut self, source: &str) -> Result<Self, ConfigError> {
        let value = header_text(source).ok_or(ConfigError::InvalidIntegrationSource)?;
        self.integration_source = Some(value);
        Ok(self)
    }

    /// Refuses response bodies larger than `limit` bytes (default [`DEFAULT_BODY_LIMIT`]).
    /// Adapters stop reading at this limit too.
    #[must_use]
    pub fn with_body_limit(mut self, limit: usize) -> Self {
        self.body_limit = limit;
        self
    }

    /// The base URL.
    pub fn base_url(&self) -> &BaseUrl {
        &self.base_url
    }

    /// The body limit in bytes.
    pub fn body_limit(&self) -> usize {
        self.body_limit
    }
}
