//! Signature checks for webhooks, compared in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// HMAC-SHA256 of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// Whether two byte strings are equal, in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Whether `hex_signature` is the lowercase or uppercase hex HMAC-SHA256 of
/// `message` under `key` (WhatsApp `X-Hub-Signature-256`).
pub fn verify_hmac_sha256_hex(key: &[u8], message: &[u8], hex_signature: &str) -> bool {
    match hex::decode(hex_signature.trim()) {
        Ok(given) => constant_time_eq(&hmac_sha256(key, message), &given),
        Err(_) => false,
    }
}

/// Whether `base64_signature` is the base64 HMAC-SHA256 of `message` under
/// `key` (LINE `x-line-signature`).
pub fn verify_hmac_sha256_base64(key: &[u8], message: &[u8], base64_signature: &str) -> bool {
    use base64::Engine as _;
    match base64::engine::general_purpose::STANDARD.decode(base64_signature.trim()) {
        Ok(given) => constant_time_eq(&hmac_sha256(key, message), &given),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 4231 test case 2.
    const KEY: &[u8] = b"Jefe";
    const DATA: &[u8] = b"what do ya want for nothing?";
    const HEX: &str = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";

    #[test]
    fn hmac_matches_rfc_4231() {
        assert_eq!(hex::encode(hmac_sha256(KEY, DATA)), HEX);
    }

    #[test]
    fn hex_signature_verifies_and_rejects_tampering() {
        assert!(verify_hmac_sha256_hex(KEY, DATA, HEX));
        assert!(verify_hmac_sha256_hex(KEY, DATA, &HEX.to_uppercase()));
        assert!(!verify_hmac_sha256_hex(
            KEY,
            b"what do ya want for nothing!",
            HEX
        ));
        assert!(!verify_hmac_sha256_hex(b"jefe", DATA, HEX));
        assert!(!verify_hmac_sha256_hex(KEY, DATA, "not hex"));
        assert!(!verify_hmac_sha256_hex(KEY, DATA, &HEX[..62]));
    }

    #[test]
    fn base64_signature_verifies() {
        use base64::Engine as _;
        let sig = base64::engine::general_purpose::STANDARD.encode(hmac_sha256(KEY, DATA));
        assert!(verify_hmac_sha256_base64(KEY, DATA, &sig));
        assert!(!verify_hmac_sha256_base64(KEY, b"other", &sig));
    }
}
