#![no_main]
//! The tolerant page parser on an arbitrary body: it never panics, an item is either typed or
//! kept byte for byte, a misfit always names its place, and a parsed page serialises.

use fullstory_batch::http::Response;
use fullstory_batch::{ApiKey, Config, EventRequest, FailedItem, PageAnswer, UserRequest};
use libfuzzer_sys::fuzz_target;

fn check<T: serde::de::DeserializeOwned + serde::Serialize>(config: &Config, body: &[u8]) {
    let response = Response::new(body);
    if let Ok(PageAnswer::Ready(page)) = config.parse_page::<T, _>(&response) {
        for raw in &page.unread {
            assert!(raw.problem.starts_with("`results["), "{}", raw.problem);
            // Valid json by the grammar; serde_json's `Value` refuses numbers past f64's range.
            serde_json::from_str::<&serde_json::value::RawValue>(raw.json.get())
                .expect("kept as valid json");
        }
        serde_json::to_string(&page.results).expect("typed items serialise");
        serde_json::to_string(&page.unread).expect("unread items serialise");
    }
}

fuzz_target!(|data: &[u8]| {
    let config = Config::new(ApiKey::new("fuzz-key").expect("a valid key"));
    check::<EventRequest>(&config, data);
    check::<UserRequest>(&config, data);
    check::<FailedItem<EventRequest>>(&config, data);
    check::<FailedItem<UserRequest>>(&config, data);
});
