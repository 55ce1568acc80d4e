//! Turns fuzz bytes into an HTTP response: `status (2 bytes BE) | headers | 0x00 | body`, where
//! headers are `name:value` lines separated by `\n`.

use fullstory_batch::http::{HeaderName, HeaderValue, Response};

pub fn response(data: &[u8]) -> Option<Response<&[u8]>> {
    let (code, rest) = data.split_first_chunk::<2>()?;
    let split = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    let (head, body) = rest.split_at(split);
    let body = body.get(1..).unwrap_or_default();
    let mut builder = Response::builder().status(u16::from_be_bytes(*code) % 1000);
    for line in head.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            builder = builder.header(n, v);
        }
    }
    builder.body(body).ok()
}
