//! A source of items, split into batches: each item checked, then serialised into the body
//! of its batch's create call, so a batch waits to be sent as bytes, not as items. An
//! [`Intake`] hands the batches to a [`JobSet`] as it makes room, through the journal when
//! there is one.

use std::fmt;
use std::marker::PhantomData;
use std::time::SystemTime;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::batch::{
    BatchItem, EventRequest, IdempotencyKey, MAX_BATCH_ITEMS, ValidationError, validate,
};
use crate::config::Resource;
use crate::job::{Event, JobKey};
use crate::job_set::JobSet;
use crate::journal::{Admit, JournalError, JournalRecord, JournalSink, Ledger};

const OPEN: &[u8] = br#"{"requests":["#;
const CLOSE: &[u8] = b"]}";

/// One batch, ready to create: the create call's body (JSON text, kept as sent so a retry
/// sends the same bytes) and its idempotency key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    resource: Resource,
    /// The index of the batch's first item in the whole input.
    first_item: u64,
    items: usize,
    /// The batcher's buffer itself, not a copy, shared with every create request built from
    /// it; saved as JSON text.
    #[serde(with = "body_text")]
    body: Bytes,
    key: IdempotencyKey,
}

impl Batch {
    /// A batch of `items` (1 to [`MAX_BATCH_ITEMS`], each checked), with `key`, or a fresh
    /// key for `None`.
    ///
    /// # Errors
    /// A [`ValidationError`] naming the item and field at fault.
    pub fn new<T: BatchItem>(
        items: &[T],
        key: Option<IdempotencyKey>,
    ) -> Result<Self, ValidationError> {
        validate(items)?;
        let mut batcher = Batcher::<T>::new(MAX_BATCH_ITEMS);
        for item in items {
            batcher.push_checked(item);
        }
        let batch = batcher.finish().ok_or(ValidationError::Empty)?;
        Ok(match key {
            Some(key) => batch.with_key(key),
            None => batch,
        })
    }

    /// The same batch under another idempotency key (one saved before a crash, say).
    #[must_use]
    pub fn with_key(mut self, key: IdempotencyKey) -> Self {
        self.key = key;
        self
    }

    /// Events or users.
    pub fn resource(&self) -> Resource {
        self.resource
    }

    /// The index, in the whole input, of this batch's first item.
    pub fn first_item(&self) -> u64 {
        self.first_item
    }

    /// How many items it holds.
    pub fn len(&self) -> usize {
        self.items
    }

    /// Always `false`: a batch holds at least one item.
    pub fn is_empty(&self) -> bool {
        self.items == 0
    }

    /// The create call's body (JSON text), as sent: cloning it shares the bytes.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The idempotency key its create carries.
    pub fn key(&self) -> &IdempotencyKey {
        &self.key
    }
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("resource", &self.resource)
            .field("first_item", &self.first_item)
            .field("items", &self.items)
            .field("bytes", &self.body.len())
            .field("key", &self.key)
            .finish()
    }
}

/// A batch body saved as its JSON text (it always is UTF-8), not as a list of numbers.
mod body_text {
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(body: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        let text = std::str::from_utf8(body).map_err(serde::ser::Error::custom)?;
        s.serialize_str(text)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        String::deserialize(d).map(Bytes::from)
    }
}

/// Splits a stream of items into [`Batch`]es of at most `size` items, checking and
/// serialising each item as it comes: memory holds one batch's bytes, never the input.
///
/// ```
/// use fullstory_batch::{Batcher, EventRequest};
///
/// let mut batcher = Batcher::new(2);
/// let item = EventRequest { name: "Signed Up".into(), ..EventRequest::default() };
/// assert!(batcher.push(&item)?.is_none());
/// let full = batcher.push(&item)?.expect("two items fill a batch of two");
/// assert_eq!(full.len(), 2);
/// assert_eq!(full.body(), r#"{"requests":[{"name":"Signed Up"},{"name":"Signed Up"}]}"#);
/// assert!(batcher.finish().is_none());
/// # Ok::<(), fullstory_batch::ValidationError>(())
/// ```
pub struct Batcher<T> {
    size: usize,
    buf: Vec<u8>,
    /// The last batch's body length: the next batch's buffer is reserved at that size plus
    /// a little on its first item, rather than grown by doubling (a 7.5 MB body would
    /// otherwise sit in an 8 MiB buffer, after copies at 4 and 2 MiB...).
    last_len: usize,
    /// Every body handed out, shared: once a body's holders are gone (its job created),
    /// its buffer fills the next batch. A new buffer is taken only when every one is still
    /// held, so there are never more than the most bodies the caller held at once: for a
    /// [`crate::JobSet`], its jobs in progress plus the one queued. Freeing them instead
    /// grows the heap: glibc raises its mmap threshold to the last large block freed, so
    /// later multi-megabyte buffers come from arena holes that a slightly longer body no
    /// longer fits (peak RSS 48 MiB at 2 M events, and rising with the input).
    handed: Vec<Bytes>,
    in_buf: usize,
    seen: u64,
    _items: PhantomData<fn(&T)>,
}

impl<T: BatchItem> Batcher<T> {
    /// Batches of at most `size` items (clamped to 1..=[`MAX_BATCH_ITEMS`]).
    pub fn new(size: usize) -> Self {
        Self {
            size: size.clamp(1, MAX_BATCH_ITEMS),
            buf: Vec::new(),
            last_len: 0,
            handed: Vec::new(),
            in_buf: 0,
            seen: 0,
            _items: PhantomData,
        }
    }

    /// Checks and adds one item; hands back the batch it fills, if it fills one.
    ///
    /// # Errors
    /// A [`ValidationError::Item`] whose index counts from the first item ever pushed; the
    /// item is not added.
    pub fn push(&mut self, item: &T) -> Result<Option<Batch>, ValidationError> {
        item.validate()
            .map_err(|(field, problem)| ValidationError::Item {
                index: usize::try_from(self.seen).unwrap_or(usize::MAX),
                field,
                problem,
            })?;
        self.push_checked(item);
        Ok((self.in_buf == self.size).then(|| self.take()))
    }

    /// The last, partly filled batch, if any item is left.
    pub fn finish(mut self) -> Option<Batch> {
        (self.in_buf > 0).then(|| self.take())
    }

    /// Items pushed so far.
    pub fn items_seen(&self) -> u64 {
        self.seen
    }

    fn push_checked(&mut self, item: &T) {
        if self.in_buf == 0 {
            self.reuse_a_body();
            self.buf.reserve_exact(self.last_len + self.last_len / 16);
        }
        self.buf
            .extend_from_slice(if self.in_buf == 0 { OPEN } else { b"," });
        serde_json::to_writer(&mut self.buf, item).expect("batch items serialise to JSON");
        self.in_buf += 1;
        self.seen += 1;
    }

    /// Takes back the buffer of a body no one else holds any more, if there is one.
    fn reuse_a_body(&mut self) {
        let Some(free) = self.handed.iter().position(Bytes::is_unique) else {
            return;
        };
        let body = self.handed.swap_remove(free);
        if let Ok(buf) = body.try_into_mut() {
            let mut buf = Vec::from(buf);
            buf.clear();
            self.buf = buf;
        }
    }

    fn take(&mut self) -> Batch {
        self.buf.extend_from_slice(CLOSE);
        // Slack past an eighth (the first batch, grown by doubling) is given back, down to
        // the sixteenth a later batch reserves, so the buffer can be reused as it is.
        let len = self.buf.len();
        if self.buf.capacity() - len > len / 8 {
            self.buf.shrink_to(len + len / 16);
        }
        let body = Bytes::from(std::mem::take(&mut self.buf));
        self.last_len = body.len();
        self.handed.push(body.clone());
        let items = std::mem::take(&mut self.in_buf);
        Batch {
            resource: T::RESOURCE,
            first_item: self.seen - items as u64,
            items,
            body,
            key: IdempotencyKey::generate(),
        }
    }
}

impl<T> fmt::Debug for Batcher<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batcher")
            .field("size", &self.size)
            .field("in_batch", &self.in_buf)
            .field("seen", &self.seen)
            .finish()
    }
}

/// An import's input on its way into a [`JobSet`]: the [`Batcher`] that cuts it, and the
/// optional journal (a [`Ledger`] that decides, a [`JournalSink`] that makes records
/// durable). It decides what each item, each batch and each event means; the driver only
/// fetches items, from an iterator, a stream or anything else. The sink is the driver's
/// I/O, called by the intake at the points it decides; the intake itself does none.
///
/// The driver's part, added to the loop of [`JobSet`]:
/// 1. At the start of each step, [`Intake::flush`]: the records the events handed out so
///    far called for are appended (after the caller handled those events).
/// 2. Take events with [`Intake::poll_event`] (or note each one taken from the set with
///    [`Intake::note`]).
/// 3. While [`Intake::wants_item`], read one item and hand it to [`Intake::offer`]: `None`
///    when the input has ended, `Err` for an item that could not be read.
/// 4. Send, sleep and hand answers to the set as usual. The run is over once the set is
///    empty and [`Intake::input_done`].
///
/// With a journal, a batch goes to the set only after its record was appended: its create
/// is never sent without it. A record that cannot be written, or a batch that is not the
/// one journaled at its place, stops the input there ([`Intake::journal_error`]); the jobs
/// already in the set run on. Dropped, it still appends the records noted since the last
/// flush.
///
/// ```
/// use std::time::SystemTime;
/// use fullstory_batch::journal::{Fingerprint, Header, JournalRecord};
/// use fullstory_batch::{ApiKey, Config, EventRequest, Intake, JobSet, Ledger, Policy, Resource};
///
/// let now = SystemTime::UNIX_EPOCH;
/// let config = Config::new(ApiKey::new("my-api-key")?);
/// let mut set: JobSet = JobSet::new(config, Policy::default(), now, 7).with_max_in_progress(1);
/// let ledger = Ledger::new(Header::new(Resource::Events, 2, Fingerprint::default()));
/// let mut intake: Intake<EventRequest, Vec<JournalRecord>> =
///     Intake::new(500).with_journal(ledger, Vec::new());
/// let mut items = (0..5).map(|i| EventRequest { name: format!("e{i}"), ..EventRequest::default() });
/// while intake.wants_item(&set) {
///     intake.offer(&mut set, items.next().map(Ok), now);
/// }
/// // Cut at the ledger's batch size: one batch running, one waiting its turn.
/// assert_eq!(set.len(), 2);
/// assert!(!intake.input_done());
/// let create = set.poll_transmit(now).expect("the first batch's create is due");
/// assert_eq!(create.request.method(), "POST");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Intake<T = EventRequest, S: JournalSink = Box<dyn JournalSink + Send>> {
    /// `None` once the input ended or was refused, or for a run without input.
    batcher: Option<Batcher<T>>,
    journal: Option<Journaling<S>>,
}

/// The journal of an import: the ledger decides, the sink makes records durable.
struct Journaling<S: JournalSink> {
    ledger: Ledger,
    sink: S,
    /// Records an event called for, appended at the next flush: after the caller handled
    /// the event (wrote a job's failed items, say).
    pending: Vec<JournalRecord>,
    error: Option<JournalError>,
}

impl<S: JournalSink> Journaling<S> {
    /// Appends the pending records, in order, up to the first that fails.
    fn flush(&mut self) -> Result<(), JournalError> {
        for record in std::mem::take(&mut self.pending) {
            if let Err(e) = self.sink.append(&record) {
                return Err(JournalError::Write(e));
            }
        }
        Ok(())
    }
}

impl<S: JournalSink> Drop for Journaling<S> {
    /// A run dropped after its last event still writes the records that event called for.
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

impl<T: BatchItem, S: JournalSink> Intake<T, S> {
    /// An input to cut into batches of `batch_size` items (clamped as [`Batcher::new`]).
    pub fn new(batch_size: usize) -> Self {
        Self {
            batcher: Some(Batcher::new(batch_size)),
            journal: None,
        }
    }

    /// No input: for a set that only waits on jobs. [`Intake::input_done`] from the start.
    pub fn without_input() -> Self {
        Self {
            batcher: None,
            journal: None,
        }
    }

    /// Journals the input (before the first [`Intake::offer`]): every batch's record goes
    /// to `sink`, made durable, before the batch goes to the set, and `ledger` (fresh, or
    /// replayed from the same sink's records) decides what is skipped, waited on, created
    /// again under its old key, or planned. The input is cut at the ledger's batch size.
    #[must_use]
    pub fn with_journal(mut self, ledger: Ledger, sink: S) -> Self {
        if let Some(batcher) = &mut self.batcher {
            *batcher = Batcher::new(ledger.batch_size());
        }
        self.journal = Some(Journaling {
            ledger,
            sink,
            pending: Vec::new(),
            error: None,
        });
        self
    }

    /// The journal's ledger: every batch's job, and the counts of those finished.
    pub fn ledger(&self) -> Option<&Ledger> {
        self.journal.as_ref().map(|j| &j.ledger)
    }

    /// Why the journal stopped the input, if it did (a changed input, a write that
    /// failed): no batch that needed a record went to the set without it.
    pub fn journal_error(&self) -> Option<&JournalError> {
        self.journal.as_ref().and_then(|j| j.error.as_ref())
    }

    /// Whether every item of the input was read (and none refused), or the journal
    /// stopped it: no item is wanted any more.
    pub fn input_done(&self) -> bool {
        self.batcher.is_none()
    }

    /// `true` when the next item should be read and offered: the input is open and `set`
    /// has room for a batch ([`JobSet::wants_batch`]).
    pub fn wants_item(&self, set: &JobSet<T>) -> bool {
        self.batcher.is_some() && set.wants_batch()
    }

    /// Takes the next item of the input (`None`: the input has ended; `Err`: an item the
    /// caller could not read). A batch it fills, or the last one at the end, goes to `set`
    /// as the journal decides. An invalid or unread item refuses the input there
    /// ([`JobSet::reject_input`]). Ignored once [`Intake::input_done`].
    pub fn offer(
        &mut self,
        set: &mut JobSet<T>,
        item: Option<Result<T, ValidationError>>,
        now: SystemTime,
    ) {
        let Some(batcher) = &mut self.batcher else {
            return;
        };
        let pushed = match item {
            Some(Ok(item)) => batcher.push(&item),
            Some(Err(unread)) => Err(unread),
            None => {
                if let Some(last) = self.batcher.take().and_then(Batcher::finish) {
                    self.admit(set, last, now);
                }
                return;
            }
        };
        match pushed {
            Ok(Some(batch)) => self.admit(set, batch, now),
            Ok(None) => {}
            Err(invalid) => {
                self.batcher = None;
                set.reject_input(invalid);
            }
        }
    }

    /// Appends the records the events handed out so far called for. A write that fails
    /// stops the input ([`Intake::journal_error`]).
    pub fn flush(&mut self) {
        if let Some(journal) = &mut self.journal
            && let Err(e) = journal.flush()
        {
            self.stop(e);
        }
    }

    /// An event on its way to the caller: the record it calls for, if any, is appended at
    /// the next [`Intake::flush`].
    pub fn note(&mut self, key: JobKey, event: &Event<T>) {
        if let Some(journal) = &mut self.journal
            && let Some(record) = journal.ledger.on_event(key, event)
        {
            journal.pending.push(record);
        }
    }

    /// The set's next event, noted ([`Intake::note`]).
    pub fn poll_event(&mut self, set: &mut JobSet<T>) -> Option<(JobKey, Event<T>)> {
        let (key, event) = set.poll_event()?;
        self.note(key, &event);
        Some((key, event))
    }

    /// Hands a batch to the set; with a journal, as the ledger decides, its record durable
    /// first.
    fn admit(&mut self, set: &mut JobSet<T>, batch: Batch, now: SystemTime) {
        let Some(journal) = &mut self.journal else {
            set.add_batch(batch, now);
            return;
        };
        let admitted = journal.ledger.admit(batch).and_then(|admit| match admit {
            Admit::Skip { .. } => Ok(()),
            Admit::Wait { index, job } => {
                let key = set.add_job(job, now);
                journal.ledger.bind(key, index);
                Ok(())
            }
            Admit::Create {
                index,
                batch,
                record,
            } => {
                if let Some(record) = record {
                    journal.sink.append(&record).map_err(JournalError::Write)?;
                }
                let key = set.add_batch(batch, now);
                journal.ledger.bind(key, index);
                Ok(())
            }
        });
        if let Err(e) = admitted {
            self.stop(e);
        }
    }

    /// The journal failed: no more input; the first error is kept.
    fn stop(&mut self, error: JournalError) {
        self.batcher = None;
        if let Some(journal) = &mut self.journal {
            journal.error.get_or_insert(error);
        }
    }
}

impl<T, S: JournalSink> fmt::Debug for Intake<T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Intake")
            .field("batcher", &self.batcher)
            .field("ledger", &self.journal.as_ref().map(|j| &j.ledger))
            .field(
                "pending",
                &self.journal.as_ref().map_or(0, |j| j.pending.len()),
            )
            .field(
                "error",
                &self.journal.as_ref().and_then(|j| j.error.as_ref()),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EventRequest;

    fn event(name: &str) -> EventRequest {
        EventRequest {
            name: name.into(),
            ..EventRequest::default()
        }
    }

    #[test]
    fn a_batch_body_is_the_create_body() {
        let batch = Batch::new(&[event("a"), event("b")], None).unwrap();
        let body: serde_json::Value = serde_json::from_slice(batch.body()).unwrap();
        assert_eq!(body["requests"].as_array().unwrap().len(), 2);
        assert_eq!(batch.len(), 2);
        assert_eq!(batch.first_item(), 0);
    }

    #[test]
    fn batches_split_and_count_from_the_start() {
        let mut batcher = Batcher::new(3);
        let mut batches = Vec::new();
        for i in 0..7 {
            batches.extend(batcher.push(&event(&format!("e{i}"))).unwrap());
        }
        batches.extend(batcher.finish());
        let sizes: Vec<_> = batches.iter().map(|b| (b.first_item(), b.len())).collect();
        assert_eq!(sizes, [(0, 3), (3, 3), (6, 1)]);
        assert_ne!(batches[0].key(), batches[1].key());
    }

    #[test]
    fn a_bad_item_is_named_by_its_place_in_the_input() {
        let mut batcher = Batcher::new(2);
        for _ in 0..3 {
            batcher.push(&event("ok")).unwrap();
        }
        let e = batcher.push(&event(" ")).unwrap_err();
        assert_eq!(
            e,
            ValidationError::Item {
                index: 3,
                field: "name",
                problem: "is required"
            }
        );
        // The bad item was not added: the batch in progress still holds one.
        assert_eq!(batcher.finish().map(|b| b.len()), Some(1));
    }

    #[test]
    fn the_next_buffer_is_sized_from_the_last_batch() {
        let mut batcher = Batcher::new(1_000);
        let mut last_len = 0;
        for i in 0..3_000 {
            let reserved = batcher.buf.capacity();
            let batch = batcher.push(&event(&format!("event-{i:05}"))).unwrap();
            if let Some(batch) = batch {
                // Filled within what was reserved at its first item: never grown.
                assert!(
                    batch.body().len() <= reserved,
                    "{} > {reserved}",
                    batch.body().len()
                );
                last_len = batch.body().len();
            } else if batcher.in_buf == 1 && last_len > 0 {
                let reserved = batcher.buf.capacity();
                assert!(reserved >= last_len && reserved <= last_len * 17 / 16 + 1);
            }
        }
    }

    #[test]
    fn a_body_no_one_holds_fills_the_next_batch() {
        let mut batcher = Batcher::new(100);
        let fill = |batcher: &mut Batcher<EventRequest>| {
            (0..100)
                .find_map(|i| batcher.push(&event(&format!("event-{i:03}"))).unwrap())
                .expect("100 items fill a batch")
        };
        let first = fill(&mut batcher);
        let first_at = first.body().as_ptr();
        // Still held (its create not answered yet): the next batch takes a new buffer.
        let second = fill(&mut batcher);
        assert_ne!(second.body().as_ptr(), first_at);
        drop(first);
        let third = fill(&mut batcher);
        assert_eq!(
            third.body().as_ptr(),
            first_at,
            "the freed buffer is reused"
        );
        let body: serde_json::Value = serde_json::from_slice(third.body()).unwrap();
        assert_eq!(body["requests"].as_array().unwrap().len(), 100);
        drop((second, third));
    }

    #[test]
    fn buffers_never_outnumber_the_bodies_held_at_once() {
        let mut batcher = Batcher::new(10);
        let mut held = std::collections::VecDeque::new();
        for i in 0..1_000 {
            if let Some(batch) = batcher.push(&event(&format!("event-{i:04}"))).unwrap() {
                held.push_back(batch);
                if held.len() > 2 {
                    held.pop_front();
                }
            }
        }
        // Two held by the caller, and one free, ready for the next batch.
        assert_eq!(batcher.handed.len(), 3);
    }

    #[test]
    fn an_empty_batch_is_refused() {
        assert_eq!(
            Batch::new::<EventRequest>(&[], None),
            Err(ValidationError::Empty)
        );
    }
}
