//! Items read as they come from a file or stdin, never the whole input in memory,
//! gzip-compressed or not, a leading UTF-8 byte-order mark skipped.
//!
//! The input is a stream of JSON values separated by any whitespace (or none, after an
//! object, array or string): JSON lines, pretty objects one after another as `jq` prints
//! them, or a mix. Each value is one item, except:
//! - an array stands for its elements (a file that is one JSON array);
//! - an object whose **first key** is `requests` is the API's create body: the elements of
//!   its `requests` array are the items, read one by one like an array's (`requests` must be
//!   its only key);
//! - an object whose first key holds any other array (`{"events": [...]}`) is refused: it is
//!   neither one request (no request starts with an array) nor the create body.
//!
//! Any other object is one item, whatever its other keys. Each item carries its place (the
//! line and column where it starts, and its number in its array), so an error can name it.
//! UTF-16 and CSV are refused by name.

use std::io::{self, Cursor, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::read::MultiGzDecoder;
use fullstory_batch::BatchItem;
use fullstory_batch::journal::{Fingerprint, fnv1a64};
use serde::de::DeserializeOwned;

/// The first two bytes of every gzip stream (RFC 1952): a compressed input is known by
/// them, whatever its name, so stdin works too.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Bytes read so far, shared with the progress line.
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    fn add(&self, n: usize) {
        self.0.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// A reader that counts what passes.
struct Counted<R> {
    inner: R,
    count: Counter,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.add(n);
        Ok(n)
    }
}

/// Which array an item is an element of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Array {
    /// An array in the stream (a file that is one JSON array).
    Plain,
    /// The `requests` array of a create body.
    Requests,
}

/// Where an item is in the input, for messages: the line and column (1-based, in bytes) of
/// its first byte, and its 1-based number in its array if it is an element of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub line: u64,
    pub column: u64,
    pub element: Option<(Array, u64)>,
}

impl Place {
    /// An item of the stream itself.
    pub fn at(line: u64, column: u64) -> Self {
        Self {
            line,
            column,
            element: None,
        }
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self { line, column, .. } = self;
        match self.element {
            // JSON lines and pretty objects start at column 1: the line says it all.
            None if *column == 1 => write!(f, "line {line}"),
            None => write!(f, "line {line}, column {column}"),
            Some((Array::Plain, n)) => write!(f, "array item {n} (line {line}, column {column})"),
            Some((Array::Requests, n)) => {
                write!(f, "`requests` item {n} (line {line}, column {column})")
            }
        }
    }
}

/// Opens `file` (`-`: stdin) for reading items, counting bytes into `count` (as they are
/// in the file: compressed, for gzip).
pub fn open(file: &Path, count: Counter) -> Result<Items, String> {
    let inner: Box<dyn Read> = if file == Path::new("-") {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(file).map_err(|e| e.to_string())?)
    };
    Ok(items(text_of(Counted { inner, count })?))
}

/// The items of `text`, read from its start.
fn items(text: Box<dyn Read>) -> Items {
    Items {
        source: text,
        store: Vec::new(),
        end: 0,
        pos: 0,
        eof: false,
        base: 0,
        line: 1,
        line_start: 0,
        state: State::Start,
        max_item: MAX_ITEM_BYTES,
    }
}

/// `raw` as text: decompressed if it starts as gzip, else as it is.
fn text_of(mut raw: impl Read + 'static) -> Result<Box<dyn Read>, String> {
    let mut head = Vec::with_capacity(GZIP_MAGIC.len());
    (&mut raw)
        .take(GZIP_MAGIC.len() as u64)
        .read_to_end(&mut head)
        .map_err(|e| e.to_string())?;
    let gzip = head == GZIP_MAGIC;
    // The bytes looked at go back in front of the rest.
    let raw = Cursor::new(head).chain(raw);
    Ok(if gzip {
        Box::new(Gunzip(MultiGzDecoder::new(raw)))
    } else {
        Box::new(raw)
    })
}

/// The most bytes one item may take (a value of the stream, or an array element), so that
/// input without an end to its item cannot fill memory: many times the largest user the API
/// accepts ([`fullstory_batch::MAX_USER_ITEM_BYTES`], 4.2 MiB; events have no stated bound).
pub const MAX_ITEM_BYTES: usize = 32 << 20;

/// How much is read from the input at a time.
const CHUNK: usize = 1 << 16;

/// How many bytes past an item's start are in memory before it is parsed where it lies:
/// an item longer than what is left is found by [`Items::extent`] first.
const AHEAD: usize = 1 << 12;

/// The UTF-8 byte-order mark, skipped at the start.
const UTF8_BOM: [u8; 3] = [0xef, 0xbb, 0xbf];

/// An item and its place, `None` at the end, or what is wrong where.
type Next<T> = Result<Option<(T, Place)>, (Place, String)>;

/// Where the reader is in the shape of the input.
#[derive(Debug, Clone, Copy)]
enum State {
    /// Nothing read yet: a byte-order mark or UTF-16 may come.
    Start,
    /// Between the values of the stream.
    Stream,
    /// In an array, after `items` of its elements.
    InArray { kind: Array, items: u64 },
    /// At the end of the input, or after an error.
    Ended,
}

/// What a value of the stream is: an object by its first key, an array by its `[`.
enum Shape {
    /// One item.
    Item,
    /// An array of items that opens after this many bytes (for the create body, past
    /// `{"requests": [`).
    Opens(Array, usize),
    /// `requests` holds something else than an array.
    BodyWithoutArray,
    /// Its first key (named) holds an array.
    Wrapper(String),
}

/// The items of an input, one at a time, each with its place.
pub struct Items {
    source: Box<dyn Read>,
    /// Input read and not yet consumed, from `pos`; bytes before `pos` are dropped when
    /// more is read. At most an item (capped) and a chunk; filled up to `end`.
    store: Vec<u8>,
    end: usize,
    pos: usize,
    eof: bool,
    /// The text offset of `buf[0]`.
    base: u64,
    /// The line of `buf[pos]`, and the text offset where that line starts.
    line: u64,
    line_start: u64,
    state: State,
    max_item: usize,
}

impl Items {
    /// The next item parsed as `T`, and its place; `Ok(None)` at the end. After an error,
    /// reading ends.
    pub fn next_item<T: BatchItem>(&mut self) -> Next<T> {
        self.next_value()
    }

    fn next_value<T: DeserializeOwned>(&mut self) -> Next<T> {
        let next = self.step();
        if next.is_err() {
            self.state = State::Ended;
        }
        next
    }

    fn step<T: DeserializeOwned>(&mut self) -> Next<T> {
        loop {
            match self.state {
                State::Ended => return Ok(None),
                State::Start => {
                    self.start()?;
                    self.state = State::Stream;
                }
                State::Stream => {
                    let Some(b) = self.skip_ws()? else {
                        self.state = State::Ended;
                        return Ok(None);
                    };
                    let place = self.here(None);
                    let shape = match b {
                        b'[' => Shape::Opens(Array::Plain, 1),
                        b'{' => self.shape().map_err(|e| (place, describe(&e)))?,
                        _ => Shape::Item,
                    };
                    match shape {
                        Shape::Item => return self.item(place).map(Some),
                        Shape::Opens(kind, opened) => {
                            self.advance(opened);
                            self.state = State::InArray { kind, items: 0 };
                        }
                        Shape::BodyWithoutArray => {
                            return Err((
                                place,
                                "the create body's `requests` is not an array".into(),
                            ));
                        }
                        Shape::Wrapper(key) => return Err((place, wrapper(&key))),
                    }
                }
                State::InArray { kind, items } => {
                    if let Some(item) = self.element(kind, items)? {
                        return Ok(Some(item));
                    }
                }
            }
        }
    }

    /// The next element of an array after `items` of them, or `None` after its end (the
    /// state then back in the stream).
    fn element<T: DeserializeOwned>(
        &mut self,
        kind: Array,
        items: u64,
    ) -> Result<Option<(T, Place)>, (Place, String)> {
        let mut b = self.skip_ws()?;
        let mut after_comma = false;
        if items > 0 {
            let place = self.here(Some((kind, items + 1)));
            match b {
                Some(b',') => {
                    self.advance(1);
                    b = self.skip_ws()?;
                    after_comma = true;
                }
                Some(b']') => {}
                Some(_) => return Err((place, format!("no `,` or `]` after array item {items}"))),
                None => return Err((place, "the array does not end".into())),
            }
        }
        let place = self.here(Some((kind, items + 1)));
        match b {
            None => Err((place, "the array does not end".into())),
            Some(b']') if !after_comma => {
                self.advance(1);
                self.state = State::Stream;
                if kind == Array::Requests {
                    self.close_body()?;
                }
                Ok(None)
            }
            Some(b',' | b']') => Err((place, "an empty array item".into())),
            Some(_) => {
                self.state = State::InArray {
                    kind,
                    items: items + 1,
                };
                self.item(place).map(Some)
            }
        }
    }

    /// The `}` after a create body's `requests` array.
    fn close_body(&mut self) -> Result<(), (Place, String)> {
        let b = self.skip_ws()?;
        let place = self.here(None);
        match b {
            Some(b'}') => {
                self.advance(1);
                Ok(())
            }
            Some(_) => Err((
                place,
                "the create body goes on after its `requests` array: only {\"requests\": [...]} is read".into(),
            )),
            None => Err((place, "the create body does not end (no `}`)".into())),
        }
    }

    /// Skips a UTF-8 byte-order mark; refuses UTF-16.
    fn start(&mut self) -> Result<(), (Place, String)> {
        let place = Place::at(1, 1);
        self.ensure(4).map_err(|e| (place, describe(&e)))?;
        let head = &self.buf()[self.pos..];
        if let Some(seen) = utf16(head) {
            return Err((
                place,
                format!(
                    "looks like UTF-16 ({seen}), not UTF-8: convert it, e.g. `iconv -f UTF-16 -t UTF-8 FILE > FILE.jsonl`"
                ),
            ));
        }
        if head.starts_with(&UTF8_BOM) {
            self.pos += UTF8_BOM.len();
            self.line_start = self.offset();
        }
        Ok(())
    }

    /// The item at `pos`, parsed, and `pos` moved past it.
    fn item<T: DeserializeOwned>(&mut self, place: Place) -> Result<(T, Place), (Place, String)> {
        let io = |e: io::Error| (place, describe(&e));
        self.ensure(AHEAD).map_err(io)?;
        // Most items: parsed where they lie, serde_json finding their end.
        let ahead = &self.buf()[self.pos..];
        let mut values = serde_json::Deserializer::from_slice(ahead).into_iter::<T>();
        if let Some(Ok(value)) = values.next() {
            let len = values.byte_offset();
            // A value up to the end of what was read could go on (a number).
            if (len < ahead.len() || self.eof) && len <= self.max_item {
                self.advance(len);
                return Ok((value, place));
            }
        }
        // Else its end is found first (reading more), then it is parsed alone.
        let len = self.extent().map_err(|e| (place, e))?;
        if len > self.max_item {
            return Err((place, self.too_long()));
        }
        let bytes = &self.buf()[self.pos..self.pos + len];
        match serde_json::from_slice(bytes) {
            Ok(value) => {
                self.advance(len);
                Ok((value, place))
            }
            Err(e) => Err(self.explain(&e, place)),
        }
    }

    /// How many bytes the value at `pos` takes, reading more as needed: an object or array
    /// to its matching close, a string to its closing quote, anything else up to whitespace
    /// or punctuation (at least one byte). Invalid JSON gets an extent too, for serde_json
    /// to name its fault: a string ends at a raw line end (which JSON strings cannot hold),
    /// the input's end ends anything.
    fn extent(&mut self) -> Result<usize, String> {
        let first = self.buf()[self.pos];
        let scalar = !matches!(first, b'{' | b'[' | b'"');
        let (mut depth, mut in_string, mut escaped) = (0u64, false, false);
        let mut i = 0;
        loop {
            if i > self.max_item {
                return Err(self.too_long());
            }
            let Some(&b) = self.buf().get(self.pos + i) else {
                if self.fill().map_err(|e| describe(&e))? {
                    continue;
                }
                return Ok(i.max(1));
            };
            if scalar {
                if i > 0 && (is_ws(b) || b"{}[],:\"".contains(&b)) {
                    return Ok(i);
                }
                if i == 0 && b"}],:".contains(&b) {
                    return Ok(1);
                }
            } else if in_string {
                match b {
                    _ if escaped => escaped = false,
                    b'\\' => escaped = true,
                    b'"' => {
                        in_string = false;
                        if depth == 0 {
                            return Ok(i + 1);
                        }
                    }
                    b'\n' => return Ok(i),
                    _ => {}
                }
            } else {
                match b {
                    b'"' => in_string = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Ok(i + 1);
                        }
                    }
                    _ => {}
                }
            }
            i += 1;
        }
    }

    /// What an object at `pos` is, by its first key (reading more as needed).
    fn shape(&mut self) -> io::Result<Shape> {
        loop {
            let ahead = &self.buf()[self.pos..];
            let held = ahead.len();
            match shape_of(ahead) {
                Some(shape) => return Ok(shape),
                None if self.eof || held > self.max_item => return Ok(Shape::Item),
                // Twice as much each time: a long key is looked at a bounded number of times.
                None => self.ensure((held * 2 + 1).min(self.max_item + 1))?,
            }
        }
    }

    /// Skips whitespace, counting lines; the next byte, not taken.
    fn skip_ws(&mut self) -> Result<Option<u8>, (Place, String)> {
        loop {
            while let Some(&b) = self.buf().get(self.pos) {
                match b {
                    b'\n' => {
                        self.pos += 1;
                        self.line += 1;
                        self.line_start = self.offset();
                    }
                    b' ' | b'\t' | b'\r' => self.pos += 1,
                    _ => return Ok(Some(b)),
                }
            }
            match self.fill() {
                Ok(true) => {}
                Ok(false) => return Ok(None),
                Err(e) => return Err((self.here(None), describe(&e))),
            }
        }
    }

    /// Takes `n` bytes, counting their lines.
    fn advance(&mut self, n: usize) {
        let taken = &self.buf()[self.pos..self.pos + n];
        // `contains` is std's fast byte search: a JSON line holds no line end.
        if taken.contains(&b'\n') {
            let lines = taken.iter().filter(|&&b| b == b'\n').count();
            let after_last = taken.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            self.line += lines as u64;
            self.line_start = self.offset() + after_last as u64;
        }
        self.pos += n;
    }

    /// The text offset of `pos`.
    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// The place of `pos`.
    fn here(&self, element: Option<(Array, u64)>) -> Place {
        Place {
            line: self.line,
            column: self.offset() - self.line_start + 1,
            element,
        }
    }

    /// Reads until `n` bytes from `pos` are in memory, or the input ends.
    fn ensure(&mut self, n: usize) -> io::Result<()> {
        while self.end - self.pos < n && self.fill()? {}
        Ok(())
    }

    /// Reads a chunk more, after dropping what was consumed; `false` at the end.
    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.pos > 0 {
            self.store.copy_within(self.pos..self.end, 0);
            self.base += self.pos as u64;
            self.end -= self.pos;
            self.pos = 0;
        }
        // Zeroed once, when it grows: reading into it needs initialised bytes.
        if self.store.len() < self.end + CHUNK {
            self.store.resize(self.end + CHUNK, 0);
        }
        let n = loop {
            match self.source.read(&mut self.store[self.end..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                read => break read?,
            }
        };
        self.end += n;
        self.eof = n == 0;
        Ok(n > 0)
    }

    /// What was read and is still held.
    fn buf(&self) -> &[u8] {
        &self.store[..self.end]
    }

    fn too_long(&self) -> String {
        match self.max_item {
            n if n >= 1 << 20 && n % (1 << 20) == 0 => {
                format!("an item longer than {} MiB", n >> 20)
            }
            n => format!("an item longer than {n} bytes"),
        }
    }

    /// What is wrong with the `len` bytes at `pos`, which serde_json refused with `e`: what
    /// they look like if not JSON at all, else serde_json's words placed in the text.
    /// A value that is not an object or array (never a request) is looked at with its
    /// whole line, which is then the place.
    fn explain(&self, e: &serde_json::Error, place: Place) -> (Place, String) {
        let ahead = &self.buf()[self.pos..self.end.min(self.pos + 1024)];
        let first_line = ahead.split(|&b| b == b'\n').next().unwrap_or_default();
        let scalar = !matches!(ahead.first(), Some(b'{' | b'['));
        // An array's elements are JSON around them: what the line looks like says nothing.
        if place.element.is_none() && (scalar || !e.is_data()) {
            // The line from its start, as far as it is still held.
            let held = usize::try_from(self.line_start.saturating_sub(self.base)).unwrap_or(0);
            let line = &self.buf()[held.min(self.pos)..self.pos];
            let whole: Vec<u8> = line.iter().chain(first_line).copied().collect();
            if let Some(seen) = looks_like(&whole) {
                return (Place { column: 1, ..place }, seen);
            }
        }
        (place, self.serde_words(e, place, first_line))
    }

    /// serde_json's words for `e`, placed in the text.
    fn serde_words(&self, e: &serde_json::Error, place: Place, first_line: &[u8]) -> String {
        let text = e.to_string();
        let what = if e.is_data() {
            "not a valid request"
        } else {
            "not JSON"
        };
        let Some(words) =
            text.strip_suffix(&format!(" at line {} column {}", e.line(), e.column()))
        else {
            return format!("{what}: {text}");
        };
        // serde_json counts from the item's start; the text counts from its own.
        let (line, column) = match e.line() {
            0 | 1 => (
                place.line,
                place.column + e.column().saturating_sub(1) as u64,
            ),
            n => (place.line + n as u64 - 1, e.column() as u64),
        };
        let seen = if e.is_data() {
            String::new()
        } else {
            format!(" (`{}`)", excerpt(first_line))
        };
        format!("{what}{seen}: {words} at line {line} column {column}")
    }
}

/// What an object is by its first key (`bytes` from its `{`); `None` if they end before
/// that is known.
fn shape_of(bytes: &[u8]) -> Option<Shape> {
    let skip = |mut i: usize| {
        while bytes.get(i).copied().is_some_and(is_ws) {
            i += 1;
        }
        i
    };
    let quote = skip(1);
    if *bytes.get(quote)? != b'"' {
        return Some(Shape::Item);
    }
    let key_start = quote + 1;
    let key_len = bytes
        .get(key_start..)?
        .iter()
        .position(|&b| b == b'"' || b == b'\\')?;
    let key_end = key_start + key_len;
    // An escaped key is left to serde_json, as an item.
    if bytes[key_end] == b'\\' {
        return Some(Shape::Item);
    }
    let colon = skip(key_end + 1);
    if *bytes.get(colon)? != b':' {
        return Some(Shape::Item);
    }
    let array = *bytes.get(skip(colon + 1))? == b'[';
    let key = &bytes[key_start..key_end];
    Some(match (key == b"requests", array) {
        (true, true) => Shape::Opens(Array::Requests, skip(colon + 1) + 1),
        (true, false) => Shape::BodyWithoutArray,
        (false, true) => Shape::Wrapper(excerpt(key)),
        (false, false) => Shape::Item,
    })
}

/// JSON's whitespace (not form feed or vertical tab).
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// At most 40 characters of `bytes`, for a message.
fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_end();
    match text.char_indices().nth(40) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// The refusal of an object whose first key `key` holds an array.
fn wrapper(key: &str) -> String {
    format!(
        "an object without `requests` (its first key `{key}` holds an array): the API's create \
         body is {{\"requests\": [...]}}; rename `{key}`, or give the items as JSON lines, e.g. \
         `jq -c '.{key}[]' FILE`"
    )
}

/// Which UTF-16 `head` (the input's first bytes) looks like: by its byte-order mark, or by
/// ASCII text's every other byte being NUL.
fn utf16(head: &[u8]) -> Option<&'static str> {
    match head {
        [0xff, 0xfe, ..] => Some("little-endian, byte-order mark FF FE"),
        [0xfe, 0xff, ..] => Some("big-endian, byte-order mark FE FF"),
        [a, 0, b, 0, ..] if *a != 0 && *b != 0 => Some("little-endian, every other byte NUL"),
        [0, a, 0, b, ..] if *a != 0 && *b != 0 => Some("big-endian, every other byte NUL"),
        [a, 0] if *a != 0 => Some("little-endian, every other byte NUL"),
        [0, a] if *a != 0 => Some("big-endian, every other byte NUL"),
        _ => None,
    }
}

/// What a line that is not JSON looks like, if it looks like something known.
fn looks_like(line: &[u8]) -> Option<String> {
    let seen = excerpt(line);
    if line.starts_with(&UTF8_BOM) {
        return Some(
            "a UTF-8 byte-order mark in the middle of the input (files joined?): remove it".into(),
        );
    }
    if line.contains(&0) {
        return Some(
            "looks like UTF-16 or binary (NUL bytes), not UTF-8 text: convert UTF-16 with \
             `iconv -f UTF-16 -t UTF-8 FILE > FILE.jsonl`"
                .into(),
        );
    }
    let start = line.iter().position(|&b| !is_ws(b)).unwrap_or(line.len());
    let json_like =
        matches!(line.get(start), Some(b'{' | b'[')) || line.windows(2).any(|w| w == b"\":");
    let separated = line[start..]
        .iter()
        .any(|b| matches!(b, b',' | b';' | b'\t'));
    if !json_like && separated {
        return Some(format!(
            "looks like CSV (`{seen}`), not JSON: convert it to JSON lines, e.g. `python3 -c \
             'import csv, json, sys; [print(json.dumps(r)) for r in csv.DictReader(sys.stdin)]' \
             < FILE.csv > FILE.jsonl`, then shape each line as a request (an object a line)"
        ));
    }
    None
}

/// A gzip input is cut short or corrupt (a bad header, a broken deflate stream, a checksum
/// or length that does not match): its own error, not a bad item.
#[derive(Debug)]
pub struct GzipError(io::Error);

impl std::fmt::Display for GzipError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the gzip stream is cut short or corrupt")
    }
}

impl std::error::Error for GzipError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// The decompressed text of a gzip input (every member, as `gzip -d` reads them), its
/// failures as [`GzipError`]s.
struct Gunzip<R: Read>(MultiGzDecoder<R>);

impl<R: Read> Read for Gunzip<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| match e.kind() {
            io::ErrorKind::Interrupted => e,
            _ => io::Error::new(io::ErrorKind::InvalidData, GzipError(e)),
        })
    }
}

/// An error and its causes, for a message: `io::Error` shows only the outermost.
fn describe(e: &io::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}

/// How many bytes of each end of a file its fingerprint hashes: enough to notice another
/// file, cheap for any size; the per-batch hashes in the journal check every byte sent.
const FINGERPRINT_SPAN: u64 = 1 << 20;

/// A seekable file's size and the hash of its first and last MiB, as the bytes are on disk
/// (compressed, for gzip: the same file gives the same fingerprint).
pub fn fingerprint(file: &Path) -> Result<Fingerprint, String> {
    use std::io::{Seek, SeekFrom};
    let mut f = std::fs::File::open(file).map_err(|e| e.to_string())?;
    let size = f.metadata().map_err(|e| e.to_string())?.len();
    let mut bytes = Vec::new();
    (&mut f)
        .take(FINGERPRINT_SPAN)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if size > FINGERPRINT_SPAN {
        f.seek(SeekFrom::Start(
            size.saturating_sub(FINGERPRINT_SPAN).max(FINGERPRINT_SPAN),
        ))
        .map_err(|e| e.to_string())?;
        f.take(FINGERPRINT_SPAN)
            .read_to_end(&mut bytes)
            .map_err(|e| e.to_string())?;
    }
    Ok(Fingerprint {
        bytes: Some(size),
        hash: Some(format!("{:016x}", fnv1a64(&bytes))),
        items: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fullstory_batch::EventRequest;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    /// Items with their places, and the error that ended the reading, if one did.
    type Reading = (Vec<(Value, Place)>, Option<(Place, String)>);

    /// Bytes handed over at most `step` at a time, as a pipe may.
    struct Trickle {
        bytes: Vec<u8>,
        at: usize,
        step: usize,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.step).min(self.bytes.len() - self.at);
            buf[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    /// `bytes` read as `open` reads a file, at most `step` bytes a read.
    fn items_of(bytes: &[u8], step: usize) -> Items {
        let bytes = bytes.to_vec();
        items(text_of(Trickle { bytes, at: 0, step }).unwrap())
    }

    /// Every item of `bytes` and where, up to the first error, with items of at most
    /// `max_item` bytes, read `step` bytes at a time; memory checked to stay bounded.
    fn read_by(bytes: &[u8], max_item: usize, step: usize) -> Reading {
        let mut items = items_of(bytes, step);
        items.max_item = max_item;
        let mut out = Vec::new();
        loop {
            let next = items.next_value::<Value>();
            assert!(
                items.store.len() <= max_item + 2 * CHUNK + 1,
                "held {} bytes",
                items.store.len()
            );
            match next {
                Ok(Some(item)) => out.push(item),
                Ok(None) => return (out, None),
                Err(e) => {
                    assert_eq!(items.next_value::<Value>(), Ok(None), "an error ends it");
                    return (out, Some(e));
                }
            }
        }
    }

    fn read(text: &str) -> Reading {
        read_by(text.as_bytes(), MAX_ITEM_BYTES, CHUNK)
    }

    /// The items of `text`, which must read without an error.
    fn values(text: &str) -> Vec<(Value, Place)> {
        let (items, error) = read(text);
        assert_eq!(error, None, "{text}");
        items
    }

    /// The error `text` reads to.
    fn error(text: &[u8]) -> (Place, String) {
        read_by(text, MAX_ITEM_BYTES, CHUNK).1.expect("an error")
    }

    fn at(line: u64, column: u64) -> Place {
        Place::at(line, column)
    }

    fn element(kind: Array, n: u64, line: u64, column: u64) -> Place {
        Place {
            line,
            column,
            element: Some((kind, n)),
        }
    }

    fn gzip(text: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(text).unwrap();
        encoder.finish().unwrap()
    }

    fn read_all(bytes: Vec<u8>) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        text_of(Cursor::new(bytes)).unwrap().read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn gzip_is_known_by_its_first_bytes_and_read_member_by_member() {
        let mut two = gzip(b"{\"name\":\"a\"}\n");
        two.extend(gzip(b"{\"name\":\"b\"}\n")); // as `cat a.gz b.gz`
        assert_eq!(
            read_all(two).unwrap(),
            b"{\"name\":\"a\"}\n{\"name\":\"b\"}\n"
        );
        // Shorter than the magic, or only its first byte: plain text, kept whole.
        assert_eq!(read_all(b"[".to_vec()).unwrap(), b"[");
        assert_eq!(read_all(vec![0x1f, b'x']).unwrap(), [0x1f, b'x']);
        assert_eq!(read_all(Vec::new()).unwrap(), b"");
    }

    #[test]
    fn a_cut_gzip_stream_is_a_gzip_error() {
        let whole = gzip(&b"{\"name\":\"a\"}\n".repeat(100));
        let e = read_all(whole[..whole.len() - 4].to_vec()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(
            e.get_ref().is_some_and(|inner| inner.is::<GzipError>()),
            "{e:?}"
        );
        assert!(describe(&e).starts_with("the gzip stream is cut short or corrupt: "));
        let (place, message) = error(&whole[..whole.len() - 4]);
        assert_eq!(place.element, None);
        assert!(
            message.starts_with("the gzip stream is cut short"),
            "{message}"
        );
    }

    #[test]
    fn json_lines_are_read_at_their_lines_crlf_and_blank_lines_counted() {
        assert_eq!(
            values("\n{\"a\":1}\r\n\r\n  {\"b\":2}\n\"c\"\n"),
            [
                (json!({"a": 1}), at(2, 1)),
                (json!({"b": 2}), at(4, 3)),
                (json!("c"), at(5, 1)),
            ]
        );
        assert_eq!(values(""), []);
        assert_eq!(values(" \n\r\n\t"), []);
    }

    #[test]
    fn pretty_objects_one_after_another_are_read_as_jq_prints_them() {
        let jq = "{\n  \"name\": \"a\",\n  \"user\": {\n    \"uid\": \"u1\"\n  }\n}\n{\n  \"name\": \"b\"\n}\n";
        assert_eq!(
            values(jq),
            [
                (json!({"name": "a", "user": {"uid": "u1"}}), at(1, 1)),
                (json!({"name": "b"}), at(7, 1)),
            ]
        );
        // Several values on a line, with or without space between them.
        assert_eq!(
            values("{\"a\":1} {\"b\":2}{\"c\":\"}\"}\t4 \"five\"\n{\"f\":\n6}"),
            [
                (json!({"a": 1}), at(1, 1)),
                (json!({"b": 2}), at(1, 9)),
                (json!({"c": "}"}), at(1, 16)),
                (json!(4), at(1, 26)),
                (json!("five"), at(1, 28)),
                (json!({"f": 6}), at(2, 1)),
            ]
        );
        assert_eq!(at(1, 9).to_string(), "line 1, column 9");
        assert_eq!(at(7, 1).to_string(), "line 7");
    }

    #[test]
    fn a_byte_order_mark_is_skipped_plain_and_inside_gzip() {
        let text = b"\xef\xbb\xbf{\"name\":\"a\"} {\"name\":\"b\"}\n";
        let expected = vec![
            (json!({"name": "a"}), at(1, 1)),
            (json!({"name": "b"}), at(1, 14)),
        ];
        assert_eq!(
            read_by(text, MAX_ITEM_BYTES, CHUNK),
            (expected.clone(), None)
        );
        assert_eq!(read_by(&gzip(text), MAX_ITEM_BYTES, 3), (expected, None));
        // Only at the start: inside, it is named.
        let (place, message) = error(b"{\"name\":\"a\"}\n\xef\xbb\xbf{\"name\":\"b\"}\n");
        assert_eq!(place, at(2, 1));
        assert!(
            message.contains("byte-order mark in the middle"),
            "{message}"
        );
    }

    fn utf16(text: &str, big_endian: bool, bom: bool) -> Vec<u8> {
        let units = bom.then_some(0xfeff).into_iter().chain(text.encode_utf16());
        units
            .flat_map(|u| {
                if big_endian {
                    u.to_be_bytes()
                } else {
                    u.to_le_bytes()
                }
            })
            .collect()
    }

    #[test]
    fn utf16_is_refused_by_name_with_or_without_its_mark_plain_or_gzip() {
        for (big_endian, bom, seen) in [
            (false, true, "UTF-16 (little-endian, byte-order mark FF FE)"),
            (true, true, "UTF-16 (big-endian, byte-order mark FE FF)"),
            (false, false, "UTF-16 (little-endian, every other byte NUL)"),
            (true, false, "UTF-16 (big-endian, every other byte NUL)"),
        ] {
            let bytes = utf16("{\"name\":\"a\"}\r\n", big_endian, bom);
            for bytes in [bytes.clone(), gzip(&bytes)] {
                let (place, message) = error(&bytes);
                assert_eq!(place, at(1, 1));
                assert!(
                    message.starts_with(&format!("looks like {seen}")),
                    "{message}"
                );
                assert!(message.contains("iconv -f UTF-16 -t UTF-8"), "{message}");
            }
        }
        // A lone character is UTF-16 too.
        assert!(error(&utf16("1", false, false)).1.contains("UTF-16"));
    }

    #[test]
    fn an_array_stands_for_its_elements_at_their_places() {
        assert_eq!(
            values("[{\"a\":\"x,]}\\\"y\"},{\"b\":[1,2]} , 3]"),
            [
                (json!({"a": "x,]}\"y"}), element(Array::Plain, 1, 1, 2)),
                (json!({"b": [1, 2]}), element(Array::Plain, 2, 1, 18)),
                (json!(3), element(Array::Plain, 3, 1, 32)),
            ]
        );
        // jq's pretty array, and arrays one after another.
        assert_eq!(
            values("[\n  {\n    \"a\": 1\n  },\n  2\n]\n[3]"),
            [
                (json!({"a": 1}), element(Array::Plain, 1, 2, 3)),
                (json!(2), element(Array::Plain, 2, 5, 3)),
                (json!(3), element(Array::Plain, 1, 7, 2)),
            ]
        );
        assert_eq!(values("[ ]"), []);
        assert_eq!(
            element(Array::Plain, 2, 1, 18).to_string(),
            "array item 2 (line 1, column 18)"
        );
        for (text, n, problem) in [
            ("[1,", 2, "the array does not end"),
            ("[1", 2, "the array does not end"),
            ("[1,,2]", 2, "an empty array item"),
            ("[1, ]", 2, "an empty array item"),
            ("[,1]", 1, "an empty array item"),
            ("[1 2]", 2, "no `,` or `]` after array item 1"),
        ] {
            let (place, message) = error(text.as_bytes());
            assert_eq!(
                (place.element, message.as_str()),
                (Some((Array::Plain, n)), problem),
                "{text}"
            );
        }
        assert!(error(b"[1] x").1.starts_with("not JSON (`x`)"));
    }

    #[test]
    fn the_create_body_is_read_as_its_requests() {
        let compact = r#"{"requests":[{"name":"a"},{"name":"b"}]}"#;
        assert_eq!(
            values(compact),
            [
                (json!({"name": "a"}), element(Array::Requests, 1, 1, 14)),
                (json!({"name": "b"}), element(Array::Requests, 2, 1, 27)),
            ]
        );
        let pretty = "{\n  \"requests\" : [\n    {\n      \"name\": \"a\"\n    }\n  ]\n}\n{\"name\":\"c\"}\n";
        assert_eq!(
            values(pretty),
            [
                (json!({"name": "a"}), element(Array::Requests, 1, 3, 5)),
                (json!({"name": "c"}), at(8, 1)),
            ]
        );
        assert_eq!(values("{\"requests\":[]}\n{ \"requests\" :[ ] }"), []);
        assert_eq!(
            element(Array::Requests, 1, 3, 5).to_string(),
            "`requests` item 1 (line 3, column 5)"
        );
        for (text, place, problem) in [
            (
                "\n{\"requests\":[{\"name\":\"a\"}],\"x\":1}",
                at(2, 27),
                "the create body goes on after its `requests` array",
            ),
            (
                "{\"requests\":[1]",
                at(1, 16),
                "the create body does not end",
            ),
            (
                "\n{\"requests\":{}}",
                at(2, 1),
                "the create body's `requests` is not an array",
            ),
        ] {
            let (at, message) = error(text.as_bytes());
            assert_eq!(at, place, "{text}");
            assert!(message.starts_with(problem), "{text}: {message}");
        }
    }

    #[test]
    fn an_object_is_one_item_unless_its_first_key_holds_an_array() {
        // An event whose other keys hold arrays, even `requests`, is one item.
        let event = r#"{"name":"a","tags":[1],"requests":[2]}"#;
        assert_eq!(
            values(event),
            [(serde_json::from_str(event).unwrap(), at(1, 1))]
        );
        let (place, message) = error(b"{\"name\":\"a\"}\n{ \"events\": [{\"name\":\"b\"}]}\n");
        assert_eq!(place, at(2, 1));
        assert!(
            message.starts_with(
                "an object without `requests` (its first key `events` holds an array)"
            ) && message.contains("jq -c '.events[]'"),
            "{message}"
        );
    }

    #[test]
    fn csv_is_refused_by_what_it_looks_like_at_its_line() {
        for (text, line) in [
            ("name,uid\nOrder Completed,u1\n", 1),
            ("\"name\",\"uid\"\n", 1),
            ("{\"name\":\"a\"}\nname;uid\n", 2),
            ("uid\temail\n", 1),
        ] {
            let (place, message) = error(text.as_bytes());
            assert_eq!(place, at(line, 1), "{text}");
            let first = text.lines().nth(line as usize - 1).unwrap();
            assert!(
                message.starts_with(&format!(
                    "looks like CSV (`{first}`), not JSON: convert it to JSON lines, e.g. "
                )) || message.starts_with("looks like CSV"),
                "{message}"
            );
            assert!(message.contains(first), "{message}");
        }
    }

    #[test]
    fn json_that_is_not_a_request_is_not_taken_for_csv() {
        let mut items = items_of(b"[\n  1,\n  2\n]", CHUNK);
        let (place, message) = items.next_item::<EventRequest>().unwrap_err();
        assert_eq!(place, element(Array::Plain, 1, 2, 3));
        assert!(
            message.starts_with("not a valid request: invalid type: integer `1`"),
            "{message}"
        );
        for text in ["  {a: 1, b: 2}", "\t{'a': 1}", "[{\"a\":1},\n  x]"] {
            let (_, message) = error(text.as_bytes());
            assert!(message.starts_with("not JSON ("), "{text}: {message}");
        }
    }

    #[test]
    fn an_endless_item_stops_at_the_cap_holding_no_more() {
        // `{"a":"` and then `x` for ever.
        let endless = Cursor::new(b"{\"a\":\"".to_vec()).chain(io::repeat(b'x'));
        let mut items = items(text_of(endless).unwrap());
        let (place, message) = items.next_value::<Value>().unwrap_err();
        assert_eq!(
            (place, message.as_str()),
            (at(1, 1), "an item longer than 32 MiB")
        );
        assert!(
            items.store.len() <= MAX_ITEM_BYTES + 2 * CHUNK + 1,
            "{}",
            items.store.len()
        );
    }

    #[test]
    fn serde_json_faults_are_placed_in_the_text() {
        let text = "{\"name\":\"a\"}\n{\n  \"name\": \"b\",\n  \"user\": x\n}\n";
        let (place, message) = error(text.as_bytes());
        assert_eq!(place, at(2, 1));
        assert_eq!(
            message,
            "not JSON (`{`): expected value at line 4 column 11"
        );
        let (place, message) = error(b"{\"a\":1} {\"b\":x}");
        assert_eq!(place, at(1, 9));
        assert_eq!(
            message,
            "not JSON (`{\"b\":x}`): expected value at line 1 column 14"
        );
        // A request of the wrong shape, read as one.
        let mut items = items_of(b"{\"name\":\"a\"}\n\n  {\"name\": 5}\n", CHUNK);
        assert!(items.next_item::<EventRequest>().unwrap().is_some());
        let (place, message) = items.next_item::<EventRequest>().unwrap_err();
        assert_eq!(place, at(3, 3));
        assert_eq!(
            message,
            "not a valid request: invalid type: integer `5`, expected a string at line 3 column 12"
        );
    }

    #[test]
    fn an_item_past_the_cap_is_refused_at_its_place() {
        let long = format!("\"{}\"", "x".repeat(9)); // 11 bytes
        for (text, place) in [
            (format!("1\n{long}"), at(2, 1)),
            (format!("1\n\n{{\"a\":\n {long}}}\n2\n"), at(3, 1)),
            (format!("[1,{long}]"), element(Array::Plain, 2, 1, 4)),
            (
                format!("{{\"requests\":[1,\n{long}]}}"),
                element(Array::Requests, 2, 2, 1),
            ),
            (
                "1 [[[[[[[[[[[[[[".to_owned(),
                element(Array::Plain, 1, 1, 4),
            ),
            ("1 \"no end".to_owned() + &"x".repeat(20), at(1, 3)),
        ] {
            let (items, error) = read_by(text.as_bytes(), 10, CHUNK);
            assert_eq!(items.len(), 1, "{text}");
            assert_eq!(
                error,
                Some((place, "an item longer than 10 bytes".to_owned())),
                "{text}"
            );
        }
        // At the cap exactly: read.
        let ten = "\"xxxxxxxx\"";
        let (items, error) = read_by(format!("{ten}\n{ten}").as_bytes(), 10, 4);
        assert_eq!((items.len(), error), (2, None));
        assert!(items_of(b"", CHUNK).too_long().ends_with("32 MiB"));
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[ -~\\n\\t\"\\\\,\\]\\[{}é]{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map("[a-z,\\]\"]{0,4}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// How a group of items is written.
    #[derive(Debug, Clone, Copy)]
    enum Written {
        Line,
        Pretty,
        SameLine,
        Array,
        Body,
        PrettyBody,
    }

    fn written() -> impl Strategy<Value = Written> {
        prop_oneof![
            Just(Written::Line),
            Just(Written::Pretty),
            Just(Written::SameLine),
            Just(Written::Array),
            Just(Written::Body),
            Just(Written::PrettyBody),
        ]
    }

    /// The place `text`'s end would have.
    fn end_of(text: &str) -> (u64, u64) {
        let line = text.matches('\n').count() as u64 + 1;
        let column = text.len() - text.rfind('\n').map_or(0, |i| i + 1) + 1;
        (line, column as u64)
    }

    /// `groups` of items written each in its shape, whitespace from `gaps` between; the
    /// items in order, each with its place.
    fn write(
        groups: &[(Written, Vec<Value>)],
        gaps: &[String],
        nl: &str,
    ) -> (String, Vec<(Value, Place)>) {
        let mut text = String::new();
        let mut expected = Vec::new();
        let gaps: Vec<String> = gaps.iter().map(|g| g.replace('\n', nl)).collect();
        let mut gaps = gaps.iter().cycle();
        let mut push =
            |text: &mut String, value: &Value, pretty: bool, kind: Option<(Array, u64)>| {
                let (line, column) = end_of(text);
                expected.push((
                    value.clone(),
                    Place {
                        line,
                        column,
                        element: kind,
                    },
                ));
                let written = if pretty {
                    serde_json::to_string_pretty(value)
                } else {
                    serde_json::to_string(value)
                };
                text.push_str(&written.unwrap().replace('\n', nl));
            };
        for (shape, items) in groups {
            let gap = gaps.next().unwrap();
            match shape {
                Written::Line | Written::Pretty | Written::SameLine => {
                    for item in items {
                        text.push_str(match shape {
                            Written::SameLine => " ",
                            _ if text.is_empty() => "",
                            _ => nl,
                        });
                        text.push_str(gap);
                        push(&mut text, item, matches!(shape, Written::Pretty), None);
                    }
                }
                Written::Array | Written::Body | Written::PrettyBody => {
                    let kind = if matches!(shape, Written::Array) {
                        Array::Plain
                    } else {
                        Array::Requests
                    };
                    text.push_str(nl);
                    text.push_str(match shape {
                        Written::Array => "[",
                        Written::Body => "{\"requests\":[",
                        _ => "{",
                    });
                    if matches!(shape, Written::PrettyBody) {
                        text.push_str(nl);
                        text.push_str("  \"requests\": [");
                    }
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            text.push(',');
                        }
                        text.push_str(gap);
                        push(
                            &mut text,
                            item,
                            matches!(shape, Written::PrettyBody),
                            Some((kind, i as u64 + 1)),
                        );
                    }
                    text.push_str(gap);
                    text.push(']');
                    if !matches!(shape, Written::Array) {
                        text.push_str(nl);
                        text.push('}');
                    }
                }
            }
        }
        (text, expected)
    }

    /// An item as the stream may hold it: an object whose first key holds no array.
    fn item() -> impl Strategy<Value = Value> {
        (any::<u16>(), json_value()).prop_map(|(n, v)| json!({"n": n, "v": v}))
    }

    proptest! {
        /// Any bytes, plain or gzip, read any number of bytes at a time: every item comes
        /// within the cap, memory stays bounded, and reading ends (in items or a named
        /// error) without a panic.
        #[test]
        fn any_bytes_read_to_an_end(
            text in prop::collection::vec(any::<u8>(), 0..512),
            gz in any::<bool>(),
            cap in 1usize..64,
            step in 1usize..80,
        ) {
            let bytes = if gz { gzip(&text) } else { text.clone() };
            let (items, _) = read_by(&bytes, cap, step);
            // Each item takes at least one byte of the text (compressed, it can be shorter).
            prop_assert!(items.len() <= text.len());
        }

        /// Any bytes made of JSON's own characters (the scanner's hard cases).
        #[test]
        fn any_json_like_text_reads_to_an_end(text in "[\\[\\]{}\",:\\\\ \\n\\ra1-]{0,200}", cap in 1usize..64, step in 1usize..20) {
            let (items, _) = read_by(text.as_bytes(), cap, step);
            prop_assert!(items.len() <= text.len());
        }

        /// Items written in any mix of the shapes (JSON lines, pretty objects, values on
        /// one line, arrays, create bodies, CRLF or not, a byte-order mark or not) read back
        /// as themselves, each at its place, however the input is split into reads.
        #[test]
        fn any_mix_of_shapes_reads_back_at_the_places_written(
            groups in prop::collection::vec((written(), prop::collection::vec(item(), 0..4)), 0..6),
            gaps in prop::collection::vec("[ \\t\\n]{0,3}", 1..4),
            crlf in any::<bool>(),
            bom in any::<bool>(),
            step in prop_oneof![1usize..40, Just(CHUNK)],
            gz in any::<bool>(),
        ) {
            let (text, expected) = write(&groups, &gaps, if crlf { "\r\n" } else { "\n" });
            let mut bytes = if bom { UTF8_BOM.to_vec() } else { Vec::new() };
            bytes.extend_from_slice(text.as_bytes());
            if gz {
                bytes = gzip(&bytes);
            }
            let (items, error) = read_by(&bytes, MAX_ITEM_BYTES, step);
            prop_assert_eq!(error, None, "{}", text);
            prop_assert_eq!(items, expected, "{}", text);
        }
    }
}
