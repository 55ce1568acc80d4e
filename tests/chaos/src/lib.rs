//! Chaos tests for the `fullstory-batch` client: nothing here but this note.
//!
//! The tests live in `tests/`:
//!
//! - `ureq_chaos.rs`: 200 imports through the blocking adapter (`fullstory-batch-ureq`)
//!   from 16 threads.
//! - `hyper_chaos.rs`: 1,000 imports through the async adapter (`fullstory-batch-hyper`) on
//!   one runtime, and an ignored long run of 20,000.
//! - `common/mod.rs`: the workload, the fault mix and every check on the fake's request log,
//!   written once for both.
//!
//! Each runs against the fake server (`fullstory-batch-fake`) answering 20% of requests
//! with a fault of every kind it can inject, drawn from a fixed seed, then checks from the
//! fake's request log and true job state that every import ended right.
//!
//! ```text
//! cargo test -p fullstory-batch-chaos                          # CI size
//! cargo test -p fullstory-batch-chaos --release -- --ignored   # the 20,000-job long run
//! ```
//!
//! Add `-- --nocapture` to see the summary lines.
#![forbid(unsafe_code)]

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
