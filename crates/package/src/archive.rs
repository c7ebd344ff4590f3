//! A package as one file: the folder's files in a gzip-compressed tar
//! archive, flat. Unpacking refuses anything but plain files with plain
//! names, and bounds the size, so an archive cannot write outside the
//! folder it is unpacked into.

use std::io::Read;
use std::path::Path;

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use crate::PackageError;
use crate::digest::{MAX_PACKAGE_BYTES, package_files};
use crate::signature::SIGNATURE_FILE;

/// Most files one package may hold.
const MAX_FILES: usize = 16;

/// Write the package in `folder` (its files and `signature.toml`, if any)
/// to `out` as one file.
pub fn pack(folder: &Path, out: &Path) -> Result<(), PackageError> {
    let mut files = package_files(folder)?;
    let signature = folder.join(SIGNATURE_FILE);
    if signature.is_file() {
        let contents = std::fs::read(&signature).map_err(|e| PackageError::io(&signature, e))?;
        files.push((SIGNATURE_FILE.to_owned(), contents));
    }
    let file = std::fs::File::create(out).map_err(|e| PackageError::io(out, e))?;
    let mut archive = tar::Builder::new(GzEncoder::new(file, Compression::default()));
    for (name, contents) in &files {
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        archive
            .append_data(&mut header, name, contents.as_slice())
            .map_err(|e| PackageError::io(out, e))?;
    }
    archive
        .into_inner()
        .and_then(|gz| gz.finish())
        .and_then(|file| file.sync_all())
        .map_err(|e| PackageError::io(out, e))
}

/// Unpack the package file `package` into the new folder `into` (which
/// must not exist). Only plain files with plain names are accepted.
pub fn unpack(package: &Path, into: &Path) -> Result<(), PackageError> {
    let file = std::fs::File::open(package).map_err(|e| PackageError::io(package, e))?;
    let mut archive = tar::Archive::new(GzDecoder::new(file));
    std::fs::create_dir(into).map_err(|e| PackageError::io(into, e))?;
    let result = (|| {
        let mut total: u64 = 0;
        let mut count = 0;
        let entries = archive
            .entries()
            .map_err(|e| PackageError::invalid(package, format!("not a package file: {e}")))?;
        for entry in entries {
            let mut entry = entry
                .map_err(|e| PackageError::invalid(package, format!("not a package file: {e}")))?;
            let name = entry
                .path()
                .map_err(|e| {
                    PackageError::invalid(package, format!("an entry's name is unreadable: {e}"))
                })?
                .to_string_lossy()
                .into_owned();
            let plain = !name.is_empty()
                && !name.contains(['/', '\\', '\0'])
                && name != "."
                && name != ".."
                && !name.starts_with('.');
            if !plain || entry.header().entry_type() != tar::EntryType::Regular {
                return Err(PackageError::invalid(
                    package,
                    format!("entry `{name}`: a package holds only plain files with plain names"),
                ));
            }
            count += 1;
            if count > MAX_FILES {
                return Err(PackageError::invalid(
                    package,
                    format!("more than {MAX_FILES} files"),
                ));
            }
            let mut contents = Vec::new();
            entry
                .by_ref()
                .take(MAX_PACKAGE_BYTES + 1 - total)
                .read_to_end(&mut contents)
                .map_err(|e| PackageError::invalid(package, format!("entry `{name}`: {e}")))?;
            total += contents.len() as u64;
            if total > MAX_PACKAGE_BYTES {
                return Err(PackageError::invalid(
                    package,
                    format!("the package holds more than {MAX_PACKAGE_BYTES} bytes"),
                ));
            }
            let path = into.join(&name);
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| PackageError::invalid(package, format!("entry `{name}`: {e}")))?;
            std::io::Write::write_all(&mut out, &contents)
                .map_err(|e| PackageError::io(&path, e))?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(into);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{generate_signing_key, public_key};
    use crate::{TrustStore, Verdict, package_digest, sign_folder};

    #[test]
    fn a_packed_signed_folder_unpacks_to_the_same_digest_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("acme");
        std::fs::create_dir(&source).unwrap();
        std::fs::write(source.join("manifest.toml"), "[adapter]\nname = \"acme\"\n").unwrap();
        std::fs::write(source.join("acme.wasm"), vec![7u8; 100_000]).unwrap();
        std::fs::write(source.join("README.md"), "# Acme\n").unwrap();
        let key = generate_signing_key();
        sign_folder(&source, &key).unwrap();
        let file = dir.path().join("acme.sbpkg");
        pack(&source, &file).unwrap();
        let unpacked = dir.path().join("unpacked");
        unpack(&file, &unpacked).unwrap();
        assert_eq!(
            package_digest(&unpacked).unwrap(),
            package_digest(&source).unwrap()
        );
        let store = TrustStore::new([("bsp".to_owned(), public_key(&key))].into());
        let verdict = store
            .verify_folder(&unpacked, None, "by this host")
            .unwrap();
        assert!(
            matches!(verdict, Ok(Verdict::Trusted { .. })),
            "{verdict:?}"
        );
        // Unpacking never overwrites.
        assert!(unpack(&file, &unpacked).is_err());
    }

    fn archive_with(name: &str, kind: tar::EntryType) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut archive = tar::Builder::new(GzEncoder::new(
            file.reopen().unwrap(),
            Compression::default(),
        ));
        let mut header = tar::Header::new_gnu();
        header.set_size(3);
        header.set_mode(0o644);
        header.set_entry_type(kind);
        // `append_data` refuses `..`; write the raw name as an attacker would.
        header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_cksum();
        archive.append(&header, &b"abc"[..]).unwrap();
        archive.into_inner().unwrap().finish().unwrap();
        file
    }

    #[test]
    fn entries_that_could_escape_the_folder_are_refused() {
        for (name, kind) in [
            ("../evil", tar::EntryType::Regular),
            ("/etc/evil", tar::EntryType::Regular),
            ("sub/evil", tar::EntryType::Regular),
            ("link", tar::EntryType::Symlink),
            (".hidden", tar::EntryType::Regular),
        ] {
            let file = archive_with(name, kind);
            let dir = tempfile::tempdir().unwrap();
            let into = dir.path().join("out");
            let error = unpack(file.path(), &into).unwrap_err().to_string();
            assert!(error.contains("plain files"), "{name}: {error}");
            assert!(
                !into.exists(),
                "{name}: a refused package leaves nothing behind"
            );
        }
    }

    #[test]
    fn a_file_that_is_not_a_package_is_refused_naming_it() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "hello").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let error = unpack(file.path(), &dir.path().join("out"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("not a package file"), "{error}");
    }
}
