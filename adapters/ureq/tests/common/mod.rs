//! Shared helpers: the conformance crate's support (the fake with a known key, a fast
//! policy, raw servers, the key-leak checks) and a client for a base URL.
#![allow(dead_code)]

use std::time::Duration;

pub use fullstory_batch_conformance::support::*;
use fullstory_batch_ureq::{Client, ClientOptions};

pub fn client(base_url: &str) -> Client {
    Client::new(config(base_url), quick_options()).expect("no custom roots")
}

/// Timeouts short enough that a hung test fails fast.
pub fn quick_options() -> ClientOptions {
    ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_request_timeout(Duration::from_secs(5))
}
