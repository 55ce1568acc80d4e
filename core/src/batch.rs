//! The other calls of the batch workflow: create a job, read its imports and its errors.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::config::{CallKind, Config, ConfigError, JobRef, Resource, header_text};
use crate::error::{ApiError, Malformed};
use crate::model::{FieldProblem, JobMetadata, WireCount, WireJob, refuse_list};

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
    /// The event's name; required when sent. Read as empty when absent or `null`, as proto3
    /// JSON leaves out an empty string.
    #[serde(default, deserialize_with = "null_as_empty")]
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

/// `null` as `""`, as proto3 JSON means it.
fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
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
///
/// A page never fails on one item: an item that does not fit `T` goes to `unread`, as sent,
/// and the rest stay typed in `results`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    /// The items of this page that fit `T`, in the server's order.
    pub results: Vec<T>,
    /// The items that did not fit `T`, kept as sent with what did not fit.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unread: Vec<RawItem>,
    /// The total across all pages, when the server said (sent as a string or a number;
    /// absent, `null` and `""` all mean it did not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_records: Option<u64>,
    /// The token of the next page; `None` on the last page (absent, `null` or `""`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

impl<T> Page<T> {
    /// How many items the server sent on this page, read or not.
    pub fn len(&self) -> usize {
        self.results.len() + self.unread.len()
    }

    /// `true` when the page holds no item at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An item that did not fit its type, kept as the server sent it.
#[derive(Debug, Clone, Serialize)]
pub struct RawItem {
    /// The item's JSON, byte for byte as sent (for an item inside a failure: re-encoded).
    pub json: Box<RawValue>,
    /// What did not fit: where, the field at fault when one is found, and why.
    pub problem: String,
}

impl PartialEq for RawItem {
    fn eq(&self, other: &Self) -> bool {
        self.json.get() == other.json.get() && self.problem == other.problem
    }
}

/// An item that failed to import, with the server's reason.
///
/// Read tolerantly: `code` and `message` are empty when absent or `null`; the failed item
/// is typed in `item` when it fits `T`, and kept as sent in `unread_item` when it does not;
/// fields this crate does not know (`shared`, say) are kept in `extra`.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedItem<T> {
    /// The error code.
    pub code: String,
    /// What went wrong.
    pub message: String,
    /// The request that failed, when the server sent it back and it fits `T`.
    pub item: Option<T>,
    /// The request that failed, when the server sent it back and it does not fit `T`.
    pub unread_item: Option<RawItem>,
    /// Any other field, kept as sent.
    pub extra: Object,
}

impl<T: BatchItem> Serialize for FailedItem<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("code", &self.code)?;
        map.serialize_entry("message", &self.message)?;
        if let Some(item) = &self.item {
            map.serialize_entry(T::FAILURE_FIELD, item)?;
        } else if let Some(raw) = &self.unread_item {
            map.serialize_entry(T::FAILURE_FIELD, &raw.json)?;
            map.serialize_entry("unread", &raw.problem)?;
        }
        for (key, value) in &self.extra {
            if key != "code" && key != "message" && key != T::FAILURE_FIELD && key != "unread" {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

impl<'de, T: BatchItem> Deserialize<'de> for FailedItem<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(FailureVisitor(std::marker::PhantomData))
    }
}

struct FailureVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: BatchItem> Visitor<'de> for FailureVisitor<T> {
    type Value = FailedItem<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a failure object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FailedItem<T>, A::Error> {
        let mut failure = FailedItem {
            code: String::new(),
            message: String::new(),
            item: None,
            unread_item: None,
            extra: Object::new(),
        };
        // Later duplicates win, as in most JSON readers.
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let value: Value = map.next_value()?;
            match key.as_ref() {
                "code" | "message" => match value {
                    Value::String(text) if key == "code" => failure.code = text,
                    Value::String(text) => failure.message = text,
                    Value::Null => {}
                    other => {
                        failure.extra.insert(key.into_owned(), other);
                    }
                },
                // Both names are read, whichever API the job belongs to.
                "event" | "user" => read_failed_item(&mut failure, &key, value),
                _ => {
                    failure.extra.insert(key.into_owned(), value);
                }
            }
        }
        Ok(failure)
    }
}

/// Types the failed request of a failure, or keeps it as sent with what did not fit.
fn read_failed_item<T: BatchItem>(failure: &mut FailedItem<T>, key: &str, value: Value) {
    if value.is_null() {
        return;
    }
    match T::deserialize(&value) {
        Ok(item) => {
            failure.item = Some(item);
            failure.unread_item = None;
        }
        Err(e) => {
            let problem = describe_misfit::<T>(key, &value, &e.to_string());
            let json = serde_json::value::to_raw_value(&value)
                .expect("a serde_json value encodes as json");
            failure.item = None;
            failure.unread_item = Some(RawItem { json, problem });
        }
    }
}

/// `` `path`: why `` or `` `path.field`: why `` when one top-level field of `value` is found
/// at fault: the one whose removal lets the rest fit `T`. The search runs only for an item
/// that failed and has at most [`MISFIT_SEARCH_KEYS`] fields, so a hostile page costs a
/// bounded amount of work.
fn describe_misfit<T: DeserializeOwned>(path: &str, value: &Value, error: &str) -> String {
    let why = error.split(" at line ").next().unwrap_or(error);
    match culprit::<T>(value) {
        Some(field) => format!("`{path}.{field}`: {why}"),
        None => format!("`{path}`: {why}"),
    }
}

fn culprit<T: DeserializeOwned>(value: &Value) -> Option<&str> {
    let Value::Object(map) = value else {
        return None;
    };
    if map.len() > MISFIT_SEARCH_KEYS {
        return None;
    }
    map.keys()
        .find(|key| {
            let mut rest = map.clone();
            rest.remove(key.as_str());
            T::deserialize(&Value::Object(rest)).is_ok()
        })
        .map(String::as_str)
}

/// The most fields of a misfit item the field search tries one by one.
const MISFIT_SEARCH_KEYS: usize = 64;

/// An item of a page's `results`, typed as `T` or kept as sent.
fn read_item<T: DeserializeOwned>(index: usize, raw: &RawValue) -> Result<T, RawItem> {
    serde_json::from_str::<T>(raw.get()).map_err(|e| {
        let value: Value = serde_json::from_str(raw.get()).unwrap_or(Value::Null);
        RawItem {
            json: raw.to_owned(),
            problem: describe_misfit::<T>(&format!("results[{index}]"), &value, &e.to_string()),
        }
    })
}

/// A page as it arrives: each envelope field read on its own so one that is off is named.
#[derive(Deserialize)]
struct WirePage<'a> {
    #[serde(borrow, default)]
    results: RawList<'a>,
    #[serde(default = "WireCount::empty")]
    total_records: WireCount,
    #[serde(borrow, default)]
    next_page_token: WireText<'a>,
}

/// A list of raw items: `null` and absent read as empty; anything else not a list is named.
struct RawList<'a>(Result<Vec<&'a RawValue>, ()>);

impl Default for RawList<'_> {
    fn default() -> Self {
        Self(Ok(Vec::new()))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawList<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Ask for the raw value first: a list is then split by a second, cheap scan.
        let raw = <&'de RawValue>::deserialize(d)?;
        Ok(match raw.get().trim_start().as_bytes().first() {
            Some(b'n') => Self(Ok(Vec::new())),
            Some(b'[') => Self(serde_json::from_str(raw.get()).map_err(|_| ())),
            _ => Self(Err(())),
        })
    }
}

/// A string field: `null`, absent and `""` read as `None`; a number is kept as its text.
struct WireText<'a>(Result<Option<std::borrow::Cow<'a, str>>, ()>);

impl Default for WireText<'_> {
    fn default() -> Self {
        Self(Ok(None))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for WireText<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <&'de RawValue>::deserialize(d)?;
        let text = raw.get().trim();
        Ok(match text.as_bytes().first() {
            Some(b'n') => Self(Ok(None)),
            Some(b'"') => Self(
                serde_json::from_str::<std::borrow::Cow<'de, str>>(text)
                    .map(|t| Some(t).filter(|t| !t.is_empty()))
                    .map_err(|_| ()),
            ),
            Some(b'-' | b'0'..=b'9') => Self(Ok(Some(text.to_owned().into()))),
            _ => Self(Err(())),
        })
    }
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

/// A create answer as it arrives: an absent or `null` job reads as one with no id, which the
/// caller refuses as unusable.
#[derive(Deserialize)]
struct WireCreated {
    #[serde(default)]
    job: Option<WireJob>,
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
    ) -> Result<Request<Bytes>, ValidationError> {
        let body = create_body(items)?;
        Ok(self.create_request_with_body(T::RESOURCE, Bytes::from(body), key))
    }

    /// The create request for a body already checked and serialised.
    pub(crate) fn create_request_with_body(
        &self,
        resource: Resource,
        body: Bytes,
        key: &IdempotencyKey,
    ) -> Request<Bytes> {
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
        let body = self.success_body(CallKind::Create, response)?;
        let status = response.status();
        let created: WireCreated = refuse_list(body)
            .and_then(|()| serde_json::from_slice(body))
            .map_err(|e| ApiError::Malformed(Malformed::json(status, body, e)))?;
        let malformed = |field| ApiError::Malformed(Malformed::field(status, body, field));
        let job = created.job.unwrap_or_default().check().map_err(malformed)?;
        // The one field whose absence cannot be read as empty: no job to wait for without it.
        if job.id.is_empty() {
            return Err(malformed(("job.id", FieldProblem::Missing)));
        }
        Ok(job)
    }

    /// Builds `GET .../batch/{job_id}/imports` or `/errors` for the page after `page_token`
    /// (the first page for `None`). `include_schema` applies to imports only.
    pub fn page_request(
        &self,
        job: &JobRef,
        kind: PageKind,
        page_token: Option<&str>,
        include_schema: bool,
    ) -> Request<Bytes> {
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
        self.request(Method::GET, &path, Bytes::new())
    }

    /// Parses a page of imported items (`T` is [`EventRequest`] or [`UserRequest`], or your
    /// own type) or of failures ([`FailedItem`]), or the 202 that says the job is still
    /// processing.
    ///
    /// An item that does not fit `T` never fails the page: it is kept in [`Page::unread`].
    ///
    /// # Errors
    /// An [`ApiError`] as for [`Config::parse_status`]; [`ApiError::Malformed`] naming
    /// `results`, `total_records` or `next_page_token` when the page around the items is off.
    pub fn parse_page<T: DeserializeOwned, B: AsRef<[u8]>>(
        &self,
        response: &Response<B>,
    ) -> Result<PageAnswer<T>, ApiError> {
        let body = self.success_body(CallKind::Page, response)?;
        let status = response.status();
        if status == StatusCode::ACCEPTED {
            return Ok(PageAnswer::NotReady);
        }
        let malformed = |field| ApiError::Malformed(Malformed::field(status, body, field));
        let wire: WirePage<'_> = refuse_list(body)
            .and_then(|()| serde_json::from_slice(body))
            .map_err(|e| ApiError::Malformed(Malformed::json(status, body, e)))?;
        let items = wire
            .results
            .0
            .map_err(|()| malformed(("results", FieldProblem::NotAList)))?;
        let total_records = wire
            .total_records
            .check_optional("total_records")
            .map_err(malformed)?;
        let next_page_token = wire
            .next_page_token
            .0
            .map_err(|()| malformed(("next_page_token", FieldProblem::NotAString)))?;
        let mut page = Page {
            results: Vec::with_capacity(items.len()),
            unread: Vec::new(),
            total_records,
            next_page_token: next_page_token.map(std::borrow::Cow::into_owned),
        };
        for (index, raw) in items.into_iter().enumerate() {
            match read_item::<T>(index, raw) {
                Ok(item) => page.results.push(item),
                Err(unread) => page.unread.push(unread),
            }
        }
        Ok(PageAnswer::Ready(page))
    }
}
