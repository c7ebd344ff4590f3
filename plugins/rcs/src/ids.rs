//! Identifiers RBM wants as UUIDs, derived deterministically from the host's
//! idempotency key.
//!
//! RBM deduplicates on the `messageId` query parameter: "the platform ignores
//! any agent message sent with an ID that was used by an earlier message or
//! event sent from the same agent". Deriving the id from the host's key means
//! every retry of the same message reuses it, so a retry after a lost reply
//! cannot deliver twice.

use sha2::{Digest, Sha256};

/// The `messageId` for the message with `idempotency_key`.
///
/// The host's key is a lowercase hex SHA-256; its first 16 bytes become a
/// UUID formatted as version 4 (the version and variant bits are set, the
/// other 122 bits are the key's), so the id can be matched to the key by eye.
/// Any other key (tests, hand-made messages) is hashed with SHA-256 first.
pub fn message_id(idempotency_key: &str) -> String {
    uuid_from_bytes(leading_bytes(idempotency_key))
}

/// A fresh `requestId` for a capability check of `idempotency_key`'s
/// recipient on `attempt`.
///
/// RBM ignores a reused `requestId` like a reused `messageId`, and the reply
/// to a reused one is undocumented, so each attempt gets its own id; it is
/// still derived from the key so that logs can be matched.
pub fn capability_request_id(idempotency_key: &str, attempt: u32) -> String {
    let digest = Sha256::digest(format!("rbm-capability:{idempotency_key}:{attempt}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid_from_bytes(bytes)
}

/// Whether `text` is a UUID in the canonical 8-4-4-4-12 hex form.
pub fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The first 16 bytes of a 64-character hex key, or of the SHA-256 of any
/// other key.
fn leading_bytes(key: &str) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    let hex = key.as_bytes();
    if hex.len() == 64 && hex.iter().all(u8::is_ascii_hexdigit) {
        for (i, pair) in hex[..32].chunks(2).enumerate() {
            bytes[i] = (nibble(pair[0]) << 4) | nibble(pair[1]);
        }
    } else {
        bytes.copy_from_slice(&Sha256::digest(key.as_bytes())[..16]);
    }
    bytes
}

fn nibble(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        b'A'..=b'F' => digit - b'A' + 10,
        _ => 0,
    }
}

/// `bytes` as a lowercase UUID with the version-4 and RFC 4122 variant bits set.
fn uuid_from_bytes(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "3f1c5a0e9b7d4c2a8e6f0b1d3c5a7e9f1b3d5c7a9e0f2b4d6c8a0e2f4b6d8c0a";

    #[test]
    fn message_id_is_the_keys_leading_bytes_as_a_v4_uuid() {
        assert_eq!(message_id(KEY), "3f1c5a0e-9b7d-4c2a-8e6f-0b1d3c5a7e9f");
        // Version and variant bits are forced.
        let zeros = "0".repeat(64);
        assert_eq!(message_id(&zeros), "00000000-0000-4000-8000-000000000000");
        let fs = "f".repeat(64);
        assert_eq!(message_id(&fs), "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert_eq!(message_id(&KEY.to_uppercase()), message_id(KEY));
    }

    #[test]
    fn message_id_is_stable_and_distinct() {
        assert_eq!(message_id(KEY), message_id(KEY));
        let other = KEY.replacen('3', "4", 1);
        assert_ne!(message_id(KEY), message_id(&other));
    }

    #[test]
    fn other_keys_are_hashed_first() {
        let id = message_id("contract-+4915112349001-receipt");
        assert!(is_uuid(&id), "{id}");
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        assert_eq!(id, message_id("contract-+4915112349001-receipt"));
        assert_ne!(id, message_id("contract-+4915112349002-receipt"));
        // 63 hex characters are not a host key either.
        assert!(is_uuid(&message_id(&KEY[..63])));
        assert_ne!(message_id(&KEY[..63]), message_id(KEY));
    }

    #[test]
    fn capability_ids_differ_per_attempt_and_from_the_message_id() {
        let first = capability_request_id(KEY, 1);
        let second = capability_request_id(KEY, 2);
        assert!(is_uuid(&first) && is_uuid(&second));
        assert_ne!(first, second);
        assert_ne!(first, message_id(KEY));
        assert_eq!(first, capability_request_id(KEY, 1));
    }

    #[test]
    fn recognises_uuids() {
        assert!(is_uuid("3f1c5a0e-9b7d-4c2a-8e6f-0b1d3c5a7e9f"));
        assert!(is_uuid("3F1C5A0E-9B7D-4C2A-8E6F-0B1D3C5A7E9F"));
        assert!(!is_uuid("3f1c5a0e9b7d4c2a8e6f0b1d3c5a7e9f"));
        assert!(!is_uuid("3f1c5a0e-9b7d-4c2a-8e6f-0b1d3c5a7e9"));
        assert!(!is_uuid("3f1c5a0e-9b7d-4c2a-8e6f-0b1d3c5a7e9g"));
        assert!(!is_uuid(""));
    }
}
