//! Identifiers that look like LINE's.

use std::sync::atomic::{AtomicU64, Ordering};

use rand::Rng;

/// Crockford's base32 alphabet, used by ULIDs.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static MESSAGE_SEQUENCE: AtomicU64 = AtomicU64::new(1);

/// A request id as in `X-Line-Request-Id`: a random UUID.
pub fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A `webhookEventId`: a ULID (26 Crockford base32 characters, the first
/// ten encoding `at_ms`).
pub fn webhook_event_id(at_ms: i64) -> String {
    let time = u64::try_from(at_ms).unwrap_or(0) & ((1 << 48) - 1);
    let random: u128 = rand::rng().random::<u128>() & ((1u128 << 80) - 1);
    let value: u128 = (u128::from(time) << 80) | random;
    (0..26)
        .rev()
        .map(|i| CROCKFORD[((value >> (i * 5)) & 0x1f) as usize] as char)
        .collect()
}

/// A message id: 18 decimal digits, unique within the process.
pub fn message_id() -> String {
    let sequence = MESSAGE_SEQUENCE.fetch_add(1, Ordering::Relaxed) % 1_000_000;
    let high: u64 = rand::rng().random_range(100_000_000_000..1_000_000_000_000);
    format!("{high}{sequence:06}")
}

/// A reply token or quote token: 32 random lowercase hex characters.
pub fn token() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_have_lines_shapes() {
        let id = webhook_event_id(1_700_000_000_000);
        assert_eq!(id.len(), 26);
        assert!(id.bytes().all(|b| CROCKFORD.contains(&b)));
        // The time prefix sorts with the time.
        assert!(
            webhook_event_id(1_700_000_000_000)[..10] < webhook_event_id(1_800_000_000_000)[..10]
        );
        assert_eq!(
            &webhook_event_id(0)[..10],
            "0000000000",
            "epoch encodes as zeros"
        );
        let ids: HashSet<String> = (0..1_000).map(|_| message_id()).collect();
        assert_eq!(ids.len(), 1_000);
        assert!(
            ids.iter()
                .all(|id| id.len() == 18 && id.bytes().all(|b| b.is_ascii_digit()))
        );
        assert_eq!(request_id().len(), 36);
        assert_eq!(token().len(), 32);
    }
}
