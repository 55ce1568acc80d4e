//! The API itself: routing, auth, limits and the four endpoints. Everything
//! here is synchronous; the state lock is taken briefly and never across an await.

use hyper::header::{ALLOW, AUTHORIZATION, HeaderMap};
use hyper::{Method, StatusCode};
use percent_encoding::percent_decode_str;
use serde_json::Value;

use crate::codec::hash_of;
use crate::fault::RetryAfter;
use crate::model::{Resource, ResourceExt, Route};
use crate::reply::Reply;
use crate::server::Shared;
use crate::state::{Created, NewJob, stored};
use crate::validate::{Rejection, validate_batch};
use crate::wire::{self, PageKind, PageRequest};

/// Where a path leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathTarget {
    pub route: Route,
    pub resource: Resource,
    /// Percent-decoded.
    pub job_id: Option<String>,
}

/// Parses `/v2[beta]/{events,users}/batch[/{job_id}[/imports|/errors]]`.
pub(crate) fn parse_path(path: &str) -> Option<PathTarget> {
    let mut parts = path.strip_prefix('/')?.split('/');
    let version = parts.next()?;
    if version != "v2" && version != "v2beta" {
        return None;
    }
    let resource = Resource::from_segment(parts.next()?)?;
    if parts.next()? != "batch" {
        return None;
    }
    let rest: Vec<&str> = parts.collect();
    let (route, raw_id) = match rest.as_slice() {
        [] => (Route::Create, None),
        [id] => (Route::Status, Some(*id)),
        [id, "imports"] => (Route::Imports, Some(*id)),
        [id, "errors"] => (Route::Errors, Some(*id)),
        _ => return None,
    };
    let job_id = match raw_id {
        Some(raw) => {
            let id = percent_decode_str(raw).decode_utf8().ok()?.into_owned();
            if id.is_empty() {
                return None;
            }
            Some(id)
        }
        None => None,
    };
    Some(PathTarget {
        route,
        resource,
        job_id,
    })
}

/// A request, read and parsed.
pub(crate) struct Request<'a> {
    pub method: &'a Method,
    pub target: Option<&'a PathTarget>,
    pub headers: &'a HeaderMap,
    pub query: Option<&'a str>,
    pub body: &'a [u8],
}

/// The value of query parameter `name`, percent-decoded.
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode_str(key).decode_utf8().ok()?;
        (key == name).then(|| percent_decode_str(value).decode_utf8_lossy().into_owned())
    })
}

impl Shared {
    fn error(&self, status: StatusCode, code: &str, message: &str) -> Reply {
        let reply = Reply::error(status, code, message, self.config.encoding.extra_fields);
        self.dated(reply, None)
    }

    fn dated(&self, reply: Reply, retry_after: Option<RetryAfter>) -> Reply {
        reply.dated(self.clock.wall(self.clock.now()), retry_after)
    }

    fn too_many(&self, secs: u64, message: &str) -> Reply {
        let reply = Reply::error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            message,
            self.config.encoding.extra_fields,
        );
        self.dated(reply, Some(RetryAfter::Seconds(secs)))
    }

    fn not_found(&self) -> Reply {
        self.error(
            StatusCode::NOT_FOUND,
            "resource_not_found",
            "Requested resource does not exist",
        )
    }

    /// The key from `Authorization: Basic <key>`, checked: `Err` is the 401/403 answer.
    fn authorize(&self, headers: &HeaderMap) -> Result<String, Reply> {
        let key = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .map(str::trim)
            .filter(|k| !k.is_empty());
        let unauthorized = || {
            self.error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "access is unauthorized",
            )
        };
        let Some(key) = key else {
            return Err(unauthorized());
        };
        let config = &self.config;
        if config.read_only_keys.iter().any(|k| k == key) {
            return Err(self.error(
                StatusCode::FORBIDDEN,
                "forbidden",
                "insufficient permissions",
            ));
        }
        if config.keys.is_empty() || config.keys.iter().any(|k| k == key) {
            Ok(key.to_owned())
        } else {
            Err(unauthorized())
        }
    }

    fn rate_limited(&self, key: &str) -> Option<Reply> {
        let (rate, burst) = self.config.rate_limit?;
        let now = self.clock.now();
        let result = self.lock_state().take_token(key, now, rate, burst);
        let message = "Too many requests. Client has exceeded the rate limit for this endpoint.";
        result.err().map(|secs| self.too_many(secs, message))
    }

    /// Answers one request (faults aside).
    pub(crate) fn handle(&self, request: &Request<'_>) -> Reply {
        let Some(target) = request.target else {
            return self.not_found();
        };
        let key = match self.authorize(request.headers) {
            Ok(key) => key,
            Err(reply) => return reply,
        };
        let allowed = if target.route == Route::Create {
            Method::POST
        } else {
            Method::GET
        };
        if *request.method != allowed {
            let reply = self.error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed",
            );
            return reply.header(ALLOW, allowed.as_str());
        }
        if let Some(reply) = self.rate_limited(&key) {
            return reply;
        }
        match (target.route, target.job_id.as_deref()) {
            (Route::Create, _) => self.create(target.resource, request),
            (Route::Status, Some(id)) => self.status(target.resource, id),
            (Route::Imports, Some(id)) => {
                self.page(target.resource, id, PageKind::Imports, request.query)
            }
            (Route::Errors, Some(id)) => {
                self.page(target.resource, id, PageKind::Errors, request.query)
            }
            _ => self.not_found(),
        }
    }

    fn bad_request(&self, rejection: &Rejection) -> Reply {
        self.error(StatusCode::BAD_REQUEST, rejection.code, &rejection.message)
    }

    fn create(&self, resource: Resource, request: &Request<'_>) -> Reply {
        let mut body: Value = match serde_json::from_slice(request.body) {
            Ok(body) => body,
            Err(e) => {
                let message = format!("request body is not valid JSON: {e}");
                return self.error(StatusCode::BAD_REQUEST, "invalid_argument", &message);
            }
        };
        let shared_context = match validate_batch(resource, &body, self.config.max_items) {
            Ok(shared_context) => shared_context,
            Err(rejection) => return self.bad_request(&rejection),
        };
        let idempotency = request
            .headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .filter(|k| !k.is_empty())
            .map(|k| (k.to_owned(), hash_of(&(resource, body.to_string()))));
        let Value::Array(items) = body["requests"].take() else {
            return self.not_found();
        };
        let failed = self.failures(resource, &items, shared_context);
        let job = NewJob {
            resource,
            items: stored(items),
            failed,
            idempotency,
        };
        let now = self.clock.now();
        let created = self.lock_state().create(now, job, &self.timing, true);
        match created {
            Created::New(id) => self.created_reply(&id),
            Created::Replay(id) => {
                self.lock_tally().replayed_creates += 1;
                self.created_reply(&id)
            }
            Created::KeyConflict => {
                let message = "Idempotency-Key was already used with a different request";
                self.error(StatusCode::BAD_REQUEST, "invalid_argument", message)
            }
            Created::Limited(secs) => {
                let message = "Too many in-progress batch imports. Retry when some finish.";
                self.too_many(secs, message)
            }
        }
    }

    /// The create answer; for a replay, the original answer again.
    fn created_reply(&self, id: &str) -> Reply {
        let encoding = &self.config.encoding;
        let doc = {
            let state = self.lock_state();
            let Some(job) = state.jobs.get(id) else {
                return self.not_found();
            };
            let metadata = wire::job_metadata(job, job.first_status, &self.clock, encoding);
            wire::create_doc(metadata, encoding)
        };
        self.dated(Reply::json(StatusCode::OK, &doc), None)
    }

    fn status(&self, resource: Resource, id: &str) -> Reply {
        let now = self.clock.now();
        let doc = {
            let state = self.lock_state();
            match state.jobs.get(id).filter(|job| job.resource == resource) {
                Some(job) => wire::status_doc(job, now, &self.clock, &self.config.encoding),
                None => return self.not_found(),
            }
        };
        self.dated(Reply::json(StatusCode::OK, &doc), None)
    }

    fn page(&self, resource: Resource, id: &str, kind: PageKind, query: Option<&str>) -> Reply {
        let include_schema = match query_param(query, "include_schema").as_deref() {
            None | Some("" | "false") => false,
            Some("true") => true,
            Some(_) => {
                return self.error(
                    StatusCode::BAD_REQUEST,
                    "invalid_argument",
                    "include_schema must be true or false",
                );
            }
        };
        let token = query_param(query, "page_token").unwrap_or_default();
        let now = self.clock.now();
        let encoding = &self.config.encoding;
        let doc = {
            let state = self.lock_state();
            let Some(job) = state.jobs.get(id).filter(|job| job.resource == resource) else {
                return self.not_found();
            };
            if !job.status(now, encoding).is_done() {
                drop(state);
                return self.still_processing();
            }
            let total = if kind == PageKind::Imports {
                job.imports()
            } else {
                job.failed.len()
            };
            let offset = if token.is_empty() {
                Some(0)
            } else {
                wire::page_offset(id, kind, &token, total)
            };
            let Some(offset) = offset else {
                drop(state);
                return self.error(
                    StatusCode::BAD_REQUEST,
                    "invalid_argument",
                    "invalid page_token",
                );
            };
            let page = PageRequest {
                kind,
                offset,
                page_size: self.config.page_size,
                include_schema,
            };
            wire::page_doc(job, &page, &self.clock, encoding)
        };
        self.dated(Reply::json(StatusCode::OK, &doc), None)
    }

    fn still_processing(&self) -> Reply {
        let reply = if self.config.encoding.empty_object_202 {
            Reply::new(StatusCode::ACCEPTED, Some(crate::reply::JSON), "{}")
        } else {
            Reply::new(StatusCode::ACCEPTED, None, "")
        };
        self.dated(reply, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let target = parse_path("/v2beta/users/batch/ab%3D%3D/imports").unwrap();
        assert_eq!(target.route, Route::Imports);
        assert_eq!(target.resource, Resource::Users);
        assert_eq!(target.job_id.as_deref(), Some("ab=="));
        assert_eq!(parse_path("/v2/events/batch").unwrap().route, Route::Create);
        assert_eq!(
            parse_path("/v2/events/batch/x=").unwrap().job_id.as_deref(),
            Some("x=")
        );
        for bad in [
            "/v3/events/batch",
            "/v2/sessions/batch",
            "/v2/events",
            "/v2/events/batch/",
            "/v2/events/batch/x/y",
            "v2/events/batch",
            "/v2/events/batch/%FF",
        ] {
            assert_eq!(parse_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn query_params_are_decoded() {
        let query = Some("include_schema=true&page_token=abc%3D&empty");
        assert_eq!(query_param(query, "page_token").as_deref(), Some("abc="));
        assert_eq!(
            query_param(query, "include_schema").as_deref(),
            Some("true")
        );
        assert_eq!(query_param(query, "empty").as_deref(), Some(""));
        assert_eq!(query_param(query, "missing"), None);
        assert_eq!(
            query_param(Some("page_token=ab=c"), "page_token").as_deref(),
            Some("ab=c")
        );
    }
}
