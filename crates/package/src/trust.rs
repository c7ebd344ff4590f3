//! The operator's trusted keys, and the verdict on a package folder.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::PackageError;
use crate::digest::{PackageDigest, digest_of, package_files};
use crate::keys::{KeyId, PublicKey};
use crate::signature::Signature;

/// A package folder read once: its files, their digest and its signature.
/// A host verifies these bytes and loads the component from them, so a
/// file swapped between the check and the load cannot slip through.
#[derive(Debug, Clone)]
pub struct PackageContents {
    /// The files in name order (without `signature.toml`).
    pub files: Vec<(String, Vec<u8>)>,
    /// Their digest.
    pub digest: PackageDigest,
    /// The signature, if the package is signed.
    pub signature: Option<Signature>,
}

impl PackageContents {
    /// Read the package in `folder`.
    pub fn read(folder: &Path) -> Result<Self, PackageError> {
        let files = package_files(folder)?;
        let digest = digest_of(&files);
        let signature = Signature::read(folder)?;
        Ok(Self {
            files,
            digest,
            signature,
        })
    }

    /// The contents of the file `name`.
    pub fn file(&self, name: &str) -> Option<&[u8]> {
        self.files
            .iter()
            .find(|(file, _)| file == name)
            .map(|(_, contents)| contents.as_slice())
    }
}

/// Keys the operator trusts, by the name the configuration gives them.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    keys: BTreeMap<String, PublicKey>,
}

/// What is true of a package folder's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Signed over its current files by a trusted key (`key` is the
    /// operator's name for it).
    Trusted {
        /// The package digest.
        digest: PackageDigest,
        /// The operator's name for the key.
        key: String,
        /// The key's id.
        key_id: KeyId,
    },
    /// No `signature.toml`.
    Unsigned {
        /// The package digest.
        digest: PackageDigest,
    },
}

/// Why a package is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// The files do not match the digest that was signed.
    #[error("tampered: the files' digest is {actual}, the signature covers {signed}")]
    Tampered {
        /// Computed from the files.
        actual: PackageDigest,
        /// Claimed by `signature.toml`.
        signed: String,
    },
    /// The signature does not verify with the key it names.
    #[error("the signature does not verify with key {key_id} (`{key}`)")]
    BadSignature {
        /// The signer's key id.
        key_id: KeyId,
        /// The operator's name for it.
        key: String,
    },
    /// Signed by a key the operator does not trust (for this channel).
    #[error("signed by key {key_id}, which is not among the keys trusted {scope} ({trusted})")]
    Untrusted {
        /// The signer's key id.
        key_id: KeyId,
        /// "for channel `x`" or "by this host".
        scope: String,
        /// The trusted keys' names and ids.
        trusted: String,
    },
    /// Unsigned, and unsigned packages are not allowed.
    #[error(
        "unsigned (no signature.toml), and unsigned packages are not allowed {scope}; sign it with `switchboard adapter pack --key` or set `allow_unsigned = true` for the channel"
    )]
    Unsigned {
        /// "for channel `x`".
        scope: String,
    },
}

impl TrustStore {
    /// A store of `name → key`.
    pub fn new(keys: BTreeMap<String, PublicKey>) -> Self {
        Self { keys }
    }

    /// Trust `key` under `name` too (a key given on the command line).
    pub fn insert(&mut self, name: String, key: PublicKey) {
        self.keys.insert(name, key);
    }

    /// Whether a host admits the package for `channel`: signed by a key in
    /// `allowed` (`None`: any trusted key), or unsigned where
    /// `allow_unsigned` says so. Returns the signer's name and key id, or
    /// `None` for an admitted unsigned package.
    pub fn admit(
        &self,
        contents: &PackageContents,
        channel: &str,
        allowed: Option<&BTreeSet<String>>,
        allow_unsigned: bool,
    ) -> Result<Option<(String, KeyId)>, TrustError> {
        let scope = format!("for channel `{channel}`");
        match self.judge(
            contents.digest,
            contents.signature.as_ref(),
            allowed,
            &scope,
        )? {
            Verdict::Trusted { key, key_id, .. } => Ok(Some((key, key_id))),
            Verdict::Unsigned { .. } if allow_unsigned => Ok(None),
            Verdict::Unsigned { .. } => Err(TrustError::Unsigned { scope }),
        }
    }

    /// Whether no keys are trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The names of the trusted keys.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Read the folder's files and signature and judge it. `allowed` limits
    /// the keys (by name) that may sign it; `None` allows every trusted key.
    /// `scope` says for what the verdict is given ("for channel `line`").
    pub fn verify_folder(
        &self,
        folder: &Path,
        allowed: Option<&BTreeSet<String>>,
        scope: &str,
    ) -> Result<Result<Verdict, TrustError>, PackageError> {
        let contents = PackageContents::read(folder)?;
        Ok(self.judge(contents.digest, contents.signature.as_ref(), allowed, scope))
    }

    /// Judge a digest and its (optional) signature.
    pub fn judge(
        &self,
        digest: PackageDigest,
        signature: Option<&Signature>,
        allowed: Option<&BTreeSet<String>>,
        scope: &str,
    ) -> Result<Verdict, TrustError> {
        let Some(signature) = signature else {
            return Ok(Verdict::Unsigned { digest });
        };
        if PackageDigest::parse(&signature.digest) != Some(digest) {
            return Err(TrustError::Tampered {
                actual: digest,
                signed: signature.digest.clone(),
            });
        }
        let key_id = signature.key_id();
        let candidates: Vec<(&String, &PublicKey)> = self
            .keys
            .iter()
            .filter(|(name, _)| allowed.is_none_or(|allowed| allowed.contains(*name)))
            .collect();
        let Some((name, key)) = candidates.iter().find(|(_, key)| key.id() == key_id) else {
            let trusted = if candidates.is_empty() {
                "none".to_owned()
            } else {
                candidates
                    .iter()
                    .map(|(name, key)| format!("{name} = {}", key.id()))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(TrustError::Untrusted {
                key_id,
                scope: scope.to_owned(),
                trusted,
            });
        };
        if !signature.verifies(&digest, key) {
            return Err(TrustError::BadSignature {
                key_id,
                key: (*name).clone(),
            });
        }
        Ok(Verdict::Trusted {
            digest,
            key: (*name).clone(),
            key_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{generate_signing_key, public_key};
    use crate::signature::{SIGNATURE_FILE, sign_folder};

    fn package() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("manifest.toml"),
            "[adapter]\nname = \"acme\"\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("acme.wasm"), b"\0asm component").unwrap();
        dir
    }

    #[test]
    fn signed_unsigned_tampered_and_untrusted_packages() {
        let bsp = generate_signing_key();
        let stranger = generate_signing_key();
        let store = TrustStore::new(BTreeMap::from([("bsp".to_owned(), public_key(&bsp))]));
        let scope = "for channel `acme`";

        let dir = package();
        let verdict = store.verify_folder(dir.path(), None, scope).unwrap();
        assert!(
            matches!(verdict, Ok(Verdict::Unsigned { .. })),
            "{verdict:?}"
        );

        sign_folder(dir.path(), &bsp).unwrap();
        match store.verify_folder(dir.path(), None, scope).unwrap() {
            Ok(Verdict::Trusted { key, key_id, .. }) => {
                assert_eq!(key, "bsp");
                assert_eq!(key_id, public_key(&bsp).id());
            }
            other => panic!("{other:?}"),
        }
        // Allowed for the channel only if the key is in its list.
        let only_other = BTreeSet::from(["other".to_owned()]);
        let error = store
            .verify_folder(dir.path(), Some(&only_other), scope)
            .unwrap()
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("not among the keys trusted for channel `acme` (none)"),
            "{error}"
        );

        // One byte of the component changed after signing.
        std::fs::write(dir.path().join("acme.wasm"), b"\0asm componenT").unwrap();
        let error = store
            .verify_folder(dir.path(), None, scope)
            .unwrap()
            .unwrap_err();
        assert!(matches!(error, TrustError::Tampered { .. }), "{error}");
        assert!(error.to_string().starts_with("tampered"), "{error}");

        // Signed by a key nobody trusts.
        let dir = package();
        sign_folder(dir.path(), &stranger).unwrap();
        let error = store
            .verify_folder(dir.path(), None, scope)
            .unwrap()
            .unwrap_err();
        assert!(
            error.to_string().contains(&public_key(&stranger).id().0)
                && error
                    .to_string()
                    .contains(&format!("bsp = {}", public_key(&bsp).id())),
            "{error}"
        );

        // A stranger's signature relabelled with the trusted key's id.
        let text = std::fs::read_to_string(dir.path().join(SIGNATURE_FILE)).unwrap();
        let relabelled = text.replace(&public_key(&stranger).id().0, &public_key(&bsp).id().0);
        std::fs::write(dir.path().join(SIGNATURE_FILE), relabelled).unwrap();
        let error = store
            .verify_folder(dir.path(), None, scope)
            .unwrap()
            .unwrap_err();
        assert!(matches!(error, TrustError::BadSignature { .. }), "{error}");
    }

    #[test]
    fn admit_takes_trusted_signers_and_unsigned_only_where_allowed() {
        let bsp = generate_signing_key();
        let store = TrustStore::new(BTreeMap::from([("bsp".to_owned(), public_key(&bsp))]));
        let dir = package();
        let unsigned = PackageContents::read(dir.path()).unwrap();
        assert_eq!(store.admit(&unsigned, "acme", None, true), Ok(None));
        let error = store.admit(&unsigned, "acme", None, false).unwrap_err();
        assert_eq!(
            error,
            TrustError::Unsigned {
                scope: "for channel `acme`".into()
            }
        );
        sign_folder(dir.path(), &bsp).unwrap();
        let signed = PackageContents::read(dir.path()).unwrap();
        assert_eq!(
            store.admit(&signed, "acme", None, false),
            Ok(Some(("bsp".to_owned(), public_key(&bsp).id())))
        );
    }
}
