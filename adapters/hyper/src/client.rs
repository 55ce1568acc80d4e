//! The client: one request, sent and read within the limits.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use fullstory_batch::http::{HeaderMap, Request, Response, header::CONTENT_LENGTH};
use fullstory_batch::{
    CallKind, Config, Error, JobRef, JobStatusResponse, Transmit, TransportError,
};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::connect::{CappedConnector, connector};
use crate::options::{BuildError, ClientOptions};
use crate::transport::{over_limit, timed_out, transport_error};

/// An async client for the batch-import job API: the core's [`Config`] plus a pooled
/// hyper connection pool on tokio.
///
/// Cheap to clone: clones share the pool and the connection cap. See the crate docs for
/// what each call does.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    options: ClientOptions,
    http: HttpClient<CappedConnector, Full<Bytes>>,
    /// Requests in flight, each holding a permit until its body is read.
    requests: Semaphore,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `Config`'s Debug redacts the key.
        f.debug_struct("Client")
            .field("config", &self.inner.config)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `config`. HTTPS only, unless `config`'s base URL is plain `http`
    /// (which the core accepts only through [`fullstory_batch::BaseUrl::parse_allow_http`]).
    ///
    /// Needs no runtime to be built; its calls need a tokio runtime with time and I/O
    /// enabled.
    ///
    /// # Errors
    /// [`BuildError`] when a custom root certificate is not a valid certificate.
    pub fn new(config: Config, options: ClientOptions) -> Result<Self, BuildError> {
        let connector = connector(&options, config.base_url().is_https())?;
        let http = HttpClient::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(options.max_connections)
            .build(connector);
        let requests = Semaphore::new(options.max_connections);
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                options,
                http,
                requests,
            }),
        })
    }

    /// The API configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The connection options.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// Asks once for `job`'s status: one request, no retries.
    ///
    /// # Errors
    /// [`Error::Api`] when the server answered with an error status or a body that is not a
    /// job status; [`Error::Transport`] when no usable answer came (see
    /// [`fullstory_batch::TransportKind`] for the kinds).
    pub async fn status(&self, job: &JobRef) -> Result<JobStatusResponse, Error> {
        let span = request_span(job, None);
        let request = self.inner.config.status_request(job);
        let limit = self.inner.config.body_limit_of(CallKind::Status);
        let exchange = self.exchange(request, limit, None, &span);
        // A span no subscriber wants is not entered on every poll.
        let answer = if span.is_disabled() {
            exchange.await
        } else {
            exchange.instrument(span.clone()).await
        };
        let response = answer.inspect_err(|e| {
            span.record("error", e.kind.as_str());
        })?;
        self.inner.config.parse_status(&response).map_err(|e| {
            span.record("error", e.kind());
            Error::Api(e)
        })
    }

    /// Sends one request a machine asked for, cut off at its deadline, in a
    /// `fullstory_batch.request` span.
    pub(crate) async fn transmit(
        &self,
        transmit: Transmit,
    ) -> Result<Response<Bytes>, TransportError> {
        let span = tracing::debug_span!(
            "fullstory_batch.request",
            stage = %transmit.stage,
            attempt = transmit.attempt,
            path = transmit.request.uri().path(),
            http.status = tracing::field::Empty,
            error = tracing::field::Empty,
        );
        let left = transmit
            .deadline
            .map(|d| d.duration_since(SystemTime::now()).unwrap_or_default());
        let exchange = self.exchange(transmit.request, transmit.body_limit, left, &span);
        let answer = if span.is_disabled() {
            exchange.await
        } else {
            exchange.instrument(span.clone()).await
        };
        answer.inspect_err(|e| {
            span.record("error", e.kind.as_str());
        })
    }

    /// Sends `request` and reads the whole answer within the request timeout (and within
    /// `left`, when given), holding a request permit all along. A failure names the server
    /// it was for (`host:port`).
    pub(crate) async fn exchange(
        &self,
        request: Request<Bytes>,
        body_limit: usize,
        left: Option<Duration>,
        span: &tracing::Span,
    ) -> Result<Response<Bytes>, TransportError> {
        let uri = request.uri().clone();
        self.limited(request, body_limit, left, span)
            .await
            .map_err(|e| e.at(&uri))
    }

    async fn limited(
        &self,
        request: Request<Bytes>,
        body_limit: usize,
        left: Option<Duration>,
        span: &tracing::Span,
    ) -> Result<Response<Bytes>, TransportError> {
        let inner = &*self.inner;
        // A free permit is taken at once: no future, no timer and no clock read. Only a
        // request that has to queue for one (or has a deadline) looks at the time.
        let (_permit, limit) = match (inner.requests.try_acquire(), left) {
            (Ok(permit), None) => (permit, inner.options.request_timeout),
            (Ok(permit), Some(left)) => (permit, inner.options.request_timeout.min(left)),
            (Err(_), _) => {
                let started = tokio::time::Instant::now();
                let acquire = inner.requests.acquire();
                let permit = match left {
                    None => acquire.await,
                    Some(left) => match tokio::time::timeout_at(started + left, acquire).await {
                        Ok(permit) => permit,
                        Err(_) => return Err(timed_out(left)),
                    },
                };
                let permit = permit.expect("the request semaphore is never closed");
                let limit = match left {
                    Some(left) => inner
                        .options
                        .request_timeout
                        .min(left.saturating_sub(started.elapsed())),
                    None => inner.options.request_timeout,
                };
                (permit, limit)
            }
        };
        match tokio::time::timeout(limit, self.round_trip(request, body_limit, span)).await {
            Ok(answer) => answer,
            Err(_) => Err(timed_out(limit)),
        }
    }

    async fn round_trip(
        &self,
        request: Request<Bytes>,
        limit: usize,
        span: &tracing::Span,
    ) -> Result<Response<Bytes>, TransportError> {
        let request = request.map(Full::new);
        let response = self
            .inner
            .http
            .request(request)
            .await
            .map_err(transport_error)?;
        let (parts, body) = response.into_parts();
        span.record("http.status", parts.status.as_u16());
        let declared = content_length(&parts.headers);
        // An error status is the answer whatever its size (a proxy's large HTML page on a
        // 503): it is cut at the limit, for the core sorts it by its status and `Retry-After`
        // and keeps only an excerpt of the body. A 2xx over the limit is refused.
        let cut = !parts.status.is_success();
        if !cut
            && let Some(len) = declared
            && len > limit as u64
        {
            return Err(over_limit(limit, Some(len)));
        }
        let body = read_limited(body, limit, declared, cut).await?;
        Ok(Response::from_parts(parts, body))
    }

    /// The seed for one wait's jitter.
    pub(crate) fn seed(&self) -> u64 {
        self.inner
            .options
            .jitter_seed
            .unwrap_or_else(|| RandomState::new().hash_one(SystemTime::now()))
    }

    pub(crate) fn max_in_flight(&self) -> usize {
        self.inner.options.max_connections
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Reads `body` to its end, stopping as soon as it holds more than `limit` bytes: an error
/// then, or with `cut`, the first `limit` bytes (the rest is left unread and the connection
/// dropped). A body in one frame (the common case) is kept without a copy.
async fn read_limited(
    mut body: Incoming,
    limit: usize,
    declared: Option<u64>,
    cut: bool,
) -> Result<Bytes, TransportError> {
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(mut data) = frame.map_err(transport_error)?.into_data() else {
            continue; // trailers
        };
        // `total` is within the limit here, so `room` is too.
        let room = limit - total;
        let full = data.len() > room;
        if full {
            if !cut {
                return Err(over_limit(limit, None));
            }
            data.truncate(room);
        }
        total += data.len();
        match (&mut first, &mut joined) {
            (None, None) => first = Some(data),
            (Some(_), None) => {
                let head = first.take().unwrap_or_default();
                // Bounded by the limit, whatever was declared.
                let hint = declared.map_or(0, |d| usize::try_from(d).unwrap_or(limit));
                let mut buf = BytesMut::with_capacity(hint.max(total).min(limit));
                buf.extend_from_slice(&head);
                buf.extend_from_slice(&data);
                joined = Some(buf);
            }
            (_, Some(buf)) => buf.extend_from_slice(&data),
        }
        if full {
            break;
        }
    }
    Ok(match joined {
        Some(buf) => buf.freeze(),
        None => first.unwrap_or_default(),
    })
}

/// One span per request: job, attempt, then the HTTP status and the wait chosen after it.
/// Never a header: the key travels in one.
pub(crate) fn request_span(job: &JobRef, attempt: Option<u32>) -> tracing::Span {
    tracing::debug_span!(
        "fullstory_batch.request",
        resource = job.resource.as_str(),
        job_id = %job.id,
        attempt = attempt,
        http.status = tracing::field::Empty,
        error = tracing::field::Empty,
    )
}
