//! The request spans carry job, attempt, status and wait, and never the key.

mod common;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use fullstory_batch_fake::{Fault, Resource as FakeResource, Route, Script};
use fullstory_batch_hyper::{ClientOptions, Outcome};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Writes every span's name and fields, and every event, as text.
#[derive(Clone, Default)]
struct Capture {
    text: Arc<Mutex<String>>,
    next_id: Arc<AtomicU64>,
}

struct Writer<'a>(&'a mut String);

impl Visit for Writer<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst) + 1;
        let mut text = self.text.lock().unwrap();
        let _ = write!(text, "\nspan {id} {}:", span.metadata().name());
        span.record(&mut Writer(&mut text));
        Id::from_u64(id)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut text = self.text.lock().unwrap();
        let _ = write!(text, "\nrecord {}:", span.into_u64());
        values.record(&mut Writer(&mut text));
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut text = self.text.lock().unwrap();
        let _ = write!(text, "\nevent {}:", event.metadata().target());
        event.record(&mut Writer(&mut text));
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

#[tokio::test(flavor = "current_thread")]
async fn spans_name_the_request_and_never_the_key() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());

    let fake = fake_builder()
        .processing_time(Duration::from_millis(60))
        .start()
        .await
        .unwrap();
    let id = fake.insert_job(FakeResource::Events, one_event());
    fake.script(Script::on(Route::Status).nth(2).respond(Fault::Http503 {
        retry_after: None,
        html: true,
    }));
    let client = client(fake.base_url(), ClientOptions::new());
    let outcome = client.wait(&events_job(&id), fast_policy()).await;
    assert!(matches!(outcome, Outcome::Completed(_)), "{outcome:?}");

    let text = capture.text.lock().unwrap().clone();
    assert_no_key(&text);
    assert!(
        !text.to_ascii_lowercase().contains("authorization"),
        "{text}"
    );
    assert!(text.contains("fullstory_batch.request"), "{text}");
    assert!(text.contains(&format!("job_id={id}")), "{text}");
    assert!(text.contains("resource=\"events\""), "{text}");
    assert!(
        text.contains("attempt=1") && text.contains("attempt=3"),
        "{text}"
    );
    assert!(text.contains("http.status=200"), "{text}");
    assert!(text.contains("http.status=503"), "{text}");
    assert!(text.contains("error=\"server_error\""), "{text}");
    assert!(text.contains("wait_ms="), "{text}");
}
