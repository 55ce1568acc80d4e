//! Small encoders the fake needs: base64 ids and page tokens, stable hashes,
//! a seeded mixer for reproducible randomness, and RFC 3339 timestamps.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::SystemTime;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// URL-safe base64 with `=` padding, so ids and tokens carry `-`, `_` and `=`
/// like the real ones (`"abd123="`), which clients must percent-encode.
pub(crate) fn base64url(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Inverse of [`base64url`]; `None` on any malformed input.
pub(crate) fn unbase64url(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (index, chunk) in bytes.chunks(4).enumerate() {
        let last = index == bytes.len() / 4 - 1;
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            let v = ALPHABET.iter().position(|&a| a == c)? as u32;
            n = (n << 6) | v;
        }
        n <<= 6 * pad as u32;
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&decoded[..3 - pad]);
    }
    Some(out)
}

/// A stable 64-bit hash (SipHash with fixed keys), good enough for tokens,
/// body fingerprints and derived user ids.
pub(crate) fn hash_of<T: Hash + ?Sized>(value: &T) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// SplitMix64: a bijective mixer, so distinct inputs give distinct outputs.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform float in [0, 1) from 64 random bits.
pub(crate) fn unit_float(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// Job id number `n` of a server whose ids are salted with `salt`: 9 to 11
/// random-looking bytes, so one id in three has no padding, the others end in
/// `==` (the first id) or `=`. Distinct `n` give distinct ids for one salt
/// (`mix` is a bijection); distinct salts give unrelated ids.
pub(crate) fn job_id(salt: u64, n: u64) -> String {
    let first = mix(n ^ mix(salt));
    let second = mix(first ^ 0xA5A5_A5A5);
    let mut bytes = first.to_be_bytes().to_vec();
    let extra = 1 + ((n + 1) % 3) as usize;
    bytes.extend_from_slice(&second.to_be_bytes()[..extra]);
    base64url(&bytes)
}

/// A salt for job ids that differs between processes and between servers in
/// one process: the wall clock, the process id and a counter, mixed. Not
/// cryptographic; it only keeps a restarted fake from handing out the ids of
/// the last run.
pub(crate) fn process_salt() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SERVERS: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let count = SERVERS.fetch_add(1, Ordering::Relaxed);
    mix(nanos ^ mix(u64::from(std::process::id()) ^ mix(count)))
}

/// RFC 3339 UTC with milliseconds and `Z`, as the API writes `created`.
pub(crate) fn rfc3339_millis(at: SystemTime) -> String {
    let dt = time::OffsetDateTime::from(at);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.millisecond()
    )
}

/// Whether `text` is an ISO 8601 / RFC 3339 timestamp the server would accept.
pub(crate) fn is_timestamp(text: &str) -> bool {
    use time::format_description::well_known::{Iso8601, Rfc3339};
    time::OffsetDateTime::parse(text, &Rfc3339).is_ok()
        || time::OffsetDateTime::parse(text, &Iso8601::DEFAULT).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn base64_round_trips_every_length() {
        for len in 0..20u8 {
            let data: Vec<u8> = (0..len)
                .map(|i| i.wrapping_mul(37).wrapping_add(250))
                .collect();
            let text = base64url(&data);
            if len == 0 {
                assert_eq!(unbase64url(&text), None);
            } else {
                assert_eq!(unbase64url(&text).as_deref(), Some(&data[..]), "{text}");
            }
        }
        assert_eq!(base64url(b"\xfb\xff"), "-_8=");
        assert_eq!(unbase64url("abc"), None);
        assert_eq!(unbase64url("a=bc"), None);
        assert_eq!(unbase64url("ab!c"), None);
    }

    #[test]
    fn job_ids_are_unique_and_look_real() {
        let ids: Vec<String> = (0..300).map(|n| job_id(7, n)).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len());
        for needle in ['=', '-', '_'] {
            assert!(
                ids.iter().any(|id| id.contains(needle)),
                "no id with {needle}"
            );
        }
        assert!(ids.iter().any(|id| !id.contains('=')));
        assert!(
            ids[0].ends_with("=="),
            "the first id already needs encoding"
        );
    }

    #[test]
    fn salts_give_other_ids() {
        let one: Vec<String> = (0..50).map(|n| job_id(1, n)).collect();
        let two: Vec<String> = (0..50).map(|n| job_id(2, n)).collect();
        assert!(one.iter().all(|id| !two.contains(id)));
        assert!(
            process_salt() != process_salt(),
            "every server gets its own"
        );
    }

    #[test]
    fn timestamps_have_millis_and_z() {
        let at = UNIX_EPOCH + Duration::from_millis(1_555_598_171_123);
        assert_eq!(rfc3339_millis(at), "2019-04-18T14:36:11.123Z");
        assert!(is_timestamp("2022-03-15T14:23:23Z"));
        assert!(is_timestamp("2022-03-15T14:23:23.5+02:00"));
        assert!(!is_timestamp("yesterday"));
    }
}
