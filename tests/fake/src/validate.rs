//! Checks a create body against the spec's request schemas
//! (`CreateBatchEventsImportJobRequest`, `CreateBatchUserImportJobRequest`).
//! Shape errors reject the whole batch with 400; rule breaches the server
//! can only see while importing fail the single item instead.

use serde_json::{Map, Value};

use crate::codec::is_timestamp;
use crate::model::Resource;

/// A 400 answer: `{"message", "code"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub code: &'static str,
    pub message: String,
}

fn reject(code: &'static str, message: String) -> Rejection {
    Rejection { code, message }
}

/// Why one item failed to import (shown on the errors pages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ItemFailure {
    pub code: &'static str,
    pub message: String,
}

/// Validates a whole create body; `Ok(true)` when events share a `shared.context`.
pub(crate) fn validate_batch(
    resource: Resource,
    body: &Value,
    max_items: usize,
) -> Result<bool, Rejection> {
    let Some(object) = body.as_object() else {
        return Err(reject(
            "invalid_argument",
            "request body must be a JSON object".into(),
        ));
    };
    let items = match object.get("requests") {
        None | Some(Value::Null) => {
            return Err(reject("required_field", "requests is required".into()));
        }
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(reject(
                "invalid_argument",
                "requests must be an array".into(),
            ));
        }
    };
    if items.is_empty() || items.len() > max_items {
        let message = format!(
            "requests must hold 1 to {max_items} items, got {}",
            items.len()
        );
        return Err(reject("invalid_argument", message));
    }
    let shared_context = match resource {
        Resource::Events => check_shared(object.get("shared"))?,
        Resource::Users => false,
    };
    for (index, item) in items.iter().enumerate() {
        let path = format!("requests[{index}]");
        match resource {
            Resource::Events => check_event(item, &path)?,
            Resource::Users => check_user(item, &path)?,
        }
    }
    Ok(shared_context)
}

/// Item failures the server finds while importing (not at validation).
pub(crate) fn import_failure(
    resource: Resource,
    item: &Value,
    shared_context: bool,
) -> Option<ItemFailure> {
    match resource {
        Resource::Events if shared_context && item.get("context").is_some() => Some(ItemFailure {
            code: "invalid_argument",
            message: "event context conflicts with the shared context".into(),
        }),
        Resource::Users => item
            .get("properties")
            .and_then(Value::as_object)
            .and_then(|props| bad_property(props, ""))
            .map(|message| ItemFailure {
                code: "invalid_argument",
                message,
            }),
        _ => None,
    }
}

/// The default failure rule: event `name` / user `uid` starting with "bad".
pub(crate) fn default_fails(resource: Resource, item: &Value) -> bool {
    let field = match resource {
        Resource::Events => "name",
        Resource::Users => "uid",
    };
    item.get(field)
        .and_then(Value::as_str)
        .is_some_and(|s| s.starts_with("bad"))
}

/// Property naming rules from the users spec: names start with a letter, hold
/// letters, digits and `_`; dotted names at most 512 chars; values at most 8192 bytes.
fn bad_property(props: &Map<String, Value>, prefix: &str) -> Option<String> {
    for (name, value) in props {
        let full = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let mut chars = name.chars();
        let well_formed = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !well_formed || full.chars().count() > 512 {
            return Some(format!("invalid property name {full:?}"));
        }
        if let Some(nested) = value.as_object() {
            if let Some(message) = bad_property(nested, &full) {
                return Some(message);
            }
        } else if value.to_string().len() > 8192 {
            return Some(format!("property {full:?} is larger than 8192 bytes"));
        }
    }
    None
}

/// The JSON type a field must have.
#[derive(Clone, Copy)]
enum Kind {
    Str(Option<usize>),
    Bool,
    Int32,
    Number,
    Timestamp,
    Object,
}

fn check_kind(value: &Value, kind: Kind, path: &str) -> Result<(), Rejection> {
    let ok = match kind {
        Kind::Str(max) => match value.as_str() {
            Some(s) => {
                if let Some(max) = max.filter(|&m| s.chars().count() > m) {
                    let message = format!("{path} must be at most {max} characters");
                    return Err(reject("invalid_argument", message));
                }
                true
            }
            None => false,
        },
        Kind::Bool => value.is_boolean(),
        Kind::Int32 => value.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
        Kind::Number => value.is_number(),
        Kind::Timestamp => match value.as_str() {
            Some(s) if is_timestamp(s) => true,
            Some(_) => {
                let message = format!("{path} must be an ISO 8601 timestamp");
                return Err(reject("invalid_argument", message));
            }
            None => false,
        },
        Kind::Object => value.is_object(),
    };
    if ok {
        Ok(())
    } else {
        Err(reject(
            "invalid_argument",
            format!("{path} has the wrong type"),
        ))
    }
}

/// Checks the listed fields of an object (unknown fields are ignored, as the
/// gateway does) and returns the object.
fn check_fields<'a>(
    value: &'a Value,
    path: &str,
    fields: &[(&str, Kind)],
) -> Result<&'a Map<String, Value>, Rejection> {
    let Some(object) = value.as_object() else {
        return Err(reject(
            "invalid_argument",
            format!("{path} must be an object"),
        ));
    };
    for &(name, kind) in fields {
        match object.get(name) {
            None | Some(Value::Null) => {}
            Some(field) => check_kind(field, kind, &format!("{path}.{name}"))?,
        }
    }
    Ok(object)
}

fn nested<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.get(name).filter(|v| !v.is_null())
}

const STR: Kind = Kind::Str(None);

fn check_context(value: &Value, path: &str) -> Result<(), Rejection> {
    let object = check_fields(
        value,
        path,
        &[
            ("browser", Kind::Object),
            ("mobile", Kind::Object),
            ("device", Kind::Object),
            ("location", Kind::Object),
        ],
    )?;
    let parts: [(&str, &[(&str, Kind)]); 4] = [
        (
            "browser",
            &[("url", STR), ("user_agent", STR), ("initial_referrer", STR)],
        ),
        (
            "mobile",
            &[
                ("app_id", STR),
                ("app_version", STR),
                ("app_name", STR),
                ("build_variant", STR),
            ],
        ),
        (
            "device",
            &[
                ("manufacturer", STR),
                ("model", STR),
                ("screen_width", Kind::Int32),
                ("screen_height", Kind::Int32),
                ("viewport_width", Kind::Int32),
                ("viewport_height", Kind::Int32),
            ],
        ),
        (
            "location",
            &[
                ("country", STR),
                ("region", STR),
                ("city", STR),
                ("latitude", Kind::Number),
                ("longitude", Kind::Number),
                ("ip_address", STR),
            ],
        ),
    ];
    for (name, fields) in parts {
        if let Some(part) = nested(object, name) {
            check_fields(part, &format!("{path}.{name}"), fields)?;
        }
    }
    Ok(())
}

fn check_shared(shared: Option<&Value>) -> Result<bool, Rejection> {
    let Some(shared) = shared.filter(|v| !v.is_null()) else {
        return Ok(false);
    };
    let object = check_fields(shared, "shared", &[("context", Kind::Object)])?;
    match nested(object, "context") {
        Some(context) => check_context(context, "shared.context").map(|()| true),
        None => Ok(false),
    }
}

fn check_schema(object: &Map<String, Value>, path: &str) -> Result<(), Rejection> {
    if let Some(schema) = nested(object, "schema") {
        check_fields(
            schema,
            &format!("{path}.schema"),
            &[("properties", Kind::Object)],
        )?;
    }
    Ok(())
}

fn check_event(item: &Value, path: &str) -> Result<(), Rejection> {
    let object = check_fields(
        item,
        path,
        &[
            ("user", Kind::Object),
            ("session", Kind::Object),
            ("context", Kind::Object),
            ("name", STR),
            ("timestamp", Kind::Timestamp),
            ("properties", Kind::Object),
            ("schema", Kind::Object),
        ],
    )?;
    // proto3 cannot tell "" from unset, so an empty name is a missing one.
    if object
        .get("name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(reject("required_field", format!("{path}.name is required")));
    }
    let user = nested(object, "user");
    if let Some(user) = user {
        check_fields(
            user,
            &format!("{path}.user"),
            &[("uid", Kind::Str(Some(256))), ("id", STR)],
        )?;
    }
    if let Some(session) = nested(object, "session") {
        let session_path = format!("{path}.session");
        let fields = [("id", STR), ("use_most_recent", Kind::Bool)];
        let session = check_fields(session, &session_path, &fields)?;
        let has_id = session
            .get("id")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty());
        let most_recent = session.get("use_most_recent") == Some(&Value::Bool(true));
        if has_id && user.is_some() {
            let message = format!("{path}.user is not accepted together with session.id");
            return Err(reject("invalid_argument", message));
        }
        if most_recent && user.is_none() {
            let message = format!("{path}.user is required when session.use_most_recent is true");
            return Err(reject("required_field", message));
        }
    }
    if let Some(context) = nested(object, "context") {
        check_context(context, &format!("{path}.context"))?;
    }
    check_schema(object, path)
}

fn check_user(item: &Value, path: &str) -> Result<(), Rejection> {
    let object = check_fields(
        item,
        path,
        &[
            ("id", STR),
            ("uid", Kind::Str(Some(256))),
            ("display_name", Kind::Str(Some(256))),
            ("email", Kind::Str(Some(128))),
            ("properties", Kind::Object),
            ("schema", Kind::Object),
        ],
    )?;
    let too_many = nested(object, "properties")
        .and_then(Value::as_object)
        .is_some_and(|props| props.len() > 500);
    if too_many {
        let message = format!("{path}.properties holds more than 500 properties");
        return Err(reject("invalid_argument", message));
    }
    check_schema(object, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn count(body: &Value) -> usize {
        body["requests"].as_array().map_or(0, Vec::len)
    }

    fn events(body: Value) -> Result<usize, Rejection> {
        validate_batch(Resource::Events, &body, 50_000).map(|_| count(&body))
    }

    fn users(body: Value) -> Result<usize, Rejection> {
        validate_batch(Resource::Users, &body, 50_000).map(|_| count(&body))
    }

    fn message(result: Result<usize, Rejection>) -> String {
        let rejection = result.unwrap_err();
        format!("{}: {}", rejection.code, rejection.message)
    }

    #[test]
    fn body_level_errors() {
        assert_eq!(
            message(events(json!([]))),
            "invalid_argument: request body must be a JSON object"
        );
        assert_eq!(
            message(events(json!({}))),
            "required_field: requests is required"
        );
        assert!(message(events(json!({"requests": {}}))).contains("must be an array"));
        assert!(message(events(json!({"requests": []}))).contains("1 to 50000"));
        let too_many = validate_batch(Resource::Users, &json!({"requests": [{}, {}, {}]}), 2);
        assert!(too_many.is_err());
    }

    #[test]
    fn events_need_a_name_and_typed_fields() {
        assert_eq!(
            events(json!({"requests": [{"name": "a"}, {"name": "b"}]})),
            Ok(2)
        );
        let missing = events(json!({"requests": [{"name": "a"}, {"properties": {}}]}));
        assert_eq!(
            message(missing),
            "required_field: requests[1].name is required"
        );
        assert!(message(events(json!({"requests": [{"name": ""}]}))).contains("requests[0].name"));
        let bad_type = events(json!({"requests": [{"name": 3}]}));
        assert_eq!(
            message(bad_type),
            "invalid_argument: requests[0].name has the wrong type"
        );
        let long_uid = "u".repeat(257);
        let result = events(json!({"requests": [{"name": "a", "user": {"uid": long_uid}}]}));
        assert!(message(result).contains("requests[0].user.uid must be at most 256"));
        let result = events(json!({"requests": [{"name": "a", "timestamp": "soon"}]}));
        assert!(message(result).contains("timestamp"));
        let device = json!({"device": {"screen_width": 1e10}});
        let result = events(json!({"requests": [{"name": "a", "context": device}]}));
        assert!(message(result).contains("requests[0].context.device.screen_width"));
    }

    #[test]
    fn events_session_rules() {
        let item = json!({"name": "a", "session": {"use_most_recent": true}});
        assert!(message(events(json!({"requests": [item]}))).contains("user is required"));
        let item = json!({"name": "a", "session": {"id": "1:2"}, "user": {"uid": "x"}});
        assert!(message(events(json!({"requests": [item]}))).contains("not accepted"));
        let item = json!({"name": "a", "session": {"use_most_recent": true}, "user": {"uid": "x"}});
        assert_eq!(events(json!({"requests": [item]})), Ok(1));
    }

    #[test]
    fn users_have_no_required_field_but_limits() {
        assert_eq!(users(json!({"requests": [{}]})), Ok(1));
        let email = format!("{}@x.io", "e".repeat(130));
        assert!(message(users(json!({"requests": [{"email": email}]}))).contains("email"));
        let props: Map<String, Value> = (0..501).map(|i| (format!("p{i}"), json!(i))).collect();
        let result = users(json!({"requests": [{"uid": "ok"}, {"properties": props}]}));
        assert!(message(result).contains("requests[1].properties"));
        assert!(
            message(users(json!({"requests": ["x"]}))).contains("requests[0] must be an object")
        );
    }

    #[test]
    fn import_failures() {
        let bad = json!({"properties": {"1st": true}});
        assert!(import_failure(Resource::Users, &bad, false).is_some());
        let nested = json!({"properties": {"a": {"b-c": 1}}});
        assert!(
            import_failure(Resource::Users, &nested, false)
                .unwrap()
                .message
                .contains("a.b-c")
        );
        let fine = json!({"properties": {"plan_2": {"tier": "x"}}});
        assert_eq!(import_failure(Resource::Users, &fine, false), None);
        let event = json!({"name": "a", "context": {}});
        assert!(import_failure(Resource::Events, &event, true).is_some());
        assert!(import_failure(Resource::Events, &event, false).is_none());
        assert!(default_fails(Resource::Events, &json!({"name": "bad one"})));
        assert!(!default_fails(Resource::Events, &json!({"uid": "bad"})));
        assert!(default_fails(Resource::Users, &json!({"uid": "bad"})));
    }
}
