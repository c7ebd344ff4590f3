//! WeChat's webhook cryptography: the SHA-1 signatures over sorted strings
//! and safe mode's AES-256-CBC message encryption.
//!
//! - `signature = hex(SHA1(concat(sort([token, timestamp, nonce]))))`, on
//!   every push and on the URL-verification handshake;
//! - `msg_signature = hex(SHA1(concat(sort([token, timestamp, nonce, Encrypt]))))`,
//!   in safe mode;
//! - `Encrypt = Base64(AES-256-CBC(random16 ‖ len(msg) as u32 big-endian ‖ msg ‖ AppID))`
//!   with key `Base64Decode(EncodingAESKey + "=")`, IV the first 16 bytes
//!   of the key, and PKCS#7 padding to 32-byte blocks (so 1 to 32 bytes of
//!   padding, each holding the padding length).
//!
//! Checked against vectors made with wechatpy (`tests/fixtures/`).

use aes::Aes256;
use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use sha1::{Digest, Sha1};
use switchboard_sdk::signature::constant_time_eq;

/// Length of an `EncodingAESKey`: 43 base64 characters (32 bytes once
/// `=` is appended and it is decoded).
pub const ENCODING_AES_KEY_LEN: usize = 43;
/// The block size WeChat pads to (twice AES's 16 bytes).
pub const PAD_BLOCK: usize = 32;
/// Bytes of random prefix before the length field.
pub const RANDOM_LEN: usize = 16;

/// Lowercase hex SHA-1 of the lexicographically sorted `parts`, joined
/// with nothing in between.
pub fn sorted_sha1(parts: &[&str]) -> String {
    let mut sorted = parts.to_vec();
    sorted.sort_unstable();
    let mut hasher = Sha1::new();
    for part in sorted {
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Whether `given` is the (lowercase or uppercase) hex signature of
/// `parts`, compared in constant time. An empty token never verifies.
pub fn signature_matches(token: &str, others: &[&str], given: &str) -> bool {
    if token.is_empty() {
        return false;
    }
    let mut parts = Vec::with_capacity(others.len() + 1);
    parts.push(token);
    parts.extend_from_slice(others);
    let expected = sorted_sha1(&parts);
    constant_time_eq(
        expected.as_bytes(),
        given.trim().to_ascii_lowercase().as_bytes(),
    )
}

/// Why a safe-mode message could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CryptoError {
    /// The `EncodingAESKey` is not 43 base64 characters decoding to 32 bytes.
    BadKey(String),
    /// `Encrypt` is not base64, or not a whole number of AES blocks.
    BadCiphertext(String),
    /// The padding or the length field is inconsistent: wrong key or tampering.
    BadPlaintext(String),
    /// The message was encrypted for another Official Account.
    WrongAppId {
        /// The AppID found in the message.
        found: String,
    },
}

impl std::fmt::Display for CryptoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CryptoError::BadKey(why) => write!(f, "invalid EncodingAESKey: {why}"),
            CryptoError::BadCiphertext(why) => write!(f, "invalid Encrypt: {why}"),
            CryptoError::BadPlaintext(why) => write!(f, "cannot decrypt Encrypt: {why}"),
            CryptoError::WrongAppId { found } => {
                write!(
                    f,
                    "the message is for AppID `{found}`, not this Official Account"
                )
            }
        }
    }
}

impl std::error::Error for CryptoError {}

/// The 32-byte AES key of an `EncodingAESKey`.
pub fn aes_key(encoding_aes_key: &str) -> Result<[u8; 32], CryptoError> {
    let trimmed = encoding_aes_key.trim();
    if trimmed.len() != ENCODING_AES_KEY_LEN {
        return Err(CryptoError::BadKey(format!(
            "expected {ENCODING_AES_KEY_LEN} characters, got {}",
            trimmed.len()
        )));
    }
    let bytes = KEY_BASE64
        .decode(format!("{trimmed}="))
        .map_err(|error| CryptoError::BadKey(error.to_string()))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| CryptoError::BadKey(format!("decodes to {} bytes, not 32", bytes.len())))
}

/// Base64 for the EncodingAESKey. WeChat generates 43 random characters,
/// so the last one usually carries bits beyond the 32 bytes; like WeChat's
/// own samples (and wechatpy), those are ignored rather than refused.
const KEY_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

type Decryptor = cbc::Decryptor<Aes256>;
type Encryptor = cbc::Encryptor<Aes256>;

/// Decrypt a safe-mode `Encrypt` value and return the message, after
/// checking that it was meant for `app_id`.
pub fn decrypt(key: &[u8; 32], app_id: &str, encrypt: &str) -> Result<String, CryptoError> {
    let mut buffer = STANDARD
        .decode(encrypt.trim())
        .map_err(|error| CryptoError::BadCiphertext(format!("not base64: {error}")))?;
    if buffer.is_empty() || buffer.len() % PAD_BLOCK != 0 {
        return Err(CryptoError::BadCiphertext(format!(
            "{} bytes is not a whole number of {PAD_BLOCK}-byte blocks",
            buffer.len()
        )));
    }
    let iv: [u8; 16] = iv_of(key);
    let plain = Decryptor::new(key.into(), &iv.into())
        .decrypt_padded_mut::<NoPadding>(&mut buffer)
        .map_err(|_| CryptoError::BadCiphertext("not a whole number of AES blocks".into()))?;
    let unpadded = unpad(plain)?;
    let rest = unpadded.get(RANDOM_LEN..).ok_or_else(|| {
        CryptoError::BadPlaintext("shorter than the 16-byte random prefix".into())
    })?;
    let (length, rest) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| CryptoError::BadPlaintext("no message length".into()))?;
    let length = u32::from_be_bytes(*length) as usize;
    if length > rest.len() {
        return Err(CryptoError::BadPlaintext(format!(
            "message length {length} exceeds the {} bytes decrypted",
            rest.len()
        )));
    }
    let (message, found_app_id) = rest.split_at(length);
    let found = String::from_utf8_lossy(found_app_id).into_owned();
    if !constant_time_eq(found.as_bytes(), app_id.as_bytes()) {
        return Err(CryptoError::WrongAppId { found });
    }
    String::from_utf8(message.to_vec())
        .map_err(|_| CryptoError::BadPlaintext("the message is not UTF-8".into()))
}

/// Encrypt `message` for `app_id` with the given 16-byte random prefix, as
/// WeChat does (used for encrypted replies and to check the algorithm
/// against the fixtures).
pub fn encrypt(key: &[u8; 32], app_id: &str, random16: &[u8; 16], message: &str) -> String {
    let mut buffer = Vec::with_capacity(RANDOM_LEN + 4 + message.len() + app_id.len() + PAD_BLOCK);
    buffer.extend_from_slice(random16);
    let length = u32::try_from(message.len()).unwrap_or(u32::MAX);
    buffer.extend_from_slice(&length.to_be_bytes());
    buffer.extend_from_slice(message.as_bytes());
    buffer.extend_from_slice(app_id.as_bytes());
    let padding = PAD_BLOCK - buffer.len() % PAD_BLOCK;
    // 1..=32, so it always fits in a byte.
    buffer.extend(std::iter::repeat_n(padding as u8, padding));
    let iv: [u8; 16] = iv_of(key);
    let total = buffer.len();
    // The buffer is a whole number of blocks, so NoPadding cannot fail.
    let cipher = Encryptor::new(key.into(), &iv.into())
        .encrypt_padded_mut::<NoPadding>(&mut buffer, total)
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    STANDARD.encode(cipher)
}

fn iv_of(key: &[u8; 32]) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv.copy_from_slice(&key[..16]);
    iv
}

/// Strip WeChat's PKCS#7 padding (1 to 32 bytes, each equal to the count).
fn unpad(plain: &[u8]) -> Result<&[u8], CryptoError> {
    let Some(&last) = plain.last() else {
        return Err(CryptoError::BadPlaintext("empty".into()));
    };
    let padding = usize::from(last);
    if !(1..=PAD_BLOCK).contains(&padding) || padding > plain.len() {
        return Err(CryptoError::BadPlaintext(format!(
            "padding byte {padding} is not between 1 and {PAD_BLOCK}"
        )));
    }
    let (body, pad) = plain.split_at(plain.len() - padding);
    if pad.iter().any(|&byte| usize::from(byte) != padding) {
        return Err(CryptoError::BadPlaintext(
            "inconsistent padding bytes".into(),
        ));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{self, Vector};

    #[test]
    fn signature_matches_wechats_documented_example() {
        let set = fixtures::load();
        let handshake = &set.handshake;
        assert_eq!(
            sorted_sha1(&[&set.token, &handshake.timestamp, &handshake.nonce]),
            handshake.signature
        );
        assert!(signature_matches(
            &set.token,
            &[&handshake.timestamp, &handshake.nonce],
            &handshake.signature.to_uppercase()
        ));
        assert!(!signature_matches(
            &set.token,
            &[&handshake.nonce, "1409659814"],
            &handshake.signature
        ));
        assert!(!signature_matches(
            "",
            &[&handshake.timestamp, &handshake.nonce],
            &handshake.signature
        ));
    }

    #[test]
    fn sorting_is_by_bytes_not_by_position() {
        // SHA1("abc") — the parts are sorted before they are joined.
        assert_eq!(
            sorted_sha1(&["c", "a", "b"]),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }

    #[test]
    fn msg_signatures_match_wechatpy() {
        let set = fixtures::load();
        for v in &set.vectors {
            assert_eq!(
                sorted_sha1(&[&set.token, &v.timestamp, &v.nonce, &v.encrypt]),
                v.msg_signature,
                "{}",
                v.name
            );
            assert_eq!(
                sorted_sha1(&[&set.token, &v.timestamp, &v.nonce]),
                v.signature,
                "{}",
                v.name
            );
        }
    }

    #[test]
    fn decrypts_every_wechatpy_vector_for_our_app_id() {
        let set = fixtures::load();
        let key = aes_key(&set.encoding_aes_key).expect("key");
        for v in set
            .vectors
            .iter()
            .filter(|v| v.encrypt_app_id == set.app_id)
        {
            assert_eq!(
                decrypt(&key, &set.app_id, &v.encrypt).as_deref(),
                Ok(v.plaintext.as_str()),
                "{}",
                v.name
            );
        }
    }

    #[test]
    fn our_encryption_is_byte_identical_to_wechatpys() {
        let set = fixtures::load();
        let key = aes_key(&set.encoding_aes_key).expect("key");
        for v in &set.vectors {
            let random: [u8; 16] = v.random.as_bytes().try_into().expect("16 bytes");
            assert_eq!(
                encrypt(&key, &v.encrypt_app_id, &random, &v.plaintext),
                v.encrypt,
                "{}",
                v.name
            );
        }
    }

    #[test]
    fn a_whole_block_of_padding_round_trips() {
        let set = fixtures::load();
        let v: &Vector = set.vector("full_padding_block");
        let frame = RANDOM_LEN + 4 + v.plaintext.len() + set.app_id.len();
        assert_eq!(frame % PAD_BLOCK, 0, "the vector pads a whole block");
        let key = aes_key(&set.encoding_aes_key).expect("key");
        assert_eq!(
            decrypt(&key, &set.app_id, &v.encrypt).as_deref(),
            Ok(v.plaintext.as_str())
        );
    }

    #[test]
    fn refuses_a_message_for_another_app_id() {
        let set = fixtures::load();
        let v = set.vector("other_app_id");
        let key = aes_key(&set.encoding_aes_key).expect("key");
        assert_eq!(
            decrypt(&key, &set.app_id, &v.encrypt),
            Err(CryptoError::WrongAppId {
                found: "wx0000000000000000".into()
            })
        );
        let error = decrypt(&key, &set.app_id, &v.encrypt).expect_err("wrong app id");
        assert!(error.to_string().contains("wx0000000000000000"), "{error}");
    }

    #[test]
    fn refuses_a_wrong_key_tampering_and_garbage() {
        let set = fixtures::load();
        let v = set.vector("inbound_text");
        let other = aes_key("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefg").expect("key");
        assert!(decrypt(&other, &set.app_id, &v.encrypt).is_err());

        let key = aes_key(&set.encoding_aes_key).expect("key");
        // Flip a bit in the last block: the padding no longer checks out.
        let mut raw = STANDARD.decode(&v.encrypt).expect("base64");
        let last = raw.len() - 1;
        raw[last] ^= 0x01;
        assert!(decrypt(&key, &set.app_id, &STANDARD.encode(&raw)).is_err());

        match decrypt(&key, &set.app_id, "not base64!") {
            Err(CryptoError::BadCiphertext(why)) => assert!(why.contains("base64"), "{why}"),
            other => panic!("unexpected {other:?}"),
        }
        match decrypt(&key, &set.app_id, &STANDARD.encode([0u8; 48])) {
            Err(CryptoError::BadCiphertext(why)) => {
                assert!(why.contains("48 bytes"), "{why}")
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(decrypt(&key, &set.app_id, "").is_err());
    }

    #[test]
    fn rejects_malformed_keys() {
        match aes_key("short") {
            Err(CryptoError::BadKey(why)) => assert!(why.contains("43"), "{why}"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            aes_key(&"!".repeat(ENCODING_AES_KEY_LEN)),
            Err(CryptoError::BadKey(_))
        ));
        assert!(aes_key(" abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG ").is_ok());
        // The 43rd character's two spare bits are ignored: G (000110) and
        // E (000100) differ only in them.
        assert_eq!(
            aes_key("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"),
            aes_key("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFE")
        );
    }

    #[test]
    fn unpad_accepts_1_to_32_only() {
        let mut block = vec![b'a'; 31];
        block.push(1);
        assert_eq!(unpad(&block).expect("1 byte").len(), 31);
        assert_eq!(unpad(&[32u8; 32]).expect("whole block").len(), 0);
        assert!(unpad(&[0u8; 32]).is_err());
        assert!(unpad(&[33u8; 64]).is_err());
        let mut mixed = vec![b'a'; 29];
        mixed.extend_from_slice(&[2, 3, 3]);
        assert!(unpad(&mixed).is_err());
    }
}
