//! The contract versions this host serves, and how a component says which
//! one it implements.
//!
//! A component's version is read from the component itself: the interface
//! it exports is named `switchboard:channel/adapter@<version>`. The version
//! a manifest states, and the `switchboard:contract-version` custom section
//! the Rust SDK writes, must agree with it.

use std::fmt;

/// A contract version this host can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ContractVersion {
    /// `switchboard:channel@1.0.0`, the first release.
    V1_0,
    /// `switchboard:channel@1.1.0`.
    V1_1,
    /// `switchboard:channel@1.2.0`: adds the host-performed `http` import.
    V1_2,
}

/// The package every version's interfaces belong to.
pub const PACKAGE: &str = "switchboard:channel";

/// A component or manifest names a version this host does not serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "contract version `{found}` is not served by this host (it serves {})",
    ContractVersion::supported_list()
)]
pub struct UnknownVersion {
    /// What was found.
    pub found: String,
}

impl ContractVersion {
    /// Every version served, oldest first.
    pub const ALL: [ContractVersion; 3] = [
        ContractVersion::V1_0,
        ContractVersion::V1_1,
        ContractVersion::V1_2,
    ];

    /// The newest version: what the SDK builds against.
    pub const LATEST: ContractVersion = ContractVersion::V1_2;

    /// The version number, e.g. `1.1.0`.
    pub fn as_str(self) -> &'static str {
        match self {
            ContractVersion::V1_0 => "1.0.0",
            ContractVersion::V1_1 => "1.1.0",
            ContractVersion::V1_2 => "1.2.0",
        }
    }

    /// The version with this number.
    pub fn parse(version: &str) -> Result<Self, UnknownVersion> {
        Self::ALL
            .into_iter()
            .find(|known| known.as_str() == version)
            .ok_or_else(|| UnknownVersion {
                found: version.to_owned(),
            })
    }

    /// The versions served, for messages: `1.0.0, 1.1.0, 1.2.0`.
    pub fn supported_list() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }

    /// The name of the interface a component of this version exports.
    pub fn adapter_export(self) -> String {
        format!("{PACKAGE}/adapter@{}", self.as_str())
    }

    /// The version a component implements, from the names it exports.
    ///
    /// `Ok(None)` when it exports no `switchboard:channel/adapter` interface
    /// at all; an error when it exports one of a version this host does not
    /// serve (or several).
    pub fn from_exports<'a>(
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<Option<Self>, UnknownVersion> {
        let prefix = format!("{PACKAGE}/adapter@");
        let mut found: Option<Self> = None;
        for name in names {
            let Some(version) = name.strip_prefix(&prefix) else {
                continue;
            };
            let version = Self::parse(version)?;
            if let Some(other) = found
                && other != version
            {
                return Err(UnknownVersion {
                    found: format!("{} and {}", other.as_str(), version.as_str()),
                });
            }
            found = Some(version);
        }
        Ok(found)
    }
}

impl fmt::Display for ContractVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};
    use std::path::{Path, PathBuf};

    #[test]
    fn reads_the_version_from_export_names() {
        let names = ["wasi:cli/run@0.2.0", "switchboard:channel/adapter@1.0.0"];
        assert_eq!(
            ContractVersion::from_exports(names),
            Ok(Some(ContractVersion::V1_0))
        );
        assert_eq!(
            ContractVersion::from_exports(["switchboard:channel/adapter@1.1.0"]),
            Ok(Some(ContractVersion::V1_1))
        );
        assert_eq!(
            ContractVersion::from_exports(["wasi:http/incoming-handler@0.2.0"]),
            Ok(None)
        );
    }

    #[test]
    fn an_unknown_version_names_the_versions_served() {
        let error = ContractVersion::from_exports(["switchboard:channel/adapter@9.0.0"])
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "contract version `9.0.0` is not served by this host (it serves 1.0.0, 1.1.0, 1.2.0)"
        );
    }

    #[test]
    fn the_export_name_round_trips() {
        for version in ContractVersion::ALL {
            assert_eq!(
                ContractVersion::from_exports([version.adapter_export().as_str()]),
                Ok(Some(version))
            );
            assert_eq!(ContractVersion::parse(version.as_str()), Ok(version));
        }
    }

    fn wit_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit")
    }

    /// SHA-256 of a version folder's `.wit` files, concatenated in name order.
    fn folder_hash(folder: &Path) -> String {
        let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
            .unwrap_or_else(|e| panic!("{}: {e}", folder.display()))
            .map(|entry| entry.expect("directory entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "wit"))
            .collect();
        files.sort();
        let mut hasher = Sha256::new();
        for file in files {
            hasher.update(std::fs::read(&file).expect("read wit file"));
        }
        hex::encode(hasher.finalize())
    }

    /// Released contract folders never change: `wit/RELEASED` lists every
    /// version folder with its hash, and each must still match. A new
    /// version goes in a new folder, with a new line.
    #[test]
    fn released_contracts_are_frozen() {
        let listing = std::fs::read_to_string(wit_dir().join("RELEASED")).expect("wit/RELEASED");
        let mut listed = Vec::new();
        for (number, line) in listing.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((version, hash)) = line.split_once(char::is_whitespace) else {
                panic!("wit/RELEASED:{}: expected `<version> <sha256>`", number + 1);
            };
            let actual = folder_hash(&wit_dir().join(version));
            assert_eq!(
                actual,
                hash.trim(),
                "wit/{version} changed after it was released: a released contract never changes; put new things in a new version folder"
            );
            listed.push(version.to_owned());
        }
        let mut folders: Vec<String> = std::fs::read_dir(wit_dir())
            .expect("wit/")
            .map(|entry| entry.expect("directory entry"))
            .filter(|entry| entry.path().is_dir())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        folders.sort();
        assert_eq!(
            folders, listed,
            "every wit/<version>/ folder is listed in wit/RELEASED"
        );
        for version in ContractVersion::ALL {
            assert!(
                listed.iter().any(|v| v == version.as_str()),
                "served version {version} is released"
            );
        }
    }
}
