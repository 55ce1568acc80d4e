//! The client: one shared ureq `Agent`, one request per call.

use std::fmt;
use std::io::{self, Read};
use std::time::{Duration, Instant, SystemTime};

use fullstory_batch::bytes::Bytes;
use fullstory_batch::http::{Request, Response};
use fullstory_batch::{
    CallKind, Config, Error, JobRef, JobStatusResponse, Transmit, TransportError, TransportKind,
};
use tracing::{Level, debug, field, warn};
use ureq::Agent;
use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};
use ureq::unversioned::transport::DefaultConnector;

use crate::options::{BuildError, ClientOptions, check_roots};
use crate::resolver::CachingResolver;

/// The shortest timeout given to ureq: a zero one would mean "none" to some of its checks.
const MIN_TIMEOUT: Duration = Duration::from_millis(1);

/// A blocking client for the batch-import status API, over one shared [`ureq::Agent`].
///
/// Cheap to clone (clones share the connection pool) and safe to share between threads.
/// Made from the core's [`Config`] (base URL, key, body limit) and [`ClientOptions`]
/// (timeouts, connection cap, extra roots, jitter seed). It never follows redirects, so the `Authorization` header
/// never reaches another host, and it reads error bodies and `Retry-After` on every status.
#[derive(Clone)]
pub struct Client {
    pub(crate) config: Config,
    pub(crate) options: ClientOptions,
    agent: Agent,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `Config`'s Debug redacts the key.
        f.debug_struct("Client")
            .field("config", &self.config)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `config`. HTTPS only, unless `config`'s base URL is plain `http`
    /// (which the core accepts only through [`fullstory_batch::BaseUrl::parse_allow_http`]).
    ///
    /// # Errors
    /// [`BuildError::InvalidRootCertificate`] when a custom root certificate is not one
    /// rustls can trust.
    pub fn new(config: Config, options: ClientOptions) -> Result<Self, BuildError> {
        check_roots(&options.roots)?;
        let roots = if options.roots.is_empty() {
            RootCerts::WebPki
        } else {
            let mozilla = webpki_root_certs::TLS_SERVER_ROOT_CERTS
                .iter()
                .map(|c| Certificate::from_der(c.as_ref()));
            let extra = options
                .roots
                .iter()
                .map(|c| Certificate::from_der(c.as_ref()).to_owned());
            RootCerts::from(mozilla.chain(extra))
        };
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .root_certs(roots)
            .build();
        let idle = options.max_connections();
        let agent_config = Agent::config_builder()
            // Error statuses come back as responses: their bodies and Retry-After matter.
            .http_status_as_error(false)
            // A redirect comes back as a response (an unexpected status to the core):
            // following it could carry the Authorization header to another host.
            .max_redirects(0)
            .https_only(config.base_url().is_https())
            .timeout_global(Some(options.request_timeout().max(MIN_TIMEOUT)))
            .timeout_connect(Some(options.connect_timeout().max(MIN_TIMEOUT)))
            .max_idle_connections(idle)
            .max_idle_connections_per_host(idle)
            .tls_config(tls)
            .build();
        // ureq's own resolver would start a thread per request to keep the timeouts.
        let agent = Agent::with_parts(
            agent_config,
            DefaultConnector::default(),
            CachingResolver::default(),
        );
        Ok(Self {
            config,
            options,
            agent,
        })
    }

    /// The core configuration requests are built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The options the client was made with.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// Asks once for `job`'s status: one request, no retry.
    ///
    /// # Errors
    /// [`Error::Api`] when the server answered with an error status (its parsed body and
    /// `Retry-After` inside) or with a body that is not a job status;
    /// [`Error::Transport`] when no usable answer came (see [`TransportKind`]).
    pub fn status(&self, job: &JobRef) -> Result<JobStatusResponse, Error> {
        let span = tracing::debug_span!(
            "fullstory_batch.status",
            resource = %job.resource,
            job = %job.id,
        );
        // A span no subscriber wants is not entered.
        let _entered = (!span.is_disabled()).then(|| span.enter());
        let limit = self.config.body_limit_of(CallKind::Status);
        let response = self.fetch(self.config.status_request(job), limit, None)?;
        Ok(self.config.parse_status(&response)?)
    }

    /// Sends one request a machine asked for, cut off at its deadline, in a
    /// `fullstory_batch.request` span.
    pub(crate) fn transmit(&self, transmit: Transmit) -> Result<Response<Vec<u8>>, TransportError> {
        let span = tracing::debug_span!(
            "fullstory_batch.request",
            stage = %transmit.stage,
            attempt = transmit.attempt,
            path = transmit.request.uri().path(),
            http.status = field::Empty,
        );
        // Neither the span nor the clock when no subscriber wants them: the span's fields
        // and the two clock reads are most of what the adapter adds to a request.
        let wanted = !span.is_disabled();
        let _entered = wanted.then(|| span.enter());
        let started = (wanted || tracing::enabled!(Level::WARN)).then(Instant::now);
        let result = self.fetch(transmit.request, transmit.body_limit, transmit.deadline);
        if let Some(started) = started {
            let elapsed_ms = started.elapsed().as_millis() as u64;
            match &result {
                Ok(response) => {
                    span.record("http.status", response.status().as_u16());
                    debug!(elapsed_ms, "answered");
                }
                Err(e) => warn!(elapsed_ms, error = %e, kind = e.kind.as_str(), "no usable answer"),
            }
        }
        result
    }

    /// Sends any request the core built and reads the response within the body limit: a 2xx
    /// body over it is refused, an error status's body is cut at it. A failure names the
    /// server it was for (`host:port`).
    pub(crate) fn fetch(
        &self,
        request: Request<Bytes>,
        limit: usize,
        deadline: Option<SystemTime>,
    ) -> Result<Response<Vec<u8>>, TransportError> {
        let uri = request.uri().clone();
        self.exchange(request, limit, deadline)
            .map_err(|e| e.at(&uri))
    }

    fn exchange(
        &self,
        request: Request<Bytes>,
        limit: usize,
        deadline: Option<SystemTime>,
    ) -> Result<Response<Vec<u8>>, TransportError> {
        let timeout = self.request_timeout(deadline);
        // A request without a body goes with `()`, so ureq sends no body headers on a GET.
        let (parts, body) = request.into_parts();
        let mut response = if body.is_empty() {
            self.send(Request::from_parts(parts, ()), timeout)
        } else {
            self.send(Request::from_parts(parts, &body[..]), timeout)
        }
        .map_err(transport_error)?;

        let body = if response.status().is_success() {
            // A body announced as too large is refused unread: the connection is dropped.
            if response
                .body()
                .content_length()
                .is_some_and(|len| len > limit as u64)
            {
                return Err(TransportError::new(TransportKind::BodyTooLarge));
            }
            // One byte past the limit, so the core sees (and names) a body that is just too
            // long.
            let read_limit = (limit as u64).saturating_add(1);
            response
                .body_mut()
                .with_config()
                .limit(read_limit)
                .read_to_vec()
                .map_err(transport_error)?
        } else {
            // An error status is the answer whatever its size (a proxy's large HTML page on
            // a 503): its first `limit` bytes are read and the rest is left unread (the
            // connection is dropped), for the core sorts it by its status and `Retry-After`
            // and keeps only an excerpt of the body.
            let mut body = Vec::new();
            response
                .body_mut()
                .as_reader()
                .take(limit as u64)
                .read_to_end(&mut body)
                .map_err(|e| transport_error(ureq::Error::from(e)))?;
            body
        };
        let (parts, _) = response.into_parts();
        Ok(Response::from_parts(parts, body))
    }

    /// Runs `request` on the shared agent, with its own overall timeout if given.
    fn send(
        &self,
        request: Request<impl ureq::AsSendBody>,
        timeout: Option<Duration>,
    ) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        match timeout {
            None => self.agent.run(request),
            Some(timeout) => {
                let request = self
                    .agent
                    .configure_request(request)
                    .timeout_global(Some(timeout))
                    .build();
                self.agent.run(request)
            }
        }
    }

    /// The timeout of a request sent now: `None` for the agent's own (the request timeout),
    /// or the time left until `deadline` when that is shorter.
    fn request_timeout(&self, deadline: Option<SystemTime>) -> Option<Duration> {
        let left = deadline?
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        (left < self.options.request_timeout()).then_some(left.max(MIN_TIMEOUT))
    }
}

/// Sorts a ureq error into the core's transport kinds, keeping it as the source.
pub(crate) fn transport_error(error: ureq::Error) -> TransportError {
    let kind = match &error {
        ureq::Error::Timeout(_) => TransportKind::Timeout,
        ureq::Error::HostNotFound
        | ureq::Error::ConnectionFailed
        | ureq::Error::ConnectProxyFailed(_)
        | ureq::Error::InvalidProxyUrl => TransportKind::Connect,
        ureq::Error::Tls(_)
        | ureq::Error::Rustls(_)
        | ureq::Error::Pem(_)
        | ureq::Error::TlsRequired
        | ureq::Error::RequireHttpsOnly(_) => TransportKind::Tls,
        ureq::Error::BodyExceedsLimit(_) => TransportKind::BodyTooLarge,
        ureq::Error::Io(e) => io_kind(e),
        _ => TransportKind::Other,
    };
    TransportError::with_source(kind, error)
}

fn io_kind(error: &io::Error) -> TransportKind {
    // rustls reports handshake failures (an unknown issuer, say) as io errors around its own.
    if error
        .get_ref()
        .is_some_and(|inner| inner.is::<rustls::Error>())
    {
        return TransportKind::Tls;
    }
    match error.kind() {
        io::ErrorKind::ConnectionRefused
        | io::ErrorKind::AddrNotAvailable
        | io::ErrorKind::NotConnected
        | io::ErrorKind::HostUnreachable
        | io::ErrorKind::NetworkUnreachable => TransportKind::Connect,
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => TransportKind::Timeout,
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => TransportKind::Reset,
        _ => TransportKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ureq_errors_sort_into_kinds() {
        let cases = [
            (
                ureq::Error::Timeout(ureq::Timeout::Global),
                TransportKind::Timeout,
            ),
            (ureq::Error::HostNotFound, TransportKind::Connect),
            (ureq::Error::Tls("bad"), TransportKind::Tls),
            (
                ureq::Error::BodyExceedsLimit(10),
                TransportKind::BodyTooLarge,
            ),
            (
                ureq::Error::Io(io::ErrorKind::ConnectionRefused.into()),
                TransportKind::Connect,
            ),
            (
                ureq::Error::Io(io::ErrorKind::UnexpectedEof.into()),
                TransportKind::Reset,
            ),
            (
                ureq::Error::Io(io::ErrorKind::ConnectionReset.into()),
                TransportKind::Reset,
            ),
            (
                ureq::Error::Io(io::ErrorKind::TimedOut.into()),
                TransportKind::Timeout,
            ),
            (
                ureq::Error::Io(io::Error::new(
                    io::ErrorKind::InvalidData,
                    rustls::Error::General("handshake".into()),
                )),
                TransportKind::Tls,
            ),
            (ureq::Error::BadUri("x".into()), TransportKind::Other),
        ];
        for (error, kind) in cases {
            let shown = error.to_string();
            let mapped = transport_error(error);
            assert_eq!(mapped.kind, kind, "{shown}");
            assert!(std::error::Error::source(&mapped).is_some());
        }
    }
}
