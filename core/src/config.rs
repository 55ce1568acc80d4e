//! What a caller configures: where to send requests, with which key, for which job.

use std::fmt;

use http::HeaderValue;
use http::uri::{Authority, Scheme};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};

/// The default limit of a status or create answer: 64 KiB.
///
/// Both are one small JSON object (three counts, an id, a status, two timestamps, about
/// 150 bytes); 64 KiB leaves room for extra fields and long ids (at most
/// [`MAX_JOB_ID_LEN`] bytes) many times over.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// The largest user item the users spec accepts, as JSON, in bytes: 4,376,860 (4.2 MiB).
///
/// `BatchUserImportRequest` allows up to 500 `properties`, each a name of at most 512
/// characters and a value of at most 8,192 bytes; with quotes, colon and comma that is
/// 500 × (512 + 8,192 + 6) = 4,355,000. The four strings with a `maxLength` (`id`, `uid` and
/// `display_name` 256, `email` 128: 896 characters) take at most 6 bytes a character once
/// escaped (`\u001f`): 5,376, and their keys and punctuation under 100. A 16 KiB allowance
/// covers `schema` and `type_conflicts`: 4,355,000 + 5,376 + 100 + 16,384 = 4,376,860.
pub const MAX_USER_ITEM_BYTES: usize = 500 * (512 + 8_192 + 6) + 896 * 6 + 100 + 16 * 1024;

/// The default limit of an imports or errors page: 64 MiB.
///
/// The specs bound the size of an item (a user: [`MAX_USER_ITEM_BYTES`]; an event's free-form
/// `properties` have no stated bound) but not the number of items on a page, so no limit
/// follows from them alone. 64 MiB holds 15 users of the largest size the API accepts
/// (15 × 4.2 MiB = 62.6 MiB), or a page of about 340,000 events of the size the benchmarks
/// read (196 bytes each): far more than a page of the "few thousand events" that overflowed
/// the old shared 1 MiB limit. Raise it with [`Config::with_page_limit`] (the CLI's
/// `--max-page-bytes`) for pages of many large users.
pub const DEFAULT_PAGE_LIMIT: usize = 64 * 1024 * 1024;

/// The kind of call a request or response belongs to; each has its own body limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CallKind {
    /// `GET .../batch/{job_id}`.
    Status,
    /// `POST .../batch`.
    Create,
    /// `GET .../batch/{job_id}/imports` or `/errors`.
    Page,
}

impl CallKind {
    /// A short lower-case name: `status`, `create` or `page`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Create => "create",
            Self::Page => "page",
        }
    }
}

impl fmt::Display for CallKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The largest response body, in bytes, for each kind of call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BodyLimits {
    /// A status answer ([`DEFAULT_BODY_LIMIT`] by default).
    pub status: usize,
    /// A create answer ([`DEFAULT_BODY_LIMIT`] by default).
    pub create: usize,
    /// An imports or errors page ([`DEFAULT_PAGE_LIMIT`] by default).
    pub page: usize,
}

impl BodyLimits {
    /// The defaults: 64 KiB for status and create, 64 MiB for a page.
    pub const DEFAULT: Self = Self {
        status: DEFAULT_BODY_LIMIT,
        create: DEFAULT_BODY_LIMIT,
        page: DEFAULT_PAGE_LIMIT,
    };

    /// The same `limit` for every kind of call.
    pub fn all(limit: usize) -> Self {
        Self {
            status: limit,
            create: limit,
            page: limit,
        }
    }

    /// The limit of `kind`.
    pub fn get(&self, kind: CallKind) -> usize {
        match kind {
            CallKind::Status => self.status,
            CallKind::Create => self.create,
            CallKind::Page => self.page,
        }
    }
}

impl Default for BodyLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

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
        // Each text says what is wrong, then how to put it right.
        match self {
            Self::EmptyApiKey => {
                f.write_str("api key is empty: pass the key shown on fullstory's api keys page")
            }
            Self::InvalidApiKey => f.write_str(
                "api key holds a byte not allowed in an http header (CR, LF or a control): \
                 copy the key again, without line breaks",
            ),
            Self::InvalidIntegrationSource => f.write_str(
                "integration source holds a byte not allowed in an http header: \
                 use printable ascii",
            ),
            Self::InvalidBaseUrl(why) => write!(
                f,
                "invalid base url: {why}: give an absolute url such as {}",
                BaseUrl::US
            ),
            Self::InsecureBaseUrl => f.write_str(
                "base url is plain http: use https, or BaseUrl::parse_allow_http for \
                 loopback tests and trusted proxies",
            ),
            Self::InvalidIdempotencyKey => f.write_str(
                "idempotency key must be 1 to 255 printable ascii characters without spaces",
            ),
            Self::EmptyJobId => {
                f.write_str("job id is empty: pass the id the create call returned")
            }
            Self::JobIdTooLong(len) => write!(
                f,
                "job id is {len} bytes, longer than {MAX_JOB_ID_LEN}: \
                 pass the id the create call returned"
            ),
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

    /// `true` when the host is `localhost`, an IPv4 address in `127.0.0.0/8` or `[::1]`:
    /// requests (and the key) then never leave the machine, so plain `http` is safe enough.
    pub fn is_loopback(&self) -> bool {
        let host = self.host();
        let ip = host.trim_start_matches('[').trim_end_matches(']');
        host.eq_ignore_ascii_case("localhost")
            || ip
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.to_canonical().is_loopback())
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

/// `https` only, like [`BaseUrl::parse`]: `"https://api.fullstory.com".parse::<BaseUrl>()`.
impl std::str::FromStr for BaseUrl {
    type Err = ConfigError;
    fn from_str(url: &str) -> Result<Self, ConfigError> {
        Self::parse(url)
    }
}

/// `https` only, like [`BaseUrl::parse`].
impl TryFrom<&str> for BaseUrl {
    type Error = ConfigError;
    fn try_from(url: &str) -> Result<Self, ConfigError> {
        Self::parse(url)
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
    pub(crate) body_limits: BodyLimits,
}

impl Config {
    /// A configuration for the US base URL with default limits.
    pub fn new(api_key: ApiKey) -> Self {
        Self {
            base_url: BaseUrl::default(),
            api_key,
            integration_source: None,
            body_limits: BodyLimits::DEFAULT,
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

    /// Refuses response bodies larger than `limit` bytes for every kind of call.
    /// Adapters stop reading at the limit too.
    #[must_use]
    pub fn with_body_limit(mut self, limit: usize) -> Self {
        self.body_limits = BodyLimits::all(limit);
        self
    }

    /// Sets the body limit of each kind of call (default [`BodyLimits::DEFAULT`]).
    #[must_use]
    pub fn with_body_limits(mut self, limits: BodyLimits) -> Self {
        self.body_limits = limits;
        self
    }

    /// Sets the body limit of an imports or errors page (default [`DEFAULT_PAGE_LIMIT`]).
    #[must_use]
    pub fn with_page_limit(mut self, limit: usize) -> Self {
        self.body_limits.page = limit;
        self
    }

    /// The base URL.
    pub fn base_url(&self) -> &BaseUrl {
        &self.base_url
    }

    /// The limit of a status answer, in bytes; see [`Config::body_limits`] for the others.
    /// Adapters take the limit of each request from its [`crate::Transmit::body_limit`].
    pub fn body_limit(&self) -> usize {
        self.body_limits.status
    }

    /// The body limit of each kind of call.
    pub fn body_limits(&self) -> BodyLimits {
        self.body_limits
    }

    /// The body limit of one kind of call, for a request sent by hand (a machine's
    /// [`crate::Transmit`] carries its own).
    pub fn body_limit_of(&self, kind: CallKind) -> usize {
        self.body_limits.get(kind)
    }
}

// ---------------------------------------------------------------------------------------
// Configuration from the environment. Kept in one block so it can move as a whole.

/// The variable [`Config::from_env`] reads the API key from (required).
pub const ENV_API_KEY: &str = "FULLSTORY_API_KEY";
/// The variable [`Config::from_env`] reads the base URL from (optional).
pub const ENV_BASE_URL: &str = "FULLSTORY_BASE_URL";
/// The variable [`Config::from_env`] reads the region from (optional: `us` or `eu`).
pub const ENV_REGION: &str = "FULLSTORY_REGION";

/// Why [`Config::from_env`] could not build a configuration. Every variant names the
/// variable at fault ([`EnvError::variable`]); none holds or prints the API key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvError {
    /// A required variable is not set (or is empty).
    Missing(&'static str),
    /// A variable is set but not valid Unicode.
    NotUnicode(&'static str),
    /// A variable's value was refused; the reason is the [`source`](std::error::Error::source).
    Invalid(&'static str, ConfigError),
    /// `FULLSTORY_BASE_URL` is plain `http` to a host that is not loopback.
    InsecureBaseUrl,
    /// `FULLSTORY_REGION` is neither `us` nor `eu`.
    UnknownRegion,
    /// Both `FULLSTORY_BASE_URL` and `FULLSTORY_REGION` are set.
    BaseUrlAndRegion,
}

impl EnvError {
    /// The environment variable at fault (for [`EnvError::BaseUrlAndRegion`], the base URL's).
    pub fn variable(&self) -> &'static str {
        match self {
            Self::Missing(name) | Self::NotUnicode(name) | Self::Invalid(name, _) => name,
            Self::InsecureBaseUrl | Self::BaseUrlAndRegion => ENV_BASE_URL,
            Self::UnknownRegion => ENV_REGION,
        }
    }
}

impl fmt::Display for EnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing(name) if *name == ENV_API_KEY => write!(
                f,
                "{name} is not set: set it to the key shown on fullstory's api keys page"
            ),
            Self::Missing(name) => write!(f, "{name} is not set"),
            Self::NotUnicode(name) => write!(f, "{name} is not valid unicode: set it again"),
            Self::Invalid(name, _) => write!(f, "invalid {name}"),
            Self::InsecureBaseUrl => write!(
                f,
                "{ENV_BASE_URL} is plain http to a host that is not loopback: use https \
                 (plain http is taken for localhost, 127.0.0.0/8 and [::1] only)"
            ),
            Self::UnknownRegion => write!(f, "{ENV_REGION} must be us or eu"),
            Self::BaseUrlAndRegion => write!(
                f,
                "{ENV_BASE_URL} and {ENV_REGION} are both set: unset one of them"
            ),
        }
    }
}

impl std::error::Error for EnvError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Invalid(_, source) => Some(source),
            _ => None,
        }
    }
}

impl Config {
    /// A configuration from the process environment:
    ///
    /// - `FULLSTORY_API_KEY` (required): the key, as for [`ApiKey::new`].
    /// - `FULLSTORY_BASE_URL` (optional): the base URL. `https`, or plain `http` to a
    ///   loopback host only ([`BaseUrl::is_loopback`]: a fake server or a local proxy).
    /// - `FULLSTORY_REGION` (optional): `us` or `eu`, a preset base URL; not together with
    ///   `FULLSTORY_BASE_URL`.
    ///
    /// Empty optional variables count as unset. Without either, the US base URL.
    ///
    /// This is the one place the core reads the environment; [`Config::from_lookup`] does
    /// the same from any source, for tests.
    ///
    /// # Errors
    /// An [`EnvError`] naming the variable at fault. It never holds the key.
    pub fn from_env() -> Result<Self, EnvError> {
        Self::from_lookup(|name| match std::env::var(name) {
            Ok(value) => Ok(Some(value)),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(EnvError::NotUnicode(name)),
        })
    }

    /// Like [`Config::from_env`], reading each variable through `lookup` (`Ok(None)`: unset).
    ///
    /// ```
    /// use fullstory_batch::{Config, EnvError};
    ///
    /// let env = |name: &str| -> Result<Option<String>, EnvError> {
    ///     Ok(match name {
    ///         "FULLSTORY_API_KEY" => Some("my-key".to_owned()),
    ///         "FULLSTORY_REGION" => Some("eu".to_owned()),
    ///         _ => None,
    ///     })
    /// };
    /// let config = Config::from_lookup(env)?;
    /// assert_eq!(config.base_url().to_string(), "https://api.eu1.fullstory.com");
    /// # Ok::<(), EnvError>(())
    /// ```
    ///
    /// # Errors
    /// As [`Config::from_env`], and whatever `lookup` returns.
    pub fn from_lookup(
        lookup: impl Fn(&'static str) -> Result<Option<String>, EnvError>,
    ) -> Result<Self, EnvError> {
        let optional =
            |name| lookup(name).map(|value| value.filter(|v: &String| !v.trim().is_empty()));
        let key = optional(ENV_API_KEY)?.ok_or(EnvError::Missing(ENV_API_KEY))?;
        let key = ApiKey::new(&key).map_err(|e| EnvError::Invalid(ENV_API_KEY, e))?;
        let base_url = match (optional(ENV_BASE_URL)?, optional(ENV_REGION)?) {
            (Some(_), Some(_)) => return Err(EnvError::BaseUrlAndRegion),
            (Some(url), None) => {
                let url = BaseUrl::parse_allow_http(&url)
                    .map_err(|e| EnvError::Invalid(ENV_BASE_URL, e))?;
                if !url.is_https() && !url.is_loopback() {
                    return Err(EnvError::InsecureBaseUrl);
                }
                url
            }
            (None, Some(region)) => match region.trim().to_ascii_lowercase().as_str() {
                "us" => BaseUrl::us(),
                "eu" => BaseUrl::eu(),
                _ => return Err(EnvError::UnknownRegion),
            },
            (None, None) => BaseUrl::us(),
        };
        Ok(Self::new(key).with_base_url(base_url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    fn lookup<'a>(
        vars: &'a [(&str, &str)],
    ) -> impl Fn(&'static str) -> Result<Option<String>, EnvError> + 'a {
        move |name| {
            Ok(vars
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned()))
        }
    }

    fn from(vars: &[(&str, &str)]) -> Result<Config, EnvError> {
        Config::from_lookup(lookup(vars))
    }

    const KEY: (&str, &str) = ("FULLSTORY_API_KEY", "SECRET-k3y");

    #[test]
    fn base_url_parses_through_the_std_traits_https_only() {
        let url: BaseUrl = "https://proxy.example/fs/".parse().unwrap();
        assert_eq!(url.to_string(), "https://proxy.example/fs");
        assert_eq!(BaseUrl::try_from(BaseUrl::EU), Ok(BaseUrl::eu()));
        assert_eq!(
            "http://127.0.0.1:1".parse::<BaseUrl>(),
            Err(ConfigError::InsecureBaseUrl)
        );
        assert!(matches!(
            BaseUrl::try_from("api.fullstory.com"),
            Err(ConfigError::InvalidBaseUrl(_))
        ));
    }

    #[test]
    fn loopback_hosts() {
        for url in [
            "http://localhost:1",
            "http://LOCALHOST",
            "http://127.0.0.1:8080",
            "http://127.1.2.3",
            "http://[::1]:9",
            "http://[::ffff:127.0.0.1]:9",
        ] {
            assert!(
                BaseUrl::parse_allow_http(url).unwrap().is_loopback(),
                "{url}"
            );
        }
        for url in [
            "https://api.fullstory.com",
            "http://10.0.0.1",
            "http://[::2]",
            "http://localhost.example",
        ] {
            assert!(
                !BaseUrl::parse_allow_http(url).unwrap().is_loopback(),
                "{url}"
            );
        }
    }

    #[test]
    fn every_config_error_says_how_to_fix_it() {
        let errors = [
            ConfigError::EmptyApiKey,
            ConfigError::InvalidApiKey,
            ConfigError::InvalidIntegrationSource,
            ConfigError::InvalidBaseUrl("no host"),
            ConfigError::InsecureBaseUrl,
            ConfigError::InvalidIdempotencyKey,
            ConfigError::EmptyJobId,
            ConfigError::JobIdTooLong(2000),
        ];
        for error in errors {
            let text = error.to_string();
            let fix = ["pass", "copy", "use", "give", "must"];
            assert!(fix.iter().any(|w| text.contains(w)), "no fix in {text:?}");
            assert!(text.starts_with(char::is_lowercase), "{text:?}");
        }
        assert!(
            ConfigError::InsecureBaseUrl
                .to_string()
                .contains("BaseUrl::parse_allow_http")
        );
    }

    #[test]
    fn from_lookup_reads_key_base_url_and_region() {
        let config = from(&[KEY]).unwrap();
        assert_eq!(config.base_url(), &BaseUrl::us());
        let config = from(&[KEY, ("FULLSTORY_REGION", " EU ")]).unwrap();
        assert_eq!(config.base_url(), &BaseUrl::eu());
        let config = from(&[KEY, ("FULLSTORY_BASE_URL", "https://proxy.example/fs")]).unwrap();
        assert_eq!(config.base_url().to_string(), "https://proxy.example/fs");
        let config = from(&[KEY, ("FULLSTORY_BASE_URL", "http://127.0.0.1:4000")]).unwrap();
        assert!(!config.base_url().is_https());
        let config = from(&[KEY, ("FULLSTORY_BASE_URL", ""), ("FULLSTORY_REGION", "")]).unwrap();
        assert_eq!(config.base_url(), &BaseUrl::us(), "empty counts as unset");
    }

    #[test]
    fn from_lookup_names_the_variable_at_fault_and_never_the_key() {
        let cases: [(&[(&str, &str)], EnvError); 8] = [
            (&[], EnvError::Missing("FULLSTORY_API_KEY")),
            (
                &[("FULLSTORY_API_KEY", " ")],
                EnvError::Missing("FULLSTORY_API_KEY"),
            ),
            (
                &[("FULLSTORY_API_KEY", "SECRET\nk")],
                EnvError::Invalid("FULLSTORY_API_KEY", ConfigError::InvalidApiKey),
            ),
            (
                &[KEY, ("FULLSTORY_BASE_URL", "ftp://x")],
                EnvError::Invalid(
                    "FULLSTORY_BASE_URL",
                    ConfigError::InvalidBaseUrl("scheme is neither http nor https"),
                ),
            ),
            (
                &[KEY, ("FULLSTORY_BASE_URL", "http://api.fullstory.com")],
                EnvError::InsecureBaseUrl,
            ),
            (
                &[KEY, ("FULLSTORY_REGION", "mars")],
                EnvError::UnknownRegion,
            ),
            (
                &[
                    KEY,
                    ("FULLSTORY_REGION", "eu"),
                    ("FULLSTORY_BASE_URL", BaseUrl::US),
                ],
                EnvError::BaseUrlAndRegion,
            ),
            (
                &[KEY, ("FULLSTORY_BASE_URL", "https://x/?q")],
                EnvError::Invalid(
                    "FULLSTORY_BASE_URL",
                    ConfigError::InvalidBaseUrl("query or fragment is not allowed"),
                ),
            ),
        ];
        for (vars, expected) in cases {
            let error = from(vars).unwrap_err();
            assert_eq!(error, expected, "{vars:?}");
            let text = format!(
                "{error} {error:?} {:?}",
                error.source().map(ToString::to_string)
            );
            assert!(text.contains(error.variable()), "{text}");
            assert!(!text.contains("SECRET"), "the key was printed: {text}");
        }
        let unicode = Config::from_lookup(|name| Err(EnvError::NotUnicode(name))).unwrap_err();
        assert_eq!(unicode.variable(), "FULLSTORY_API_KEY");
    }

    /// `from_env` itself, in child processes: the crate forbids `unsafe`, which
    /// `std::env::set_var` needs in edition 2024, and the environment is shared by every
    /// test thread anyway. Each child reruns this test binary for [`from_env_child`] alone.
    #[test]
    fn from_env_reads_the_process_environment() {
        let run = |vars: &[(&str, &str)]| -> String {
            let mut command = std::process::Command::new(std::env::current_exe().unwrap());
            command
                .args(["--exact", "config::tests::from_env_child", "--ignored"])
                .args(["--nocapture", "--test-threads=1"])
                .env("FULLSTORY_BATCH_FROM_ENV_CHILD", "1");
            for name in [ENV_API_KEY, ENV_BASE_URL, ENV_REGION] {
                command.env_remove(name);
            }
            command.envs(vars.iter().copied());
            let out = command.output().unwrap();
            assert!(out.status.success(), "{out:?}");
            let text = String::from_utf8(out.stdout).unwrap();
            assert!(!text.contains("SECRET"), "the key was printed: {text}");
            text
        };
        assert!(
            run(&[KEY, ("FULLSTORY_REGION", "eu")])
                .contains("from_env: ok https://api.eu1.fullstory.com")
        );
        assert!(run(&[KEY]).contains("from_env: ok https://api.fullstory.com"));
        let insecure = run(&[KEY, ("FULLSTORY_BASE_URL", "http://api.fullstory.com")]);
        assert!(
            insecure.contains("from_env: err FULLSTORY_BASE_URL"),
            "{insecure}"
        );
        let missing = run(&[("FULLSTORY_REGION", "eu")]);
        assert!(
            missing.contains("from_env: err FULLSTORY_API_KEY"),
            "{missing}"
        );
    }

    #[test]
    #[ignore = "run by from_env_reads_the_process_environment in a child process"]
    fn from_env_child() {
        if std::env::var_os("FULLSTORY_BATCH_FROM_ENV_CHILD").is_none() {
            return;
        }
        match Config::from_env() {
            Ok(config) => println!("from_env: ok {}", config.base_url()),
            Err(e) => println!("from_env: err {} ({e})", e.variable()),
        }
    }
}
