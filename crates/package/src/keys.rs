//! Signing keys (kept by the BSP, as PKCS#8 PEM files) and public keys (in
//! the operator's configuration, as `ed25519:<base64>`).

use std::fmt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding};
use sha2::{Digest, Sha256};

use crate::PackageError;

pub use ed25519_dalek::SigningKey;

/// A key's id: the first 16 hex digits of the SHA-256 of its public key, so
/// a signature names its signer without anyone choosing the name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub String);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A public key that verifies package signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey(pub ed25519_dalek::VerifyingKey);

impl PublicKey {
    /// Parse `ed25519:<base64 of the 32-byte key>`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let encoded = text
            .trim()
            .strip_prefix("ed25519:")
            .ok_or_else(|| format!("`{text}` is not a public key: write `ed25519:<base64>`"))?;
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|e| format!("`{text}`: the key is not base64 ({e})"))?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            format!("`{text}`: an ed25519 key is 32 bytes, this is {}", b.len())
        })?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|e| format!("`{text}` is not a valid ed25519 key ({e})"))
    }

    /// The key's id.
    pub fn id(&self) -> KeyId {
        KeyId(hex::encode(&Sha256::digest(self.0.as_bytes())[..8]))
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ed25519:{}", STANDARD.encode(self.0.as_bytes()))
    }
}

/// A new random signing key.
pub fn generate_signing_key() -> SigningKey {
    SigningKey::from_bytes(&rand::random::<[u8; 32]>())
}

/// Write `key` as a PKCS#8 PEM file readable only by its owner.
pub fn write_signing_key(key: &SigningKey, path: &Path) -> Result<(), PackageError> {
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| PackageError::Key {
            path: path.to_owned(),
            message: format!("cannot encode the key: {e}"),
        })?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| PackageError::io(path, e))?;
    std::io::Write::write_all(&mut file, pem.as_bytes()).map_err(|e| PackageError::io(path, e))
}

/// Read a PKCS#8 PEM signing key (as written by [`write_signing_key`] or
/// `openssl genpkey -algorithm ed25519`).
pub fn read_signing_key(path: &Path) -> Result<SigningKey, PackageError> {
    let pem = std::fs::read_to_string(path).map_err(|e| PackageError::io(path, e))?;
    SigningKey::from_pkcs8_pem(&pem).map_err(|e| PackageError::Key {
        path: path.to_owned(),
        message: format!("not an ed25519 PKCS#8 PEM private key ({e})"),
    })
}

/// The public half of `key`.
pub fn public_key(key: &SigningKey) -> PublicKey {
    PublicKey(key.verifying_key())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_keys_print_parse_and_have_stable_ids() {
        let key = generate_signing_key();
        let public = public_key(&key);
        let text = public.to_string();
        let parsed = PublicKey::parse(&text).unwrap();
        assert_eq!(parsed, public);
        assert_eq!(parsed.id(), public.id());
        assert_eq!(public.id().0.len(), 16);
        assert_ne!(public_key(&generate_signing_key()).id(), public.id());
    }

    #[test]
    fn malformed_public_keys_are_refused_with_the_reason() {
        assert!(
            PublicKey::parse("AAAA")
                .unwrap_err()
                .contains("ed25519:<base64>")
        );
        assert!(
            PublicKey::parse("ed25519:!!")
                .unwrap_err()
                .contains("not base64")
        );
        assert!(
            PublicKey::parse("ed25519:AAAA")
                .unwrap_err()
                .contains("32 bytes")
        );
    }

    #[test]
    fn signing_keys_round_trip_through_pem_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        let key = generate_signing_key();
        write_signing_key(&key, &path).unwrap();
        assert_eq!(read_signing_key(&path).unwrap().to_bytes(), key.to_bytes());
        // An existing key is never overwritten.
        assert!(write_signing_key(&generate_signing_key(), &path).is_err());
        std::fs::write(dir.path().join("bad.pem"), "not a key").unwrap();
        let error = read_signing_key(&dir.path().join("bad.pem"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("bad.pem") && error.contains("PKCS#8"),
            "{error}"
        );
    }
}
