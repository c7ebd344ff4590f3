//! WeChat's push signatures and safe-mode encryption, as the platform
//! computes them.
//!
//! - `signature = hex(SHA1(concat(sort([token, timestamp, nonce]))))`;
//! - `msg_signature = hex(SHA1(concat(sort([token, timestamp, nonce, Encrypt]))))`;
//! - `Encrypt = Base64(AES-256-CBC(random16 ‖ len(msg) u32 BE ‖ msg ‖ AppID))`,
//!   key `Base64Decode(EncodingAESKey + "=")`, IV the key's first 16 bytes,
//!   PKCS#7 padding to 32-byte blocks.
//!
//! This is the simulator's own copy of the algorithm (the adapter is a
//! separate wasm crate); both are checked against the vectors wechatpy made
//! in `plugins/wechat/tests/fixtures/vectors.json`.

use aes::Aes256;
use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use sha1::{Digest, Sha1};

/// The block size WeChat pads to.
const PAD_BLOCK: usize = 32;

/// Base64 that ignores the spare bits of a 43-character key's last symbol.
const KEY_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// Why a key or a ciphertext was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The EncodingAESKey is not 43 base64 characters decoding to 32 bytes.
    #[error("invalid EncodingAESKey: {0}")]
    BadKey(String),
    /// The ciphertext cannot be decrypted into a WeChat frame.
    #[error("cannot decrypt: {0}")]
    BadCiphertext(String),
    /// The frame names another AppID.
    #[error("the message is for AppID {0:?}")]
    WrongAppId(String),
}

/// Lowercase hex SHA-1 of the sorted `parts`, concatenated.
pub fn sorted_sha1(parts: &[&str]) -> String {
    let mut sorted = parts.to_vec();
    sorted.sort_unstable();
    let mut hasher = Sha1::new();
    for part in sorted {
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// The 32-byte AES key of a 43-character EncodingAESKey.
pub fn aes_key(encoding_aes_key: &str) -> Result<[u8; 32], CryptoError> {
    if encoding_aes_key.len() != 43 {
        return Err(CryptoError::BadKey(format!(
            "expected 43 characters, got {}",
            encoding_aes_key.len()
        )));
    }
    let bytes = KEY_BASE64
        .decode(format!("{encoding_aes_key}="))
        .map_err(|e| CryptoError::BadKey(e.to_string()))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| CryptoError::BadKey(format!("decodes to {} bytes", bytes.len())))
}

fn iv(key: &[u8; 32]) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv.copy_from_slice(&key[..16]);
    iv
}

/// Encrypt `message` for `app_id` with a given 16-byte random prefix.
pub fn encrypt(key: &[u8; 32], app_id: &str, random16: &[u8; 16], message: &str) -> String {
    let mut frame = Vec::with_capacity(20 + message.len() + app_id.len() + PAD_BLOCK);
    frame.extend_from_slice(random16);
    frame.extend_from_slice(
        &u32::try_from(message.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    frame.extend_from_slice(message.as_bytes());
    frame.extend_from_slice(app_id.as_bytes());
    let padding = PAD_BLOCK - frame.len() % PAD_BLOCK;
    frame.extend(std::iter::repeat_n(padding as u8, padding));
    let len = frame.len();
    let encrypted = cbc::Encryptor::<Aes256>::new(key.into(), &iv(key).into())
        .encrypt_padded_mut::<NoPadding>(&mut frame, len)
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    STANDARD.encode(encrypted)
}

/// Encrypt `message` with a fresh random prefix (16 alphanumeric
/// characters, as WeChat's samples use).
pub fn encrypt_random(key: &[u8; 32], app_id: &str, message: &str) -> String {
    use rand::Rng as _;
    let mut random = [0u8; 16];
    for (byte, c) in random
        .iter_mut()
        .zip(rand::rng().sample_iter(&rand::distr::Alphanumeric).take(16))
    {
        *byte = c;
    }
    encrypt(key, app_id, &random, message)
}

/// Decrypt an `Encrypt` value meant for `app_id` (used by tests of the
/// pushes the simulator sends).
pub fn decrypt(key: &[u8; 32], app_id: &str, encrypted: &str) -> Result<String, CryptoError> {
    let bad = |why: &str| CryptoError::BadCiphertext(why.to_owned());
    let mut buffer = STANDARD.decode(encrypted).map_err(|_| bad("not base64"))?;
    if buffer.is_empty() || buffer.len() % PAD_BLOCK != 0 {
        return Err(bad("not a whole number of 32-byte blocks"));
    }
    let plain = cbc::Decryptor::<Aes256>::new(key.into(), &iv(key).into())
        .decrypt_padded_mut::<NoPadding>(&mut buffer)
        .map_err(|_| bad("not a whole number of AES blocks"))?;
    let padding = usize::from(*plain.last().ok_or_else(|| bad("empty"))?);
    if !(1..=PAD_BLOCK).contains(&padding) || padding + 20 > plain.len() {
        return Err(bad("bad padding"));
    }
    let frame = &plain[16..plain.len() - padding];
    let (length, rest) = frame.split_at(4);
    let length = u32::from_be_bytes([length[0], length[1], length[2], length[3]]) as usize;
    if length > rest.len() {
        return Err(bad("bad message length"));
    }
    let (message, found) = rest.split_at(length);
    if found != app_id.as_bytes() {
        return Err(CryptoError::WrongAppId(
            String::from_utf8_lossy(found).into_owned(),
        ));
    }
    String::from_utf8(message.to_vec()).map_err(|_| bad("not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// The vectors wechatpy made (see the adapter's `make_vectors.py`).
    fn vectors() -> Value {
        serde_json::from_str(include_str!(
            "../../../../plugins/wechat/tests/fixtures/vectors.json"
        ))
        .expect("vectors.json parses")
    }

    fn s<'a>(v: &'a Value, key: &str) -> &'a str {
        v[key].as_str().unwrap_or_else(|| panic!("no {key}"))
    }

    #[test]
    fn signatures_match_wechatpy() {
        let set = vectors();
        let token = s(&set, "token");
        let handshake = &set["handshake"];
        assert_eq!(
            sorted_sha1(&[token, s(handshake, "timestamp"), s(handshake, "nonce")]),
            s(handshake, "signature")
        );
        for v in set["vectors"].as_array().expect("vectors") {
            assert_eq!(
                sorted_sha1(&[token, s(v, "timestamp"), s(v, "nonce"), s(v, "encrypt")]),
                s(v, "msg_signature"),
                "{}",
                s(v, "name")
            );
        }
    }

    #[test]
    fn encryption_is_byte_identical_to_wechatpys_and_round_trips() {
        let set = vectors();
        let key = aes_key(s(&set, "encoding_aes_key")).expect("key");
        let app_id = s(&set, "app_id");
        for v in set["vectors"].as_array().expect("vectors") {
            let random: [u8; 16] = s(v, "random").as_bytes().try_into().expect("16 bytes");
            let encrypted = encrypt(&key, s(v, "encrypt_app_id"), &random, s(v, "plaintext"));
            assert_eq!(encrypted, s(v, "encrypt"), "{}", s(v, "name"));
            if s(v, "encrypt_app_id") == app_id {
                assert_eq!(
                    decrypt(&key, app_id, s(v, "encrypt")).as_deref(),
                    Ok(s(v, "plaintext"))
                );
            } else {
                assert!(matches!(
                    decrypt(&key, app_id, s(v, "encrypt")),
                    Err(CryptoError::WrongAppId(_))
                ));
            }
        }
    }

    #[test]
    fn random_prefixes_differ_but_decrypt_the_same() {
        let key = aes_key("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG").expect("key");
        let a = encrypt_random(&key, "wx1", "<xml/>");
        let b = encrypt_random(&key, "wx1", "<xml/>");
        assert_ne!(a, b);
        assert_eq!(decrypt(&key, "wx1", &a).as_deref(), Ok("<xml/>"));
        assert_eq!(decrypt(&key, "wx1", &b).as_deref(), Ok("<xml/>"));
        assert!(aes_key("short").is_err());
        assert!(decrypt(&key, "wx1", "!!").is_err());
    }
}
