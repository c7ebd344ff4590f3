//! The package digest: what a signature covers and an operator may pin.

use std::fmt;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::PackageError;
use crate::signature::SIGNATURE_FILE;

/// Names the digest format; changing what the digest covers means a new one.
const DIGEST_FORMAT: &str = "switchboard-package/1";

/// The most bytes one package may hold (all files together).
pub const MAX_PACKAGE_BYTES: u64 = 256 * 1024 * 1024;

/// SHA-256 over a package's files (every regular file of the folder but
/// `signature.toml`, in name order: name, size, SHA-256 of the contents).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PackageDigest(pub [u8; 32]);

impl fmt::Display for PackageDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

impl PackageDigest {
    /// Parse `sha256:<64 hex digits>`.
    pub fn parse(text: &str) -> Option<Self> {
        let hex_digits = text.strip_prefix("sha256:")?;
        let bytes = hex::decode(hex_digits).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }
}

/// The files a package folder holds, in name order, with their contents.
/// Subfolders, symlinks and other special files are refused: a package is
/// flat.
pub(crate) fn package_files(folder: &Path) -> Result<Vec<(String, Vec<u8>)>, PackageError> {
    let entries = std::fs::read_dir(folder).map_err(|e| PackageError::io(folder, e))?;
    let mut files = Vec::new();
    let mut total: u64 = 0;
    for entry in entries {
        let entry = entry.map_err(|e| PackageError::io(folder, e))?;
        let path = entry.path();
        let name = entry.file_name().into_string().map_err(|name| {
            PackageError::invalid(folder, format!("file name {name:?} is not UTF-8"))
        })?;
        let kind = entry.file_type().map_err(|e| PackageError::io(&path, e))?;
        if !kind.is_file() {
            return Err(PackageError::invalid(
                folder,
                format!(
                    "`{name}` is not a regular file; a package holds only files, no folders or links"
                ),
            ));
        }
        if name == SIGNATURE_FILE {
            continue;
        }
        let contents = std::fs::read(&path).map_err(|e| PackageError::io(&path, e))?;
        total += contents.len() as u64;
        if total > MAX_PACKAGE_BYTES {
            return Err(PackageError::invalid(
                folder,
                format!("the package holds more than {MAX_PACKAGE_BYTES} bytes"),
            ));
        }
        files.push((name, contents));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

/// The digest of named file contents (already in name order).
pub(crate) fn digest_of(files: &[(String, Vec<u8>)]) -> PackageDigest {
    let mut hasher = Sha256::new();
    hasher.update(DIGEST_FORMAT.as_bytes());
    hasher.update(b"\n");
    for (name, contents) in files {
        hasher.update(name.as_bytes());
        hasher.update(b"\0");
        hasher.update(contents.len().to_string().as_bytes());
        hasher.update(b"\0");
        hasher.update(hex::encode(Sha256::digest(contents)).as_bytes());
        hasher.update(b"\n");
    }
    PackageDigest(hasher.finalize().into())
}

/// The digest of the package in `folder`.
pub fn package_digest(folder: &Path) -> Result<PackageDigest, PackageError> {
    Ok(digest_of(&package_files(folder)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, contents) in files {
            std::fs::write(dir.path().join(name), contents).unwrap();
        }
        dir
    }

    #[test]
    fn any_change_to_the_files_changes_the_digest() {
        let base =
            package_digest(folder(&[("manifest.toml", "a"), ("x.wasm", "b")]).path()).unwrap();
        let again =
            package_digest(folder(&[("x.wasm", "b"), ("manifest.toml", "a")]).path()).unwrap();
        assert_eq!(
            base, again,
            "the order files were written in does not matter"
        );
        for other in [
            vec![("manifest.toml", "a"), ("x.wasm", "c")],
            vec![("manifest.toml", "a"), ("y.wasm", "b")],
            vec![("manifest.toml", "a"), ("x.wasm", "b"), ("README.md", "")],
            vec![("manifest.toml", "ax"), ("x.wasm", "")],
        ] {
            assert_ne!(
                base,
                package_digest(folder(&other).path()).unwrap(),
                "{other:?}"
            );
        }
    }

    #[test]
    fn the_signature_file_is_not_covered_and_folders_are_refused() {
        let plain = package_digest(folder(&[("manifest.toml", "a")]).path()).unwrap();
        let signed = folder(&[("manifest.toml", "a"), (SIGNATURE_FILE, "whatever")]);
        assert_eq!(plain, package_digest(signed.path()).unwrap());
        std::fs::create_dir(signed.path().join("sub")).unwrap();
        let error = package_digest(signed.path()).unwrap_err().to_string();
        assert!(error.contains("`sub` is not a regular file"), "{error}");
    }

    #[test]
    fn digests_print_and_parse() {
        let digest = package_digest(folder(&[("manifest.toml", "a")]).path()).unwrap();
        let text = digest.to_string();
        assert!(
            text.starts_with("sha256:") && text.len() == 7 + 64,
            "{text}"
        );
        assert_eq!(PackageDigest::parse(&text), Some(digest));
        assert_eq!(PackageDigest::parse("sha256:abc"), None);
        assert_eq!(PackageDigest::parse(&text[7..]), None);
    }
}
