//! The trace check, alone in its binary: it installs the process's global subscriber, so no
//! other test's thread can cache "never" for a callsite it watches.

mod adapter;

#[test]
fn traces_name_the_request_never_the_key() {
    fullstory_batch_conformance::checks::traces_name_the_request_never_the_key::<adapter::Ureq>();
}
