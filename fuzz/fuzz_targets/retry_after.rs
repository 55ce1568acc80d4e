#![no_main]
//! Retry-After on arbitrary headers and an arbitrary `now`.

use std::time::{Duration, SystemTime};

use fullstory_batch::retry_after;
use libfuzzer_sys::fuzz_target;

mod input;

fuzz_target!(|data: &[u8]| {
    let Some((now, rest)) = data.split_first_chunk::<8>() else { return };
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from_le_bytes(*now) % (1 << 36));
    let Some(response) = input::response(rest) else { return };
    let cap = Duration::from_secs(3600);
    if let Some(wait) = retry_after(response.headers(), now, cap) {
        assert!(wait <= cap);
    }
    let _ = retry_after(response.headers(), now, Duration::MAX);
});
