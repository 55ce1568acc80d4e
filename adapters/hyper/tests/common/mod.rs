//! Shared helpers: the conformance crate's support (the fake with a known key, a fast
//! policy, a relay that counts connections, the key-leak checks) and a client.
#![allow(dead_code, missing_docs)]

pub use fullstory_batch_conformance::support::*;
use fullstory_batch_hyper::{Client, ClientOptions};

pub fn client(base_url: &str, options: ClientOptions) -> Client {
    Client::new(config(base_url), options).unwrap()
}
