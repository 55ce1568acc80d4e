//! Items read as they come from a file or stdin: JSON lines, or one JSON array, never the
//! whole input in memory, gzip-compressed or not. Each item carries where it was (1-based
//! line, or 1-based place in the array), so an error can name it.

use std::io::{self, BufRead, BufReader, Cursor, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::read::MultiGzDecoder;
use fullstory_batch::BatchItem;
use fullstory_batch::journal::{Fingerprint, fnv1a64};

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

/// Where an item is in the input, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Line(u64),
    Element(u64),
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Line(n) => write!(f, "line {n}"),
            Self::Element(n) => write!(f, "array item {n}"),
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
    items(text_of(Counted { inner, count })?)
}

/// The items of `reader`'s text: one JSON array if it starts with `[`, else JSON lines.
fn items(mut reader: Box<dyn BufRead>) -> Result<Items, String> {
    // Blank lines skipped here still count, so that lines are numbered as in the file.
    let mut skipped_lines = 0;
    let first = loop {
        let buf = reader.fill_buf().map_err(|e| describe(&e))?;
        if buf.is_empty() {
            break None;
        }
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(n) => break Some(buf[n]),
            None => {
                let n = buf.len();
                skipped_lines += buf.iter().filter(|&&b| b == b'\n').count() as u64;
                reader.consume(n);
            }
        }
    };
    let array = first == Some(b'[');
    Ok(Items {
        reader,
        max_item: MAX_ITEM_BYTES,
        array,
        started: false,
        ended: false,
        place: 0,
        line: skipped_lines,
        buf: Vec::new(),
    })
}

/// `raw` as text: decompressed if it starts as gzip, else as it is.
fn text_of(mut raw: impl Read + 'static) -> Result<Box<dyn BufRead>, String> {
    let mut head = Vec::with_capacity(GZIP_MAGIC.len());
    (&mut raw)
        .take(GZIP_MAGIC.len() as u64)
        .read_to_end(&mut head)
        .map_err(|e| e.to_string())?;
    let gzip = head == GZIP_MAGIC;
    // The bytes looked at go back in front of the rest.
    let raw = Cursor::new(head).chain(raw);
    Ok(if gzip {
        let text = Gunzip(MultiGzDecoder::new(raw));
        Box::new(BufReader::with_capacity(1 << 16, text))
    } else {
        Box::new(BufReader::with_capacity(1 << 16, raw))
    })
}

/// The most bytes one item may take (a line, or an array element), so that input without a
/// line end or a closing bracket cannot fill memory: many times the largest user the API
/// accepts ([`fullstory_batch::MAX_USER_ITEM_BYTES`], 4.2 MiB; events have no stated bound).
pub const MAX_ITEM_BYTES: usize = 32 << 20;

/// An item's raw text and place, `None` at the end, or what is wrong where.
type Next<'a> = Result<Option<(&'a [u8], Place)>, (Place, String)>;

/// The items of an input, one at a time, each with its place.
pub struct Items {
    reader: Box<dyn BufRead>,
    max_item: usize,
    array: bool,
    started: bool,
    ended: bool,
    place: u64,
    line: u64,
    buf: Vec<u8>,
}

impl Items {
    /// The next item's JSON text and place; `Ok(None)` at the end.
    pub fn next_raw(&mut self) -> Next<'_> {
        if self.ended {
            return Ok(None);
        }
        if self.array {
            return self.next_element();
        }
        loop {
            self.buf.clear();
            self.line += 1;
            let n = (&mut self.reader)
                .take(self.max_item as u64 + 1)
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| (Place::Line(self.line), describe(&e)))?;
            if n == 0 {
                self.ended = true;
                return Ok(None);
            }
            if self.buf.len() > self.max_item && self.buf.last() != Some(&b'\n') {
                return Err((Place::Line(self.line), self.too_long()));
            }
            if self.buf.iter().any(|b| !b.is_ascii_whitespace()) {
                return Ok(Some((&self.buf, Place::Line(self.line))));
            }
        }
    }

    /// The next item parsed as `T`.
    pub fn next_item<T: BatchItem>(&mut self) -> Result<Option<(T, Place)>, (Place, String)> {
        match self.next_raw()? {
            None => Ok(None),
            Some((raw, place)) => match serde_json::from_slice(raw) {
                Ok(item) => Ok(Some((item, place))),
                Err(e) => Err((place, format!("not a valid request: {e}"))),
            },
        }
    }

    /// One element of a JSON array: its bytes up to the `,` or `]` at depth 0.
    fn next_element(&mut self) -> Next<'_> {
        let place = Place::Element(self.place + 1);
        let fail = |m: &str| Err((place, m.to_owned()));
        if !self.started {
            // The `[` (whitespace before it was skipped on open).
            if self.byte().map_err(|e| (place, e))? != Some(b'[') {
                return fail("not a JSON array");
            }
            self.started = true;
            match self.skip_ws().map_err(|e| (place, e))? {
                Some(b']') => {
                    self.byte().map_err(|e| (place, e))?;
                    self.ended = true;
                    return self.trailing(place);
                }
                None => return fail("the array does not end"),
                _ => {}
            }
        }
        self.buf.clear();
        let (mut depth, mut in_string, mut escaped) = (0u32, false, false);
        loop {
            if self.buf.len() > self.max_item {
                return Err((place, self.too_long()));
            }
            let Some(b) = self.byte().map_err(|e| (place, e))? else {
                return fail("the array does not end");
            };
            if in_string {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_string = false;
                }
                self.buf.push(b);
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' if depth > 0 => depth -= 1,
                b',' | b']' if depth == 0 => {
                    if self.buf.iter().all(u8::is_ascii_whitespace) {
                        return fail("an empty array item");
                    }
                    self.place += 1;
                    if b == b']' {
                        self.ended = true;
                        self.trailing(place)?;
                    }
                    return Ok(Some((&self.buf, place)));
                }
                _ => {}
            }
            self.buf.push(b);
        }
    }

    fn too_long(&self) -> String {
        match self.max_item {
            n if n >= 1 << 20 && n % (1 << 20) == 0 => {
                format!("an item longer than {} MiB", n >> 20)
            }
            n => format!("an item longer than {n} bytes"),
        }
    }

    /// Only whitespace may follow the array.
    fn trailing<'a>(&mut self, place: Place) -> Next<'a> {
        match self.skip_ws().map_err(|e| (place, e))? {
            None => Ok(None),
            Some(_) => Err((place, "text after the end of the array".to_owned())),
        }
    }

    fn byte(&mut self) -> Result<Option<u8>, String> {
        let buf = self.reader.fill_buf().map_err(|e| describe(&e))?;
        let Some(&b) = buf.first() else {
            return Ok(None);
        };
        self.reader.consume(1);
        Ok(Some(b))
    }

    /// Skips whitespace; the next byte, not taken.
    fn skip_ws(&mut self) -> Result<Option<u8>, String> {
        loop {
            let buf = self.reader.fill_buf().map_err(|e| describe(&e))?;
            if buf.is_empty() {
                return Ok(None);
            }
            match buf.iter().position(|b| !b.is_ascii_whitespace()) {
                Some(n) => {
                    let b = buf[n];
                    self.reader.consume(n);
                    return Ok(Some(b));
                }
                None => {
                    let n = buf.len();
                    self.reader.consume(n);
                }
            }
        }
    }
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

    /// Items with their places, and the error that ended the reading, if one did.
    type Reading = (Vec<(String, Place)>, Option<(Place, String)>);

    /// `bytes` read as `open` reads a file.
    fn items_of(bytes: &[u8]) -> Items {
        items(text_of(Cursor::new(bytes.to_vec())).unwrap()).unwrap()
    }

    /// Every item of `bytes` and where, up to the first error, with items of at most
    /// `max_item` bytes.
    fn read(bytes: &[u8], max_item: usize) -> Reading {
        let mut items = items_of(bytes);
        items.max_item = max_item;
        let mut out = Vec::new();
        loop {
            match items.next_raw() {
                Ok(Some((raw, place))) => {
                    assert!(raw.len() <= max_item + 1, "an item past the cap");
                    out.push((String::from_utf8_lossy(raw).trim().to_owned(), place));
                }
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    fn elements(text: &str) -> Result<Vec<String>, (Place, String)> {
        match read(text.as_bytes(), MAX_ITEM_BYTES) {
            (items, None) => Ok(items.into_iter().map(|(raw, _)| raw).collect()),
            (_, Some(e)) => Err(e),
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
    }

    #[test]
    fn an_array_splits_at_its_top_level_commas() {
        assert_eq!(
            elements(r#"[{"a":"x,]}\"y"},{"b":[1,2]} , 3]"#).unwrap(),
            [r#"{"a":"x,]}\"y"}"#, r#"{"b":[1,2]}"#, "3"]
        );
        assert_eq!(elements("[ ]").unwrap(), Vec::<String>::new());
        assert!(elements("[1,").is_err());
        assert!(matches!(elements("[1,,2]"), Err((Place::Element(2), _))));
        assert!(elements("[1] x").is_err());
    }

    #[test]
    fn an_item_past_the_cap_is_refused_at_its_place() {
        let long = "x".repeat(11);
        for (text, place) in [
            (format!("1\n{long}"), Place::Line(2)),
            (format!("1\n\n{long}\n2\n"), Place::Line(3)),
            (format!("[1,\"{long}\"]"), Place::Element(2)),
            (format!("[1,[{long}"), Place::Element(2)),
        ] {
            let (items, error) = read(text.as_bytes(), 10);
            assert_eq!(items.len(), 1, "{text}");
            assert_eq!(
                error,
                Some((place, "an item longer than 10 bytes".to_owned())),
                "{text}"
            );
        }
        // At the cap exactly, with or without its line end: read.
        let (items, error) = read(format!("{}\n{}", &long[1..], &long[1..]).as_bytes(), 10);
        assert_eq!((items.len(), error), (2, None));
        assert!(items_of(b"").too_long().ends_with("32 MiB"));
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
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

    use proptest::prelude::*;

    proptest! {
        /// Any bytes, plain or gzip: every item comes within the cap, and reading ends
        /// (in items or a named error) without a panic.
        #[test]
        fn any_bytes_read_to_an_end(text in prop::collection::vec(any::<u8>(), 0..512), gz in any::<bool>(), cap in 1usize..64) {
            let bytes = if gz { gzip(&text) } else { text.clone() };
            let (items, _) = read(&bytes, cap);
            // Each item takes at least one byte of the text (compressed, it can be shorter).
            prop_assert!(items.len() <= text.len());
        }

        /// Values written as JSON lines (blank lines, CRLF) or as one array (any whitespace)
        /// read back as themselves, each at its place.
        #[test]
        fn written_items_read_back_at_their_places(
            values in prop::collection::vec(json_value(), 0..8),
            gaps in prop::collection::vec("[ \\t\\r\\n]{0,3}", 8),
            array in any::<bool>(),
            crlf in any::<bool>(),
        ) {
            let texts: Vec<String> = values.iter().map(|v| serde_json::to_string(v).unwrap()).collect();
            let mut text = String::new();
            let mut places = Vec::new();
            if array {
                text.push('[');
                for (i, t) in texts.iter().enumerate() {
                    if i > 0 {
                        text.push(',');
                    }
                    text.push_str(&gaps[i]);
                    text.push_str(t);
                    places.push(Place::Element(i as u64 + 1));
                }
                text.push_str(&gaps[7]);
                text.push(']');
            } else {
                let mut line = 0;
                for (i, t) in texts.iter().enumerate() {
                    // Blank lines between items are skipped, but counted.
                    let blank = gaps[i].matches('\n').count();
                    text.push_str(&"\n".repeat(blank));
                    line += blank as u64 + 1;
                    text.push_str(t);
                    text.push_str(if crlf { "\r\n" } else { "\n" });
                    places.push(Place::Line(line));
                }
            }
            // A JSON-lines text starting with an array would be read as one array.
            prop_assume!(array || !texts.first().is_some_and(|t| t.starts_with('[')));
            let (items, error) = read(text.as_bytes(), MAX_ITEM_BYTES);
            prop_assert_eq!(error, None);
            let read_values: Vec<serde_json::Value> = items.iter().map(|(raw, _)| serde_json::from_str(raw).unwrap()).collect();
            prop_assert_eq!(read_values, values);
            let read_places: Vec<Place> = items.iter().map(|&(_, p)| p).collect();
            prop_assert_eq!(read_places, places);
        }
    }
}
