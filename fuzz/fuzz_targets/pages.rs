#![no_main]
//! The create-response, page and error-page parsers on an arbitrary status, headers and body.

use fullstory_batch::{ApiKey, Config, EventRequest, FailedItem, PageAnswer, UserRequest};
use libfuzzer_sys::fuzz_target;

mod input;

fuzz_target!(|data: &[u8]| {
    let config = Config::new(ApiKey::new("fuzz-key").expect("a valid key"));
    let Some(response) = input::response(data) else { return };
    if let Ok(job) = config.parse_create(&response) {
        serde_json::to_string(&job).expect("a parsed job serialises");
    }
    if let Ok(PageAnswer::Ready(page)) = config.parse_page::<EventRequest, _>(&response) {
        serde_json::to_string(&page).expect("a parsed page serialises");
    }
    if let Ok(PageAnswer::Ready(page)) = config.parse_page::<FailedItem<UserRequest>, _>(&response) {
        serde_json::to_string(&page).expect("a parsed page serialises");
    }
});
