//! A source of items, split into batches: each item checked, then serialised into the body
//! of its batch's create call, so a batch waits to be sent as bytes, not as items.

use std::fmt;
use std::marker::PhantomData;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::batch::{BatchItem, IdempotencyKey, MAX_BATCH_ITEMS, ValidationError, validate};
use crate::config::Resource;

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
