//! Sorting the HTTP client's errors into the core's [`TransportKind`]s.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::time::Duration;

use fullstory_batch::{TransportError, TransportKind};

use crate::connect::{BoxError, NoFreeConnection};

/// A transport error of the kind `err` stands for, keeping `err` as its source.
pub(crate) fn transport_error(err: impl Into<BoxError>) -> TransportError {
    let err = err.into();
    let kind = kind_of(&*err);
    TransportError::with_source(kind, err)
}

/// The errors below `err`, `err` first. `io::Error::source` skips the error it wraps (it
/// returns the wrapped error's own source), so an `io::Error` is opened with `get_ref`
/// instead: that is where rustls' error sits.
fn chain<'a>(
    err: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(err), |&e: &&'a (dyn StdError + 'static)| match e
        .downcast_ref::<io::Error>()
    {
        Some(io) => io.get_ref().map(|inner| inner as &(dyn StdError + 'static)),
        None => e.source(),
    })
    // A cycle would be a bug elsewhere; never loop on it.
    .take(32)
}

fn kind_of(err: &(dyn StdError + 'static)) -> TransportKind {
    let (mut connect, mut timeout, mut reset) = (false, false, false);
    for e in chain(err) {
        if e.is::<rustls::Error>() {
            return TransportKind::Tls;
        }
        if e.is::<NoFreeConnection>() || e.is::<TimedOut>() {
            timeout = true;
        }
        if let Some(e) = e.downcast_ref::<hyper_util::client::legacy::Error>() {
            connect |= e.is_connect();
        }
        if let Some(e) = e.downcast_ref::<hyper::Error>() {
            timeout |= e.is_timeout();
            reset |= e.is_incomplete_message() || e.is_canceled() || e.is_closed();
        }
        if let Some(e) = e.downcast_ref::<io::Error>() {
            match e.kind() {
                io::ErrorKind::ConnectionRefused => connect = true,
                io::ErrorKind::TimedOut => timeout = true,
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof => reset = true,
                _ => {}
            }
        }
    }
    // A connect that timed out is still a connection that could not be made.
    if connect {
        TransportKind::Connect
    } else if timeout {
        TransportKind::Timeout
    } else if reset {
        TransportKind::Reset
    } else {
        TransportKind::Other
    }
}

/// The request (connect, headers and body) did not finish in time.
#[derive(Debug)]
pub(crate) struct TimedOut(pub(crate) Duration);

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no complete response within {:?}", self.0)
    }
}

impl StdError for TimedOut {}

pub(crate) fn timed_out(after: Duration) -> TransportError {
    TransportError::with_source(TransportKind::Timeout, TimedOut(after))
}

/// The body is larger than the configured limit.
#[derive(Debug)]
pub(crate) struct OverLimit {
    pub(crate) limit: usize,
    /// The announced `Content-Length`, when that is how it was found.
    pub(crate) declared: Option<u64>,
}

impl fmt::Display for OverLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.declared {
            Some(len) => write!(
                f,
                "content-length {len} is over the body limit of {} bytes",
                self.limit
            ),
            None => write!(
                f,
                "body grew past the limit of {} bytes; reading stopped",
                self.limit
            ),
        }
    }
}

impl StdError for OverLimit {}

pub(crate) fn over_limit(limit: usize, declared: Option<u64>) -> TransportError {
    TransportError::with_source(TransportKind::BodyTooLarge, OverLimit { limit, declared })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_kinds() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(transport_error(refused).kind, TransportKind::Connect);
        let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "cut");
        assert_eq!(transport_error(eof).kind, TransportKind::Reset);
        let other = io::Error::other("what");
        assert_eq!(transport_error(other).kind, TransportKind::Other);
    }

    #[test]
    fn rustls_inside_nested_io_errors() {
        let tls = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let outer = io::Error::other(tls);
        let err = transport_error(outer);
        assert_eq!(err.kind, TransportKind::Tls);
        assert!(err.source().is_some());
    }

    #[test]
    fn own_errors() {
        assert_eq!(
            transport_error(NoFreeConnection(Duration::from_secs(1))).kind,
            TransportKind::Timeout
        );
        assert_eq!(
            timed_out(Duration::from_millis(5)).kind,
            TransportKind::Timeout
        );
        let big = over_limit(10, Some(11));
        assert_eq!(big.kind, TransportKind::BodyTooLarge);
        assert_eq!(
            big.source().map(ToString::to_string).as_deref(),
            Some("content-length 11 is over the body limit of 10 bytes")
        );
    }
}
