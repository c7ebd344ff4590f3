//! Adapter packages as BSPs distribute them and hosts verify them.
//!
//! A package is a folder (`manifest.toml`, the component it names, an
//! optional `README.md`) plus `signature.toml`; as one file (`.sbpkg`) it is
//! that folder as a gzip-compressed tar archive with no subfolders.
//!
//! - [`digest`]: the package digest — SHA-256 over each file's name, size
//!   and SHA-256, in name order — so a changed byte, a renamed, added or
//!   removed file all change it.
//! - [`keys`]: ed25519 signing keys (PKCS#8 PEM files) and public keys as
//!   `ed25519:<base64>`, with a key id derived from the public key.
//! - [`signature`]: `signature.toml`: the digest, the signer's key id and an
//!   ed25519 signature over the digest.
//! - [`trust`]: the operator's trusted keys and the verdict on a folder:
//!   signed by a trusted key, unsigned, tampered or untrusted.
//! - [`archive`]: packing a folder into one file and unpacking it safely.

pub mod archive;
pub mod digest;
pub mod keys;
pub mod signature;
pub mod trust;

pub use archive::{pack, unpack};
pub use digest::{PackageDigest, package_digest};
pub use keys::{KeyId, PublicKey, SigningKey, generate_signing_key};
pub use signature::{SIGNATURE_FILE, Signature, sign_folder};
pub use trust::{PackageContents, TrustError, TrustStore, Verdict};

/// What can go wrong reading, writing, signing or verifying a package.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The package's layout or one of its files is not what a package holds.
    #[error("{path}: {message}")]
    Invalid {
        /// The package file or folder.
        path: std::path::PathBuf,
        /// What is wrong, naming the entry or field.
        message: String,
    },
    /// A key could not be read or written.
    #[error("{path}: {message}")]
    Key {
        /// The key file.
        path: std::path::PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl PackageError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }

    pub(crate) fn invalid(path: &std::path::Path, message: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.to_owned(),
            message: message.into(),
        }
    }
}
