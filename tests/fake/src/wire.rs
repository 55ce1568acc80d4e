//! The JSON documents the API sends: job metadata, job status, imports and
//! errors pages; plus page tokens.

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::clock::Clock;
use crate::codec::{base64url, hash_of, rfc3339_millis, unbase64url};
use crate::model::{Encoding, JobStatus, Resource, ResourceExt};
use crate::state::Job;

/// The unknown field added everywhere when `Encoding::extra_fields` is on.
pub(crate) const EXTRA_FIELD: &str = "fake_unknown_field";

fn add_extra(object: &mut Map<String, Value>, encoding: &Encoding) {
    if encoding.extra_fields {
        object.insert(
            EXTRA_FIELD.into(),
            json!({ "nested": [1, "two"], "since": "v2.1" }),
        );
    }
}

fn count(object: &mut Map<String, Value>, name: &str, n: usize, encoding: &Encoding) {
    if n == 0 && encoding.omit_zero_counts {
        return;
    }
    let value = if encoding.counts_as_strings {
        json!(n.to_string())
    } else {
        json!(n)
    };
    object.insert(name.into(), value);
}

/// `JobMetadata`: `finished` only once the job is done.
pub(crate) fn job_metadata(
    job: &Job,
    status: JobStatus,
    clock: &Clock,
    encoding: &Encoding,
) -> Value {
    let mut object = Map::new();
    object.insert("id".into(), json!(job.id));
    object.insert("status".into(), json!(status.as_str()));
    object.insert(
        "created".into(),
        json!(rfc3339_millis(clock.wall(job.created))),
    );
    if status.is_done() {
        object.insert(
            "finished".into(),
            json!(rfc3339_millis(clock.wall(job.finishes))),
        );
    }
    add_extra(&mut object, encoding);
    Value::Object(object)
}

/// `{"job": JobMetadata}`, the create answer.
pub(crate) fn create_doc(metadata: Value, encoding: &Encoding) -> Value {
    let mut object = Map::new();
    object.insert("job".into(), metadata);
    add_extra(&mut object, encoding);
    Value::Object(object)
}

/// `JobStatusResponse`: counts are 0 until the job is done.
pub(crate) fn status_doc(job: &Job, now: Duration, clock: &Clock, encoding: &Encoding) -> Value {
    let status = job.status(now, encoding);
    let (imports, errors) = if status.is_done() {
        (job.imports(), job.failed.len())
    } else {
        (0, 0)
    };
    let mut object = Map::new();
    count(&mut object, "imports", imports, encoding);
    count(&mut object, "errors", errors, encoding);
    object.insert("job".into(), job_metadata(job, status, clock, encoding));
    add_extra(&mut object, encoding);
    Value::Object(object)
}

/// Which results a page lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum PageKind {
    Imports,
    Errors,
}

/// An opaque token for the page starting at `offset`, bound to one job and
/// kind: 8 bytes, so 12 base64 characters ending in `=` (like `"asd543="`).
pub(crate) fn page_token(job_id: &str, kind: PageKind, offset: usize) -> String {
    let check = hash_of(&(job_id, kind)) as u32;
    let mut bytes = (offset as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(&check.to_be_bytes());
    base64url(&bytes)
}

/// The offset a token stands for; `None` if it is not one of this job's tokens.
pub(crate) fn page_offset(
    job_id: &str,
    kind: PageKind,
    token: &str,
    total: usize,
) -> Option<usize> {
    let bytes = unbase64url(token)?;
    let bytes: [u8; 8] = bytes.try_into().ok()?;
    let offset = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let check = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    let valid = check == hash_of(&(job_id, kind)) as u32 && offset > 0 && offset < total;
    valid.then_some(offset)
}

/// What one page shows.
pub(crate) struct PageRequest {
    pub kind: PageKind,
    pub offset: usize,
    pub page_size: usize,
    pub include_schema: bool,
}

/// An imports or errors page for a finished job.
pub(crate) fn page_doc(job: &Job, page: &PageRequest, clock: &Clock, encoding: &Encoding) -> Value {
    let (total, results): (usize, Vec<Value>) = match page.kind {
        PageKind::Imports => {
            let indexes = job
                .imported_indexes()
                .skip(page.offset)
                .take(page.page_size);
            let results = indexes
                .map(|i| import_result(job, i, page.include_schema, clock, encoding))
                .collect();
            (job.imports(), results)
        }
        PageKind::Errors => {
            let failures = job.failed.iter().skip(page.offset).take(page.page_size);
            let results = failures.map(|(i, failure)| {
                let mut object = Map::new();
                object.insert("message".into(), json!(failure.message));
                object.insert("code".into(), json!(failure.code));
                object.insert(job.resource.item_key().into(), job.item(*i));
                add_extra(&mut object, encoding);
                Value::Object(object)
            });
            (job.failed.len(), results.collect())
        }
    };
    let end = page.offset + results.len();
    let next = if end < total {
        page_token(&job.id, page.kind, end)
    } else {
        String::new()
    };
    let mut object = Map::new();
    if !(results.is_empty() && encoding.omit_empty_fields) {
        object.insert("results".into(), Value::Array(results));
    }
    object.insert("total_records".into(), json!(total.to_string()));
    if !(next.is_empty() && encoding.omit_empty_fields) {
        object.insert("next_page_token".into(), json!(next));
    }
    add_extra(&mut object, encoding);
    Value::Object(object)
}

/// A FullStory-style numeric user id, stable for a given `uid`.
fn user_id(job: &Job, index: usize, item: &Value, uid: Option<&str>) -> String {
    if let Some(id) = item.get("id").and_then(Value::as_str) {
        return id.to_owned();
    }
    let seed = match uid {
        Some(uid) => hash_of(&("uid", uid)),
        None => hash_of(&(job.id.as_str(), index)),
    };
    (seed % 1_000_000_000_000_000).to_string()
}

fn copy_fields(from: &Value, to: &mut Map<String, Value>, names: &[&str]) {
    for name in names {
        if let Some(value) = from.get(*name).filter(|v| !v.is_null()) {
            to.insert((*name).to_owned(), value.clone());
        }
    }
}

/// One imports result: `BatchCreateEventsResponse` or `BatchUserImportResponse`.
fn import_result(
    job: &Job,
    index: usize,
    include_schema: bool,
    clock: &Clock,
    encoding: &Encoding,
) -> Value {
    let item = &job.item(index);
    let mut object = Map::new();
    match job.resource {
        Resource::Events => {
            copy_fields(item, &mut object, &["name", "properties", "context"]);
            let timestamp = item
                .get("timestamp")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let timestamp = timestamp.unwrap_or_else(|| rfc3339_millis(clock.wall(job.created)));
            object.insert("timestamp".into(), json!(timestamp));
            if let Some(user) = item.get("user").filter(|v| v.is_object()) {
                let uid = user.get("uid").and_then(Value::as_str);
                let mut out = json!({ "id": user_id(job, index, user, uid) });
                if let Some(uid) = uid {
                    out["uid"] = json!(uid);
                }
                object.insert("user".into(), out);
            }
            if let Some(id) = item.pointer("/session/id").and_then(Value::as_str) {
                object.insert("session".into(), json!({ "id": id }));
            }
        }
        Resource::Users => {
            let uid = item.get("uid").and_then(Value::as_str);
            object.insert("id".into(), json!(user_id(job, index, item, uid)));
            copy_fields(
                item,
                &mut object,
                &["uid", "display_name", "email", "properties"],
            );
        }
    }
    if include_schema {
        object.insert("schema".into(), schema_of(item));
    }
    add_extra(&mut object, encoding);
    Value::Object(object)
}

/// The item's declared schema, or one inferred from its properties.
fn schema_of(item: &Value) -> Value {
    if let Some(schema) = item.get("schema").filter(|v| v.is_object()) {
        return schema.clone();
    }
    let empty = Map::new();
    let props = item
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    json!({ "properties": infer_types(props) })
}

fn infer_types(props: &Map<String, Value>) -> Value {
    let types = props.iter().map(|(name, value)| {
        let kind = match value {
            Value::Object(nested) => infer_types(nested),
            Value::Array(values) => json!(format!("{}s", scalar_type(values.first()))),
            other => json!(scalar_type(Some(other))),
        };
        (name.clone(), kind)
    });
    Value::Object(types.collect())
}

fn scalar_type(value: Option<&Value>) -> &'static str {
    match value {
        Some(Value::Bool(_)) => "bool",
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => "int",
        Some(Value::Number(_)) => "real",
        _ => "str",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_bound_to_job_and_kind() {
        let token = page_token("job=", PageKind::Imports, 100);
        assert_eq!(token.len(), 12);
        assert!(token.ends_with('='));
        assert_eq!(
            page_offset("job=", PageKind::Imports, &token, 101),
            Some(100)
        );
        assert_eq!(page_offset("job=", PageKind::Imports, &token, 100), None);
        assert_eq!(page_offset("other", PageKind::Imports, &token, 500), None);
        assert_eq!(page_offset("job=", PageKind::Errors, &token, 500), None);
        assert_eq!(page_offset("job=", PageKind::Imports, "garbage", 500), None);
    }

    #[test]
    fn schema_inference() {
        let item =
            json!({"properties": {"a": 1, "b": 1.5, "c": "x", "d": [true], "e": {"f": false}}});
        let expected = json!({"properties": {"a": "int", "b": "real", "c": "str", "d": "bools", "e": {"f": "bool"}}});
        assert_eq!(schema_of(&item), expected);
    }
}
