#![no_main]
//! The status parser on an arbitrary status, headers and body.

use fullstory_batch::{ApiKey, Config};
use libfuzzer_sys::fuzz_target;

mod input;

fuzz_target!(|data: &[u8]| {
    let config = Config::new(ApiKey::new("fuzz-key").expect("a valid key"));
    let Some(response) = input::response(data) else { return };
    match config.parse_status(&response) {
        Ok(status) => {
            // What parses must serialise, and read back to the same value.
            let json = serde_json::to_string(&status).expect("a parsed status serialises");
            let again: fullstory_batch::JobStatusResponse = serde_json::from_str(&json).expect("and reads back");
            assert_eq!(again, status);
        }
        Err(e) => {
            // The key never shows, unless the server itself sent its text (an excerpt of
            // the body keeps what came).
            let shown = format!("{e} {e:?}");
            let echoed = data.windows(b"fuzz-key".len()).any(|w| w == b"fuzz-key");
            assert!(echoed || !shown.contains("fuzz-key"));
            let _ = (e.is_retryable(), e.retry_after(), e.kind());
        }
    }
});
