//! The other calls of the batch workflow: create a job, read its imports and its errors.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};

use http::header::{CONTENT_TYPE, HeaderName};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::{Config, ConfigError, JobRef, Resource, header_text};
use crate::error::{ApiError, Malformed};
use crate::model::{JobMetadata, WireCount, WireJob};

/// At most this many items in one batch, per the API.
pub const MAX_BATCH_ITEMS: usize = 50_000;

/// The `Idempotency-Key` header's name.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// A query value: everything but RFC 3986 `unreserved` is encoded, `=` and `&` included.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A JSON object, as the API's free-form `properties` and `context` are.
pub type Object = serde_json::Map<String, serde_json::Value>;

/// The user an event belongs to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserId {
    /// Your application's id for the user (at most 256 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Fullstory's id for the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// The session an event belongs to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionId {
    /// Fullstory's id for the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Attach the event to the user's most recent session (needs `user`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_most_recent: Option<bool>,
}

/// One event to import (`CreateEventRequest`). Fields this crate does not know are kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventRequest {
    /// The event's name; required.
    pub name: String,
    /// The user, unless `session.id` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserId>,
    /// The session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionId>,
    /// Browser, mobile, device and location context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Object>,
    /// ISO 8601; the server's time when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// The event's payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Object>,
    /// Any other field, kept as sent (`schema`, say).
    #[serde(flatten)]
    pub extra: Object,
}

/// One user to import (`BatchUserImportRequest`). Fields this crate does not know are kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserRequest {
    /// Fullstory's id for the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Your application's id (at most 256 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// A display name (at most 256 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// An email address (at most 128 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Up to 500 properties; names start with a letter and hold letters, digits and `_`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Object>,
    /// Any other field, kept as sent (`schema`, `type_conflicts`, ...).
    #[serde(flatten)]
    pub extra: Object,
}

/// An item of a batch: an event or a user.
pub trait BatchItem: Serialize + DeserializeOwned + Clone + fmt::Debug + Send + 'static {
    /// Which API takes it.
    const RESOURCE: Resource;
    /// The field of a failure that holds the failed item: `event` or `user`.
    const FAILURE_FIELD: &'static str;
    /// Checks the limits the API states, naming the field at fault.
    fn validate(&self) -> Result<(), (&'static str, &'static str)>;
}

impl BatchItem for EventRequest {
    const RESOURCE: Resource = Resource::Events;
    const FAILURE_FIELD: &'static str = "event";

    fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        if self.name.trim().is_empty() {
            return Err(("name", "is required"));
        }
        let uid = self.user.as_ref().and_then(|u| u.uid.as_deref());
        if uid.is_some_and(|uid| uid.chars().count() > 256) {
            return Err(("user.uid", "is longer than 256 characters"));
        }
        let session = self.session.as_ref();
        if session.is_some_and(|s| s.id.is_some()) && self.user.is_some() {
            return Err(("user", "is not accepted with session.id"));
        }
        if session.is_some_and(|s| s.use_most_recent == Some(true)) && self.user.is_none() {
            return Err(("user", "is required with session.use_most_recent"));
        }
        Ok(())
    }
}

impl BatchItem for UserRequest {
    const RESOURCE: Resource = Resource::Users;
    const FAILURE_FIELD: &'static str = "user";

    fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        let too_long =
            |s: &Option<String>, max: usize| s.as_deref().is_some_and(|s| s.chars().count() > max);
        if too_long(&self.uid, 256) {
            return Err(("uid", "is longer than 256 characters"));
        }
        if too_long(&self.display_name, 256) {
            return Err(("display_name", "is longer than 256 characters"));
        }
        if too_long(&self.email, 128) {
            return Err(("email", "is longer than 128 characters"));
        }
        if let Some(properties) = &self.properties {
            if properties.len() > 500 {
                return Err(("properties", "has more than 500 properties"));
            }
            if !properties.keys().all(|k| is_property_name(k)) {
                return Err((
                    "properties",
                    "has a name that is not a letter then letters, digits or _",
                ));
            }
        }
        Ok(())
    }
}

fn is_property_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= 512
        && bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A batch refused before anything was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValidationError {
    /// No items.
    Empty,
    /// More than [`MAX_BATCH_ITEMS`] items.
    TooMany(usize),
    /// One item breaks a limit.
    Item {
        /// Its index in the batch.
        index: usize,
        /// The field at fault.
        field: &'static str,
        /// What is wrong.
        problem: &'static str,
    },
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("a batch needs at least one item"),
            Self::TooMany(n) => write!(f, "a batch takes at most {MAX_BATCH_ITEMS} items, not {n}"),
            Self::Item {
                index,
                field,
                problem,
            } => write!(f, "item {index}: `{field}` {problem}"),
        }
    }
}

impl std::error::Error for ValidationError {}

/// Checks a whole batch: its size, then each item.
///
/// # Errors
/// The first [`ValidationError`] found.
pub fn validate<T: BatchItem>(items: &[T]) -> Result<(), ValidationError> {
    match items.len() {
        0 => return Err(ValidationError::Empty),
        n if n > MAX_BATCH_ITEMS => return Err(ValidationError::TooMany(n)),
        _ => {}
    }
    for (index, item) in items.iter().enumerate() {
        item.validate()
            .map_err(|(field, problem)| ValidationError::Item {
                index,
                field,
                problem,
            })?;
    }
    Ok(())
}

/// The `Idempotency-Key` of a create call: the same key makes a retried create return the
/// job the first one made, instead of importing twice.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Checks a key of your own: 1 to 255 printable ASCII characters.
    ///
    /// # Errors
    /// [`ConfigError::InvalidIdempotencyKey`] otherwise.
    pub fn new(key: impl Into<String>) -> Result<Self, ConfigError> {
        let key = key.into();
        let fits = !key.is_empty()
            && key.len() <= 255
            && !key.contains(' ')
            && header_text(&key).is_some();
        fits.then_some(Self(key))
            .ok_or(ConfigError::InvalidIdempotencyKey)
    }

    /// A fresh random key (128 bits from the standard library's per-process random seeds).
    /// This reads no clock; it is the one place the core draws randomness from the OS.
    pub fn generate() -> Self {
        let half = || {
            let mut hasher = RandomState::new().build_hasher();
            hasher.write_u8(0);
            hasher.finish()
        };
        Self(format!("fsbatch-{:016x}{:016x}", half(), half()))
    }

    /// The key as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for IdempotencyKey {
    type Error = ConfigError;
    fn try_from(key: String) -> Result<Self, ConfigError> {
        Self::new(key)
    }
}

impl From<IdempotencyKey> for String {
    fn from(key: IdempotencyKey) -> Self {
        key.0
    }
}

/// A page of results, or word that the job is still processing (202).
#[derive(Debug, Clone, PartialEq)]
pub enum PageAnswer<T> {
    /// The page.
    Ready(Page<T>),
    /// 202: the job is still processing; ask again later.
    NotReady,
}

/// One page of imported items or failures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    /// The items of this page.
    pub results: Vec<T>,
    /// The total across all pages, when the server said (sent as a string or a number).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_records: Option<u64>,
    /// The token of the next page; `None` on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// An item that failed to import, with the server's reason.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedItem<T> {
    /// The error code.
    pub code: String,
    /// What went wrong.
    pub message: String,
    /// The request that failed, when the server sent it back.
    pub item: Option<T>,
}

impl<T: BatchItem> Serialize for FailedItem<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("code", &self.code)?;
        map.serialize_entry("message", &self.message)?;
        if let Some(item) = &self.item {
            map.serialize_entry(T::FAILURE_FIELD, item)?;
        }
        map.end()
    }
}

#[derive(Deserialize)]
#[serde(bound = "T: DeserializeOwned")]
struct WireFailure<T> {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default, alias = "event", alias = "user")]
    item: Option<T>,
}

impl<'de, T: BatchItem> Deserialize<'de> for FailedItem<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = WireFailure::<T>::deserialize(d)?;
        Ok(Self {
            code: wire.code.unwrap_or_default(),
            message: wire.message.unwrap_or_default(),
            item: wire.item,
        })
    }
}

#[derive(Deserialize)]
#[serde(bound = "T: DeserializeOwned")]
struct WirePage<T> {
    #[serde(default = "Vec::new")]
    results: Vec<T>,
    #[serde(default)]
    total_records: Option<WireCount>,
    #[serde(default)]
    next_page_token: Option<String>,
}

/// The body of a create call.
pub(crate) fn create_body<T: BatchItem>(items: &[T]) -> Result<Vec<u8>, ValidationError> {
    validate(items)?;
    Ok(serde_json::to_vec(&CreateBody { requests: items }).expect("batch items serialise to JSON"))
}

#[derive(Serialize)]
struct CreateBody<'a, T> {
    requests: &'a [T],
}

#[derive(Deserialize)]
struct WireCreated<'a> {
    #[serde(borrow)]
    job: WireJob<'a>,
}

/// What a page query asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PageKind {
    /// `.../imports`: the items imported.
    Imports,
    /// `.../errors`: the items that failed.
    Errors,
}

impl PageKind {
    /// The path segment: `imports` or `errors`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Imports => "imports",
            Self::Errors => "errors",
        }
    }
}

impl Config {
    /// Builds `POST /v2/{events,users}/batch` for `items`, after checking them.
    ///
    /// # Errors
    /// A [`ValidationError`] naming the item and field at fault; nothing is built then.
    pub fn create_request<T: BatchItem>(
        &self,
        items: &[T],
        key: &IdempotencyKey,
    ) -> Result<Request<Vec<u8>>, ValidationError> {
        let body = create_body(items)?;
        Ok(self.create_request_with_body(T::RESOURCE, body, key))
    }

    /// The create request for a body already checked and serialised.
    pub(crate) fn create_request_with_body(
        &self,
        resource: Resource,
        body: Vec<u8>,
        key: &IdempotencyKey,
    ) -> Request<Vec<u8>> {
        let path = format!("/v2/{}/batch", resource.as_str());
        let mut request = self.request(Method::POST, &path, body);
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let key =
            HeaderValue::from_str(key.as_str()).expect("an IdempotencyKey is a valid header value");
        headers.insert(HeaderName::from_static(IDEMPOTENCY_KEY), key);
        request
    }

    /// Parses the answer to [`Config::create_request`]: the new job.
    ///
    /// # Errors
    /// An [`ApiError`] as for [`Config::parse_status`].
    pub fn parse_create<B: AsRef<[u8]>>(
        &self,
        response: &Response<B>,
    ) -> Result<JobMetadata, ApiError> {
        let body = self.success_body(response)?;
        let status = response.status();
        let created: WireCreated<'_> = serde_json::from_slice(body)
            .map_err(|e| ApiError::Malformed(Malformed::json(status, body, e)))?;
        created
            .job
            .check()
            .map_err(|field| ApiError::Malformed(Malformed::field(status, body, field)))
    }

    /// Builds `GET .../batch/{job_id}/imports` or `/errors` for the page after `page_token`
    /// (the first page for `None`). `include_schema` applies to imports only.
    pub fn page_request(
        &self,
        job: &JobRef,
        kind: PageKind,
        page_token: Option<&str>,
        include_schema: bool,
    ) -> Request<Vec<u8>> {
        let mut path = format!(
            "/v2/{}/batch/{}/{}",
            job.resource.as_str(),
            job.id.path_segment(),
            kind.as_str()
        );
        let mut sep = '?';
        if let Some(token) = page_token.filter(|t| !t.is_empty()) {
            path.push_str(&format!(
                "?page_token={}",
                utf8_percent_encode(token, QUERY_VALUE)
            ));
            sep = '&';
        }
        if include_schema && kind == PageKind::Imports {
            path.push_str(&format!("{sep}include_schema=true"));
        }
        self.request(Method::GET, &path, Vec::new())
    }

    /// Parses a page of imported items (`T` is [`EventRequest`] or [`UserRequest`], or your
    /// own type), or the 202 that says the job is still processing.
    ///
    /// # Errors
    /// An [`ApiError`] as for [`Config::parse_status`].
    pub fn parse_page<T: DeserializeOwned, B: AsRef<[u8]>>(
        &self,
        response: &Response<B>,
    ) -> Result<PageAnswer<T>, ApiError> {
        let body = self.success_body(response)?;
        let status = response.status();
        if status == StatusCode::ACCEPTED {
            return Ok(PageAnswer::NotReady);
        }
        let wire: WirePage<T> = serde_json::from_slice(body)
            .map_err(|e| ApiError::Malformed(Malformed::json(status, body, e)))?;
        let total_records = match wire.total_records {
            Some(count) => Some(
                count
                    .check("total_records")
                    .map_err(|f| ApiError::Malformed(Malformed::field(status, body, f)))?,
            ),
            None => None,
        };
        Ok(PageAnswer::Ready(Page {
            results: wire.results,
            total_records,
            next_page_token: wire.next_page_token.filter(|t| !t.is_empty()),
        }))
    }
}
