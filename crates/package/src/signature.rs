//! `signature.toml`: who signed a package and over which digest.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::Signer;
use serde::{Deserialize, Serialize};

use crate::PackageError;
use crate::digest::{PackageDigest, digest_of, package_files};
use crate::keys::{KeyId, PublicKey, SigningKey, public_key};

/// The file in a package folder that carries its signature.
pub const SIGNATURE_FILE: &str = "signature.toml";

/// What is signed: a domain prefix and the digest, so a package signature
/// can never be taken for a signature over anything else.
fn signed_message(digest: &PackageDigest) -> Vec<u8> {
    format!("switchboard-package-signature/1 {digest}").into_bytes()
}

/// A package's signature, as stored in `signature.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// Always `ed25519`.
    pub algorithm: String,
    /// The digest signed, `sha256:<hex>`.
    pub digest: String,
    /// The signer's key id (see [`PublicKey::id`]).
    pub key_id: String,
    /// The ed25519 signature, base64.
    pub signature: String,
}

impl Signature {
    /// Sign `digest` with `key`.
    pub fn create(digest: &PackageDigest, key: &SigningKey) -> Self {
        let signature = key.sign(&signed_message(digest));
        Self {
            algorithm: "ed25519".into(),
            digest: digest.to_string(),
            key_id: public_key(key).id().0,
            signature: STANDARD.encode(signature.to_bytes()),
        }
    }

    /// Read `folder/signature.toml`; `None` when the package is unsigned.
    pub fn read(folder: &Path) -> Result<Option<Self>, PackageError> {
        let path = folder.join(SIGNATURE_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(PackageError::io(&path, e)),
        };
        toml::from_str(&text)
            .map(Some)
            .map_err(|e| PackageError::invalid(&path, e.to_string()))
    }

    /// The signer's key id.
    pub fn key_id(&self) -> KeyId {
        KeyId(self.key_id.clone())
    }

    /// Whether this signature, by `key`, covers `digest`. The digest is
    /// the one computed from the files, not the one the file claims.
    pub fn verifies(&self, digest: &PackageDigest, key: &PublicKey) -> bool {
        if self.algorithm != "ed25519" || PackageDigest::parse(&self.digest) != Some(*digest) {
            return false;
        }
        let Ok(bytes) = STANDARD.decode(&self.signature) else {
            return false;
        };
        let Ok(bytes) = <[u8; 64]>::try_from(bytes) else {
            return false;
        };
        key.0
            .verify_strict(
                &signed_message(digest),
                &ed25519_dalek::Signature::from_bytes(&bytes),
            )
            .is_ok()
    }
}

/// Sign the package in `folder` with `key`, writing `signature.toml`;
/// returns what was written.
pub fn sign_folder(folder: &Path, key: &SigningKey) -> Result<Signature, PackageError> {
    let digest = digest_of(&package_files(folder)?);
    let signature = Signature::create(&digest, key);
    let path = folder.join(SIGNATURE_FILE);
    let text =
        toml::to_string(&signature).map_err(|e| PackageError::invalid(&path, e.to_string()))?;
    std::fs::write(&path, text).map_err(|e| PackageError::io(&path, e))?;
    Ok(signature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::generate_signing_key;

    #[test]
    fn a_signature_verifies_only_its_digest_and_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("manifest.toml"), "a").unwrap();
        let key = generate_signing_key();
        let signature = sign_folder(dir.path(), &key).unwrap();
        assert_eq!(
            Signature::read(dir.path()).unwrap(),
            Some(signature.clone())
        );
        let digest = crate::package_digest(dir.path()).unwrap();
        assert!(signature.verifies(&digest, &public_key(&key)));
        assert!(!signature.verifies(&digest, &public_key(&generate_signing_key())));
        let other = PackageDigest([7; 32]);
        assert!(!signature.verifies(&other, &public_key(&key)));
        let mut tampered = signature.clone();
        tampered.signature = STANDARD.encode([0u8; 64]);
        assert!(!tampered.verifies(&digest, &public_key(&key)));
    }

    #[test]
    fn an_unsigned_folder_reads_as_none_and_a_garbled_signature_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Signature::read(dir.path()).unwrap(), None);
        std::fs::write(dir.path().join(SIGNATURE_FILE), "algorithm = 3").unwrap();
        let error = Signature::read(dir.path()).unwrap_err().to_string();
        assert!(error.contains(SIGNATURE_FILE), "{error}");
    }
}
