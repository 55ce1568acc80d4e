//! A small validator for the swagger-2.0 schema subset the specs use:
//! `$ref`, `type`, `required`, `properties`, `items`, `enum`, `maxLength`,
//! `maxProperties`, and formats `int32`, `int64`, `double`, `date-time`.
//! It reports every violation with a JSON path, so tests can assert the
//! exact set of deliberate deviations.

use std::path::PathBuf;

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// One loaded spec.
pub struct Spec {
    doc: Value,
}

impl Spec {
    /// Loads `tests/spec/{file}` (copies of the shared swagger specs, MIT).
    pub fn load(file: &str) -> Spec {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/spec")
            .join(file);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Spec {
            doc: serde_json::from_str(&text).unwrap(),
        }
    }

    pub fn events() -> Spec {
        Spec::load("events.swagger.json")
    }

    pub fn users() -> Spec {
        Spec::load("users.swagger.json")
    }

    /// The spec itself, for looking up paths and responses.
    pub fn doc(&self) -> &Value {
        &self.doc
    }

    /// Every violation of definition `name` by `value`.
    pub fn violations(&self, name: &str, value: &Value) -> Vec<String> {
        let mut out = Vec::new();
        let schema = json!({ "$ref": format!("#/definitions/{name}") });
        self.walk(&schema, value, "$", &mut out);
        out
    }

    /// Panics unless `value` fully conforms to definition `name`.
    pub fn assert_valid(&self, name: &str, value: &Value) {
        let violations = self.violations(name, value);
        assert!(
            violations.is_empty(),
            "{name}: {violations:#?}\nin {value:#}"
        );
    }

    /// The definition a path's response refers to, e.g.
    /// `response_definition("/v2/events/batch/{job_id}", "get", "200")`.
    pub fn response_definition(&self, path: &str, method: &str, status: &str) -> String {
        let reference = self.doc["paths"][path][method]["responses"][status]["schema"]["$ref"]
            .as_str()
            .unwrap_or_else(|| panic!("no schema for {method} {path} {status}"));
        reference.trim_start_matches("#/definitions/").to_owned()
    }

    fn resolve(&self, reference: &str) -> &Value {
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("external $ref {reference}"));
        self.doc
            .pointer(pointer)
            .unwrap_or_else(|| panic!("dangling $ref {reference}"))
    }

    fn walk(&self, schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            return self.walk(self.resolve(reference), value, path, out);
        }
        if let Some(kind) = schema.get("type").and_then(Value::as_str)
            && !has_type(kind, value)
        {
            out.push(format!("{path}: expected {kind}, got {value}"));
            return;
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            out.push(format!("{path}: {value} not in enum {allowed:?}"));
        }
        if let Some(format) = schema.get("format").and_then(Value::as_str)
            && let Some(problem) = check_format(format, value)
        {
            out.push(format!("{path}: {problem}"));
        }
        self.check_limits(schema, value, path, out);
        if let Some(object) = value.as_object() {
            for name in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let name = name.as_str().unwrap();
                if !object.contains_key(name) {
                    out.push(format!("{path}.{name}: required but missing"));
                }
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            for (name, property) in properties.into_iter().flatten() {
                if let Some(field) = object.get(name) {
                    self.walk(property, field, &format!("{path}.{name}"), out);
                }
            }
        }
        if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
            for (index, item) in array.iter().enumerate() {
                self.walk(items, item, &format!("{path}[{index}]"), out);
            }
        }
    }

    fn check_limits(&self, schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
        let max_length = schema.get("maxLength").and_then(Value::as_u64);
        if let (Some(max), Some(text)) = (max_length, value.as_str())
            && text.chars().count() as u64 > max
        {
            out.push(format!("{path}: longer than {max}"));
        }
        let max_properties = schema.get("maxProperties").and_then(Value::as_u64);
        if let (Some(max), Some(object)) = (max_properties, value.as_object())
            && object.len() as u64 > max
        {
            out.push(format!("{path}: more than {max} properties"));
        }
    }
}

fn has_type(kind: &str, value: &Value) -> bool {
    match kind {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        other => panic!("validator does not know type {other:?}"),
    }
}

fn check_format(format: &str, value: &Value) -> Option<String> {
    match format {
        "int32" => value
            .as_i64()
            .filter(|n| i32::try_from(*n).is_err())
            .map(|n| format!("{n} is not int32")),
        "int64" | "double" => None,
        "date-time" => {
            let text = value.as_str()?;
            OffsetDateTime::parse(text, &Rfc3339)
                .err()
                .map(|_| format!("{text:?} is not an RFC 3339 date-time"))
        }
        // Free-text formats in the spec ("ISO 8601 string") constrain nothing here.
        _ => None,
    }
}
