//! Identifiers that look like Meta's.

use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use rand::Rng;
use rand::distr::Alphanumeric;

static SEQUENCE: AtomicU64 = AtomicU64::new(1);

/// A unique message id shaped like Meta's: `wamid.` followed by base64 of a
/// small binary record holding the recipient and a unique hex id.
pub fn wamid(wa_id: &str) -> String {
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let salt: u32 = rand::rng().random();
    let unique = format!("{salt:08X}{sequence:012X}");
    let mut raw = Vec::with_capacity(wa_id.len() + unique.len() + 12);
    raw.extend_from_slice(&[0x1c, 0x18, u8::try_from(wa_id.len()).unwrap_or(u8::MAX)]);
    raw.extend_from_slice(wa_id.as_bytes());
    raw.extend_from_slice(&[
        0x15,
        0x02,
        0x00,
        0x11,
        0x18,
        u8::try_from(unique.len()).unwrap_or(u8::MAX),
    ]);
    raw.extend_from_slice(unique.as_bytes());
    raw.push(0x00);
    format!(
        "wamid.{}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// A random `fbtrace_id` (27 alphanumeric characters).
pub fn fbtrace_id() -> String {
    random_alphanumeric(27)
}

/// A random conversation id (32 lowercase hex characters).
pub fn conversation_id() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    hex::encode(bytes)
}

fn random_alphanumeric(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn wamids_are_unique_and_prefixed() {
        let ids: HashSet<String> = (0..1000).map(|_| wamid("4915112345678")).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|id| id.starts_with("wamid.HBgN")));
        assert_eq!(fbtrace_id().len(), 27);
    }
}
