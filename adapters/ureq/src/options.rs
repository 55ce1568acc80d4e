//! What a [`crate::Client`] is made with besides the core's `Config`: timeouts, pool size and
//! extra trusted roots.

use std::fmt;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// The default [`ClientOptions::connect_timeout`]: 10 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The default [`ClientOptions::request_timeout`]: 30 s.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The default [`ClientOptions::max_idle_connections`]: 32.
pub const DEFAULT_MAX_IDLE_CONNECTIONS: usize = 32;

/// Most worker threads [`crate::Client::wait_many`] runs, whatever the pool size.
pub const MAX_WORKERS: usize = 8;

/// How a [`crate::Client`] talks to the server. Every field has a `with_*` setter; the
/// defaults suit the real API.
///
/// ```
/// use std::time::Duration;
/// use fullstory_batch_ureq::ClientOptions;
///
/// let options = ClientOptions::default()
///     .with_connect_timeout(Duration::from_secs(5))
///     .with_request_timeout(Duration::from_secs(10))
///     .with_max_idle_connections(4);
/// assert_eq!(options.request_timeout, Duration::from_secs(10));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientOptions {
    /// How long opening a connection may take, DNS and TLS handshake included.
    /// Default [`DEFAULT_CONNECT_TIMEOUT`] (10 s).
    pub connect_timeout: Duration,
    /// How long one request may take from start to the last byte of the body (connecting
    /// included). Default [`DEFAULT_REQUEST_TIMEOUT`] (30 s). While waiting for a job with a
    /// deadline, a request is also cut short at the deadline.
    pub request_timeout: Duration,
    /// Idle connections kept open for reuse, in all and per host (the API is one host).
    /// Default [`DEFAULT_MAX_IDLE_CONNECTIONS`] (32). [`crate::Client::wait_many`] runs
    /// `min(max_idle_connections, 8)` worker threads (at least one), so every worker can keep
    /// its connection.
    pub max_idle_connections: usize,
    /// Roots trusted in addition to Mozilla's (the `webpki-root-certs` set), for a TLS proxy
    /// or a test server. Default none.
    pub root_certificates: Vec<RootCertificate>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_idle_connections: DEFAULT_MAX_IDLE_CONNECTIONS,
            root_certificates: Vec::new(),
        }
    }
}

impl ClientOptions {
    /// Sets [`ClientOptions::connect_timeout`].
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`ClientOptions::request_timeout`].
    #[must_use]
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets [`ClientOptions::max_idle_connections`].
    #[must_use]
    pub fn with_max_idle_connections(mut self, connections: usize) -> Self {
        self.max_idle_connections = connections;
        self
    }

    /// Trusts `root` in addition to Mozilla's roots.
    #[must_use]
    pub fn with_root_certificate(mut self, root: RootCertificate) -> Self {
        self.root_certificates.push(root);
        self
    }

    /// Trusts each of `roots` in addition to Mozilla's roots.
    #[must_use]
    pub fn with_root_certificates(
        mut self,
        roots: impl IntoIterator<Item = RootCertificate>,
    ) -> Self {
        self.root_certificates.extend(roots);
        self
    }

    /// The number of worker threads `wait_many` uses for `jobs` jobs.
    pub(crate) fn workers(&self, jobs: usize) -> usize {
        self.max_idle_connections.min(MAX_WORKERS).min(jobs).max(1)
    }
}

/// A certificate to trust as a root, checked when made so a bad one fails here rather than
/// in the first handshake.
#[derive(Clone, PartialEq, Eq)]
pub struct RootCertificate(CertificateDer<'static>);

impl RootCertificate {
    /// A root from one DER-encoded X.509 certificate.
    ///
    /// # Errors
    /// [`CertificateErrorKind::InvalidCertificate`] when the bytes are not a certificate that
    /// can serve as a trust anchor.
    pub fn from_der(der: impl Into<Vec<u8>>) -> Result<Self, CertificateError> {
        let cert = CertificateDer::from(der.into());
        check_anchor(&cert)?;
        Ok(Self(cert))
    }

    /// Every `CERTIFICATE` block of a PEM file (other blocks, such as keys, are skipped).
    ///
    /// # Errors
    /// [`CertificateErrorKind::InvalidPem`] when the PEM is malformed,
    /// [`CertificateErrorKind::NoCertificate`] when it holds no certificate, and
    /// [`CertificateErrorKind::InvalidCertificate`] when a block is not a usable certificate.
    pub fn from_pem(pem: &[u8]) -> Result<Vec<Self>, CertificateError> {
        let mut roots = Vec::new();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert =
                cert.map_err(|e| CertificateError::new(CertificateErrorKind::InvalidPem, e))?;
            check_anchor(&cert)?;
            roots.push(Self(cert));
        }
        if roots.is_empty() {
            return Err(CertificateError {
                kind: CertificateErrorKind::NoCertificate,
                source: None,
            });
        }
        Ok(roots)
    }

    /// The certificate, DER-encoded.
    pub fn der(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for RootCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RootCertificate({} bytes of DER)", self.0.len())
    }
}

/// Parses `cert` the way rustls will when it builds the root store.
fn check_anchor(cert: &CertificateDer<'_>) -> Result<(), CertificateError> {
    rustls::RootCertStore::empty()
        .add(cert.clone())
        .map_err(|e| CertificateError::new(CertificateErrorKind::InvalidCertificate, e))
}

/// What was wrong with a root certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CertificateErrorKind {
    /// The PEM text is malformed.
    InvalidPem,
    /// The PEM text holds no `CERTIFICATE` block.
    NoCertificate,
    /// The bytes are not an X.509 certificate usable as a trust anchor.
    InvalidCertificate,
}

/// A root certificate that could not be used; the parser's error is its `source()`.
#[derive(Debug)]
pub struct CertificateError {
    kind: CertificateErrorKind,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl CertificateError {
    fn new(
        kind: CertificateErrorKind,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            kind,
            source: Some(source.into()),
        }
    }

    /// What was wrong.
    pub fn kind(&self) -> CertificateErrorKind {
        self.kind
    }
}

impl fmt::Display for CertificateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            CertificateErrorKind::InvalidPem => "malformed pem",
            CertificateErrorKind::NoCertificate => "no certificate in pem",
            CertificateErrorKind::InvalidCertificate => "not a usable root certificate",
        })
    }
}

impl std::error::Error for CertificateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_are_bounded() {
        let options = ClientOptions::default();
        assert_eq!(options.workers(100), MAX_WORKERS);
        assert_eq!(options.workers(3), 3);
        assert_eq!(options.workers(0), 1);
        assert_eq!(options.with_max_idle_connections(0).workers(100), 1);
    }

    #[test]
    fn bad_certificates_are_refused_when_made() {
        let e = RootCertificate::from_der(b"not der".to_vec()).unwrap_err();
        assert_eq!(e.kind(), CertificateErrorKind::InvalidCertificate);
        let e = RootCertificate::from_pem(b"no pem here").unwrap_err();
        assert_eq!(e.kind(), CertificateErrorKind::NoCertificate);
        let bad = b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        let e = RootCertificate::from_pem(bad).unwrap_err();
        assert_eq!(e.kind(), CertificateErrorKind::InvalidPem);
    }

    #[test]
    fn mozilla_roots_parse_as_anchors() {
        let first = webpki_root_certs::TLS_SERVER_ROOT_CERTS[0].to_vec();
        let root = RootCertificate::from_der(first.clone()).expect("a mozilla root");
        assert_eq!(root.der(), &first[..]);
        assert!(format!("{root:?}").contains("bytes of DER"));
    }
}
