//! What the adapter adds to the core's `Config`: timeouts, the connection cap, trusted
//! roots, the jitter seed.
//!
//! The same shape, names and defaults as `fullstory-batch-ureq`'s `ClientOptions` and
//! `BuildError`, so code moves between the two adapters unchanged.

use std::fmt;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// The default [`ClientOptions::connect_timeout`]: 10 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The default [`ClientOptions::request_timeout`]: 30 s.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The default [`ClientOptions::max_connections`]: 32.
pub const DEFAULT_MAX_CONNECTIONS: usize = 32;

/// How the [`crate::Client`] talks to the server. The API itself (base URL, key, body limit)
/// is the core's [`fullstory_batch::Config`].
///
/// ```
/// use std::time::Duration;
/// use fullstory_batch_hyper::ClientOptions;
///
/// let options = ClientOptions::new()
///     .with_connect_timeout(Duration::from_secs(5))
///     .with_request_timeout(Duration::from_secs(10))
///     .with_max_connections(8);
/// assert_eq!(options.max_connections(), 8);
/// ```
#[derive(Clone)]
pub struct ClientOptions {
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) max_connections: usize,
    pub(crate) roots: Vec<CertificateDer<'static>>,
    pub(crate) jitter_seed: Option<u64>,
}

impl ClientOptions {
    /// Connect timeout 10 s, request timeout 30 s, 32 connections, Mozilla's roots only, a
    /// fresh jitter seed for each run.
    pub fn new() -> Self {
        Self {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            roots: Vec::new(),
            jitter_seed: None,
        }
    }

    /// The longest wait for a TCP connection to open (default 10 s). A connect that takes
    /// longer fails as [`fullstory_batch::TransportKind::Connect`].
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The longest one request may take, from asking for a connection to the last byte of
    /// the body: connect, TLS, headers and body all count (default 30 s). When a
    /// [`fullstory_batch::Policy`] has a deadline, a request never runs past it either.
    /// A request over time fails as [`fullstory_batch::TransportKind::Timeout`].
    #[must_use]
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The most connections open to the server at once, and so the most requests in flight
    /// (default 32; 0 counts as 1). Requests past the cap queue inside the client.
    #[must_use]
    pub fn with_max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// Trusts this root certificate (DER) in addition to Mozilla's roots, for a private CA
    /// or a test server. The certificate is checked when the client is built.
    #[must_use]
    pub fn with_root_certificate_der(mut self, der: impl Into<Vec<u8>>) -> Self {
        self.roots.push(CertificateDer::from(der.into()));
        self
    }

    /// Trusts every certificate in this PEM text in addition to Mozilla's roots (other
    /// blocks, such as keys, are skipped). Each is checked when the client is built.
    ///
    /// # Errors
    /// [`BuildError::Pem`] when the text is not PEM, [`BuildError::NoCertificateInPem`] when
    /// it holds no certificate.
    pub fn with_root_certificates_pem(mut self, pem: &[u8]) -> Result<Self, BuildError> {
        let mut found = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            self.roots.push(cert.map_err(BuildError::Pem)?);
            found += 1;
        }
        if found == 0 {
            return Err(BuildError::NoCertificateInPem);
        }
        Ok(self)
    }

    /// Seeds the jitter of poll waits, so that the same answers give the same schedule
    /// (default: a fresh random seed for each run).
    #[must_use]
    pub fn with_jitter_seed(mut self, seed: u64) -> Self {
        self.jitter_seed = Some(seed);
        self
    }

    /// The connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The request timeout.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The connection cap: open sockets, and requests in flight.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// The jitter seed, when one was set.
    pub fn jitter_seed(&self) -> Option<u64> {
        self.jitter_seed
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_connections", &self.max_connections)
            .field("extra_roots", &self.roots.len())
            .field("jitter_seed", &self.jitter_seed)
            .finish()
    }
}

/// A [`crate::Client`] could not be made.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// The PEM text could not be read.
    Pem(rustls::pki_types::pem::Error),
    /// The PEM text holds no certificate.
    NoCertificateInPem,
    /// A custom root certificate could not be parsed as a trust anchor (found when the
    /// client is built).
    InvalidRootCertificate(rustls::Error),
    /// rustls refused the TLS configuration.
    Tls(rustls::Error),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pem(_) => "could not read pem certificates",
            Self::NoCertificateInPem => "pem text holds no certificate",
            Self::InvalidRootCertificate(_) => "invalid root certificate",
            Self::Tls(_) => "invalid tls configuration",
        })
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Pem(e) => Some(e),
            Self::InvalidRootCertificate(e) | Self::Tls(e) => Some(e),
            Self::NoCertificateInPem => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_getters() {
        let options = ClientOptions::default();
        assert_eq!(options.connect_timeout(), DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(options.request_timeout(), DEFAULT_REQUEST_TIMEOUT);
        assert_eq!(options.max_connections(), DEFAULT_MAX_CONNECTIONS);
        assert_eq!(options.jitter_seed(), None);
        assert_eq!(options.clone().with_max_connections(0).max_connections(), 1);
        assert_eq!(options.with_jitter_seed(7).jitter_seed(), Some(7));
    }
}
