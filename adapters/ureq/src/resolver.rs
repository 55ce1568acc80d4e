//! Name resolution without a thread per request.
//!
//! ureq resolves the host before every request, even one that will go over a pooled
//! connection, and its [`DefaultResolver`] enforces a timeout by running the lookup on a
//! fresh OS thread. The client always sets timeouts, so that was one `clone3` per request
//! (ADAPTER-NOTES, 2026-12-01), about half of the adapter's CPU per status call.
//!
//! [`CachingResolver`] answers an IP literal at once, without any lookup, and keeps the
//! answer for a host name for [`TTL`]: only a lookup that misses the cache goes to
//! [`DefaultResolver`], which still runs it within the resolve timeout (on a thread of its
//! own, as before). A client talks to one host, so one entry is all the cache keeps.

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ureq::config::{Config, IpFamily};
use ureq::http::Uri;
use ureq::http::uri::Scheme;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// How long a looked-up host's addresses are reused. `std`'s lookup does not say how long
/// the DNS answer may be kept, so this is a fixed, short time: a host that moves is
/// followed within a minute, and a poll every few seconds looks up about once a minute.
pub(crate) const TTL: Duration = Duration::from_secs(60);

/// A [`Resolver`] that never spawns for an IP literal or a cached host.
#[derive(Debug, Default)]
pub(crate) struct CachingResolver {
    inner: DefaultResolver,
    cached: Mutex<Option<Entry>>,
}

#[derive(Debug, Clone)]
struct Entry {
    host: String,
    port: u16,
    family: IpFamily,
    addrs: ResolvedSocketAddrs,
    until: Instant,
}

impl Resolver for CachingResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let Some((host, port)) = host_port(uri) else {
            // Not something this resolver understands: ureq's says why.
            return self.inner.resolve(uri, config, timeout);
        };
        let family = config.ip_family();
        if let Some(ip) = ip_literal(host) {
            let addr = SocketAddr::new(ip, port);
            let mut addrs = self.empty();
            addrs.extend_wanted(family, [addr]);
            return if addrs.is_empty() {
                Err(ureq::Error::HostNotFound)
            } else {
                Ok(addrs)
            };
        }
        let now = Instant::now();
        if let Some(hit) = self.lookup(host, port, family, now) {
            return Ok(hit);
        }
        // A miss: the lookup runs outside the lock, so a slow DNS server holds up no other
        // thread beyond its own timeout. Threads that miss together each look up once.
        let addrs = self.inner.resolve(uri, config, timeout)?;
        if let Ok(mut cached) = self.cached.lock() {
            *cached = Some(Entry {
                host: host.to_owned(),
                port,
                family,
                addrs: addrs.clone(),
                until: now + TTL,
            });
        }
        Ok(addrs)
    }
}

impl CachingResolver {
    fn lookup(
        &self,
        host: &str,
        port: u16,
        family: IpFamily,
        now: Instant,
    ) -> Option<ResolvedSocketAddrs> {
        // A poisoned lock only means another thread panicked mid-update: look up again.
        let cached = self.cached.lock().ok()?;
        let entry = cached.as_ref()?;
        (entry.host == host && entry.port == port && entry.family == family && now < entry.until)
            .then(|| entry.addrs.clone())
    }
}

/// The host (brackets kept for IPv6) and port of an `http` or `https` URI.
fn host_port(uri: &Uri) -> Option<(&str, u16)> {
    let authority = uri.authority()?;
    let scheme = uri.scheme()?;
    let default = if *scheme == Scheme::HTTPS {
        443
    } else if *scheme == Scheme::HTTP {
        80
    } else {
        return None;
    };
    Some((authority.host(), authority.port_u16().unwrap_or(default)))
}

/// `host` as an address when it is written as one: `127.0.0.1` or `[::1]`.
fn ip_literal(host: &str) -> Option<IpAddr> {
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse().ok(),
        None => host.parse().ok(),
    }
}

trait ExtendWanted {
    fn extend_wanted(&mut self, family: IpFamily, addrs: impl IntoIterator<Item = SocketAddr>);
}

impl ExtendWanted for ResolvedSocketAddrs {
    fn extend_wanted(&mut self, family: IpFamily, addrs: impl IntoIterator<Item = SocketAddr>) {
        for addr in family.keep_wanted(addrs.into_iter()) {
            if self.try_push(addr).is_err() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(resolver: &CachingResolver, uri: &str) -> Result<Vec<SocketAddr>, ureq::Error> {
        let uri: Uri = uri.parse().expect("a uri");
        let config = Config::default();
        resolver
            .resolve(&uri, &config, NextTimeout::default())
            .map(|addrs| addrs.to_vec())
    }

    #[test]
    fn ip_literals_need_no_lookup() {
        let resolver = CachingResolver::default();
        assert_eq!(
            resolve(&resolver, "http://127.0.0.1:8080/v2").unwrap(),
            ["127.0.0.1:8080".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            resolve(&resolver, "https://[::1]/x").unwrap(),
            ["[::1]:443".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            resolve(&resolver, "http://10.1.2.3/").unwrap(),
            ["10.1.2.3:80".parse::<SocketAddr>().unwrap()]
        );
        // Nothing was looked up, so nothing was cached.
        assert!(resolver.cached.lock().unwrap().is_none());
    }

    #[test]
    fn names_are_cached_per_host_and_port() {
        let resolver = CachingResolver::default();
        let first = resolve(&resolver, "http://localhost:9/").expect("localhost resolves");
        assert!(first.iter().all(|a| a.port() == 9 && a.ip().is_loopback()));
        let entry = resolver.cached.lock().unwrap().clone().expect("cached");
        assert_eq!((entry.host.as_str(), entry.port), ("localhost", 9));
        // A hit returns the cached addresses, even when they are not what DNS says now.
        let fake: SocketAddr = "192.0.2.1:9".parse().unwrap();
        resolver.cached.lock().unwrap().as_mut().unwrap().addrs = {
            let mut addrs = resolver.empty();
            addrs.push(fake);
            addrs
        };
        assert_eq!(resolve(&resolver, "http://localhost:9/x").unwrap(), [fake]);
        // Another port, or an expired entry, is looked up again.
        assert_ne!(resolve(&resolver, "http://localhost:10/").unwrap(), [fake]);
        resolver.cached.lock().unwrap().as_mut().unwrap().until = Instant::now();
        assert_ne!(resolve(&resolver, "http://localhost:10/").unwrap(), [fake]);
    }

    #[test]
    fn unknown_schemes_go_to_ureq() {
        let resolver = CachingResolver::default();
        let e = resolve(&resolver, "ftp://127.0.0.1/").unwrap_err();
        assert!(matches!(e, ureq::Error::BadUri(_)), "{e}");
    }
}
