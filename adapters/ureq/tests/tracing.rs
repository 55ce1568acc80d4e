//! What the adapter records with `tracing`: job id, attempt, status and waits, never the key.

mod common;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use fullstory_batch_fake::{Fault, Route, Script};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// A subscriber that writes every span field and event field into one string.
#[derive(Clone, Default)]
struct Capture {
    text: Arc<Mutex<String>>,
    ids: Arc<AtomicU64>,
}

struct Writer<'a>(&'a mut String);

impl Visit for Writer<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut text = self.text.lock().unwrap();
        let _ = write!(text, "\nspan {} ", span.metadata().name());
        span.record(&mut Writer(&mut text));
        Id::from_u64(self.ids.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &Id, values: &Record<'_>) {
        let mut text = self.text.lock().unwrap();
        text.push_str("\nrecord ");
        values.record(&mut Writer(&mut text));
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut text = self.text.lock().unwrap();
        text.push_str("\nevent ");
        event.record(&mut Writer(&mut text));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn requests_and_waits_are_traced_without_the_key() {
    let fake = fake()
        .processing_time(Duration::from_millis(100))
        .start_blocking()
        .unwrap();
    let (id, job) = insert_job(&fake);
    fake.script(
        Script::on(Route::Status)
            .for_job(id.as_str())
            .respond(Fault::ConnectionReset),
    );
    let client = client(fake.base_url());
    let capture = Capture::default();
    let outcome =
        tracing::subscriber::with_default(capture.clone(), || client.wait(&job, fast_policy()));
    assert!(outcome.status().is_some(), "{outcome:?}");
    let text = capture.text.lock().unwrap().clone();
    assert!(text.contains("span fullstory_batch.status"), "{text}");
    assert!(text.contains(&format!("job={id}")), "{text}");
    assert!(text.contains("attempt=1"), "{text}");
    assert!(text.contains("attempt=2"), "{text}");
    assert!(text.contains("http.status=200"), "{text}");
    assert!(text.contains("kind=\"reset\""), "{text}");
    assert!(text.contains("wait_ms="), "{text}");
    assert!(
        !text.contains(KEY) && !text.contains("4f9c2e"),
        "the key leaked: {text}"
    );
}
