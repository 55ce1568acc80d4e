//! The status call: `GET /v2/{events,users}/batch/{job_id}`.

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, USER_AGENT};
use http::{HeaderValue, Method, Request, Response, Uri};

use crate::config::{CallKind, Config, JobRef};
use crate::error::{ApiError, Malformed};
use crate::model::{JobStatusResponse, parse_status_body};

/// `fullstory-batch/<version>`, sent as `User-Agent`.
pub const USER_AGENT_VALUE: &str = concat!("fullstory-batch/", env!("CARGO_PKG_VERSION"));

/// The `Integration-Source` header's name.
pub const INTEGRATION_SOURCE: &str = "integration-source";

impl Config {
    /// Builds the status request for `job`.
    ///
    /// ```
    /// use fullstory_batch::{ApiKey, Config, JobId, JobRef, Resource};
    /// let config = Config::new(ApiKey::new("my-key")?);
    /// let job = JobRef::new(Resource::Events, JobId::new("a/b?c")?);
    /// let request = config.status_request(&job);
    /// assert_eq!(request.uri(), "https://api.fullstory.com/v2/events/batch/a%2Fb%3Fc");
    /// # Ok::<(), fullstory_batch::ConfigError>(())
    /// ```
    pub fn status_request(&self, job: &JobRef) -> Request<Bytes> {
        let resource = job.resource.as_str();
        let id = job.id.as_str();
        // Room for the id with a few bytes encoded; more just grows the string once.
        let mut path = self
            .base_url
            .path_with_capacity(4 + resource.len() + 7 + id.len() + 8);
        path.push_str("/v2/");
        path.push_str(resource);
        path.push_str("/batch/");
        job.id.push_path_segment(&mut path);
        self.request_to(Method::GET, self.base_url.uri(path), Bytes::new())
    }

    /// Parses the answer to [`Config::status_request`].
    ///
    /// # Errors
    /// An [`ApiError`] for an error status, a body over the limit, or a success whose body is
    /// not a job status.
    pub fn parse_status<B: AsRef<[u8]>>(
        &self,
        response: &Response<B>,
    ) -> Result<JobStatusResponse, ApiError> {
        let body = self.success_body(CallKind::Status, response)?;
        let status = response.status();
        match parse_status_body(body) {
            Ok(Ok(parsed)) => Ok(parsed),
            Ok(Err(field)) => Err(ApiError::Malformed(Malformed::field(status, body, field))),
            Err(json) => Err(ApiError::Malformed(Malformed::json(status, body, json))),
        }
    }

    /// A request to `path` below the base URL with the headers every call carries.
    pub(crate) fn request(&self, method: Method, path: &str, body: Bytes) -> Request<Bytes> {
        self.request_to(method, self.base_url.join(path), body)
    }

    /// A request to `uri` with the headers every call carries. Its body limit is not in it
    /// (an extension costs three allocations a request): a machine's [`crate::Transmit`]
    /// carries it, and [`Config::body_limit_of`] gives it for a call made by hand.
    pub(crate) fn request_to(&self, method: Method, uri: Uri, body: Bytes) -> Request<Bytes> {
        let mut request = Request::new(body);
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        headers.insert(AUTHORIZATION, self.api_key.header_value().clone());
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        if let Some(source) = &self.integration_source {
            headers.insert(INTEGRATION_SOURCE, source.clone());
        }
        request
    }

    /// The body of a 2xx response within the limit of `kind`, or the error the response
    /// stands for. An error status is sorted by its status whatever its size: only an excerpt
    /// of its body is kept, and a 503 with a large HTML page is still worth another try.
    pub(crate) fn success_body<'b, B: AsRef<[u8]>>(
        &self,
        kind: CallKind,
        response: &'b Response<B>,
    ) -> Result<&'b [u8], ApiError> {
        let status = response.status();
        let body = response.body().as_ref();
        let limit = self.body_limits.get(kind);
        if !status.is_success() {
            return Err(ApiError::from_status(status, response.headers(), body));
        }
        if body.len() > limit {
            return Err(ApiError::BodyTooLarge {
                status,
                limit,
                call: kind,
            });
        }
        Ok(body)
    }
}
